//! Admission: balance, monthly budget, daily quota, requests per minute and concurrency, checked
//! in SPEC's order for one client key under one short lock that is never held across an await.
//!
//! A request is admitted by one reservation across every limit, or refused with nothing taken:
//! a request refused for concurrency consumes no RPM or daily quota. While it runs it holds its
//! worst-case cost against the balance and the budget, so simultaneous requests cannot overspend;
//! [`Admission::settle`] swaps the hold for the real cost and frees the concurrency slot. The
//! rate-limit headers come from the same locked state as the decision, so they cannot disagree.
//!
//! Windows are fixed and clock-aligned in UTC: the minute (`x-ratelimit-reset-requests` is the
//! next minute boundary), the day, the month. Reads the database once, at start (spend and
//! today's counts); the ledger settles admissions after their rows are committed. Knows nothing
//! of request bodies.
//!
//! [`Limits`] is what the request path calls. It holds this process's [`Limiter`] and, with
//! `[state].redis_url`, the shared backend (`shared`), which makes the same decision in one Redis
//! script for every instance; when Redis (or PostgreSQL) cannot be reached, `[state].on_unavailable`
//! chooses between a 503 and this process's own limits.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use rust_decimal::Decimal;

use super::auth::Client;
use super::errors::ApiError;
use super::ledger::Ledger;
use crate::config::{OnUnavailable, Plan};
use crate::store::{self, Account, DAY, MINUTE};

mod shared;

/// One key name's live state.
#[derive(Debug, Default)]
struct State {
    /// Settled spend, as in the `accounts` table.
    account: Account,
    /// Worst-case costs of requests still running.
    holds: Decimal,
    in_flight: u32,
    /// Of those, requests that have ended and whose rows are being committed: their slots are
    /// about to free.
    ending: u32,
    /// Minute index (seconds / 60) that `minute_count` counts.
    minute: i64,
    minute_count: u32,
    /// UTC day index (seconds / 86 400) that `day_count` counts.
    day: i64,
    day_count: u32,
}

impl State {
    /// Starts new windows when the clock has moved past the counted ones.
    fn roll(&mut self, now: i64) {
        let minute = now.div_euclid(MINUTE);
        if minute != self.minute {
            self.minute = minute;
            self.minute_count = 0;
        }
        let day = now.div_euclid(DAY);
        if day != self.day {
            self.day = day;
            self.day_count = 0;
        }
    }

    fn headers(&self, client: &Client) -> RateHeaders {
        RateHeaders::new(client, self.minute, self.minute_count, self.in_flight)
    }
}

/// Every key's limits state.
#[derive(Debug, Default)]
pub(crate) struct Limiter {
    keys: Mutex<HashMap<String, State>>,
    /// Woken whenever an admission is settled (a slot freed).
    settled: tokio::sync::Notify,
}

impl Limiter {
    /// Seeds the state from the database: each key's spend, and the requests it made today and
    /// in the current minute (ledger rows), so a restart or a kill forgets nothing that was
    /// written.
    pub(crate) fn new(
        accounts: HashMap<String, Account>,
        today: &HashMap<String, u32>,
        this_minute: &HashMap<String, u32>,
        now: Timestamp,
    ) -> Self {
        let secs = now.as_second();
        let mut keys: HashMap<String, State> = HashMap::new();
        let names = accounts
            .keys()
            .chain(today.keys())
            .chain(this_minute.keys())
            .cloned()
            .collect::<Vec<_>>();
        for name in names {
            keys.entry(name).or_insert_with_key(|name| State {
                account: accounts.get(name).cloned().unwrap_or_default(),
                minute: secs.div_euclid(MINUTE),
                minute_count: this_minute.get(name).copied().unwrap_or(0),
                day: secs.div_euclid(DAY),
                day_count: today.get(name).copied().unwrap_or(0),
                ..State::default()
            });
        }
        Self {
            keys: Mutex::new(keys),
            settled: tokio::sync::Notify::new(),
        }
    }

    /// The limits as the database left them: spend per key, and the requests of today and of
    /// this minute (UTC), so a restart forgets no count.
    pub(crate) fn load(store: &store::Database, now: Timestamp) -> anyhow::Result<Self> {
        let today = store.requests_since(store::window_start(now, DAY))?;
        let this_minute = store.requests_since(store::window_start(now, MINUTE))?;
        Ok(Self::new(store.accounts()?, &today, &this_minute, now))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, State>> {
        // The critical sections cannot leave the map half-updated, so a panic elsewhere while
        // holding the lock does not make the state unusable.
        self.keys.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Admits one inference request of `client` holding `hold` (its worst-case cost), or refuses
    /// it with the first limit it breaks, in SPEC's order, taking nothing.
    ///
    /// With `may_wait`, a request refused only because of slots whose requests have ended and
    /// are being written to the ledger gets a refusal marked [`Refusal::is_brief`] instead: the
    /// caller should wait for [`Limiter::settled`] and ask again, so a client that sends its next
    /// request the moment the last one ends is not refused for a slot that is a commit away from
    /// free.
    pub(crate) fn admit(
        self: &Arc<Self>,
        client: &Client,
        hold: Decimal,
        now: Timestamp,
        may_wait: bool,
    ) -> Result<Admission, Refusal> {
        let secs = now.as_second();
        let mut keys = self.lock();
        let state = state_of(&mut keys, &client.name);
        state.roll(secs);
        let refused = if let Some(credits) = client.credits
            && hold > credits - state.account.spent_usd - state.holds
        {
            Some(Refused::Balance {
                balance: credits - state.account.spent_usd - state.holds,
                hold,
            })
        } else if let Some(budget) = client.budget
            && let spent = state.account.spent_in(&store::month(now)) + state.holds
            && spent + hold > budget
        {
            Some(Refused::Budget { budget, spent })
        } else if state.day_count >= client.limits.daily {
            Some(Refused::Daily {
                limit: client.limits.daily,
                wait: (state.day + 1) * DAY - secs,
            })
        } else if state.minute_count >= client.limits.rpm {
            Some(Refused::Rpm {
                wait: (state.minute + 1) * MINUTE - secs,
            })
        } else if state.in_flight >= client.limits.concurrent {
            Some(Refused::Concurrency {
                limit: client.limits.concurrent,
                brief: may_wait && state.in_flight - state.ending < client.limits.concurrent,
            })
        } else {
            None
        };
        if let Some(refused) = refused {
            return Err(refused.refusal(state.headers(client)));
        }
        state.holds += hold;
        state.in_flight += 1;
        state.minute_count += 1;
        state.day_count += 1;
        let headers = state.headers(client);
        drop(keys);
        Ok(Admission {
            backend: Backend::Local(Arc::clone(self)),
            id: request_id(),
            key: client.name.clone(),
            hold,
            started: now,
            headers,
            ended: false,
            settled: false,
        })
    }

    /// The headers for a request that counts toward nothing (models, count_tokens) or that
    /// failed before admission.
    pub(crate) fn peek(&self, client: &Client, now: Timestamp) -> RateHeaders {
        let mut keys = self.lock();
        let state = state_of(&mut keys, &client.name);
        state.roll(now.as_second());
        state.headers(client)
    }

    /// Resolves once an admission is settled after this call.
    pub(crate) fn settled(&self) -> tokio::sync::futures::Notified<'_> {
        self.settled.notified()
    }

    /// Wakes the requests waiting for a slot (a shared admission was settled).
    fn notify_settled(&self) {
        self.settled.notify_waiters();
    }

    fn ended(&self, key: &str) {
        state_of(&mut self.lock(), key).ending += 1;
    }

    fn settle(&self, admission: &Admission, cost: Option<Decimal>) {
        {
            let mut keys = self.lock();
            let state = state_of(&mut keys, &admission.key);
            state.holds -= admission.hold;
            state.in_flight = state.in_flight.saturating_sub(1);
            if admission.ended {
                state.ending = state.ending.saturating_sub(1);
            }
            if let Some(cost) = cost {
                state.account.add(&store::month(admission.started), cost);
            }
        }
        self.settled.notify_waiters();
    }
}

/// A limit that refuses a request, with what its message says.
#[derive(Debug, Clone, Copy)]
enum Refused {
    Balance {
        balance: Decimal,
        hold: Decimal,
    },
    Budget {
        budget: Decimal,
        spent: Decimal,
    },
    Daily {
        limit: u32,
        wait: i64,
    },
    Rpm {
        wait: i64,
    },
    /// `brief`: only slots whose requests have ended and are being committed are taken.
    Concurrency {
        limit: u32,
        brief: bool,
    },
}

impl Refused {
    /// The `reason` label of the refusals metric.
    fn reason(self) -> &'static str {
        match self {
            Refused::Balance { .. } => "insufficient_balance",
            Refused::Budget { .. } => "budget_exceeded",
            Refused::Daily { .. } => "quota_exceeded",
            Refused::Rpm { .. } => "rpm",
            Refused::Concurrency { .. } => "concurrency",
        }
    }

    fn error(self) -> ApiError {
        match self {
            Refused::Balance { balance, hold } => ApiError::with_status(
                StatusCode::PAYMENT_REQUIRED,
                "insufficient_balance",
                format!(
                    "The key's balance is ${} and this request may cost up to ${}: add credits, or lower `max_tokens`.",
                    balance.max(Decimal::ZERO).round_dp(6).normalize(),
                    hold.round_dp(6).normalize(),
                ),
            ),
            Refused::Budget { budget, spent } => ApiError::with_status(
                StatusCode::PAYMENT_REQUIRED,
                "budget_exceeded",
                format!(
                    "The key's monthly budget of ${} is reached (${} spent or held this month); it renews on the 1st (UTC).",
                    budget.normalize(),
                    spent.round_dp(6).normalize(),
                ),
            ),
            Refused::Daily { limit, wait } => limited(
                "quota_exceeded",
                format!("Daily request quota of {limit} exceeded. Try again in {wait} seconds."),
                wait,
            ),
            Refused::Rpm { wait } => limited(
                "rate_limit_error",
                format!("Rate limit exceeded. Try again in {wait} seconds."),
                wait,
            ),
            // A slot frees when any running request ends, which nobody can foresee; one second
            // is the shortest honest wait.
            Refused::Concurrency { limit, .. } => limited(
                "rate_limit_error",
                format!("Concurrent request limit of {limit} exceeded. Try again in 1 second."),
                1,
            ),
        }
    }

    /// The refusal to answer with.
    fn refusal(self, headers: RateHeaders) -> Refusal {
        let brief = matches!(self, Refused::Concurrency { brief: true, .. });
        let error = if brief {
            ApiError::internal("A concurrency slot is about to free.")
        } else {
            self.error()
        };
        Refusal {
            error,
            headers,
            reason: self.reason(),
            brief,
        }
    }
}

fn limited(kind: &'static str, message: String, wait: i64) -> ApiError {
    let wait = u64::try_from(wait.max(1)).unwrap_or(1);
    ApiError::with_status(StatusCode::TOO_MANY_REQUESTS, kind, message).retry_after(Some(wait))
}

/// A new request id: 128 random bits in hex. Names the ledger row and the shared lease.
/// `key`'s state, created when missing (its name is copied only then).
fn state_of<'a>(keys: &'a mut HashMap<String, State>, key: &str) -> &'a mut State {
    if !keys.contains_key(key) {
        keys.insert(key.to_owned(), State::default());
    }
    keys.get_mut(key).expect("inserted above")
}

fn request_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// The rate-limit headers of one authenticated response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RateHeaders {
    tier: Plan,
    limit: u32,
    remaining: u32,
    /// Unix seconds of the next minute boundary.
    reset: i64,
    concurrent_limit: u32,
    concurrent_remaining: u32,
}

impl RateHeaders {
    /// The headers of `client` with `minute_count` requests in the minute numbered `minute`
    /// (seconds / 60) and `in_flight` running.
    fn new(client: &Client, minute: i64, minute_count: u32, in_flight: u32) -> Self {
        Self {
            tier: client.plan,
            limit: client.limits.rpm,
            remaining: client.limits.rpm.saturating_sub(minute_count),
            reset: (minute + 1) * MINUTE,
            concurrent_limit: client.limits.concurrent,
            concurrent_remaining: client.limits.concurrent.saturating_sub(in_flight),
        }
    }

    /// Writes the six headers.
    pub(crate) fn apply(&self, headers: &mut HeaderMap) {
        // Names built at compile time: a `&str` name is parsed and validated on every insert.
        const TIER: HeaderName = HeaderName::from_static("x-ratelimit-tier");
        const LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit-requests");
        const REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining-requests");
        const RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset-requests");
        const CONCURRENT_LIMIT: HeaderName = HeaderName::from_static("x-concurrent-limit");
        const CONCURRENT_REMAINING: HeaderName = HeaderName::from_static("x-concurrent-remaining");
        headers.reserve(6);
        headers.insert(TIER, HeaderValue::from_static(self.tier.name()));
        headers.insert(LIMIT, HeaderValue::from(self.limit));
        headers.insert(REMAINING, HeaderValue::from(self.remaining));
        if let Some(reset) = reset_header(self.reset) {
            headers.insert(RESET, reset);
        }
        headers.insert(CONCURRENT_LIMIT, HeaderValue::from(self.concurrent_limit));
        headers.insert(
            CONCURRENT_REMAINING,
            HeaderValue::from(self.concurrent_remaining),
        );
    }

    /// Marks `response` to carry these headers; the auth layer writes them.
    pub(crate) fn attach(self, mut response: Response) -> Response {
        response.extensions_mut().insert(self);
        response
    }
}

/// The RFC 3339 value of `x-ratelimit-reset-requests` for Unix second `reset`, formatted once
/// per minute per thread rather than for every response.
fn reset_header(reset: i64) -> Option<HeaderValue> {
    thread_local! {
        static LAST: RefCell<Option<(i64, HeaderValue)>> = const { RefCell::new(None) };
    }
    LAST.with_borrow_mut(|last| {
        if let Some((at, value)) = last
            && *at == reset
        {
            return Some(value.clone());
        }
        let value = HeaderValue::try_from(Timestamp::from_second(reset).ok()?.to_string()).ok()?;
        *last = Some((reset, value.clone()));
        Some(value)
    })
}

/// A refused request: the error and the headers as they stood when it was refused.
#[derive(Debug)]
pub(crate) struct Refusal {
    pub(crate) error: ApiError,
    headers: RateHeaders,
    /// The `reason` label of the refusals metric, counted when the refusal is answered.
    reason: &'static str,
    brief: bool,
}

impl Refusal {
    /// Refused only for a slot that frees as soon as a finished request's row is committed.
    pub(crate) fn is_brief(&self) -> bool {
        self.brief
    }

    /// Refused for the key's balance or monthly budget: a smaller hold may pass.
    pub(crate) fn is_money(&self) -> bool {
        matches!(self.reason, "insufficient_balance" | "budget_exceeded")
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        crate::gateway::metrics::refused(self.reason);
        self.headers.attach(self.error.into_response())
    }
}

/// An admitted request's reservation: its concurrency slot and its cost hold. Settled by the
/// ledger once the request's row is committed; dropped unsettled (a row that could not be
/// written), it still frees the slot and the hold.
#[derive(Debug)]
pub(crate) struct Admission {
    backend: Backend,
    /// The request's id: its ledger row's and, shared, its lease's.
    id: String,
    key: String,
    hold: Decimal,
    started: Timestamp,
    headers: RateHeaders,
    /// The request has ended and its row is queued.
    ended: bool,
    settled: bool,
}

/// Who admitted a request, and so who frees its slot.
#[derive(Debug)]
enum Backend {
    Local(Arc<Limiter>),
    Shared(Arc<shared::Shared>),
}

impl Admission {
    /// The request's id.
    pub(crate) fn id(&self) -> &str {
        &self.id
    }

    /// The key name it was admitted for.
    pub(crate) fn key(&self) -> &str {
        &self.key
    }

    /// When it was admitted.
    pub(crate) fn started(&self) -> Timestamp {
        self.started
    }

    /// The headers as they stood right after admission.
    pub(crate) fn headers(&self) -> RateHeaders {
        self.headers
    }

    /// The request has ended and its row is queued: its slot frees at the commit.
    pub(crate) fn ended(&mut self) {
        if !self.ended {
            self.ended = true;
            match &self.backend {
                Backend::Local(limiter) => limiter.ended(&self.key),
                Backend::Shared(shared) => shared.ended(&self.key),
            }
        }
    }

    /// Replaces the hold with the real cost (debited from the balance, added to the month's
    /// spend) and frees the concurrency slot.
    pub(crate) fn settle(mut self, cost: Decimal) {
        self.release(Some(cost));
    }

    fn release(&mut self, cost: Option<Decimal>) {
        if self.settled {
            return;
        }
        self.settled = true;
        match &self.backend {
            Backend::Local(limiter) => limiter.settle(self, cost),
            Backend::Shared(shared) => shared.release(self, cost),
        }
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.release(None);
    }
}

/// How long a request may wait for a concurrency slot whose request has ended and is being
/// written to the ledger; a commit takes milliseconds.
const SLOT_COMMIT_WAIT: Duration = Duration::from_secs(2);

/// The limits the request path calls: this process's, or shared through Redis with this
/// process's as the fallback. Which one decides is invisible to the caller.
pub(crate) struct Limits {
    local: Arc<Limiter>,
    shared: Option<Arc<shared::Shared>>,
    /// PostgreSQL's availability, when the ledger lives there.
    postgres: Option<Arc<AtomicBool>>,
    on_unavailable: OnUnavailable,
}

impl Limits {
    /// This process's limits, and with `[state].redis_url` the shared ones in front of them.
    /// Starts the shared backend's lease keeper on the current runtime.
    pub(crate) fn new(
        state: &crate::config::State,
        local: Limiter,
        ledger: &Ledger,
        postgres: Option<Arc<AtomicBool>>,
    ) -> anyhow::Result<Self> {
        let local = Arc::new(local);
        let shared = match &state.redis_url {
            Some(url) => Some(shared::Shared::start(
                url,
                Duration::from_secs(state.lease_s),
                state.on_unavailable,
                Arc::clone(&local),
                ledger.clone(),
            )?),
            None => None,
        };
        Ok(Self {
            local,
            shared,
            postgres,
            on_unavailable: state.on_unavailable,
        })
    }

    /// Admits one inference request of `client` holding `hold` (its worst-case cost), or
    /// refuses it with the first limit it breaks, in SPEC's order, taking nothing. A request
    /// refused only for a slot that is a commit away from free waits for it, briefly.
    pub(crate) async fn admit(&self, client: &Client, hold: Decimal) -> Result<Admission, Refusal> {
        let deadline = Instant::now() + SLOT_COMMIT_WAIT;
        loop {
            // Created before asking, so a settlement between the answer and the wait is not
            // missed.
            let settled = self.local.settled();
            let may_wait = Instant::now() < deadline;
            match self.try_admit(client, hold, may_wait).await {
                Err(refusal) if refusal.is_brief() => {
                    let _ = tokio::time::timeout_at(deadline.into(), settled).await;
                }
                result => return result,
            }
        }
    }

    async fn try_admit(
        &self,
        client: &Client,
        hold: Decimal,
        may_wait: bool,
    ) -> Result<Admission, Refusal> {
        let closed = self.on_unavailable == OnUnavailable::Closed;
        if closed
            && let Some(postgres) = &self.postgres
            && !postgres.load(Ordering::Relaxed)
        {
            return Err(self.unavailable(client, "PostgreSQL"));
        }
        if let Some(shared) = &self.shared {
            match shared.admit(client, hold, may_wait).await {
                Ok(decided) => return decided,
                Err(shared::Unavailable) if closed => {
                    return Err(self.unavailable(client, "Redis"));
                }
                // Fail open: this process's own limits decide (logged by `shared`).
                Err(shared::Unavailable) => {}
            }
        }
        self.local.admit(client, hold, Timestamp::now(), may_wait)
    }

    /// The 503 of fail-closed: the shared state cannot be reached, so nothing is admitted.
    fn unavailable(&self, client: &Client, store: &'static str) -> Refusal {
        Refusal {
            error: ApiError::with_status(
                StatusCode::SERVICE_UNAVAILABLE,
                "server_error",
                format!(
                    "The gateway cannot reach its shared state ({store}), so it cannot check this key's limits. Try again in {UNAVAILABLE_RETRY_S} seconds."
                ),
            )
            .retry_after(Some(UNAVAILABLE_RETRY_S)),
            headers: self.local.peek(client, Timestamp::now()),
            reason: "state_unavailable",
            brief: false,
        }
    }

    /// Frees the shared slots of requests whose rows were committed (at shutdown, after the
    /// ledger's flush).
    pub(crate) async fn flush(&self) {
        if let Some(shared) = &self.shared {
            shared.flush().await;
        }
    }

    /// The headers for a request that counts toward nothing (models, count_tokens) or that
    /// failed before admission.
    pub(crate) async fn peek(&self, client: &Client) -> RateHeaders {
        if let Some(shared) = &self.shared
            && let Some(headers) = shared.peek(client).await
        {
            return headers;
        }
        self.local.peek(client, Timestamp::now())
    }
}

/// `Retry-After` of the 503 when the shared state is unavailable.
const UNAVAILABLE_RETRY_S: u64 = 2;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Limits, Plan};

    fn client(rpm: u32, concurrent: u32, daily: u32) -> Client {
        Client {
            name: "k".into(),
            source: crate::config::KeySource::Config,
            plan: Plan::Pro,
            limits: Limits {
                rpm,
                concurrent,
                daily,
            },
            credits: None,
            budget: None,
        }
    }

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn kind(result: Result<Admission, Refusal>) -> &'static str {
        match result {
            Ok(_) => "admitted",
            Err(refusal) => refusal.error.kind,
        }
    }

    fn dec(text: &str) -> Decimal {
        text.parse().unwrap()
    }

    #[test]
    fn rpm_window_is_the_clock_minute_and_headers_count_down() {
        let limiter = Arc::new(Limiter::default());
        let c = client(2, 10, 100);
        let now = at("2026-03-30T00:19:15Z");
        let first = limiter.admit(&c, Decimal::ZERO, now, false).unwrap();
        assert_eq!(first.headers().remaining, 1);
        let mut h = HeaderMap::new();
        first.headers().apply(&mut h);
        assert_eq!(h["x-ratelimit-reset-requests"], "2026-03-30T00:20:00Z");
        assert_eq!(h["x-ratelimit-tier"], "pro");
        assert_eq!(h["x-concurrent-remaining"], "9");
        let _second = limiter.admit(&c, Decimal::ZERO, now, false).unwrap();
        let refused = limiter.admit(&c, Decimal::ZERO, now, false).unwrap_err();
        assert_eq!(refused.error.kind, "rate_limit_error");
        assert_eq!(refused.error.retry_after, Some(45));
        assert_eq!(refused.headers.remaining, 0);
        // The next minute is a new window, even one second later.
        let next = limiter.admit(&c, Decimal::ZERO, at("2026-03-30T00:20:00Z"), false);
        assert_eq!(kind(next), "admitted");
    }

    #[test]
    fn a_refusal_takes_nothing() {
        let limiter = Arc::new(Limiter::default());
        let c = client(3, 1, 100);
        let now = at("2026-03-30T00:00:01Z");
        let running = limiter.admit(&c, Decimal::ZERO, now, false).unwrap();
        for _ in 0..5 {
            let refused = limiter.admit(&c, Decimal::ZERO, now, false).unwrap_err();
            assert_eq!(refused.error.retry_after, Some(1));
            assert_eq!(refused.headers.concurrent_remaining, 0);
        }
        running.settle(Decimal::ZERO);
        // Five refusals for concurrency used none of the two requests left this minute.
        assert_eq!(
            kind(limiter.admit(&c, Decimal::ZERO, now, false)),
            "admitted"
        );
        assert_eq!(
            kind(limiter.admit(&c, Decimal::ZERO, now, false)),
            "admitted"
        );
        assert_eq!(
            kind(limiter.admit(&c, Decimal::ZERO, now, false)),
            "rate_limit_error"
        );
    }

    #[test]
    fn a_slot_being_committed_asks_for_a_brief_wait() {
        let limiter = Arc::new(Limiter::default());
        let c = client(10, 1, 100);
        let now = at("2026-03-30T00:00:01Z");
        let mut running = limiter.admit(&c, Decimal::ZERO, now, true).unwrap();
        // Still running: a plain refusal, waiting or not.
        assert!(
            !limiter
                .admit(&c, Decimal::ZERO, now, true)
                .unwrap_err()
                .is_brief()
        );
        running.ended();
        let waiting = limiter.admit(&c, Decimal::ZERO, now, true).unwrap_err();
        assert!(waiting.is_brief());
        assert_eq!(
            waiting.headers.remaining, 9,
            "a brief refusal takes nothing"
        );
        let last_try = limiter.admit(&c, Decimal::ZERO, now, false).unwrap_err();
        assert!(!last_try.is_brief());
        assert_eq!(last_try.error.kind, "rate_limit_error");
        let settled = limiter.settled();
        running.settle(Decimal::ZERO);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        runtime.block_on(async {
            tokio::time::timeout(std::time::Duration::from_secs(1), settled)
                .await
                .unwrap();
        });
        assert_eq!(
            kind(limiter.admit(&c, Decimal::ZERO, now, true)),
            "admitted"
        );
    }

    #[test]
    fn daily_quota_comes_before_rpm_and_resets_at_utc_midnight() {
        let limiter = Arc::new(Limiter::default());
        let c = client(1, 5, 2);
        let _a = limiter.admit(&c, Decimal::ZERO, at("2026-03-30T23:58:00Z"), false);
        let _b = limiter.admit(&c, Decimal::ZERO, at("2026-03-30T23:59:00Z"), false);
        let refused = limiter
            .admit(&c, Decimal::ZERO, at("2026-03-30T23:59:30Z"), false)
            .unwrap_err();
        assert_eq!(refused.error.kind, "quota_exceeded");
        assert_eq!(refused.error.retry_after, Some(30));
        assert_eq!(
            kind(limiter.admit(&c, Decimal::ZERO, at("2026-03-31T00:00:00Z"), false)),
            "admitted"
        );
    }

    #[test]
    fn holds_stop_simultaneous_overspending_and_settle_to_the_real_cost() {
        let limiter = Arc::new(Limiter::default());
        let mut c = client(100, 100, 100);
        c.credits = Some(dec("1.00"));
        let now = at("2026-03-30T10:00:00Z");
        let a = limiter.admit(&c, dec("0.40"), now, false).unwrap();
        let b = limiter.admit(&c, dec("0.40"), now, false).unwrap();
        let refused = limiter.admit(&c, dec("0.40"), now, false).unwrap_err();
        assert_eq!(refused.error.kind, "insufficient_balance");
        assert_eq!(refused.error.status, StatusCode::PAYMENT_REQUIRED);
        a.settle(dec("0.05"));
        drop(b); // a request whose row was never written frees its hold, charging nothing
        // Spent 0.05: 0.95 left, so 0.90 fits and then 0.10 does not.
        let _c = limiter.admit(&c, dec("0.90"), now, false).unwrap();
        assert_eq!(
            kind(limiter.admit(&c, dec("0.10"), now, false)),
            "insufficient_balance"
        );
    }

    #[test]
    fn budget_counts_this_month_only_and_comes_after_balance() {
        let mut accounts = HashMap::new();
        accounts.insert(
            "k".to_owned(),
            Account {
                spent_usd: dec("10"),
                month: "2026-03".into(),
                month_spent_usd: dec("5"),
            },
        );
        let now = at("2026-03-30T10:00:00Z");
        let limiter = Arc::new(Limiter::new(
            accounts,
            &HashMap::new(),
            &HashMap::new(),
            now,
        ));
        let mut c = client(100, 100, 100);
        c.budget = Some(dec("5"));
        assert_eq!(
            kind(limiter.admit(&c, dec("0.01"), now, false)),
            "budget_exceeded"
        );
        c.credits = Some(dec("10"));
        assert_eq!(
            kind(limiter.admit(&c, dec("0.01"), now, false)),
            "insufficient_balance"
        );
        c.credits = None;
        // April: the budget renews; the all-time spend stays.
        let april = at("2026-04-01T00:00:00Z");
        let admitted = limiter.admit(&c, dec("4"), april, false).unwrap();
        admitted.settle(dec("4.5"));
        assert_eq!(
            kind(limiter.admit(&c, dec("0.6"), april, false)),
            "budget_exceeded"
        );
        assert_eq!(
            kind(limiter.admit(&c, dec("0.5"), april, false)),
            "admitted"
        );
    }

    #[test]
    fn seeded_counts_survive_a_restart() {
        let now = at("2026-03-30T10:00:30Z");
        let today = HashMap::from([("k".to_owned(), 2)]);
        let minute = HashMap::from([("k".to_owned(), 1)]);
        let limiter = Arc::new(Limiter::new(HashMap::new(), &today, &minute, now));
        let c = client(2, 5, 3);
        let a = limiter.admit(&c, Decimal::ZERO, now, false).unwrap();
        assert_eq!(a.headers().remaining, 0);
        assert_eq!(
            kind(limiter.admit(&c, Decimal::ZERO, at("2026-03-30T10:01:00Z"), false)),
            "quota_exceeded"
        );
    }

    #[test]
    fn exactly_rpm_admitted_under_contention() {
        let limiter = Arc::new(Limiter::default());
        let c = Arc::new(client(60, 1000, 10_000));
        let now = Timestamp::now();
        let admitted: usize = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    let limiter = Arc::clone(&limiter);
                    let c = Arc::clone(&c);
                    s.spawn(move || {
                        (0..25)
                            .filter(|_| limiter.admit(&c, Decimal::ZERO, now, false).is_ok())
                            .count()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(admitted, 60);
    }
}
