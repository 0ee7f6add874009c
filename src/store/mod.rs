//! `izzi.db` (SQLite in WAL mode): the schema and every query on it. Client keys created with
//! `izzi keys create` (stored as SHA-256 hashes, never the key), each key name's running spend,
//! and the usage ledger, one row per admitted request. With `[state].postgres_url` the same
//! tables live in PostgreSQL (`postgres`); [`Database`] is the one face of both.
//!
//! Two kinds of callers, never on an async runtime worker: the gateway's ledger thread (the only
//! writer of `ledger` and `accounts` while a server runs) and the CLI (`izzi keys`, `izzi usage`),
//! which opens the database itself; WAL lets both read while one writes. Money is stored as
//! decimal text, so sums stay exact; times are UTC RFC 3339 with milliseconds, which sort as text.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use jiff::Timestamp;
use jiff::civil::Date;
use rusqlite::{Connection, OptionalExtension as _, TransactionBehavior, params};
use rust_decimal::Decimal;

use crate::config::{Plan, State, Synchronous};
use crate::protocol::Usage;

mod pg_tls;
mod postgres;
mod row;

pub(crate) use postgres::Postgres;
pub(crate) use row::{Counts, Outcome, Pricing, Row, UsageLine, UsageSource};

/// The database file's name inside `IZZI_HOME`.
const FILE: &str = "izzi.db";

/// Bumped with each schema change; `open` migrates older files.
const SCHEMA_VERSION: i64 = 3;
/// The gateway connection's page cache: a negative `cache_size` is in KiB.
const GATEWAY_CACHE_KIB: i64 = -512;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS keys (
    name TEXT PRIMARY KEY NOT NULL,
    key_sha256 BLOB NOT NULL UNIQUE,
    plan TEXT NOT NULL,
    rpm INTEGER,
    concurrent INTEGER,
    daily INTEGER,
    monthly_budget_usd TEXT,
    credits_usd TEXT,
    created_at TEXT NOT NULL,
    revoked_at TEXT
) STRICT;
-- Running totals per key name (config keys too), updated in the transaction that adds the rows.
CREATE TABLE IF NOT EXISTS accounts (
    key_name TEXT PRIMARY KEY NOT NULL,
    spent_usd TEXT NOT NULL,
    month TEXT NOT NULL,
    month_spent_usd TEXT NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS ledger (
    id INTEGER PRIMARY KEY,
    request_id TEXT,
    started_at TEXT NOT NULL,
    key_name TEXT NOT NULL,
    model TEXT NOT NULL,
    provider TEXT NOT NULL,
    status INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    stream INTEGER NOT NULL,
    input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    cache_read_tokens INTEGER NOT NULL,
    cache_write_tokens INTEGER NOT NULL,
    usage_source TEXT NOT NULL,
    cost_usd TEXT NOT NULL,
    latency_ms INTEGER NOT NULL,
    ttft_ms INTEGER,
    pricing TEXT NOT NULL DEFAULT 'listed'
) STRICT;
CREATE INDEX IF NOT EXISTS ledger_started_at ON ledger (started_at);
";

/// Schema 1 to 2: rows carry the request's id, so a row copied to PostgreSQL twice is kept once.
const SCHEMA_1_TO_2: &str = "ALTER TABLE ledger ADD COLUMN request_id TEXT;";
/// Schema 2 to 3: rows say where their prices came from (older rows had a catalog price).
const SCHEMA_2_TO_3: &str = "ALTER TABLE ledger ADD COLUMN pricing TEXT NOT NULL DEFAULT 'listed';";

/// Seconds in the minute and in the UTC day, the windows of the rate limits.
pub(crate) const MINUTE: i64 = 60;
pub(crate) const DAY: i64 = 86_400;

/// `$IZZI_HOME/izzi.db`.
pub(crate) fn default_path() -> Result<PathBuf> {
    Ok(crate::env::izzi_home()?.join(FILE))
}

/// Creates an empty database file readable by its owner only (usage and key hashes are the
/// user's own; SQLite gives its `-wal` and `-shm` files the same mode). An existing file keeps
/// the mode it has.
fn create_private(path: &Path) -> Result<()> {
    let mut options = fs_err::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    fs_err::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Err(err) if err.kind() != std::io::ErrorKind::AlreadyExists => Err(err.into()),
        _ => Ok(()),
    }
}

/// A timestamp as stored: UTC, milliseconds, so text order is time order.
pub(crate) fn stamp(at: Timestamp) -> String {
    at.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
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
    utc_date(at).strftime("%Y-%m").to_string()
}

/// The spill file of a gateway whose ledger is in PostgreSQL, inside `IZZI_HOME`.
const SPILL_FILE: &str = "ledger-spill.db";

/// Where keys, accounts and the ledger live: `izzi.db`, or PostgreSQL when
/// `[state].postgres_url` is set. Blocking; never call it on an async runtime worker.
#[derive(Debug)]
pub(crate) enum Database {
    Sqlite(Store),
    Postgres(Postgres),
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
            Some(url) => Ok(Self::Postgres(Postgres::new(
                url,
                state.postgres_ca_file.as_deref(),
            )?)),
            None => Ok(Self::Sqlite(Store::open(&default_path()?)?)),
        }
    }

    /// The database for a gateway: PostgreSQL also gets a spill file for rows it cannot take,
    /// and is contacted now, so its migrations are applied before the first request (a failure
    /// is logged, not fatal: the gateway starts and keeps trying).
    pub(crate) fn open_for_gateway(state: &State) -> Result<Self> {
        let Some(url) = &state.postgres_url else {
            let store = Store::open(&default_path()?)?;
            store.tune_for_gateway(state.sync)?;
            return Ok(Self::Sqlite(store));
        };
        let spill = crate::env::izzi_home()?.join(SPILL_FILE);
        let postgres = Postgres::new(url, state.postgres_ca_file.as_deref())?.with_spill(&spill)?;
        if let Err(err) = postgres.ping() {
            tracing::error!(
                error = format!("{err:#}"),
                "PostgreSQL is unavailable at start; only the config's keys are accepted until it answers"
            );
        }
        Ok(Self::Postgres(postgres))
    }

    /// Whether PostgreSQL answered its last call; `None` for SQLite.
    pub(crate) fn available(&self) -> Option<std::sync::Arc<std::sync::atomic::AtomicBool>> {
        match self {
            Self::Sqlite(_) => None,
            Self::Postgres(pg) => Some(pg.available()),
        }
    }

    /// Names the database in logs.
    pub(crate) fn describe(&self) -> String {
        match self {
            Self::Sqlite(store) => store.path().display().to_string(),
            Self::Postgres(_) => "PostgreSQL (`state.postgres_url`)".to_owned(),
        }
    }

    pub(crate) fn create_key(&self, key: &StoredKey) -> Result<()> {
        match self {
            Self::Sqlite(store) => store.create_key(key),
            Self::Postgres(pg) => pg.create_key(key),
        }
    }

    pub(crate) fn revoke_key(&self, name: &str, at: Timestamp) -> Result<bool> {
        match self {
            Self::Sqlite(store) => store.revoke_key(name, at),
            Self::Postgres(pg) => pg.revoke_key(name, at),
        }
    }

    pub(crate) fn keys(&self) -> Result<Vec<StoredKey>> {
        match self {
            Self::Sqlite(store) => store.keys(),
            Self::Postgres(pg) => pg.keys(),
        }
    }

    pub(crate) fn accounts(&self) -> Result<HashMap<String, Account>> {
        match self {
            Self::Sqlite(store) => store.accounts(),
            Self::Postgres(pg) => pg.accounts(),
        }
    }

    pub(crate) fn requests_since(&self, since: Timestamp) -> Result<HashMap<String, u32>> {
        match self {
            Self::Sqlite(store) => store.requests_since(since),
            Self::Postgres(pg) => pg.requests_since(since),
        }
    }

    pub(crate) fn usage(&self, key: Option<&str>, since: Option<Date>) -> Result<Vec<UsageLine>> {
        match self {
            Self::Sqlite(store) => store.usage(key, since),
            Self::Postgres(pg) => pg.usage(key, since),
        }
    }

    /// How long a write to `izzi.db` waits for another process's lock (PostgreSQL: no effect;
    /// its spill file is this process's alone).
    pub(crate) fn set_busy_timeout(&mut self, timeout: std::time::Duration) -> Result<()> {
        match self {
            Self::Sqlite(store) => store.set_busy_timeout(timeout),
            Self::Postgres(_) => Ok(()),
        }
    }

    /// Adds `rows` and their costs, all or nothing (PostgreSQL: or all to the spill file).
    pub(crate) fn record(&mut self, rows: &[Row]) -> Result<()> {
        match self {
            Self::Sqlite(store) => store.record(rows),
            Self::Postgres(pg) => pg.record(rows),
        }
    }

    /// Copies spilled rows on to PostgreSQL; returns how many are still waiting.
    pub(crate) fn drain(&self) -> Result<usize> {
        match self {
            Self::Sqlite(_) => Ok(0),
            Self::Postgres(pg) => {
                pg.drain()?;
                pg.spilled()
            }
        }
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

/// An open `izzi.db`.
#[derive(Debug)]
pub(crate) struct Store {
    conn: Connection,
    path: PathBuf,
}

impl Store {
    /// Opens (creating it and its directory if needed) and migrates the database at `path`.
    pub(crate) fn open(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent() {
            fs_err::create_dir_all(dir)?;
        }
        create_private(path)?;
        let conn = Connection::open(path)
            .with_context(|| format!("cannot open the database `{}`", path.display()))?;
        let store = Self {
            conn,
            path: path.to_owned(),
        };
        store.prepare().with_context(|| {
            format!(
                "cannot prepare the database `{}`; move it aside if it is not izzi's",
                path.display()
            )
        })?;
        Ok(store)
    }

    fn prepare(&self) -> Result<()> {
        // Another process may hold the write lock for a moment (the server's ledger thread while
        // the CLI creates a key): wait rather than fail.
        self.conn.busy_timeout(Duration::from_secs(10))?;
        self.conn.pragma_update(None, "journal_mode", "WAL")?;
        // NORMAL (with WAL): a commit survives a killed process without an fsync; the gateway
        // can ask for FULL (`[state].sync`).
        self.conn.pragma_update(None, "synchronous", "NORMAL")?;
        let version: i64 = self
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version > SCHEMA_VERSION {
            bail!(
                "it was written by a newer izzi (schema {version}, this one knows {SCHEMA_VERSION}); upgrade izzi"
            );
        }
        if version == 1 {
            self.conn.execute_batch(SCHEMA_1_TO_2)?;
        }
        if (1..=2).contains(&version) {
            self.conn.execute_batch(SCHEMA_2_TO_3)?;
        }
        if version < SCHEMA_VERSION {
            self.conn.execute_batch(SCHEMA)?;
            self.conn
                .pragma_update(None, "user_version", SCHEMA_VERSION)?;
        }
        Ok(())
    }

    /// How long a write waits for another process's lock before failing with `database is
    /// locked` (10 s from `open`).
    pub(crate) fn set_busy_timeout(&mut self, timeout: Duration) -> Result<()> {
        Ok(self.conn.busy_timeout(timeout)?)
    }

    /// The gateway's connection appends ledger rows and updates a few account rows; it reads
    /// much only once, at start. SQLite's default page cache (2 MB) filled up under load and
    /// stayed as resident memory; 512 KB holds every page an append touches, at no CPU cost
    /// that shows (docs/bench.md).
    fn tune_for_gateway(&self, sync: Synchronous) -> Result<()> {
        let value = match sync {
            Synchronous::Normal => "NORMAL",
            Synchronous::Full => "FULL",
        };
        self.conn.pragma_update(None, "synchronous", value)?;
        Ok(self
            .conn
            .pragma_update(None, "cache_size", GATEWAY_CACHE_KIB)?)
    }

    /// Where this database lives.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Stores a new key. Fails when the name is taken (revoked keys keep their names, so their
    /// ledger rows stay theirs).
    pub(crate) fn create_key(&self, key: &StoredKey) -> Result<()> {
        let taken: Option<String> = self
            .conn
            .query_row("SELECT name FROM keys WHERE name = ?1", [&key.name], |r| {
                r.get(0)
            })
            .optional()?;
        if taken.is_some() {
            bail!(name_taken(&key.name));
        }
        self.conn.execute(
            "INSERT INTO keys (name, key_sha256, plan, rpm, concurrent, daily,
                               monthly_budget_usd, credits_usd, created_at, revoked_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![
                key.name,
                key.key_sha256,
                key.plan.name(),
                key.rpm,
                key.concurrent,
                key.daily,
                key.monthly_budget_usd.map(|d| d.to_string()),
                key.credits_usd.map(|d| d.to_string()),
                key.created_at,
                key.revoked_at,
            ],
        )?;
        Ok(())
    }

    /// Marks a key revoked. Returns false when no active key has that name.
    pub(crate) fn revoke_key(&self, name: &str, at: Timestamp) -> Result<bool> {
        let changed = self.conn.execute(
            "UPDATE keys SET revoked_at = ?1 WHERE name = ?2 AND revoked_at IS NULL",
            params![stamp(at), name],
        )?;
        Ok(changed > 0)
    }

    /// Every stored key, revoked ones too, by name.
    pub(crate) fn keys(&self) -> Result<Vec<StoredKey>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT name, key_sha256, plan, rpm, concurrent, daily, monthly_budget_usd,
                    credits_usd, created_at, revoked_at
             FROM keys ORDER BY name",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Vec<u8>>(1)?,
                r.get::<_, String>(2)?,
                (
                    r.get::<_, Option<u32>>(3)?,
                    r.get::<_, Option<u32>>(4)?,
                    r.get::<_, Option<u32>>(5)?,
                ),
                (
                    r.get::<_, Option<String>>(6)?,
                    r.get::<_, Option<String>>(7)?,
                ),
                r.get::<_, String>(8)?,
                r.get::<_, Option<String>>(9)?,
            ))
        })?;
        let mut keys = Vec::new();
        for row in rows {
            let (name, hash, plan, (rpm, concurrent, daily), (budget, credits), created, revoked) =
                row?;
            let key_sha256 = <[u8; 32]>::try_from(hash.as_slice())
                .map_err(|_| anyhow::anyhow!("the stored hash of key `{name}` is not 32 bytes"))?;
            let plan = parse_plan(&plan)
                .with_context(|| format!("the stored plan of key `{name}` is unknown"))?;
            keys.push(StoredKey {
                key_sha256,
                plan,
                rpm,
                concurrent,
                daily,
                monthly_budget_usd: budget.as_deref().map(decimal).transpose()?,
                credits_usd: credits.as_deref().map(decimal).transpose()?,
                created_at: created,
                revoked_at: revoked,
                name,
            });
        }
        Ok(keys)
    }

    /// Every key name's running spend.
    pub(crate) fn accounts(&self) -> Result<HashMap<String, Account>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT key_name, spent_usd, month, month_spent_usd FROM accounts")?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
            ))
        })?;
        let mut accounts = HashMap::new();
        for row in rows {
            let (name, spent, month, month_spent) = row?;
            accounts.insert(
                name,
                Account {
                    spent_usd: decimal(&spent)?,
                    month,
                    month_spent_usd: decimal(&month_spent)?,
                },
            );
        }
        Ok(accounts)
    }

    /// Ledger rows per key name of requests that started at or after `since`.
    pub(crate) fn requests_since(&self, since: Timestamp) -> Result<HashMap<String, u32>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT key_name, COUNT(*) FROM ledger WHERE started_at >= ?1 GROUP BY key_name",
        )?;
        let rows = stmt.query_map([stamp(since)], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, u32>(1)?))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Adds `rows` to the ledger and their costs to the accounts, in one transaction: either all
    /// of it is stored or none.
    pub(crate) fn record(&mut self, rows: &[Row]) -> Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut accounts: HashMap<&str, Account> = HashMap::new();
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO ledger (started_at, key_name, model, provider, status, outcome, stream,
                                     input_tokens, output_tokens, cache_read_tokens,
                                     cache_write_tokens, usage_source, cost_usd, latency_ms,
                                     ttft_ms, request_id, pricing)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16,
                         ?17)",
            )?;
            let mut read = tx.prepare_cached(
                "SELECT spent_usd, month, month_spent_usd FROM accounts WHERE key_name = ?1",
            )?;
            for row in rows {
                insert.execute(params![
                    stamp(row.started_at),
                    row.key_name,
                    row.model,
                    row.provider,
                    row.status,
                    row.outcome.as_str(),
                    row.stream,
                    int(row.usage.input_tokens),
                    int(row.usage.output_tokens),
                    int(row.usage.cache_read_tokens),
                    int(row.usage.cache_write_tokens),
                    row.usage_source.as_str(),
                    row.cost_usd.to_string(),
                    int(row.latency_ms),
                    row.ttft_ms.map(int),
                    row.request_id,
                    row.pricing.as_str(),
                ])?;
                if !accounts.contains_key(row.key_name.as_str()) {
                    let stored = read
                        .query_row([&row.key_name], |r| {
                            Ok((
                                r.get::<_, String>(0)?,
                                r.get::<_, String>(1)?,
                                r.get::<_, String>(2)?,
                            ))
                        })
                        .optional()?;
                    let account = match stored {
                        Some((spent, month, month_spent)) => Account {
                            spent_usd: decimal(&spent)?,
                            month,
                            month_spent_usd: decimal(&month_spent)?,
                        },
                        None => Account::default(),
                    };
                    accounts.insert(&row.key_name, account);
                }
                if let Some(account) = accounts.get_mut(row.key_name.as_str()) {
                    account.add(&month(row.started_at), row.cost_usd);
                }
            }
            let mut write = tx.prepare_cached(
                "INSERT INTO accounts (key_name, spent_usd, month, month_spent_usd)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (key_name) DO UPDATE SET spent_usd = excluded.spent_usd,
                     month = excluded.month, month_spent_usd = excluded.month_spent_usd",
            )?;
            for (name, account) in &accounts {
                write.execute(params![
                    name,
                    account.spent_usd.to_string(),
                    account.month,
                    account.month_spent_usd.to_string()
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Requests, tokens and cost per key and model, of requests that started on or after
    /// `since` (UTC), for one key or all.
    pub(crate) fn usage(&self, key: Option<&str>, since: Option<Date>) -> Result<Vec<UsageLine>> {
        let since = since.map_or_else(String::new, |d| d.to_string());
        let mut stmt = self.conn.prepare_cached(
            "SELECT key_name, model, input_tokens, output_tokens, cache_read_tokens,
                    cache_write_tokens, cost_usd, outcome, pricing
             FROM ledger WHERE started_at >= ?1 AND (?2 IS NULL OR key_name = ?2)",
        )?;
        let mut rows = stmt.query(params![since, key])?;
        // Costs are decimal text; they are summed here, exactly, rather than as SQL floats.
        let mut lines: HashMap<(String, String), UsageLine> = HashMap::new();
        while let Some(r) = rows.next()? {
            let key: String = r.get(0)?;
            let model: String = r.get(1)?;
            let line = lines
                .entry((key.clone(), model.clone()))
                .or_insert_with(|| UsageLine {
                    key,
                    model,
                    ..UsageLine::default()
                });
            let outcome = Outcome::parse(&r.get::<_, String>(7)?)?;
            let pricing = Pricing::parse(&r.get::<_, String>(8)?)?;
            line.counts.add(&Counts {
                input_tokens: count(r.get(2)?),
                output_tokens: count(r.get(3)?),
                cache_read_tokens: count(r.get(4)?),
                cache_write_tokens: count(r.get(5)?),
                cost_usd: decimal(&r.get::<_, String>(6)?)?,
                ..Counts::of(1, outcome, pricing)
            });
        }
        let mut lines: Vec<UsageLine> = lines.into_values().collect();
        lines.sort_by(|a, b| (&a.key, &a.model).cmp(&(&b.key, &b.model)));
        Ok(lines)
    }

    /// The oldest `limit` rows with their local ids (the spill reads what it must copy on).
    pub(crate) fn oldest(&self, limit: usize) -> Result<Vec<(i64, Row)>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, request_id, started_at, key_name, model, provider, status, outcome, stream,
                    input_tokens, output_tokens, cache_read_tokens, cache_write_tokens,
                    usage_source, cost_usd, latency_ms, ttft_ms, pricing
             FROM ledger ORDER BY id LIMIT ?1",
        )?;
        let mut rows = stmt.query([i64::try_from(limit).unwrap_or(i64::MAX)])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let id: i64 = r.get(0)?;
            let started: String = r.get(2)?;
            let outcome: String = r.get(7)?;
            let source: String = r.get(13)?;
            out.push((
                id,
                Row {
                    // Rows written before ids existed get one from their place in this file.
                    request_id: r
                        .get::<_, Option<String>>(1)?
                        .unwrap_or_else(|| format!("local-{id}")),
                    started_at: started.parse().with_context(|| {
                        format!("`{started}` in the database is not a timestamp")
                    })?,
                    key_name: r.get(3)?,
                    model: r.get(4)?,
                    provider: r.get(5)?,
                    status: r.get(6)?,
                    outcome: Outcome::parse(&outcome)?,
                    stream: r.get(8)?,
                    usage: Usage {
                        input_tokens: count(r.get(9)?),
                        output_tokens: count(r.get(10)?),
                        cache_read_tokens: count(r.get(11)?),
                        cache_write_tokens: count(r.get(12)?),
                        // Only the cost, already computed, depends on the one-hour writes.
                        ..Usage::default()
                    },
                    usage_source: UsageSource::parse(&source)?,
                    pricing: Pricing::parse(&r.get::<_, String>(17)?)?,
                    cost_usd: decimal(&r.get::<_, String>(14)?)?,
                    latency_ms: count(r.get(15)?),
                    ttft_ms: r.get::<_, Option<i64>>(16)?.map(count),
                },
            ));
        }
        Ok(out)
    }

    /// How many rows the ledger holds.
    pub(crate) fn count(&self) -> Result<usize> {
        let n: i64 = self
            .conn
            .query_row("SELECT COUNT(*) FROM ledger", [], |r| r.get(0))?;
        Ok(usize::try_from(n).unwrap_or(0))
    }

    /// Deletes the rows up to local id `through`, once they are stored elsewhere; with none left,
    /// the running totals go too.
    pub(crate) fn forget(&self, through: i64) -> Result<()> {
        self.conn
            .execute("DELETE FROM ledger WHERE id <= ?1", [through])?;
        self.conn.execute(
            "DELETE FROM accounts WHERE NOT EXISTS (SELECT 1 FROM ledger)",
            [],
        )?;
        Ok(())
    }
}

/// The error for a key name in use.
fn name_taken(name: &str) -> crate::output::UsageError {
    crate::output::UsageError(format!(
        "a key named `{name}` already exists (revoked keys keep their names); pick another name"
    ))
}

/// SQLite integers are signed; counts beyond `i64::MAX` do not happen, and saturate if they do.
fn int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

fn decimal(text: &str) -> Result<Decimal> {
    text.parse()
        .with_context(|| format!("`{text}` in the database is not a decimal amount"))
}

fn parse_plan(name: &str) -> Option<Plan> {
    [Plan::Free, Plan::Starter, Plan::Pro, Plan::Max, Plan::Ultra]
        .into_iter()
        .find(|p| p.name() == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn row(key: &str, started: &str, cost: &str) -> Row {
        Row {
            request_id: format!("{:032x}", rand::random::<u128>()),
            started_at: at(started),
            key_name: key.into(),
            model: "gpt-4.1".into(),
            provider: "openai".into(),
            status: 200,
            outcome: Outcome::Completed,
            stream: false,
            usage: Usage {
                input_tokens: 10,
                output_tokens: 5,
                cache_read_tokens: 2,
                cache_write_tokens: 0,
                cache_write_1h_tokens: 0,
            },
            usage_source: UsageSource::Upstream,
            pricing: Pricing::Listed,
            cost_usd: cost.parse().unwrap(),
            latency_ms: 12,
            ttft_ms: None,
        }
    }

    fn key(name: &str) -> StoredKey {
        StoredKey {
            name: name.into(),
            key_sha256: [7; 32],
            plan: Plan::Starter,
            rpm: Some(5),
            concurrent: None,
            daily: None,
            monthly_budget_usd: Some("12.5".parse().unwrap()),
            credits_usd: None,
            created_at: stamp(at("2026-01-01T00:00:00Z")),
            revoked_at: None,
        }
    }

    #[test]
    fn keys_round_trip_and_revoke() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("izzi.db")).unwrap();
        store.create_key(&key("ci")).unwrap();
        let err = store.create_key(&key("ci")).unwrap_err().to_string();
        assert!(err.contains("`ci`"), "{err}");
        assert_eq!(store.keys().unwrap(), vec![key("ci")]);
        assert!(store.revoke_key("ci", at("2026-01-02T00:00:00Z")).unwrap());
        assert!(!store.revoke_key("ci", at("2026-01-03T00:00:00Z")).unwrap());
        let keys = store.keys().unwrap();
        assert_eq!(
            keys[0].revoked_at.as_deref(),
            Some("2026-01-02T00:00:00.000Z")
        );
    }

    #[test]
    fn the_gateway_connection_keeps_a_small_cache_and_the_configured_sync() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("izzi.db")).unwrap();
        let pragma = |name: &str| -> i64 {
            store
                .conn
                .pragma_query_value(None, name, |r| r.get(0))
                .unwrap()
        };
        // SQLite's default, for the CLI's connections: 2,000 KiB.
        assert_eq!(pragma("cache_size"), -2000);
        assert_eq!(pragma("synchronous"), 1); // NORMAL
        store.tune_for_gateway(Synchronous::Full).unwrap();
        assert_eq!(pragma("cache_size"), GATEWAY_CACHE_KIB);
        assert_eq!(pragma("synchronous"), 2); // FULL
        store.tune_for_gateway(Synchronous::Normal).unwrap();
        assert_eq!(pragma("synchronous"), 1);
    }

    #[test]
    fn rows_update_accounts_and_months_roll_over() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("izzi.db")).unwrap();
        store
            .record(&[
                row("a", "2026-01-31T23:59:59.5Z", "0.1"),
                row("a", "2026-02-01T00:00:00Z", "0.25"),
                row("b", "2026-02-01T00:00:01Z", "1"),
            ])
            .unwrap();
        // A request that began in January and ended after the month turned.
        store
            .record(&[row("a", "2026-01-31T23:59:58Z", "0.05")])
            .unwrap();
        let accounts = store.accounts().unwrap();
        let a = &accounts["a"];
        assert_eq!(a.spent_usd.to_string(), "0.40");
        assert_eq!(a.month, "2026-02");
        assert_eq!(a.month_spent_usd.to_string(), "0.25");
        assert_eq!(accounts["b"].spent_in("2026-02").to_string(), "1");
        assert_eq!(accounts["b"].spent_in("2026-03"), Decimal::ZERO);
        let counts = store.requests_since(at("2026-02-01T00:00:00Z")).unwrap();
        assert_eq!((counts["a"], counts["b"]), (1, 1));
    }

    #[test]
    fn a_batch_that_fails_leaves_nothing_and_the_next_one_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("izzi.db")).unwrap();
        store
            .record(&[row("a", "2026-02-01T00:00:00Z", "1")])
            .unwrap();
        // An account that cannot be read fails the batch after its rows were inserted.
        store
            .conn
            .execute(
                "UPDATE accounts SET spent_usd = 'x' WHERE key_name = 'a'",
                [],
            )
            .unwrap();
        let two = [
            row("b", "2026-02-01T00:00:01Z", "2"),
            row("a", "2026-02-01T00:00:02Z", "3"),
        ];
        assert!(store.record(&two).is_err());
        let counts = store.requests_since(at("2026-01-01T00:00:00Z")).unwrap();
        assert_eq!((counts.get("a"), counts.get("b")), (Some(&1), None));
        assert!(store.conn.is_autocommit(), "the failed batch was left open");
        store
            .conn
            .execute(
                "UPDATE accounts SET spent_usd = '1' WHERE key_name = 'a'",
                [],
            )
            .unwrap();
        store.record(&two).unwrap();
        let accounts = store.accounts().unwrap();
        assert_eq!(accounts["a"].spent_usd.to_string(), "4");
        assert_eq!(accounts["b"].spent_usd.to_string(), "2");
    }

    #[test]
    fn usage_sums_per_key_and_model_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("izzi.db")).unwrap();
        let rows: Vec<Row> = (0..10)
            .map(|_| row("a", "2026-03-02T10:00:00Z", "0.1"))
            .chain([row("b", "2026-03-01T10:00:00Z", "2")])
            .collect();
        store.record(&rows).unwrap();
        let all = store.usage(None, None).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].counts.requests, 10);
        assert_eq!(all[0].counts.cost_usd.to_string(), "1.0");
        assert_eq!(all[0].counts.input_tokens, 100);
        assert_eq!(all[0].counts.cache_read_tokens, 20);
        let since = store
            .usage(None, Some("2026-03-02".parse().unwrap()))
            .unwrap();
        assert_eq!(since.len(), 1);
        assert_eq!(since[0].key, "a");
        assert!(store.usage(Some("c"), None).unwrap().is_empty());
    }

    #[test]
    fn a_schema_1_file_is_migrated_and_keeps_its_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("izzi.db");
        {
            let conn = Connection::open(&path).unwrap();
            let schema_1 = SCHEMA.replace("    request_id TEXT,\n", "").replace(
                "    ttft_ms INTEGER,\n    pricing TEXT NOT NULL DEFAULT 'listed'\n",
                "    ttft_ms INTEGER\n",
            );
            conn.execute_batch(&schema_1).unwrap();
            conn.execute(
                "INSERT INTO ledger (started_at, key_name, model, provider, status, outcome,
                     stream, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens,
                     usage_source, cost_usd, latency_ms)
                 VALUES ('2026-03-01T00:00:00.000Z', 'old', 'm', 'p', 200, 'completed', 0,
                     1, 2, 0, 0, 'upstream', '0.5', 10)",
                [],
            )
            .unwrap();
            conn.pragma_update(None, "user_version", 1).unwrap();
        }
        let mut store = Store::open(&path).unwrap();
        store
            .record(&[row("new", "2026-03-02T00:00:00Z", "0.25")])
            .unwrap();
        let rows = store.oldest(10).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].1.request_id, format!("local-{}", rows[0].0));
        assert_eq!(rows[0].1.cost_usd.to_string(), "0.5");
        assert_eq!(rows[1].1, row_with_id(&rows[1].1.request_id));
    }

    fn row_with_id(id: &str) -> Row {
        Row {
            request_id: id.to_owned(),
            ..row("new", "2026-03-02T00:00:00Z", "0.25")
        }
    }

    #[test]
    fn spilled_rows_read_back_whole_and_are_forgotten_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("spill.db")).unwrap();
        let written: Vec<Row> = (0..5)
            .map(|i| row("a", &format!("2026-03-02T10:00:0{i}Z"), "0.1"))
            .collect();
        store.record(&written).unwrap();
        let first = store.oldest(3).unwrap();
        let rows: Vec<Row> = first.iter().map(|(_, r)| r.clone()).collect();
        assert_eq!(rows, written[..3]);
        store.forget(first[2].0).unwrap();
        assert_eq!(store.count().unwrap(), 2);
        let rest: Vec<Row> = store
            .oldest(10)
            .unwrap()
            .into_iter()
            .map(|(_, r)| r)
            .collect();
        assert_eq!(rest, written[3..]);
        store.forget(i64::MAX).unwrap();
        assert_eq!(store.count().unwrap(), 0);
        assert!(store.accounts().unwrap().is_empty());
    }

    #[test]
    fn reopening_keeps_everything() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("izzi.db");
        let mut store = Store::open(&path).unwrap();
        store
            .record(&[row("a", "2026-03-02T10:00:00Z", "0.1")])
            .unwrap();
        drop(store);
        let store = Store::open(&path).unwrap();
        assert_eq!(store.usage(None, None).unwrap()[0].counts.requests, 1);
    }

    #[cfg(unix)]
    #[test]
    fn a_new_database_and_its_wal_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("izzi.db");
        let mut store = Store::open(&path).unwrap();
        store
            .record(&[row("a", "2026-03-02T10:00:00Z", "0.1")])
            .unwrap();
        assert_eq!(crate::files::unix_mode(&path), Some(0o600));
        let wal = dir.path().join("izzi.db-wal");
        assert_eq!(crate::files::unix_mode(&wal), Some(0o600));
        // A mode the user chose is kept.
        drop(store);
        fs_err::set_permissions(&path, crate::files::unix_permissions(0o640).unwrap()).unwrap();
        drop(Store::open(&path).unwrap());
        assert_eq!(crate::files::unix_mode(&path), Some(0o640));
    }
}
