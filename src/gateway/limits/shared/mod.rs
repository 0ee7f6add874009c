//! Limits shared by every instance through Redis (`[state].redis_url`): the same decision as
//! [`Limiter`](super::Limiter), in SPEC's order, made by one Lua script per admission (one round
//! trip, atomic, all or nothing) that also returns what the rate-limit headers need.
//!
//! Per key name, under the hash tag `{name}` so a cluster keeps them on one node: the minute's
//! and the day's request counters, the spend in all and in the month, and the running requests
//! as leases (a sorted set scored by expiry, plus each lease's cost hold). A lease that is not
//! renewed expires, so an instance killed mid-stream frees its slots and holds within
//! `[state].lease_s`; a task here renews this instance's leases every third of that and releases
//! them when the ledger settles (off the request path). Money is integer nanodollars in Redis
//! (Lua numbers are doubles, exact to 2^53): holds round up, limits down; the exact `Decimal`
//! spend is in the ledger, from which counters lost with Redis's data are seeded again.
//!
//! When Redis cannot be reached the caller gets [`Unavailable`] and applies
//! `[state].on_unavailable`; this module logs the outage once, when it begins and when it ends.

mod keeper;
mod script;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use jiff::Timestamp;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use rust_decimal::Decimal;
use tokio::sync::mpsc;

use super::admission::{Admission, Backend, request_id};
use super::headers::RateHeaders;
use super::limiter::Limiter;
use super::refusal::{Decision, Refused};
use crate::config::OnUnavailable;
use crate::gateway::identity::Client;
use crate::gateway::ledger::SeedSource;
use crate::store::{self, DAY, MINUTE, Seed};
use keeper::{Keeper, Release, Task};
use script::{ADMIT, Names, PEEK, RELEASE, SEED, nanos_down, nanos_up, usd};

/// Redis could not be reached (or answered nonsense) in time.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Unavailable;

/// Longest wait for Redis on the request path.
const CALL_TIMEOUT: Duration = Duration::from_secs(1);
/// After a failure, requests skip Redis this long instead of each waiting for it.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(1);
/// Counter lifetimes: past their window, with margin.
const MINUTE_TTL_S: i64 = 2 * MINUTE;
const DAY_TTL_S: i64 = 2 * DAY;
const MONTH_TTL_S: i64 = 40 * DAY;

/// The shared backend of one instance.
pub(crate) struct Shared {
    conn: ConnectionManager,
    admit: redis::Script,
    peek: redis::Script,
    seed: redis::Script,
    lease: Duration,
    on_unavailable: OnUnavailable,
    /// Wakes requests waiting for a slot when a release lands.
    local: Arc<Limiter>,
    /// Asked for counts when Redis lost them.
    seeds: Arc<dyn SeedSource>,
    tasks: mpsc::UnboundedSender<Task>,
    /// Per key name, this instance's requests that ended and whose release is pending.
    ending: Mutex<HashMap<String, u32>>,
    /// Until when requests skip Redis after a failure.
    skip_until: Mutex<Option<Instant>>,
    /// Whether Redis is considered down (for logging the outage once).
    down: AtomicBool,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("down", &self.down.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// A client for `url`; a `rediss://` one trusts the CA file when given, else the system's roots.
fn client(url: &str, ca_file: Option<&std::path::Path>) -> anyhow::Result<redis::Client> {
    let invalid = |_| {
        anyhow::anyhow!(
            "`state.redis_url` is not a valid Redis URL; write it as redis://HOST:PORT or rediss://HOST:PORT"
        )
    };
    let Some(path) = ca_file else {
        return redis::Client::open(url).map_err(invalid);
    };
    let pem = fs_err::read(path).context("cannot read `state.redis_ca_file`")?;
    let certificates = redis::TlsCertificates {
        client_tls: None,
        root_cert: Some(pem),
    };
    redis::Client::build_with_tls(url, certificates).map_err(|err| {
        anyhow::anyhow!(
            "cannot use `state.redis_ca_file` `{}`: {err}",
            path.display()
        )
    })
}

impl Shared {
    /// Connects lazily to `url` (Redis need not be up yet) and starts the lease keeper.
    pub(crate) fn start(
        (url, ca_file): (&str, Option<&std::path::Path>),
        lease: Duration,
        on_unavailable: OnUnavailable,
        local: Arc<Limiter>,
        seeds: Arc<dyn SeedSource>,
    ) -> anyhow::Result<Arc<Self>> {
        let client = client(url, ca_file)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_millis(500)))
            .set_response_timeout(Some(CALL_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(200));
        let conn = ConnectionManager::new_lazy_with_config(client, config)?;
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Self {
            conn,
            admit: redis::Script::new(ADMIT),
            peek: redis::Script::new(PEEK),
            seed: redis::Script::new(SEED),
            lease,
            on_unavailable,
            local,
            seeds,
            tasks: tx,
            ending: Mutex::new(HashMap::new()),
            skip_until: Mutex::new(None),
            down: AtomicBool::new(false),
        });
        let keeper = Keeper {
            shared: Arc::downgrade(&shared),
            conn: shared.conn.clone(),
            release: redis::Script::new(RELEASE),
            lease,
            live: HashMap::new(),
            pending: VecDeque::new(),
        };
        tokio::spawn(keeper.run(rx));
        Ok(shared)
    }

    fn skipping(&self) -> bool {
        let skip = self
            .skip_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        skip.is_some_and(|until| Instant::now() < until)
    }

    /// Notes a failed call: requests skip Redis for a moment, and the outage is logged once.
    fn failed(&self, error: &str) {
        *self
            .skip_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(Instant::now() + RETRY_AFTER_FAILURE);
        if !self.down.swap(true, Ordering::Relaxed) {
            let then = match self.on_unavailable {
                OnUnavailable::Closed => {
                    "inference requests get 503 (`on_unavailable = \"closed\"`)"
                }
                OnUnavailable::Open => {
                    "inference requests are admitted against this instance's own limits (`on_unavailable = \"open\"`)"
                }
            };
            tracing::error!(
                error,
                "Redis (`state.redis_url`) cannot be reached; {then} until it answers"
            );
        }
        crate::gateway::metrics::state_unavailable("redis");
    }

    fn answered(&self) {
        if self.down.swap(false, Ordering::Relaxed) {
            tracing::warn!("Redis (`state.redis_url`) is reachable again; limits are shared again");
        }
    }

    /// Runs a script with the request path's timeout.
    async fn call<T: redis::FromRedisValue>(
        &self,
        invocation: &redis::ScriptInvocation<'_>,
    ) -> Result<T, Unavailable> {
        let mut conn = self.conn.clone();
        match tokio::time::timeout(CALL_TIMEOUT, invocation.invoke_async(&mut conn)).await {
            Ok(Ok(value)) => {
                self.answered();
                Ok(value)
            }
            Ok(Err(err)) => {
                self.failed(&err.to_string());
                Err(Unavailable)
            }
            Err(_) => {
                self.failed("no answer in time");
                Err(Unavailable)
            }
        }
    }

    /// One admission in one round trip; seeds the counters first if Redis lost them.
    pub(crate) async fn admit(
        self: &Arc<Self>,
        client: &Client,
        hold: Decimal,
        may_wait: bool,
    ) -> Result<Decision, Unavailable> {
        if self.skipping() {
            return Err(Unavailable);
        }
        let id = request_id();
        let hold_nanos = nanos_up(hold);
        for _ in 0..2 {
            let now = Timestamp::now();
            let names = Names::new(&client.name, now);
            let now_ms = now.as_millisecond();
            let lease_ms = i64::try_from(self.lease.as_millis()).unwrap_or(i64::MAX);
            let mut invocation = self.admit.prepare_invoke();
            invocation
                .key(&names.seeded)
                .key(&names.minute)
                .key(&names.day)
                .key(&names.leases)
                .key(&names.holds)
                .key(&names.spent)
                .key(&names.month)
                .arg(now_ms)
                .arg(now_ms + lease_ms)
                .arg(&id)
                .arg(client.limits.rpm)
                .arg(client.limits.daily)
                .arg(client.limits.concurrent)
                .arg(client.credits.map_or(-1, nanos_down))
                .arg(client.budget.map_or(-1, nanos_down))
                .arg(hold_nanos)
                .arg(MINUTE_TTL_S)
                .arg(DAY_TTL_S)
                .arg(lease_ms * 2);
            let [status, minute_count, in_flight, amount]: [i64; 4] =
                self.call(&invocation).await?;
            let count = |n: i64| u32::try_from(n).unwrap_or(u32::MAX);
            let secs = now.as_second();
            let minute = secs.div_euclid(MINUTE);
            let headers = RateHeaders::new(client, minute, count(minute_count), count(in_flight));
            let refused = match status {
                -1 => {
                    self.reseed(&client.name, now).await?;
                    continue;
                }
                0 => {
                    let _ = self.tasks.send(Task::Lease {
                        id: id.clone(),
                        key: client.name.clone(),
                        hold: hold_nanos,
                    });
                    return Ok(Decision::Admitted(Admission::with_id(
                        Backend::Shared(Arc::clone(self)),
                        id,
                        client,
                        hold,
                        now,
                        headers,
                    )));
                }
                1 => Refused::Balance {
                    balance: usd(amount),
                    hold,
                },
                2 => Refused::Budget {
                    budget: client.budget.unwrap_or_default(),
                    spent: usd(amount),
                },
                3 => Refused::Daily {
                    limit: client.limits.daily,
                    wait: (secs.div_euclid(DAY) + 1) * DAY - secs,
                },
                4 => Refused::Rpm {
                    wait: (minute + 1) * MINUTE - secs,
                },
                _ if may_wait && self.ending_of(&client.name) > 0 => {
                    return Ok(Decision::RetrySoon);
                }
                _ => Refused::Concurrency {
                    limit: client.limits.concurrent,
                },
            };
            return Ok(Decision::Refused(refused.refusal(headers)));
        }
        self.failed("the counters were lost again right after seeding");
        Err(Unavailable)
    }

    /// Seeds `key`'s counters from the ledger after Redis lost them.
    async fn reseed(&self, key: &str, now: Timestamp) -> Result<(), Unavailable> {
        let Some(seed) = self.seeds.seed(key, now).await else {
            self.failed("Redis lost its counters and the ledger could not be read to seed them");
            return Err(Unavailable);
        };
        let Seed {
            today,
            this_minute,
            account,
        } = seed;
        let names = Names::new(key, now);
        let mut invocation = self.seed.prepare_invoke();
        invocation
            .key(&names.seeded)
            .key(&names.minute)
            .key(&names.day)
            .key(&names.spent)
            .key(&names.month)
            .arg(this_minute)
            .arg(today)
            .arg(nanos_up(account.spent_usd))
            .arg(nanos_up(account.spent_in(&store::month(now))))
            .arg(MINUTE_TTL_S)
            .arg(DAY_TTL_S)
            .arg(MONTH_TTL_S);
        let seeded: i64 = self.call(&invocation).await?;
        if seeded == 1 {
            tracing::info!(
                key,
                today,
                this_minute,
                "seeded this key's shared counters from the ledger (its first use since Redis started empty)"
            );
        }
        Ok(())
    }

    /// The headers from the shared counters; `None` when Redis cannot answer.
    pub(crate) async fn peek(&self, client: &Client) -> Option<RateHeaders> {
        if self.skipping() {
            return None;
        }
        let now = Timestamp::now();
        let names = Names::new(&client.name, now);
        let mut invocation = self.peek.prepare_invoke();
        invocation
            .key(&names.minute)
            .key(&names.leases)
            .arg(now.as_millisecond());
        let [minute_count, in_flight]: [i64; 2] = self.call(&invocation).await.ok()?;
        let count = |n: i64| u32::try_from(n).unwrap_or(u32::MAX);
        Some(RateHeaders::new(
            client,
            now.as_second().div_euclid(MINUTE),
            count(minute_count),
            count(in_flight),
        ))
    }

    fn ending_of(&self, key: &str) -> u32 {
        let ending = self.ending.lock().unwrap_or_else(PoisonError::into_inner);
        ending.get(key).copied().unwrap_or(0)
    }

    /// A request of `key` ended; its release follows once its row is committed.
    pub(crate) fn ended(&self, key: &str) {
        let mut ending = self.ending.lock().unwrap_or_else(PoisonError::into_inner);
        *ending.entry(key.to_owned()).or_default() += 1;
    }

    /// Queues the release of an admission's lease, with its cost (none: a row never written).
    pub(crate) fn release(&self, admission: &Admission, cost: Option<Decimal>) {
        let _ = self.tasks.send(Task::Release(Release {
            id: admission.id().to_owned(),
            key: admission.key().to_owned(),
            cost: cost.map_or(0, nanos_up),
            month: store::month(admission.started()),
            ended: admission.has_ended(),
            told: false,
        }));
    }

    /// Sends the releases still pending (at shutdown, after the ledger's flush), so the slots
    /// free now rather than when their leases expire.
    pub(crate) async fn flush(&self) {
        let (done, rx) = tokio::sync::oneshot::channel();
        if self.tasks.send(Task::Flush(done)).is_ok() {
            let _ = tokio::time::timeout(CALL_TIMEOUT * 2, rx).await;
        }
    }

    /// A release was sent (or queued for retry): the slot is free as far as this instance's
    /// waiting requests are concerned.
    fn released(&self, release: &Release) {
        if release.ended {
            let mut ending = self.ending.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(n) = ending.get_mut(&release.key) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    ending.remove(&release.key);
                }
            }
        }
        self.local.notify_settled();
    }
}
