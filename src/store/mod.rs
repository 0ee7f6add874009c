//! Where izzi keeps what outlives a process: client keys created with `izzi keys create` (stored
//! as SHA-256 hashes, never the key), each key name's running spend, and the usage ledger, one
//! row per admitted request. The domain types are here and in `row`; [`Backend`] is what a
//! database does, in `izzi.db` (`sqlite`, SQLite in WAL mode) or, with `[state].postgres_url`,
//! PostgreSQL (`postgres`); [`Database`] is the one the config names.
//!
//! Two kinds of callers, never on an async runtime worker: the gateway's ledger thread (the only
//! writer of `ledger` and `accounts` while a server runs) and the CLI (`izzi keys`, `izzi usage`),
//! which opens the database itself; WAL lets both read while one writes. Money is stored as
//! decimal text, so sums stay exact; times are UTC RFC 3339 with milliseconds, which sort as text.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::{Context as _, Result};
use jiff::Timestamp;
use jiff::civil::Date;
use rust_decimal::Decimal;

use crate::config::{Plan, State};

mod pg_read;
mod pg_tls;
mod postgres;
pub(crate) mod query;
mod responses;
mod row;
mod sqlite;

pub(crate) use postgres::Postgres;
use query::{Dim, Filter, RequestFilter, Session};
pub(crate) use responses::{Kept, ResponseStore};
pub(crate) use row::{Counts, Outcome, Pricing, Row, UsageSource};
pub(crate) use sqlite::{Store, default_path};

/// Seconds in the minute and in the UTC day, the windows of the rate limits.
pub(crate) const MINUTE: i64 = 60;
pub(crate) const DAY: i64 = 86_400;

/// A timestamp as stored: UTC, milliseconds, so text order is time order.
pub(crate) fn stamp(at: Timestamp) -> String {
    // RFC 3339 with exactly three fractional digits, `YYYY-MM-DDTHH:MM:SS.fffZ`: jiff's own
    // printer, about twice as fast as `strftime` with the same pattern.
    format!("{at:.3}")
}

/// The [`month`] of a [`stamp`], read from its text (`YYYY-MM`, the first seven characters) for
/// a row whose stamp is already made.
pub(crate) fn stamp_month(stamp: &str) -> &str {
    stamp.get(..7).unwrap_or(stamp)
}

/// The start of the clock-aligned window of `seconds` ([`MINUTE`] or [`DAY`])
/// that holds `at`.
pub(crate) fn window_start(at: Timestamp, seconds: i64) -> Timestamp {
    let secs = at.as_second();
    // Whole seconds inside the range `at` came from never fall outside it.
    Timestamp::from_second(secs - secs.rem_euclid(seconds)).unwrap_or(at)
}

/// The UTC calendar date of a timestamp.
pub(crate) fn utc_date(at: Timestamp) -> Date {
    jiff::tz::TimeZone::UTC.to_datetime(at).date()
}

/// `YYYY-MM` of a timestamp, in UTC: the budget's month.
pub(crate) fn month(at: Timestamp) -> String {
    // Two numbers printed, not a `strftime` pattern parsed: this runs per ledger row and per
    // admission with a budget.
    let date = utc_date(at);
    format!("{:04}-{:02}", date.year(), date.month())
}

/// The spill file of a gateway whose ledger is in PostgreSQL, inside `IZZI_HOME`.
const SPILL_FILE: &str = "ledger-spill.db";

/// What both databases do: keys, accounts, the ledger's rows and their sums. Blocking; never
/// call it on an async runtime worker.
pub(crate) trait Backend: std::fmt::Debug + Send {
    /// Names the database in logs.
    fn describe(&self) -> String;
    fn create_key(&self, key: &StoredKey) -> Result<()>;
    fn revoke_key(&self, name: &str, at: Timestamp) -> Result<bool>;
    fn keys(&self) -> Result<Vec<StoredKey>>;
    fn accounts(&self) -> Result<HashMap<String, Account>>;
    fn requests_since(&self, since: Timestamp) -> Result<HashMap<String, u32>>;
    /// Requests, tokens and cost of the rows `filter` selects, by the values of `by` (a group
    /// may come in several parts: `query` adds them up).
    fn usage(&self, filter: &Filter, by: &[Dim]) -> Result<Vec<(Vec<Option<String>>, Counts)>>;
    /// Agent sessions with a request since `since`, the latest active first.
    fn sessions(&self, since: Option<Timestamp>, limit: usize) -> Result<Vec<Session>>;
    /// The ledger's rows `filter` selects, with their ids, newest first.
    fn requests(&self, filter: &RequestFilter) -> Result<Vec<(i64, Row)>>;
    /// Adds `rows` and their costs, all or nothing (PostgreSQL: or all to the spill file).
    fn record(&mut self, rows: &[Row]) -> Result<()>;
    /// How long a write waits for another process's lock (only `izzi.db` is shared so).
    fn set_busy_timeout(&mut self, _timeout: Duration) -> Result<()> {
        Ok(())
    }
    /// Copies spilled rows on; returns how many are still waiting (only PostgreSQL spills).
    fn drain(&self) -> Result<usize> {
        Ok(0)
    }
    /// Whether the database answered its last call (only PostgreSQL can be away).
    fn available(&self) -> Option<Arc<AtomicBool>> {
        None
    }
}

/// Where keys, accounts and the ledger live: `izzi.db`, or PostgreSQL when
/// `[state].postgres_url` is set. Derefs to its [`Backend`].
#[derive(Debug)]
pub(crate) struct Database(Box<dyn Backend>);

impl<B: Backend + 'static> From<B> for Database {
    fn from(backend: B) -> Self {
        Self(Box::new(backend))
    }
}

impl std::ops::Deref for Database {
    type Target = dyn Backend;

    fn deref(&self) -> &Self::Target {
        &*self.0
    }
}

impl std::ops::DerefMut for Database {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut *self.0
    }
}

/// What the ledger knows of one key name, to seed shared counters that were lost.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Seed {
    pub(crate) today: u32,
    pub(crate) this_minute: u32,
    pub(crate) account: Account,
}

impl Database {
    /// The database `[state]` names, for the CLI.
    pub(crate) fn open(state: &State) -> Result<Self> {
        match &state.postgres_url {
            Some(url) => Ok(Postgres::new(url, state.postgres_ca_file.as_deref())?.into()),
            None => Ok(Store::open(&default_path()?)?.into()),
        }
    }

    /// The database for a gateway: PostgreSQL also gets a spill file for rows it cannot take,
    /// and is contacted now, so its migrations are applied before the first request (a failure
    /// is logged, not fatal: the gateway starts and keeps trying).
    pub(crate) fn open_for_gateway(state: &State) -> Result<Self> {
        let Some(url) = &state.postgres_url else {
            let store = Store::open(&default_path()?)?;
            store.tune_for_gateway(state.sync)?;
            return Ok(store.into());
        };
        let spill = crate::env::izzi_home()?.join(SPILL_FILE);
        let postgres = Postgres::new(url, state.postgres_ca_file.as_deref())?.with_spill(&spill)?;
        if let Err(err) = postgres.ping() {
            tracing::error!(
                error = format!("{err:#}"),
                "PostgreSQL is unavailable at start; only the config's keys are accepted until it answers"
            );
        }
        Ok(postgres.into())
    }

    /// `key`'s requests today and this minute (UTC) and its spend, as recorded.
    pub(crate) fn seed(&self, key: &str, now: Timestamp) -> Result<Seed> {
        Ok(Seed {
            today: self
                .requests_since(window_start(now, DAY))?
                .remove(key)
                .unwrap_or(0),
            this_minute: self
                .requests_since(window_start(now, MINUTE))?
                .remove(key)
                .unwrap_or(0),
            account: self.accounts()?.remove(key).unwrap_or_default(),
        })
    }
}

/// A client key stored by `izzi keys create`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredKey {
    pub(crate) name: String,
    pub(crate) key_sha256: [u8; 32],
    pub(crate) plan: Plan,
    pub(crate) rpm: Option<u32>,
    pub(crate) concurrent: Option<u32>,
    pub(crate) daily: Option<u32>,
    pub(crate) monthly_budget_usd: Option<Decimal>,
    pub(crate) credits_usd: Option<Decimal>,
    pub(crate) created_at: String,
    pub(crate) revoked_at: Option<String>,
}

/// What a key name has spent: in all (debited from its credits) and in one month (its budget).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Account {
    pub(crate) spent_usd: Decimal,
    /// `YYYY-MM` that `month_spent_usd` belongs to.
    pub(crate) month: String,
    pub(crate) month_spent_usd: Decimal,
}

impl Account {
    /// The spend of `month` (zero when the account last spent in an earlier month).
    pub(crate) fn spent_in(&self, month: &str) -> Decimal {
        if self.month == month {
            self.month_spent_usd
        } else {
            Decimal::ZERO
        }
    }

    /// Adds the cost of a request that started in `month`. A request that started in a month
    /// before the account's (it ran across the boundary) counts toward the total only.
    pub(crate) fn add(&mut self, month: &str, cost: Decimal) {
        self.spent_usd += cost;
        if month > self.month.as_str() {
            month.clone_into(&mut self.month);
            self.month_spent_usd = Decimal::ZERO;
        }
        if month == self.month {
            self.month_spent_usd += cost;
        }
    }
}

/// A key name already in use (revoked keys keep their names).
#[derive(Debug, thiserror::Error)]
#[error("a key named `{0}` already exists (revoked keys keep their names); pick another name")]
pub(crate) struct NameTaken(pub(crate) String);

/// SQLite integers are signed; counts beyond `i64::MAX` do not happen, and saturate if they do.
pub(super) fn int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

pub(super) fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

pub(super) fn decimal(text: &str) -> Result<Decimal> {
    text.parse()
        .with_context(|| format!("`{text}` in the database is not a decimal amount"))
}

pub(super) fn parse_plan(name: &str) -> Option<Plan> {
    [Plan::Free, Plan::Starter, Plan::Pro, Plan::Max, Plan::Ultra]
        .into_iter()
        .find(|p| p.name() == name)
}
