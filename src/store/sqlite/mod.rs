//! `izzi.db`: SQLite in WAL mode, its schema and migrations, and every query on it.
//!
//! Two kinds of callers, never on an async runtime worker: the gateway's ledger thread (the only
//! writer of `ledger` and `accounts` while a server runs) and the CLI (`izzi keys`, `izzi usage`),
//! which opens the database itself; WAL lets both read while one writes. Money is stored as
//! decimal text, so sums stay exact; times are UTC RFC 3339 with milliseconds, which sort as text.
//! PostgreSQL's spill file is one of these too.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use jiff::Timestamp;
use rusqlite::{Connection, OptionalExtension as _, TransactionBehavior, params};

use super::query::{Dialect, Dim, Filter, RequestFilter, Session, cost_sum};
use super::{
    Account, Backend, Counts, NameTaken, Outcome, Pricing, Row, StoredKey, UsageSource, count,
    decimal, int, parse_plan, stamp, stamp_month,
};
use crate::attribution::{Attribution, Tool};
use crate::config::Synchronous;
use crate::protocol::Usage;

/// The database file's name inside `IZZI_HOME`.
const FILE: &str = "izzi.db";

/// Bumped with each schema change; `open` migrates older files.
const SCHEMA_VERSION: i64 = 5;
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
    pricing TEXT NOT NULL DEFAULT 'listed',
    tool TEXT NOT NULL DEFAULT 'other',
    session TEXT,
    project TEXT,
    requested_model TEXT,
    route TEXT
) STRICT;
CREATE INDEX IF NOT EXISTS ledger_started_at ON ledger (started_at);
CREATE INDEX IF NOT EXISTS ledger_session ON ledger (session, started_at);
";

/// Schema 1 to 2: rows carry the request's id, so a row copied to PostgreSQL twice is kept once.
const SCHEMA_1_TO_2: &str = "ALTER TABLE ledger ADD COLUMN request_id TEXT;";
/// Schema 2 to 3: rows say where their prices came from (older rows had a catalog price).
const SCHEMA_2_TO_3: &str = "ALTER TABLE ledger ADD COLUMN pricing TEXT NOT NULL DEFAULT 'listed';";
/// Schema 3 to 4: who sent each request (tool, session, project), the model it asked for and the
/// routing rule that served it. Older rows read as tool `other`, no session, asked for the model
/// served.
const SCHEMA_3_TO_4: &str = "
ALTER TABLE ledger ADD COLUMN tool TEXT NOT NULL DEFAULT 'other';
ALTER TABLE ledger ADD COLUMN session TEXT;
ALTER TABLE ledger ADD COLUMN project TEXT;
ALTER TABLE ledger ADD COLUMN requested_model TEXT;
ALTER TABLE ledger ADD COLUMN route TEXT;
";

/// Schema 4 to 5: stored Responses state (`store::responses`). Only creates its own table, so it
/// applies whatever the schema before it holds.
const SCHEMA_4_TO_5: &str = "
CREATE TABLE IF NOT EXISTS responses (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL,
    key_sha256 BLOB NOT NULL,
    created_at TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    input TEXT NOT NULL,
    response TEXT NOT NULL,
    UNIQUE (key_sha256, id)
) STRICT;
CREATE INDEX IF NOT EXISTS responses_created_at ON responses (created_at);
";

/// A text column of the ledger's INSERT (by parameter number) that most rows of a batch share.
type Label = for<'r> fn(&'r Row) -> Option<&'r str>;

/// The key, model, provider and labels: bound only when a row's differs from the row before's.
/// Binding a text copies it, and 11 of the 13 text columns rarely change within a batch.
const LABELS: [(usize, Label); 11] = [
    (2, |r| Some(&r.key_name)),
    (3, |r| Some(&r.model)),
    (4, |r| Some(&r.provider)),
    (6, |r| Some(r.outcome.as_str())),
    (12, |r| Some(r.usage_source.as_str())),
    (17, |r| Some(r.pricing.as_str())),
    (18, |r| Some(r.attribution.tool.as_str())),
    (19, |r| r.attribution.session.as_deref()),
    (20, |r| r.attribution.project.as_deref()),
    (21, |r| Some(&r.requested_model)),
    (22, |r| r.route.as_deref()),
];

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
        if (1..=3).contains(&version) {
            self.conn.execute_batch(SCHEMA_3_TO_4)?;
        }
        if version < 5 {
            self.conn.execute_batch(SCHEMA_4_TO_5)?;
        }
        if version < SCHEMA_VERSION {
            self.conn.execute_batch(SCHEMA)?;
            self.conn
                .pragma_update(None, "user_version", SCHEMA_VERSION)?;
        }
        Ok(())
    }

    /// The gateway's connection appends ledger rows and updates a few account rows; it reads
    /// much only once, at start. SQLite's default page cache (2 MB) filled up under load and
    /// stayed as resident memory; 512 KB holds every page an append touches, at no CPU cost
    /// that shows (docs/bench.md).
    pub(super) fn tune_for_gateway(&self, sync: Synchronous) -> Result<()> {
        let value = match sync {
            Synchronous::Normal => "NORMAL",
            Synchronous::Full => "FULL",
        };
        self.conn.pragma_update(None, "synchronous", value)?;
        Ok(self
            .conn
            .pragma_update(None, "cache_size", GATEWAY_CACHE_KIB)?)
    }

    /// The connection, for the other tables' queries (`store::responses`).
    pub(in crate::store) fn conn(&self) -> &Connection {
        &self.conn
    }

    /// Where this database lives.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The oldest `limit` rows with their local ids (the spill reads what it must copy on).
    pub(crate) fn oldest(&self, limit: usize) -> Result<Vec<(i64, Row)>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT id, {} FROM ledger ORDER BY id LIMIT ?1",
            Dialect::Sqlite.row_columns()
        ))?;
        let mut rows = stmt.query([i64::try_from(limit).unwrap_or(i64::MAX)])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push(read_row(r)?);
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

/// A row of `id, ` and [`Dialect::row_columns`].
fn read_row(r: &rusqlite::Row<'_>) -> Result<(i64, Row)> {
    let id: i64 = r.get(0)?;
    let started: String = r.get(2)?;
    let model: String = r.get(4)?;
    let row = Row {
        // Rows written before ids existed get one from their place in this file.
        request_id: r
            .get::<_, Option<String>>(1)?
            .unwrap_or_else(|| format!("local-{id}")),
        started_at: started
            .parse()
            .with_context(|| format!("`{started}` in the database is not a timestamp"))?,
        key_name: r.get(3)?,
        attribution: Attribution {
            tool: Tool::parse(&r.get::<_, String>(18)?)?,
            session: r.get(19)?,
            project: r.get(20)?,
        },
        requested_model: r
            .get::<_, Option<String>>(21)?
            .unwrap_or_else(|| model.clone()),
        model,
        route: r.get(22)?,
        provider: r.get(5)?,
        status: r.get(6)?,
        outcome: Outcome::parse(&r.get::<_, String>(7)?)?,
        stream: r.get(8)?,
        usage: Usage {
            input_tokens: count(r.get(9)?),
            output_tokens: count(r.get(10)?),
            cache_read_tokens: count(r.get(11)?),
            cache_write_tokens: count(r.get(12)?),
            // Only the cost, already computed, depends on the one-hour writes.
            ..Usage::default()
        },
        usage_source: UsageSource::parse(&r.get::<_, String>(13)?)?,
        pricing: Pricing::parse(&r.get::<_, String>(17)?)?,
        cost_usd: decimal(&r.get::<_, String>(14)?)?,
        latency_ms: count(r.get(15)?),
        ttft_ms: r.get::<_, Option<i64>>(16)?.map(count),
    };
    Ok((id, row))
}

impl Backend for Store {
    fn describe(&self) -> String {
        self.path.display().to_string()
    }

    /// How long a write waits for another process's lock before failing with `database is
    /// locked` (10 s from `open`).
    fn set_busy_timeout(&mut self, timeout: Duration) -> Result<()> {
        Ok(self.conn.busy_timeout(timeout)?)
    }

    /// Stores a new key. Fails when the name is taken (revoked keys keep their names, so their
    /// ledger rows stay theirs).
    fn create_key(&self, key: &StoredKey) -> Result<()> {
        let taken: Option<String> = self
            .conn
            .query_row("SELECT name FROM keys WHERE name = ?1", [&key.name], |r| {
                r.get(0)
            })
            .optional()?;
        if taken.is_some() {
            bail!(NameTaken(key.name.clone()));
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
    fn revoke_key(&self, name: &str, at: Timestamp) -> Result<bool> {
        let changed = self.conn.execute(
            "UPDATE keys SET revoked_at = ?1 WHERE name = ?2 AND revoked_at IS NULL",
            params![stamp(at), name],
        )?;
        Ok(changed > 0)
    }

    /// Every stored key, revoked ones too, by name.
    fn keys(&self) -> Result<Vec<StoredKey>> {
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
    fn accounts(&self) -> Result<HashMap<String, Account>> {
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
    fn requests_since(&self, since: Timestamp) -> Result<HashMap<String, u32>> {
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
    fn record(&mut self, rows: &[Row]) -> Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut accounts: HashMap<&str, Account> = HashMap::new();
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO ledger (started_at, key_name, model, provider, status, outcome, stream,
                                     input_tokens, output_tokens, cache_read_tokens,
                                     cache_write_tokens, usage_source, cost_usd, latency_ms,
                                     ttft_ms, request_id, pricing, tool, session, project,
                                     requested_model, route)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16,
                         ?17, ?18, ?19, ?20, ?21, ?22)",
            )?;
            let mut read = tx.prepare_cached(
                "SELECT spent_usd, month, month_spent_usd FROM accounts WHERE key_name = ?1",
            )?;
            let mut previous: Option<&Row> = None;
            for row in rows {
                // A statement keeps its bindings between executions.
                for (index, label) in LABELS {
                    let value = label(row);
                    if previous.is_none_or(|p| label(p) != value) {
                        insert.raw_bind_parameter(index, value)?;
                    }
                }
                let started_at = stamp(row.started_at);
                insert.raw_bind_parameter(1, &started_at)?;
                insert.raw_bind_parameter(5, row.status)?;
                insert.raw_bind_parameter(7, row.stream)?;
                insert.raw_bind_parameter(8, int(row.usage.input_tokens))?;
                insert.raw_bind_parameter(9, int(row.usage.output_tokens))?;
                insert.raw_bind_parameter(10, int(row.usage.cache_read_tokens))?;
                insert.raw_bind_parameter(11, int(row.usage.cache_write_tokens))?;
                insert.raw_bind_parameter(13, row.cost_usd.to_string())?;
                insert.raw_bind_parameter(14, int(row.latency_ms))?;
                insert.raw_bind_parameter(15, row.ttft_ms.map(int))?;
                insert.raw_bind_parameter(16, &row.request_id)?;
                insert.raw_execute()?;
                previous = Some(row);
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
                    account.add(stamp_month(&started_at), row.cost_usd);
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

    fn usage(&self, filter: &Filter, by: &[Dim]) -> Result<Vec<(Vec<Option<String>>, Counts)>> {
        let (sql, params) = Dialect::Sqlite.usage_sql(by, filter);
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let mut rows = stmt.query(rusqlite::params_from_iter(params))?;
        let n = by.len();
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let group = (0..n)
                .map(|i| r.get::<_, Option<String>>(i))
                .collect::<rusqlite::Result<_>>()?;
            let outcome = Outcome::parse(&r.get::<_, String>(n)?)?;
            let pricing = Pricing::parse(&r.get::<_, String>(n + 1)?)?;
            out.push((
                group,
                Counts {
                    input_tokens: count(r.get(n + 3)?),
                    output_tokens: count(r.get(n + 4)?),
                    cache_read_tokens: count(r.get(n + 5)?),
                    cache_write_tokens: count(r.get(n + 6)?),
                    cost_usd: cost_sum(&r.get::<_, String>(n + 7)?)?,
                    ..Counts::of(count(r.get(n + 2)?), outcome, pricing)
                },
            ));
        }
        Ok(out)
    }

    fn sessions(&self, since: Option<Timestamp>, limit: usize) -> Result<Vec<Session>> {
        let mut stmt = self.conn.prepare_cached(&Dialect::Sqlite.sessions_sql())?;
        let mut rows = stmt.query(params![since.map(stamp), int(limit as u64)])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push(Session {
                session: r.get(0)?,
                tool: r.get(1)?,
                first_at: r.get(2)?,
                last_at: r.get(3)?,
                turns: count(r.get(4)?),
                models: r
                    .get::<_, String>(5)?
                    .split(',')
                    .map(str::to_owned)
                    .collect(),
                input_tokens: count(r.get(6)?),
                output_tokens: count(r.get(7)?),
                cache_read_tokens: count(r.get(8)?),
                cost_usd: cost_sum(&r.get::<_, String>(9)?)?,
            });
        }
        Ok(out)
    }

    fn requests(&self, filter: &RequestFilter) -> Result<Vec<(i64, Row)>> {
        let mut stmt = self.conn.prepare_cached(&Dialect::Sqlite.requests_sql())?;
        let mut rows = stmt.query(params![
            int(filter.limit() as u64),
            filter.before,
            filter.after,
            filter.key,
            filter.tool,
            filter.session,
            filter.model,
            filter.status,
            filter.outcome,
        ])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push(read_row(r)?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
