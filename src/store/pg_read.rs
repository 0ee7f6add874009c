//! What `store::query` reads from PostgreSQL: grouped sums, sessions and the request log, with
//! the SQL `query::Dialect::Postgres` builds. Kept apart from the writes in `postgres.rs`.

use anyhow::{Context as _, Result};
use jiff::Timestamp;

use super::postgres::Postgres;
use super::query::{Dialect, Dim, Filter, RequestFilter, Session, cost_sum};
use super::{Counts, Outcome, Pricing, Row, UsageSource, decimal, stamp};
use crate::attribution::{Attribution, Tool};
use crate::protocol::Usage;

impl Postgres {
    /// [`super::Backend::usage`].
    pub(super) fn grouped(
        &self,
        filter: &Filter,
        by: &[Dim],
    ) -> Result<Vec<(Vec<Option<String>>, Counts)>> {
        let (sql, params) = Dialect::Postgres.usage_sql(by, filter);
        let rows = self.run(async {
            let client = self.client().await?;
            let statement = client.prepare_cached(&sql).await?;
            let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = params
                .iter()
                .map(|p| p as &(dyn tokio_postgres::types::ToSql + Sync))
                .collect();
            Ok(client.query(&statement, &params).await?)
        })?;
        let count = |v: i64| u64::try_from(v).unwrap_or(0);
        let n = by.len();
        rows.iter()
            .map(|r| {
                let group = (0..n).map(|i| r.get::<_, Option<String>>(i)).collect();
                let counts = Counts {
                    input_tokens: count(r.get(n + 3)),
                    output_tokens: count(r.get(n + 4)),
                    cache_read_tokens: count(r.get(n + 5)),
                    cache_write_tokens: count(r.get(n + 6)),
                    cost_usd: cost_sum(r.get(n + 7))?,
                    ..Counts::of(
                        count(r.get(n + 2)),
                        Outcome::parse(r.get(n))?,
                        Pricing::parse(r.get(n + 1))?,
                    )
                };
                Ok((group, counts))
            })
            .collect()
    }

    /// [`super::Backend::sessions`].
    pub(super) fn sessions_since(
        &self,
        since: Option<Timestamp>,
        limit: usize,
    ) -> Result<Vec<Session>> {
        let since = since.map(stamp);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self.run(async {
            let client = self.client().await?;
            let statement = client
                .prepare_cached(&Dialect::Postgres.sessions_sql())
                .await?;
            Ok(client.query(&statement, &[&since, &limit]).await?)
        })?;
        let count = |v: i64| u64::try_from(v).unwrap_or(0);
        rows.iter()
            .map(|r| {
                Ok(Session {
                    session: r.get(0),
                    tool: r.get(1),
                    first_at: r.get(2),
                    last_at: r.get(3),
                    turns: count(r.get(4)),
                    models: r.get::<_, &str>(5).split(',').map(str::to_owned).collect(),
                    input_tokens: count(r.get(6)),
                    output_tokens: count(r.get(7)),
                    cache_read_tokens: count(r.get(8)),
                    cost_usd: cost_sum(r.get(9))?,
                })
            })
            .collect()
    }

    /// [`super::Backend::requests`].
    pub(super) fn logged(&self, filter: &RequestFilter) -> Result<Vec<(i64, Row)>> {
        let limit = i64::try_from(filter.limit()).unwrap_or(i64::MAX);
        let status = filter.status.map(i32::from);
        let rows = self.run(async {
            let client = self.client().await?;
            let statement = client
                .prepare_cached(&Dialect::Postgres.requests_sql())
                .await?;
            Ok(client
                .query(
                    &statement,
                    &[
                        &limit,
                        &filter.before,
                        &filter.after,
                        &filter.key,
                        &filter.tool,
                        &filter.session,
                        &filter.model,
                        &status,
                        &filter.outcome,
                    ],
                )
                .await?)
        })?;
        rows.iter().map(read_row).collect()
    }
}

/// A row of `id, ` and [`Dialect::row_columns`].
fn read_row(r: &tokio_postgres::Row) -> Result<(i64, Row)> {
    let count = |v: i64| u64::try_from(v).unwrap_or(0);
    let model: String = r.get(4);
    let started: &str = r.get(2);
    let row = Row {
        request_id: r.get(1),
        started_at: started
            .parse()
            .with_context(|| format!("`{started}` in the database is not a timestamp"))?,
        key_name: r.get(3),
        attribution: Attribution {
            tool: Tool::parse(r.get(18))?,
            session: r.get(19),
            project: r.get(20),
        },
        requested_model: r
            .get::<_, Option<String>>(21)
            .unwrap_or_else(|| model.clone()),
        model,
        route: r.get(22),
        provider: r.get(5),
        status: u16::try_from(r.get::<_, i32>(6)).unwrap_or(0),
        outcome: Outcome::parse(r.get(7))?,
        stream: r.get(8),
        usage: Usage {
            input_tokens: count(r.get(9)),
            output_tokens: count(r.get(10)),
            cache_read_tokens: count(r.get(11)),
            cache_write_tokens: count(r.get(12)),
            ..Usage::default()
        },
        usage_source: UsageSource::parse(r.get(13))?,
        cost_usd: decimal(r.get(14))?,
        latency_ms: count(r.get(15)),
        ttft_ms: r.get::<_, Option<i64>>(16).map(count),
        pricing: Pricing::parse(r.get(17))?,
    };
    Ok((r.get(0), row))
}
