//! The shared store in PostgreSQL (`[state].postgres_url`): the same keys, accounts and ledger as
//! `izzi.db`, for every instance at once. The schema is `migrations/*.sql` in the repository,
//! applied on first contact under an advisory lock, so instances starting together apply it once.
//!
//! The API is blocking, like the SQLite store's: each call runs on this store's own
//! single-threaded runtime, so its callers (the gateway's ledger thread, the CLI) never touch an
//! async runtime worker. For the gateway, ledger rows that PostgreSQL cannot take go to a local
//! spill file (SQLite, fsynced), and [`Postgres::drain`] copies them on when it is back; a row's
//! `request_id` is unique in PostgreSQL, so a row copied twice (a crash between the copy and the
//! spill's delete) is stored once. Never logs the URL, which may hold a password.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, bail};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use jiff::Timestamp;
use rust_decimal::Decimal;

use super::query::{Dialect, Dim, Filter, RequestFilter, Session, cost_sum};
use super::{
    Account, Backend, Counts, NameTaken, Outcome, Pricing, Row, Store, StoredKey, UsageSource,
    decimal, parse_plan, pg_tls, stamp,
};
use crate::attribution::{Attribution, Tool};
use crate::protocol::Usage;

/// The migrations, in order; each runs once per database.
const MIGRATIONS: &[(i32, &str)] = &[
    (1, include_str!("../../migrations/0001_init.sql")),
    (2, include_str!("../../migrations/0002_pricing.sql")),
    (3, include_str!("../../migrations/0003_attribution.sql")),
];

/// Any one call, connecting included, fails after this long; a gateway's ledger thread must not
/// hang on a PostgreSQL that stopped answering.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// Connecting gives up sooner, so an unreachable host is noticed quickly.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Rows copied from the spill per transaction.
const DRAIN_BATCH: usize = 1000;

/// Times as izzi stores them (`YYYY-MM-DDTHH:MM:SS.mmmZ`), from a TIMESTAMPTZ column.
macro_rules! stamp_sql {
    ($column:literal) => {
        concat!(
            "to_char(",
            $column,
            " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
        )
    };
}

/// A pool error as text with its causes (a TLS handshake's reason is only in them). Text, so
/// that `Postgres::run` never takes a failure to connect for the server's answer.
fn pool_error(err: &deadpool_postgres::PoolError) -> anyhow::Error {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    anyhow!(text)
}

/// A connection pool to the shared database.
pub(crate) struct Postgres {
    runtime: tokio::runtime::Runtime,
    pool: Pool,
    migrated: AtomicBool,
    /// The gateway's: rows that wait for PostgreSQL, in SQLite.
    spill: Option<Store>,
    /// Whether the last call reached the server.
    available: Arc<AtomicBool>,
}

impl std::fmt::Debug for Postgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Postgres")
            .field("available", &self.available.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Postgres {
    /// A pool for `url`; connects on the first call.
    pub(crate) fn new(url: &str, ca_file: Option<&Path>) -> Result<Self> {
        let (url, mode) = pg_tls::split_sslmode(url)?;
        let mut config: tokio_postgres::Config = url.parse().map_err(|_| {
            anyhow!("`state.postgres_url` is not a valid PostgreSQL URL; write it as postgres://USER@HOST:PORT/DATABASE")
        })?;
        let mode = mode.unwrap_or_else(|| pg_tls::default_mode(&config));
        let tls = pg_tls::connector(&mut config, mode, ca_file)?;
        config.connect_timeout(CONNECT_TIMEOUT);
        if config.get_application_name().is_none() {
            config.application_name("izzi");
        }
        let manager = Manager::from_config(
            config,
            tls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(2)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(CALL_TIMEOUT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .build()
            .context("cannot set up the PostgreSQL connection pool")?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the PostgreSQL client's runtime")?;
        Ok(Self {
            runtime,
            pool,
            migrated: AtomicBool::new(false),
            spill: None,
            available: Arc::new(AtomicBool::new(true)),
        })
    }

    /// Keeps rows that PostgreSQL cannot take in the SQLite file at `path` until it can.
    pub(crate) fn with_spill(mut self, path: &Path) -> Result<Self> {
        self.spill = Some(Store::open(path)?);
        Ok(self)
    }

    /// Whether PostgreSQL answered the last call; shared with the gateway's admission.
    fn availability(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.available)
    }

    /// Runs one call on this store's runtime, with the timeout, and notes whether the server
    /// was reached.
    fn run<T>(&self, call: impl Future<Output = Result<T>>) -> Result<T> {
        let result = self
            .runtime
            .block_on(async { tokio::time::timeout(CALL_TIMEOUT, call).await })
            .unwrap_or_else(|_| {
                Err(anyhow!(
                    "PostgreSQL did not answer within {} seconds",
                    CALL_TIMEOUT.as_secs()
                ))
            });
        let reached = match &result {
            Ok(_) => true,
            // An error with an SQLSTATE came from the server, which is up.
            Err(err) => err.chain().any(|e| {
                e.downcast_ref::<tokio_postgres::Error>()
                    .is_some_and(|e| e.code().is_some())
            }),
        };
        let was = self.available.swap(reached, Ordering::Relaxed);
        match (&result, was, reached) {
            (Err(err), true, false) => tracing::error!(
                error = format!("{err:#}"),
                "PostgreSQL (`state.postgres_url`) cannot be reached; ledger rows wait in the local spill file until it can"
            ),
            (_, false, true) => {
                tracing::warn!("PostgreSQL (`state.postgres_url`) is reachable again");
            }
            _ => {}
        }
        result.map_err(|err| {
            if reached {
                err
            } else {
                err.context("cannot reach PostgreSQL at `state.postgres_url`; check that it runs and that the URL is right")
            }
        })
    }

    /// A pooled connection, the schema migrated.
    async fn client(&self) -> Result<deadpool_postgres::Object> {
        let mut client = self.pool.get().await.map_err(|e| pool_error(&e))?;
        if !self.migrated.load(Ordering::Relaxed) {
            migrate(&mut client).await?;
            self.migrated.store(true, Ordering::Relaxed);
        }
        Ok(client)
    }

    /// Connects and applies the migrations now (the gateway at start).
    pub(crate) fn ping(&self) -> Result<()> {
        self.run(async {
            drop(self.client().await?);
            Ok(())
        })
    }

    /// Copies the spill file's rows to PostgreSQL, oldest first, deleting them locally once
    /// committed there. Returns how many moved; does nothing while PostgreSQL is unavailable.
    pub(crate) fn copy_spill(&self) -> Result<usize> {
        let Some(spill) = &self.spill else {
            return Ok(0);
        };
        let mut moved = 0;
        loop {
            let batch = spill.oldest(DRAIN_BATCH)?;
            let Some((last, _)) = batch.last() else {
                break;
            };
            let last = *last;
            let rows: Vec<Row> = batch.into_iter().map(|(_, row)| row).collect();
            self.run(insert(self, &rows))?;
            spill.forget(last)?;
            moved += rows.len();
        }
        if moved > 0 {
            tracing::warn!(
                rows = moved,
                "ledger rows from the spill file are now in PostgreSQL"
            );
        }
        Ok(moved)
    }

    /// Rows waiting in the spill file.
    pub(crate) fn spilled(&self) -> Result<usize> {
        match &self.spill {
            Some(spill) => spill.count(),
            None => Ok(0),
        }
    }
}

impl Backend for Postgres {
    fn describe(&self) -> String {
        "PostgreSQL (`state.postgres_url`)".to_owned()
    }

    fn drain(&self) -> Result<usize> {
        self.copy_spill()?;
        self.spilled()
    }

    fn available(&self) -> Option<Arc<AtomicBool>> {
        Some(self.availability())
    }

    fn create_key(&self, key: &StoredKey) -> Result<()> {
        let created = self.run(async {
            let client = self.client().await?;
            let inserted = client
                .execute(
                    "INSERT INTO keys (name, key_sha256, plan, rpm, concurrent, daily,
                                       monthly_budget_usd, credits_usd, created_at, revoked_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7::text::numeric, $8::text::numeric,
                             $9::text::timestamptz, $10::text::timestamptz)
                     ON CONFLICT (name) DO NOTHING",
                    &[
                        &key.name,
                        &key.key_sha256.as_slice(),
                        &key.plan.name(),
                        &key.rpm.map(i64::from),
                        &key.concurrent.map(i64::from),
                        &key.daily.map(i64::from),
                        &key.monthly_budget_usd.map(|d| d.to_string()),
                        &key.credits_usd.map(|d| d.to_string()),
                        &key.created_at,
                        &key.revoked_at,
                    ],
                )
                .await?;
            Ok(inserted > 0)
        })?;
        if !created {
            bail!(NameTaken(key.name.clone()));
        }
        Ok(())
    }

    fn revoke_key(&self, name: &str, at: Timestamp) -> Result<bool> {
        self.run(async {
            let client = self.client().await?;
            let changed = client
                .execute(
                    "UPDATE keys SET revoked_at = $1::text::timestamptz
                     WHERE name = $2 AND revoked_at IS NULL",
                    &[&stamp(at), &name],
                )
                .await?;
            Ok(changed > 0)
        })
    }

    fn keys(&self) -> Result<Vec<StoredKey>> {
        let rows = self.run(async {
            let client = self.client().await?;
            let statement = client
                .prepare_cached(concat!(
                    "SELECT name, key_sha256, plan, rpm, concurrent, daily,
                            monthly_budget_usd::text, credits_usd::text, ",
                    stamp_sql!("created_at"),
                    ", ",
                    stamp_sql!("revoked_at"),
                    " FROM keys ORDER BY name"
                ))
                .await?;
            Ok(client.query(&statement, &[]).await?)
        })?;
        let limit = |v: Option<i64>| v.map(|v| u32::try_from(v).unwrap_or(u32::MAX));
        rows.iter()
            .map(|r| {
                let name: String = r.get(0);
                let hash: Vec<u8> = r.get(1);
                let plan: String = r.get(2);
                let key_sha256 = <[u8; 32]>::try_from(hash.as_slice())
                    .map_err(|_| anyhow!("the stored hash of key `{name}` is not 32 bytes"))?;
                let plan = parse_plan(&plan)
                    .with_context(|| format!("the stored plan of key `{name}` is unknown"))?;
                Ok(StoredKey {
                    key_sha256,
                    plan,
                    rpm: limit(r.get(3)),
                    concurrent: limit(r.get(4)),
                    daily: limit(r.get(5)),
                    monthly_budget_usd: r.get::<_, Option<&str>>(6).map(decimal).transpose()?,
                    credits_usd: r.get::<_, Option<&str>>(7).map(decimal).transpose()?,
                    created_at: r.get(8),
                    revoked_at: r.get(9),
                    name,
                })
            })
            .collect()
    }

    fn accounts(&self) -> Result<HashMap<String, Account>> {
        let rows = self.run(async {
            let client = self.client().await?;
            Ok(client
                .query(
                    "SELECT key_name, spent_usd::text, month, month_spent_usd::text FROM accounts",
                    &[],
                )
                .await?)
        })?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.get::<_, String>(0),
                    Account {
                        spent_usd: decimal(r.get(1))?,
                        month: r.get(2),
                        month_spent_usd: decimal(r.get(3))?,
                    },
                ))
            })
            .collect()
    }

    fn requests_since(&self, since: Timestamp) -> Result<HashMap<String, u32>> {
        let rows = self.run(async {
            let client = self.client().await?;
            Ok(client
                .query(
                    "SELECT key_name, count(*) FROM ledger
                     WHERE started_at >= $1::text::timestamptz GROUP BY key_name",
                    &[&stamp(since)],
                )
                .await?)
        })?;
        Ok(rows
            .iter()
            .map(|r| {
                let n: i64 = r.get(1);
                (r.get(0), u32::try_from(n).unwrap_or(u32::MAX))
            })
            .collect())
    }

    fn usage(&self, filter: &Filter, by: &[Dim]) -> Result<Vec<(Vec<Option<String>>, Counts)>> {
        let since = filter.since.map(stamp);
        let rows = self.run(async {
            let client = self.client().await?;
            let statement = client
                .prepare_cached(&Dialect::Postgres.usage_sql(by))
                .await?;
            Ok(client
                .query(&statement, &[&since, &filter.key, &filter.session])
                .await?)
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

    fn sessions(&self, since: Option<Timestamp>, limit: usize) -> Result<Vec<Session>> {
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

    fn requests(&self, filter: &RequestFilter) -> Result<Vec<(i64, Row)>> {
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

    /// Adds `rows` to the ledger and their costs to the accounts, in one transaction. When
    /// PostgreSQL cannot be reached and this store has a spill file, the rows are committed there
    /// instead, to be copied on by [`Postgres::drain`].
    fn record(&mut self, rows: &[Row]) -> Result<()> {
        // While PostgreSQL is known to be down, rows go straight to the spill: a connect attempt
        // per batch would hold every finished request's slot for the connect timeout.
        if self.spill.is_none() || self.available.load(Ordering::Relaxed) {
            match self.run(insert(self, rows)) {
                Ok(()) => return Ok(()),
                Err(err) if self.spill.is_none() => return Err(err),
                Err(err) => {
                    tracing::debug!(
                        error = format!("{err:#}"),
                        "ledger rows go to the spill file"
                    );
                }
            }
        }
        let Some(spill) = self.spill.as_mut() else {
            bail!("no spill file for ledger rows");
        };
        spill.record(rows)?;
        tracing::warn!(
            rows = rows.len(),
            spill = %spill.path().display(),
            "PostgreSQL is unavailable: ledger rows kept in the spill file until it returns"
        );
        Ok(())
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

/// Applies the migrations not yet applied, in one transaction under an advisory lock.
async fn migrate(client: &mut deadpool_postgres::Object) -> Result<()> {
    let tx = client.transaction().await?;
    tx.batch_execute(
        "SELECT pg_advisory_xact_lock(7249311);
         CREATE TABLE IF NOT EXISTS izzi_migrations (
             version INTEGER PRIMARY KEY,
             applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
         );",
    )
    .await?;
    let applied: Vec<i32> = tx
        .query("SELECT version FROM izzi_migrations", &[])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let known = MIGRATIONS.last().map_or(0, |(v, _)| *v);
    if let Some(newer) = applied.iter().find(|v| **v > known) {
        bail!(
            "the PostgreSQL database was migrated by a newer izzi (migration {newer}, this one knows {known}); upgrade izzi"
        );
    }
    for (version, sql) in MIGRATIONS {
        if !applied.contains(version) {
            tx.batch_execute(sql)
                .await
                .with_context(|| format!("migration {version} failed"))?;
            tx.execute(
                "INSERT INTO izzi_migrations (version) VALUES ($1)",
                &[version],
            )
            .await?;
            tracing::info!(version, "applied a PostgreSQL migration");
        }
    }
    tx.commit().await?;
    Ok(())
}

/// Inserts `rows` (those whose `request_id` is new) and adds their costs to the accounts, in one
/// transaction; concurrent instances lock each account row in name order.
async fn insert(store: &Postgres, rows: &[Row]) -> Result<()> {
    let mut client = store.client().await?;
    let tx = client.transaction().await?;
    let col = |f: &dyn Fn(&Row) -> String| rows.iter().map(f).collect::<Vec<String>>();
    let optional =
        |f: &dyn Fn(&Row) -> Option<String>| rows.iter().map(f).collect::<Vec<Option<String>>>();
    let int = |f: &dyn Fn(&Row) -> u64| {
        rows.iter()
            .map(|r| i64::try_from(f(r)).unwrap_or(i64::MAX))
            .collect::<Vec<i64>>()
    };
    let inserted = tx
        .query(
            "INSERT INTO ledger (request_id, started_at, key_name, model, provider, status, outcome,
                                 stream, input_tokens, output_tokens, cache_read_tokens,
                                 cache_write_tokens, usage_source, cost_usd, latency_ms, ttft_ms,
                                 pricing, tool, session, project, requested_model, route)
             SELECT r, s::timestamptz, k, m, p, st, o, sm, i, ou, cr, cw, us, c::numeric, l, t, pr,
                    tl, se, pj, rm, ro
             FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int4[],
                         $7::text[], $8::bool[], $9::int8[], $10::int8[], $11::int8[],
                         $12::int8[], $13::text[], $14::text[], $15::int8[], $16::int8[],
                         $17::text[], $18::text[], $19::text[], $20::text[], $21::text[],
                         $22::text[])
                  AS u(r, s, k, m, p, st, o, sm, i, ou, cr, cw, us, c, l, t, pr, tl, se, pj, rm,
                       ro)
             ON CONFLICT (request_id) DO NOTHING
             RETURNING key_name, to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM'), cost_usd::text",
            &[
                &col(&|r| r.request_id.clone()),
                &col(&|r| stamp(r.started_at)),
                &col(&|r| r.key_name.clone()),
                &col(&|r| r.model.clone()),
                &col(&|r| r.provider.clone()),
                &rows.iter().map(|r| i32::from(r.status)).collect::<Vec<i32>>(),
                &col(&|r| r.outcome.as_str().to_owned()),
                &rows.iter().map(|r| r.stream).collect::<Vec<bool>>(),
                &int(&|r| r.usage.input_tokens),
                &int(&|r| r.usage.output_tokens),
                &int(&|r| r.usage.cache_read_tokens),
                &int(&|r| r.usage.cache_write_tokens),
                &col(&|r| r.usage_source.as_str().to_owned()),
                &col(&|r| r.cost_usd.to_string()),
                &int(&|r| r.latency_ms),
                &rows
                    .iter()
                    .map(|r| r.ttft_ms.map(|t| i64::try_from(t).unwrap_or(i64::MAX)))
                    .collect::<Vec<Option<i64>>>(),
                &col(&|r| r.pricing.as_str().to_owned()),
                &col(&|r| r.attribution.tool.as_str().to_owned()),
                &optional(&|r| r.attribution.session.clone()),
                &optional(&|r| r.attribution.project.clone()),
                &col(&|r| r.requested_model.clone()),
                &optional(&|r| r.route.clone()),
            ],
        )
        .await?;
    // Costs per account, in the order the rows came.
    let mut costs: BTreeMap<String, Vec<(String, Decimal)>> = BTreeMap::new();
    for r in &inserted {
        let cost = decimal(r.get(2))?;
        costs
            .entry(r.get(0))
            .or_default()
            .push((r.get::<_, String>(1), cost));
    }
    for (name, costs) in &costs {
        tx.execute(
            "INSERT INTO accounts (key_name, spent_usd, month, month_spent_usd)
             VALUES ($1, 0, '', 0) ON CONFLICT (key_name) DO NOTHING",
            &[name],
        )
        .await?;
        let stored = tx
            .query_one(
                "SELECT spent_usd::text, month, month_spent_usd::text FROM accounts
                 WHERE key_name = $1 FOR UPDATE",
                &[name],
            )
            .await?;
        let mut account = Account {
            spent_usd: decimal(stored.get(0))?,
            month: stored.get(1),
            month_spent_usd: decimal(stored.get(2))?,
        };
        for (month, cost) in costs {
            account.add(month, *cost);
        }
        tx.execute(
            "UPDATE accounts SET spent_usd = $2::text::numeric, month = $3,
                                 month_spent_usd = $4::text::numeric
             WHERE key_name = $1",
            &[
                name,
                &account.spent_usd.to_string(),
                &account.month,
                &account.month_spent_usd.to_string(),
            ],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}
