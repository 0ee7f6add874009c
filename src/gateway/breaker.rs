//! Circuit breakers, one per provider. `[breaker].failures` failed attempts in a row (connection
//! errors, timeouts, 5xx, a 429 longer than izzi waits), the last ones within `window_s`, open
//! the circuit: the provider is skipped for `cooldown_s`, so fallbacks are used at once and no
//! retry is spent on it (a request with no other model left still gets one try, without
//! retries: a provider that is the only way to answer is not refused for it). Then one request
//! probes it; its outcome closes the circuit or opens it again. One log line when a circuit opens, one when it closes; `/health` and `/metrics` show
//! the state.
//!
//! The lock is held for a map lookup, never across an await.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use serde::Serialize;

use super::NamedMap;
use super::errors::{ApiError, ErrorKind};
use super::upstream::Failure;
use crate::config::Breaker;
use crate::store::Outcome;

/// A circuit's state, as `/health` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum State {
    /// Requests go through.
    Closed,
    /// The provider is skipped until the cool-down ends.
    Open,
    /// One request is probing the provider; others skip it.
    Probing,
}

#[derive(Debug)]
struct Circuit {
    state: State,
    /// When an open circuit lets a probe through.
    until: Instant,
    /// Failures in a row within the window, oldest first.
    failures: VecDeque<Instant>,
}

/// Every provider's circuit, kept across config reloads.
#[derive(Debug, Default)]
pub(crate) struct Breakers {
    circuits: Mutex<NamedMap<Circuit>>,
}

/// Leave to send one attempt to a provider; [`Ticket::settle`] records how it went. A probe
/// dropped unsettled (its client left) lets the next request probe instead.
pub(crate) struct Ticket<'a> {
    breakers: &'a Breakers,
    provider: &'a str,
    kind: Kind,
}

/// Why an attempt may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// The circuit is closed.
    Closed,
    /// The one attempt that decides an open circuit.
    Probe,
    /// The circuit is open but the request has nowhere else to go: one try, no retries; an
    /// answer closes the circuit, a failure leaves it as it is.
    LastResort,
}

/// A provider's circuit, for `/health`.
#[derive(Debug, Serialize)]
pub(crate) struct Status {
    pub(crate) state: State,
    /// Failures in a row within the window.
    pub(crate) failures: usize,
    /// Seconds until an open circuit lets a probe through.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) probe_in_s: Option<u64>,
}

impl Breakers {
    fn lock(&self) -> std::sync::MutexGuard<'_, NamedMap<Circuit>> {
        self.circuits
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether `provider` may get an attempt now (`last`: the request has no other model left
    /// to try); `Err` is the failure a skipped provider counts as (a 503 saying when it is
    /// tried again).
    pub(crate) fn pass<'a>(
        &'a self,
        provider: &'a str,
        config: &Breaker,
        last: bool,
    ) -> Result<Ticket<'a>, Failure> {
        let mut kind = Kind::Closed;
        if config.failures > 0 {
            let now = Instant::now();
            let mut circuits = self.lock();
            if let Some(circuit) = circuits.get_mut(provider) {
                match circuit.state {
                    State::Closed => {}
                    State::Open if now >= circuit.until => {
                        circuit.state = State::Probing;
                        kind = Kind::Probe;
                    }
                    State::Open | State::Probing if last => kind = Kind::LastResort,
                    State::Open | State::Probing => {
                        let wait = circuit.until.saturating_duration_since(now);
                        drop(circuits);
                        return Err(skipped(provider, wait));
                    }
                }
            }
        }
        Ok(Ticket {
            breakers: self,
            provider,
            kind,
        })
    }

    /// Whether `provider`'s circuit is closed.
    pub(crate) fn healthy(&self, provider: &str) -> bool {
        self.lock()
            .get(provider)
            .is_none_or(|c| c.state == State::Closed)
    }

    /// The circuit of each of `providers`.
    pub(crate) fn statuses<'p>(
        &self,
        providers: impl Iterator<Item = &'p str>,
    ) -> Vec<(&'p str, Status)> {
        let now = Instant::now();
        let circuits = self.lock();
        providers
            .map(|name| {
                let status = circuits.get(name).map_or(
                    Status {
                        state: State::Closed,
                        failures: 0,
                        probe_in_s: None,
                    },
                    |c| Status {
                        state: c.state,
                        failures: c.failures.len(),
                        probe_in_s: (c.state == State::Open)
                            .then(|| c.until.saturating_duration_since(now).as_secs()),
                    },
                );
                (name, status)
            })
            .collect()
    }

    fn record(&self, provider: &str, kind: Kind, failed: bool, config: &Breaker) {
        if config.failures == 0 || (failed && kind == Kind::LastResort) {
            return;
        }
        let probe = kind == Kind::Probe;
        let now = Instant::now();
        let mut circuits = self.lock();
        if !failed {
            if let Some(circuit) = circuits.remove(provider)
                && circuit.state != State::Closed
            {
                drop(circuits);
                tracing::info!(provider, "circuit closed: the provider answered again");
                super::metrics::circuit(provider, false);
            }
            return;
        }
        let circuit = circuits
            .entry(provider.to_owned())
            .or_insert_with(|| Circuit {
                state: State::Closed,
                until: now,
                failures: VecDeque::new(),
            });
        let window = Duration::from_secs(config.window_s);
        while circuit
            .failures
            .front()
            .is_some_and(|&at| now.duration_since(at) > window)
        {
            circuit.failures.pop_front();
        }
        circuit.failures.push_back(now);
        let threshold = usize::try_from(config.failures).unwrap_or(usize::MAX);
        while circuit.failures.len() > threshold {
            circuit.failures.pop_front();
        }
        let opens =
            probe || (circuit.state == State::Closed && circuit.failures.len() >= threshold);
        if opens {
            circuit.state = State::Open;
            circuit.until = now + Duration::from_secs(config.cooldown_s);
            let failures = circuit.failures.len();
            drop(circuits);
            tracing::warn!(
                provider,
                failures,
                cooldown_s = config.cooldown_s,
                probe,
                "circuit opened: the provider is skipped until the cool-down ends"
            );
            super::metrics::circuit(provider, true);
        }
    }
}

impl Ticket<'_> {
    /// Whether the provider's circuit is open and this is the request's last resort: no retry.
    pub(crate) fn forced(&self) -> bool {
        self.kind == Kind::LastResort
    }

    /// Records the attempt: `failure` is its failure, if it failed; a 429 whose `Retry-After`
    /// is at most `waited` (what izzi waits out) is pacing, not the provider failing.
    pub(crate) fn settle(mut self, failure: Option<&Failure>, waited: Duration, config: &Breaker) {
        let failed = failure.is_some_and(|f| counts(f, waited));
        self.breakers
            .record(self.provider, self.kind, failed, config);
        self.kind = Kind::Closed;
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        if self.kind == Kind::Probe {
            // The probe's client left before it was decided: the next request probes.
            let mut circuits = self.breakers.lock();
            if let Some(circuit) = circuits.get_mut(self.provider) {
                circuit.state = State::Open;
                circuit.until = Instant::now();
            }
        }
    }
}

/// Whether a failure counts against the provider: what a retry or fallback would follow
/// (connection errors, timeouts, 5xx, 429), except a 429 whose `Retry-After` izzi waits out.
fn counts(failure: &Failure, waited: Duration) -> bool {
    failure.retryable
        && !(failure.error.status == StatusCode::TOO_MANY_REQUESTS
            && failure.retry_after.is_some_and(|s| s <= waited.as_secs()))
}

/// The failure a skipped provider counts as: retryable, so the next fallback is tried at once.
fn skipped(provider: &str, wait: Duration) -> Failure {
    let seconds = wait.as_secs().max(1);
    Failure {
        error: ApiError::with_status(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::Upstream,
            format!(
                "The upstream provider `{provider}` failed repeatedly and is skipped for {seconds} more seconds."
            ),
        )
        .retry_after(Some(seconds)),
        retryable: true,
        retry_after: Some(seconds),
        outcome: Outcome::ConnectError,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WAIT: Duration = Duration::from_secs(5);

    fn failure(status: StatusCode, retry_after: Option<u64>) -> Failure {
        Failure {
            error: ApiError::with_status(status, ErrorKind::Upstream, "x"),
            retryable: status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error(),
            retry_after,
            outcome: Outcome::Upstream5xx,
        }
    }

    #[test]
    fn failures_in_a_row_open_the_circuit_and_a_probe_decides() {
        let config = Breaker {
            failures: 3,
            window_s: 60,
            cooldown_s: 1,
        };
        let b = Breakers::default();
        let fail = failure(StatusCode::BAD_GATEWAY, None);
        for _ in 0..2 {
            b.pass("p", &config, false)
                .unwrap()
                .settle(Some(&fail), WAIT, &config);
        }
        // A success in between starts the count again.
        b.pass("p", &config, false)
            .unwrap()
            .settle(None, WAIT, &config);
        for _ in 0..2 {
            b.pass("p", &config, false)
                .unwrap()
                .settle(Some(&fail), WAIT, &config);
        }
        assert!(b.healthy("p"));
        // A client error and a short 429 are answers: not the provider failing.
        b.pass("p", &config, false).unwrap().settle(
            Some(&failure(StatusCode::BAD_REQUEST, None)),
            WAIT,
            &config,
        );
        b.pass("p", &config, false).unwrap().settle(
            Some(&failure(StatusCode::TOO_MANY_REQUESTS, Some(2))),
            WAIT,
            &config,
        );
        assert!(b.healthy("p"));
        assert_eq!(b.statuses(["p"].into_iter())[0].1.failures, 0);
        // A 429 longer than izzi waits is.
        for _ in 0..3 {
            let long = failure(StatusCode::TOO_MANY_REQUESTS, Some(60));
            b.pass("p", &config, false)
                .unwrap()
                .settle(Some(&long), WAIT, &config);
        }
        assert!(!b.healthy("p"));
        let skip = b.pass("p", &config, false).err().unwrap();
        assert!(skip.retryable);
        assert_eq!(skip.error.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(b.pass("q", &config, false).is_ok());
        // With nowhere else to go the request still gets one try: a failure changes nothing,
        // an answer would close the circuit.
        let last = b.pass("p", &config, true).unwrap();
        assert!(last.forced());
        last.settle(Some(&fail), WAIT, &config);
        assert_eq!(b.statuses(["p"].into_iter())[0].1.state, State::Open);
        std::thread::sleep(Duration::from_millis(1100));
        // One probe; the others still skip while it runs.
        let probe = b.pass("p", &config, false).unwrap();
        assert!(b.pass("p", &config, false).is_err());
        assert_eq!(b.statuses(["p"].into_iter())[0].1.state, State::Probing);
        // A probe that fails opens the circuit again.
        probe.settle(Some(&fail), WAIT, &config);
        assert_eq!(b.statuses(["p"].into_iter())[0].1.state, State::Open);
        std::thread::sleep(Duration::from_millis(1100));
        // A probe whose client left lets the next request probe.
        drop(b.pass("p", &config, false).unwrap());
        let probe = b.pass("p", &config, false).unwrap();
        probe.settle(None, WAIT, &config);
        assert!(b.healthy("p"));
        assert_eq!(b.statuses(["p"].into_iter())[0].1.failures, 0);
    }

    #[test]
    fn zero_failures_turns_breakers_off() {
        let config = Breaker {
            failures: 0,
            ..Breaker::default()
        };
        let b = Breakers::default();
        for _ in 0..10 {
            b.pass("p", &config, false).unwrap().settle(
                Some(&failure(StatusCode::BAD_GATEWAY, None)),
                WAIT,
                &config,
            );
        }
        assert!(b.healthy("p"));
    }
}
