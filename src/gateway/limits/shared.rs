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

/// Admission. KEYS: seeded marker, minute count, day count, leases, holds, spent, month spent.
/// ARGV: now (ms), lease expiry (ms), lease id, rpm, daily, concurrent, credits (-1: none),
/// budget (-1: none), hold, minute ttl, day ttl, lease set ttl (ms).
/// Returns {status, minute count, in flight, amount}: status 0 admitted (counts include this
/// request), 1 balance (amount: balance), 2 budget (amount: spent or held this month), 3 daily,
/// 4 rpm, 5 concurrency, -1 the counters were lost and must be seeded first (nothing taken).
const ADMIT: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return {-1, 0, 0, 0} end
local now = tonumber(ARGV[1])
local expired = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', now)
if #expired > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now)
  redis.call('HDEL', KEYS[5], unpack(expired))
end
local in_flight = redis.call('ZCARD', KEYS[4])
local held = 0
for _, v in ipairs(redis.call('HVALS', KEYS[5])) do held = held + tonumber(v) end
local minute = tonumber(redis.call('GET', KEYS[2]) or '0')
local day = tonumber(redis.call('GET', KEYS[3]) or '0')
local spent = tonumber(redis.call('GET', KEYS[6]) or '0')
local month = tonumber(redis.call('GET', KEYS[7]) or '0')
local credits = tonumber(ARGV[7])
local budget = tonumber(ARGV[8])
local hold = tonumber(ARGV[9])
if credits >= 0 and hold > credits - spent - held then return {1, minute, in_flight, credits - spent - held} end
if budget >= 0 and month + held + hold > budget then return {2, minute, in_flight, month + held} end
if day >= tonumber(ARGV[5]) then return {3, minute, in_flight, 0} end
if minute >= tonumber(ARGV[4]) then return {4, minute, in_flight, 0} end
if in_flight >= tonumber(ARGV[6]) then return {5, minute, in_flight, 0} end
redis.call('INCR', KEYS[2])
redis.call('EXPIRE', KEYS[2], ARGV[10])
redis.call('INCR', KEYS[3])
redis.call('EXPIRE', KEYS[3], ARGV[11])
redis.call('ZADD', KEYS[4], ARGV[2], ARGV[3])
redis.call('PEXPIRE', KEYS[4], ARGV[12])
if hold > 0 then
  redis.call('HSET', KEYS[5], ARGV[3], ARGV[9])
  redis.call('PEXPIRE', KEYS[5], ARGV[12])
end
return {0, minute + 1, in_flight + 1, 0}
";

/// The headers' view without admitting. KEYS: minute count, leases. ARGV: now (ms).
const PEEK: &str = r"
local minute = tonumber(redis.call('GET', KEYS[1]) or '0')
local in_flight = redis.call('ZCOUNT', KEYS[2], '(' .. ARGV[1], '+inf')
return {minute, in_flight}
";

/// Ends a lease and books its cost. KEYS: leases, holds, spent, month spent. ARGV: lease id,
/// cost, month ttl.
const RELEASE: &str = r"
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
local cost = tonumber(ARGV[2])
if cost > 0 then
  redis.call('INCRBY', KEYS[3], ARGV[2])
  redis.call('INCRBY', KEYS[4], ARGV[2])
  redis.call('EXPIRE', KEYS[4], ARGV[3])
end
return 1
";

/// Seeds counters lost with Redis's data from the ledger, unless another instance already did.
/// KEYS: seeded marker, minute count, day count, spent, month spent. ARGV: minute count, day
/// count, spent, month spent, minute ttl, day ttl, month ttl.
const SEED: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[5])
redis.call('SET', KEYS[3], ARGV[2], 'EX', ARGV[6])
redis.call('SET', KEYS[4], ARGV[3])
redis.call('SET', KEYS[5], ARGV[4], 'EX', ARGV[7])
redis.call('SET', KEYS[1], '1')
return 1
";

/// The Redis keys of one key name at one moment.
struct Names {
    seeded: String,
    minute: String,
    day: String,
    leases: String,
    holds: String,
    spent: String,
    month: String,
}

impl Names {
    fn new(key: &str, now: Timestamp) -> Self {
        let secs = now.as_second();
        let base = format!("izzi:{{{key}}}");
        Self {
            seeded: format!("{base}:seeded"),
            minute: format!("{base}:minute:{}", secs.div_euclid(MINUTE)),
            day: format!("{base}:day:{}", secs.div_euclid(DAY)),
            leases: format!("{base}:leases"),
            holds: format!("{base}:holds"),
            spent: format!("{base}:spent"),
            month: format!("{base}:month:{}", store::month(now)),
        }
    }
}

/// Nanodollars, rounded up (holds: never hold too little).
fn nanos_up(usd: Decimal) -> i64 {
    (usd * Decimal::from(1_000_000_000))
        .ceil()
        .try_into()
        .unwrap_or(i64::MAX)
}

/// Nanodollars, rounded down (credits and budgets: never allow too much).
fn nanos_down(usd: Decimal) -> i64 {
    (usd * Decimal::from(1_000_000_000))
        .floor()
        .try_into()
        .unwrap_or(i64::MAX)
}

fn usd(nanos: i64) -> Decimal {
    Decimal::new(nanos, 9)
}

/// Work for the lease keeper, in the order it happened.
enum Task {
    /// A lease was granted: renew it until it is released.
    Lease { id: String, key: String, hold: i64 },
    /// The request's row is committed (or was given up): end the lease, book the cost.
    Release(Release),
    /// Shutting down: send what is pending, then answer.
    Flush(tokio::sync::oneshot::Sender<()>),
}

struct Release {
    id: String,
    key: String,
    cost: i64,
    month: String,
    /// The request had ended (its slot was counted as ending here).
    ended: bool,
    /// This instance's waiting requests were told (once, at the first attempt).
    told: bool,
}

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

/// The task that owns this instance's leases: renews them every third of the lease time and
/// releases them in the order the ledger settles them. One task for both, so a renewal can never
/// bring back a lease that was just released.
struct Keeper {
    shared: std::sync::Weak<Shared>,
    conn: ConnectionManager,
    release: redis::Script,
    lease: Duration,
    /// Lease id → key name and hold (nanodollars).
    live: HashMap<String, (String, i64)>,
    /// Releases Redis did not take yet (it was down); retried in order.
    pending: VecDeque<Release>,
}

impl Keeper {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Task>) {
        let mut tick = tokio::time::interval(self.lease / 3);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                task = rx.recv() => match task {
                    Some(Task::Lease { id, key, hold }) => {
                        self.live.insert(id, (key, hold));
                    }
                    Some(Task::Release(release)) => {
                        self.live.remove(&release.id);
                        self.pending.push_back(release);
                        self.flush().await;
                    }
                    Some(Task::Flush(done)) => {
                        self.flush().await;
                        let _ = done.send(());
                    }
                    None => return,
                },
                _ = tick.tick() => {
                    self.flush().await;
                    self.renew().await;
                }
            }
        }
    }

    /// Sends the pending releases, oldest first, stopping at the first failure.
    async fn flush(&mut self) {
        while let Some(release) = self.pending.front_mut() {
            let names = Names::new(&release.key, Timestamp::now());
            let month = format!("izzi:{{{}}}:month:{}", release.key, release.month);
            let mut invocation = self.release.prepare_invoke();
            invocation
                .key(&names.leases)
                .key(&names.holds)
                .key(&names.spent)
                .key(&month)
                .arg(&release.id)
                .arg(release.cost)
                .arg(MONTH_TTL_S);
            let sent =
                tokio::time::timeout(CALL_TIMEOUT, invocation.invoke_async::<i64>(&mut self.conn))
                    .await;
            // Waiting requests are woken whether or not Redis took it: a lease Redis does not
            // hear of expires by itself.
            if !release.told {
                release.told = true;
                if let Some(shared) = self.shared.upgrade() {
                    shared.released(release);
                }
            }
            match sent {
                Ok(Ok(_)) => {
                    self.pending.pop_front();
                }
                Ok(Err(err)) => {
                    tracing::debug!(error = %err, "cannot release a lease in Redis yet; retrying");
                    return;
                }
                Err(_) => return,
            }
        }
    }

    /// Extends every live lease by the lease time (and re-creates those Redis lost).
    async fn renew(&mut self) {
        if self.live.is_empty() {
            return;
        }
        let now = Timestamp::now().as_millisecond();
        let lease_ms = i64::try_from(self.lease.as_millis()).unwrap_or(i64::MAX);
        let mut pipe = redis::pipe();
        for (id, (key, hold)) in &self.live {
            let names = Names::new(key, Timestamp::now());
            pipe.zadd(&names.leases, id, now + lease_ms)
                .ignore()
                .pexpire(&names.leases, lease_ms * 2)
                .ignore();
            if *hold > 0 {
                pipe.hset(&names.holds, id, *hold)
                    .ignore()
                    .pexpire(&names.holds, lease_ms * 2)
                    .ignore();
            }
        }
        let renewed =
            tokio::time::timeout(CALL_TIMEOUT, pipe.query_async::<()>(&mut self.conn)).await;
        if !matches!(renewed, Ok(Ok(()))) {
            tracing::debug!(
                leases = self.live.len(),
                "cannot renew leases in Redis; retrying at the next tick"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nanodollars_round_toward_safety() {
        let d = |s: &str| s.parse::<Decimal>().unwrap();
        assert_eq!(nanos_up(d("0.0000000001")), 1);
        assert_eq!(nanos_down(d("0.0000000019")), 1);
        assert_eq!(nanos_up(d("1.5")), 1_500_000_000);
        assert_eq!(usd(1_500_000_000), d("1.5"));
    }

    #[test]
    fn every_key_of_a_name_shares_its_hash_tag() {
        let at: Timestamp = "2026-03-30T00:19:15Z".parse().unwrap();
        let names = Names::new("ci", at);
        for key in [
            &names.seeded,
            &names.minute,
            &names.day,
            &names.leases,
            &names.holds,
            &names.spent,
            &names.month,
        ] {
            assert!(key.starts_with("izzi:{ci}:"), "{key}");
        }
        assert!(names.month.ends_with(":2026-03"));
        assert_eq!(
            names.minute,
            format!("izzi:{{ci}}:minute:{}", at.as_second() / 60)
        );
    }
}
