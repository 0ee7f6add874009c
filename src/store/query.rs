//! What `izzi usage`, the gateway's JSON API (`/izzi/api/`) and `izzi statusline` read from the
//! ledger: sums grouped by day, model, key, tool or session; agent sessions; the request log. One
//! layer for every reader, so the API and the CLI give the same numbers; each backend only runs
//! the SQL built here (in its [`Dialect`]) and decodes the rows.
//!
//! Never prompt or answer text: the ledger holds none.

use std::collections::BTreeMap;
use std::str::FromStr;

use anyhow::Result;
use jiff::civil::Date;
use jiff::{SignedDuration, Timestamp};
use rust_decimal::Decimal;
use serde::Serialize;

use super::{Backend, Counts, Outcome, Row, decimal, stamp, utc_date};
use crate::wire::wire_enum;

wire_enum! {
    /// What `izzi usage --by` groups requests by.
    Dim {
        /// The UTC date the request started (`YYYY-MM-DD`).
        Day = "day",
        /// The model served.
        Model = "model",
        /// The client key's name.
        Key = "key",
        /// The client tool (`claude-code`, `codex`, …, `other`).
        Tool = "tool",
        /// The agent session (none for requests that named none).
        Session = "session",
    }
}

impl Dim {
    const EVERY: [Self; 5] = [Self::Day, Self::Model, Self::Key, Self::Tool, Self::Session];
}

/// Dimensions to group by, in order, each once: `day,model`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Dims(pub(crate) Vec<Dim>);

impl FromStr for Dims {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let mut dims = Vec::new();
        for name in text.split(',').map(str::trim) {
            let dim = Dim::EVERY
                .into_iter()
                .find(|d| d.as_str() == name)
                .ok_or_else(|| {
                    format!("`{name}` is not a dimension; use day, model, key, tool or session")
                })?;
            if !dims.contains(&dim) {
                dims.push(dim);
            }
        }
        Ok(Self(dims))
    }
}

/// Where a `--since` (or `since=`) starts: a time ago (`7d`, `24h`, `30m`), a UTC date, or an
/// RFC 3339 time. Keeps the text as written, which reports echo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Since {
    text: String,
    start: Start,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Start {
    Ago(SignedDuration),
    Date(Date),
    At(Timestamp),
}

impl FromStr for Since {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let ago = |unit: i64| {
            text[..text.len() - 1]
                .parse::<i64>()
                .ok()
                .filter(|n| (0..=36_500 * 86_400 / unit).contains(n))
                .map(|n| Start::Ago(SignedDuration::from_secs(n * unit)))
        };
        let start = match text.chars().last() {
            Some('d') => ago(86_400),
            Some('h') => ago(3_600),
            Some('m') => ago(60),
            _ => None,
        }
        .or_else(|| text.parse().ok().map(Start::At))
        .or_else(|| (text.len() == 10).then(|| text.parse().ok().map(Start::Date))?)
        .ok_or_else(|| {
            format!(
                "`{text}` is not a time; write 7d, 24h or 30m (ago), a UTC date (2026-03-01) or an RFC 3339 time (2026-03-01T09:00:00Z)"
            )
        })?;
        Ok(Self {
            text: text.to_owned(),
            start,
        })
    }
}

impl Since {
    /// The first instant it includes, seen at `now`.
    pub(crate) fn start(&self, now: Timestamp) -> Timestamp {
        match self.start {
            Start::Ago(ago) => now.checked_sub(ago).unwrap_or(Timestamp::MIN),
            Start::Date(date) => date
                .to_zoned_datetime(jiff::tz::TimeZone::UTC)
                .map_or(Timestamp::MIN, |z| z.timestamp()),
            Start::At(at) => at,
        }
    }

    /// As written.
    pub(crate) fn as_str(&self) -> &str {
        &self.text
    }
}

/// Which rows a sum reads.
#[derive(Debug, Clone, Default)]
pub(crate) struct Filter {
    pub(crate) since: Option<Timestamp>,
    pub(crate) key: Option<String>,
    pub(crate) session: Option<String>,
}

/// One group's sums: its value per dimension (no session is `null`), then the counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct UsageLine {
    #[serde(flatten)]
    pub(crate) group: BTreeMap<Dim, Option<String>>,
    #[serde(flatten)]
    pub(crate) counts: Counts,
}

/// `izzi usage --json` and `GET /izzi/api/usage`. Costs are decimal strings in USD.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct UsageReport {
    /// `--since` as given.
    pub(crate) since: Option<String>,
    /// `--key`, if given.
    pub(crate) key: Option<String>,
    pub(crate) by: Vec<Dim>,
    pub(crate) lines: Vec<UsageLine>,
    pub(crate) total: Counts,
}

/// Sums by `by`, of the rows `filter` selects, ordered by group.
pub(crate) fn usage(
    db: &dyn Backend,
    by: &[Dim],
    since: Option<&Since>,
    key: Option<&str>,
    now: Timestamp,
) -> Result<UsageReport> {
    let filter = Filter {
        since: since.map(|s| s.start(now)),
        key: key.map(str::to_owned),
        session: None,
    };
    let mut groups: BTreeMap<Vec<Option<String>>, Counts> = BTreeMap::new();
    for (group, counts) in db.usage(&filter, by)? {
        groups.entry(group).or_default().add(&counts);
    }
    let mut total = Counts::default();
    let lines = groups
        .into_iter()
        .map(|(values, counts)| {
            total.add(&counts);
            UsageLine {
                group: by.iter().copied().zip(values).collect(),
                counts,
            }
        })
        .collect();
    Ok(UsageReport {
        since: since.map(|s| s.as_str().to_owned()),
        key: key.map(str::to_owned),
        by: by.to_vec(),
        lines,
        total,
    })
}

/// The sums of every row `filter` selects.
pub(crate) fn total(db: &dyn Backend, filter: &Filter) -> Result<Counts> {
    let mut total = Counts::default();
    for (_, counts) in db.usage(filter, &[])? {
        total.add(&counts);
    }
    Ok(total)
}

/// `GET /izzi/api/summary`: today and this month (UTC), and this month's cache hit rate (the
/// gateway adds the alerts standing).
#[derive(Debug, Serialize)]
pub(crate) struct Summary {
    pub(crate) today: Counts,
    pub(crate) month: Counts,
    /// Cache reads over all input this month; none without input.
    pub(crate) cache_hit_rate: Option<f64>,
}

/// Midnight UTC of `now`'s day.
pub(crate) fn today_start(now: Timestamp) -> Timestamp {
    super::window_start(now, super::DAY)
}

pub(crate) fn summary(db: &dyn Backend, now: Timestamp) -> Result<Summary> {
    let first = utc_date(now).first_of_month();
    let month_start = Since {
        text: String::new(),
        start: Start::Date(first),
    }
    .start(now);
    let since = |start| Filter {
        since: Some(start),
        ..Filter::default()
    };
    let today = total(db, &since(today_start(now)))?;
    let month = total(db, &since(month_start))?;
    let input = month.input_tokens + month.cache_read_tokens + month.cache_write_tokens;
    #[allow(clippy::cast_precision_loss)] // token counts far below 2^52
    let cache_hit_rate = (input > 0).then(|| month.cache_read_tokens as f64 / input as f64);
    Ok(Summary {
        today,
        month,
        cache_hit_rate,
    })
}

/// One agent session (`GET /izzi/api/sessions`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Session {
    pub(crate) session: String,
    pub(crate) tool: String,
    pub(crate) first_at: String,
    pub(crate) last_at: String,
    pub(crate) turns: u64,
    pub(crate) models: Vec<String>,
    pub(crate) input_tokens: u64,
    pub(crate) output_tokens: u64,
    pub(crate) cache_read_tokens: u64,
    #[serde(with = "rust_decimal::serde::str")]
    pub(crate) cost_usd: Decimal,
}

/// The most rows one page of the request log or sessions holds.
pub(crate) const MAX_LIMIT: usize = 1000;

/// Which requests the log shows (`GET /izzi/api/requests`): newest first.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RequestFilter {
    pub(crate) limit: Option<usize>,
    /// Only rows older than this `seq` (the next page).
    pub(crate) before: Option<i64>,
    /// Only rows newer than this `seq` (the live log).
    pub(crate) after: Option<i64>,
    pub(crate) key: Option<String>,
    pub(crate) tool: Option<String>,
    pub(crate) session: Option<String>,
    /// The model served or asked for.
    pub(crate) model: Option<String>,
    pub(crate) status: Option<u16>,
    pub(crate) outcome: Option<String>,
}

impl RequestFilter {
    /// The page size: 100 unless asked, at most [`MAX_LIMIT`].
    pub(crate) fn limit(&self) -> usize {
        self.limit.unwrap_or(100).clamp(1, MAX_LIMIT)
    }
}

/// One row of the request log.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Logged {
    seq: i64,
    request_id: String,
    started_at: String,
    key: String,
    tool: &'static str,
    session: Option<String>,
    project: Option<String>,
    requested_model: String,
    model: String,
    route: Option<String>,
    provider: String,
    status: u16,
    outcome: Outcome,
    stream: bool,
    input_tokens: u64,
    output_tokens: u64,
    cache_read_tokens: u64,
    cache_write_tokens: u64,
    #[serde(with = "rust_decimal::serde::str")]
    cost_usd: Decimal,
    ttft_ms: Option<u64>,
    latency_ms: u64,
}

impl Logged {
    pub(crate) fn new(seq: i64, row: Row) -> Self {
        Self {
            seq,
            started_at: stamp(row.started_at),
            tool: row.attribution.tool.as_str(),
            session: row.attribution.session,
            project: row.attribution.project,
            request_id: row.request_id,
            key: row.key_name,
            requested_model: row.requested_model,
            model: row.model,
            route: row.route,
            provider: row.provider,
            status: row.status,
            outcome: row.outcome,
            stream: row.stream,
            input_tokens: row.usage.input_tokens,
            output_tokens: row.usage.output_tokens,
            cache_read_tokens: row.usage.cache_read_tokens,
            cache_write_tokens: row.usage.cache_write_tokens,
            cost_usd: row.cost_usd,
            ttft_ms: row.ttft_ms,
            latency_ms: row.latency_ms,
        }
    }
}

/// A page of the request log, newest first, and the `before` of the next one.
#[derive(Debug, Serialize)]
pub(crate) struct RequestPage {
    pub(crate) requests: Vec<Logged>,
    pub(crate) next_before: Option<i64>,
}

pub(crate) fn requests(db: &dyn Backend, filter: &RequestFilter) -> Result<RequestPage> {
    let requests: Vec<Logged> = db
        .requests(filter)?
        .into_iter()
        .map(|(seq, row)| Logged::new(seq, row))
        .collect();
    let next_before = (requests.len() == filter.limit())
        .then(|| requests.last().map(|r| r.seq))
        .flatten();
    Ok(RequestPage {
        requests,
        next_before,
    })
}

/// Sums of costs as a backend returns them: one decimal, or several separated by spaces (SQLite
/// keeps money as text and cannot add it exactly).
pub(super) fn cost_sum(text: &str) -> Result<Decimal> {
    text.split_ascii_whitespace()
        .try_fold(Decimal::ZERO, |sum, part| Ok(sum + decimal(part)?))
}

/// The SQL a backend speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// Parameter `n` as text (`?n`, `$n::text`).
    fn text(self, n: usize) -> String {
        match self {
            Self::Sqlite => format!("?{n}"),
            Self::Postgres => format!("${n}::text"),
        }
    }

    fn int(self, n: usize) -> String {
        match self {
            Self::Sqlite => format!("?{n}"),
            Self::Postgres => format!("${n}::int8"),
        }
    }

    /// `started_at` on or after the time in parameter `n`.
    fn since(self, n: usize) -> String {
        match self {
            Self::Sqlite => format!("started_at >= ?{n}"),
            Self::Postgres => format!("started_at >= ${n}::text::timestamptz"),
        }
    }

    fn column(self, dim: Dim) -> &'static str {
        match (dim, self) {
            (Dim::Day, Self::Sqlite) => "substr(started_at, 1, 10)",
            (Dim::Day, Self::Postgres) => "to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
            (Dim::Model, _) => "model",
            (Dim::Key, _) => "key_name",
            (Dim::Tool, _) => "tool",
            (Dim::Session, _) => "session",
        }
    }

    /// The costs of a group, for [`cost_sum`].
    fn costs(self) -> &'static str {
        match self {
            Self::Sqlite => "group_concat(cost_usd, ' ')",
            Self::Postgres => "sum(cost_usd)::text",
        }
    }

    /// A time column as stored text.
    fn stamp(self, column: &str) -> String {
        match self {
            Self::Sqlite => column.to_owned(),
            Self::Postgres => {
                format!("to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')")
            }
        }
    }

    /// `filter` as a `WHERE` clause and its parameters (text, numbered from 1): only the
    /// conditions it sets, so the indexes on `started_at` and `session` serve them.
    fn filter(self, filter: &Filter) -> (String, Vec<String>) {
        let mut clauses = vec!["TRUE".to_owned()];
        let mut params = Vec::new();
        if let Some(since) = filter.since {
            params.push(stamp(since));
            clauses.push(self.since(params.len()));
        }
        for (column, value) in [("key_name", &filter.key), ("session", &filter.session)] {
            if let Some(value) = value {
                params.push(value.clone());
                clauses.push(format!("{column} = {}", self.text(params.len())));
            }
        }
        (clauses.join(" AND "), params)
    }

    /// The sums by `by` (and by outcome and pricing, which [`Counts`] keep apart) of the rows
    /// `filter` selects: the group's values, outcome, pricing, requests, the four token sums,
    /// the costs; and the parameters, as text.
    pub(super) fn usage_sql(self, by: &[Dim], filter: &Filter) -> (String, Vec<String>) {
        let dims: String = by
            .iter()
            .map(|d| format!("{}, ", self.column(*d)))
            .collect();
        let sum = |column: &str| match self {
            Self::Sqlite => format!("sum({column})"),
            Self::Postgres => format!("sum({column})::int8"),
        };
        let (clause, params) = self.filter(filter);
        let sql = format!(
            "SELECT {dims}outcome, pricing, count(*), {}, {}, {}, {}, {}
             FROM ledger WHERE {clause}
             GROUP BY {dims}outcome, pricing",
            sum("input_tokens"),
            sum("output_tokens"),
            sum("cache_read_tokens"),
            sum("cache_write_tokens"),
            self.costs(),
        );
        (sql, params)
    }

    /// Sessions, newest first: session, tool, first and last start, turns, models (comma
    /// separated), input, output and cache-read sums, costs. Parameters: since (text), limit.
    pub(super) fn sessions_sql(self) -> String {
        let (models, cast) = match self {
            Self::Sqlite => ("group_concat(DISTINCT model)", ""),
            Self::Postgres => ("string_agg(DISTINCT model, ',')", "::int8"),
        };
        format!(
            "SELECT session, max(tool), {}, {}, count(*), {models},
                    sum(input_tokens){cast}, sum(output_tokens){cast},
                    sum(cache_read_tokens){cast}, {}
             FROM ledger WHERE session IS NOT NULL AND ({} IS NULL OR {})
             GROUP BY session ORDER BY max(started_at) DESC, session LIMIT {}",
            self.stamp("min(started_at)"),
            self.stamp("max(started_at)"),
            self.costs(),
            self.text(1),
            self.since(1),
            self.int(2),
        )
    }

    /// The request log's rows, newest first: `id`, then [`Dialect::row_columns`]. Parameters:
    /// limit, before, after, key, tool, session, model, status, outcome. The id range is a
    /// range on the primary key (a poll for rows `after` the newest reads only those).
    pub(super) fn requests_sql(self) -> String {
        let eq =
            |column: &str, n: usize| format!("({p} IS NULL OR {column} = {p})", p = self.text(n));
        let status = match self {
            Self::Sqlite => "(?8 IS NULL OR status = ?8)".to_owned(),
            Self::Postgres => "($8::int4 IS NULL OR status = $8::int4)".to_owned(),
        };
        format!(
            "SELECT id, {} FROM ledger
             WHERE id < coalesce({before}, {max}) AND id > coalesce({after}, 0)
               AND {} AND {} AND {} AND ({model} IS NULL OR model = {model}
                                         OR requested_model = {model})
               AND {status} AND {}
             ORDER BY id DESC LIMIT {}",
            self.row_columns(),
            eq("key_name", 4),
            eq("tool", 5),
            eq("session", 6),
            eq("outcome", 9),
            self.int(1),
            before = self.int(2),
            after = self.int(3),
            model = self.text(7),
            max = i64::MAX,
        )
    }

    /// A whole ledger row's columns, in [`Row`]'s decoding order: request id, started, key,
    /// model, provider, status, outcome, stream, the four token counts, usage source, cost,
    /// latency, time to first byte, pricing, tool, session, project, requested model, route.
    pub(super) fn row_columns(self) -> String {
        let (started, cost) = match self {
            Self::Sqlite => ("started_at".to_owned(), "cost_usd"),
            Self::Postgres => (self.stamp("started_at"), "cost_usd::text"),
        };
        format!(
            "request_id, {started}, key_name, model, provider, status, outcome, stream,
             input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, usage_source,
             {cost}, latency_ms, ttft_ms, pricing, tool, session, project, requested_model, route"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_reads_ago_dates_and_times_and_says_what_it_takes() {
        let now: Timestamp = "2026-03-10T12:00:00Z".parse().unwrap();
        let start = |text: &str| text.parse::<Since>().unwrap().start(now).to_string();
        assert_eq!(start("7d"), "2026-03-03T12:00:00Z");
        assert_eq!(start("24h"), "2026-03-09T12:00:00Z");
        assert_eq!(start("30m"), "2026-03-10T11:30:00Z");
        assert_eq!(start("2026-03-01"), "2026-03-01T00:00:00Z");
        assert_eq!(start("2026-03-01T09:30:00+01:00"), "2026-03-01T08:30:00Z");
        for bad in [
            "",
            "d",
            "-1d",
            "7w",
            "yesterday",
            "2026-13-01",
            "2026-03-01T09:30:00",
        ] {
            let err = bad.parse::<Since>().unwrap_err();
            assert!(err.contains("7d, 24h or 30m"), "{bad}: {err}");
        }
        assert_eq!("7d".parse::<Since>().unwrap().as_str(), "7d");
    }

    #[test]
    fn dimensions_parse_in_order_once_and_name_the_choices() {
        assert_eq!(
            "day,model,day".parse::<Dims>().unwrap(),
            Dims(vec![Dim::Day, Dim::Model])
        );
        let err = "day,colour".parse::<Dims>().unwrap_err();
        assert!(err.contains("`colour`") && err.contains("session"), "{err}");
    }

    #[test]
    fn costs_add_up_exactly() {
        assert_eq!(
            cost_sum("0.1 0.2 0.000000001").unwrap(),
            "0.300000001".parse::<Decimal>().unwrap()
        );
        assert_eq!(cost_sum("").unwrap(), Decimal::ZERO);
        assert!(cost_sum("1 x").is_err());
    }
}
