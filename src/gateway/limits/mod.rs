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

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use jiff::Timestamp;
use rust_decimal::Decimal;

use super::errors::{ApiError, ErrorKind};
use super::identity::Client;
use super::ledger::SeedSource;
use super::metrics::Reason;
use crate::config::OnUnavailable;

mod admission;
mod headers;
mod limiter;
mod refusal;
mod shared;

pub(crate) use admission::Admission;
pub(crate) use headers::RateHeaders;
pub(crate) use limiter::{Gauge, Limiter};
pub(crate) use refusal::{Decision, Refusal};

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
        seeds: Arc<dyn SeedSource>,
        postgres: Option<Arc<AtomicBool>>,
    ) -> anyhow::Result<Self> {
        let local = Arc::new(local);
        let shared = match &state.redis_url {
            Some(url) => Some(shared::Shared::start(
                (url, state.redis_ca_file.as_deref()),
                Duration::from_secs(state.lease_s),
                state.on_unavailable,
                Arc::clone(&local),
                seeds,
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
                Decision::Admitted(admission) => return Ok(admission),
                Decision::Refused(refusal) => return Err(refusal),
                Decision::RetrySoon => {
                    let _ = tokio::time::timeout_at(deadline.into(), settled).await;
                }
            }
        }
    }

    async fn try_admit(&self, client: &Client, hold: Decimal, may_wait: bool) -> Decision {
        let closed = self.on_unavailable == OnUnavailable::Closed;
        if closed
            && let Some(postgres) = &self.postgres
            && !postgres.load(Ordering::Relaxed)
        {
            return Decision::Refused(self.unavailable(client, "PostgreSQL"));
        }
        if let Some(shared) = &self.shared {
            match shared.admit(client, hold, may_wait).await {
                Ok(decided) => return decided,
                Err(shared::Unavailable) if closed => {
                    return Decision::Refused(self.unavailable(client, "Redis"));
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
                ErrorKind::Server,
                format!(
                    "The gateway cannot reach its shared state ({store}), so it cannot check this key's limits. Try again in {UNAVAILABLE_RETRY_S} seconds."
                ),
            )
            .retry_after(Some(UNAVAILABLE_RETRY_S)),
            headers: self.local.peek(client, Timestamp::now()),
            reason: Reason::StateUnavailable,
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

    /// What `client` uses of its limits, as this process counts it.
    pub(crate) fn gauge(&self, client: &Client) -> Gauge {
        self.local.gauge(client, Timestamp::now())
    }
}

/// `Retry-After` of the 503 when the shared state is unavailable.
const UNAVAILABLE_RETRY_S: u64 = 2;
