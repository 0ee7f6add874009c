//! This process's limits: every key's live state (spend, holds, running requests, the minute's
//! and the day's counts) under one short lock, and the decision for one request in SPEC's order.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use jiff::Timestamp;
use rust_decimal::Decimal;

use super::admission::{Admission, Backend};
use super::headers::RateHeaders;
use super::refusal::{Decision, Refused};
use crate::gateway::NamedMap;
use crate::gateway::identity::Client;
use crate::store::{self, Account, DAY, MINUTE};

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

/// What one key uses of its limits (`GET /izzi/api/limits`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Gauge {
    /// Requests admitted this minute.
    pub(crate) minute: u32,
    /// Requests running.
    pub(crate) in_flight: u32,
    /// Requests admitted today (UTC).
    pub(crate) today: u32,
    /// Settled spend this month and in all.
    pub(crate) month_spent: Decimal,
    pub(crate) spent: Decimal,
}

/// Every key's limits state.
#[derive(Debug, Default)]
pub(crate) struct Limiter {
    keys: Mutex<NamedMap<State>>,
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
        let mut keys = NamedMap::default();
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

    fn lock(&self) -> std::sync::MutexGuard<'_, NamedMap<State>> {
        // The critical sections cannot leave the map half-updated, so a panic elsewhere while
        // holding the lock does not make the state unusable.
        self.keys.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Admits one inference request of `client` holding `hold` (its worst-case cost), or refuses
    /// it with the first limit it breaks, in SPEC's order, taking nothing.
    ///
    /// With `may_wait`, a request refused only because of slots whose requests have ended and
    /// are being written to the ledger gets [`Decision::RetrySoon`] instead: the caller should
    /// wait for [`Limiter::settled`] and ask again, so a client that sends its next request the
    /// moment the last one ends is not refused for a slot that is a commit away from free.
    pub(crate) fn admit(
        self: &Arc<Self>,
        client: &Client,
        hold: Decimal,
        now: Timestamp,
        may_wait: bool,
    ) -> Decision {
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
            if may_wait && state.in_flight - state.ending < client.limits.concurrent {
                return Decision::RetrySoon;
            }
            Some(Refused::Concurrency {
                limit: client.limits.concurrent,
            })
        } else {
            None
        };
        if let Some(refused) = refused {
            return Decision::Refused(refused.refusal(state.headers(client)));
        }
        state.holds += hold;
        state.in_flight += 1;
        state.minute_count += 1;
        state.day_count += 1;
        let headers = state.headers(client);
        drop(keys);
        Decision::Admitted(Admission::new(
            Backend::Local(Arc::clone(self)),
            client,
            hold,
            now,
            headers,
        ))
    }

    /// The headers for a request that counts toward nothing (models, count_tokens) or that
    /// failed before admission.
    pub(crate) fn peek(&self, client: &Client, now: Timestamp) -> RateHeaders {
        let mut keys = self.lock();
        let state = state_of(&mut keys, &client.name);
        state.roll(now.as_second());
        state.headers(client)
    }

    /// What `client` uses of its limits now, in this process.
    pub(crate) fn gauge(&self, client: &Client, now: Timestamp) -> Gauge {
        let mut keys = self.lock();
        let state = state_of(&mut keys, &client.name);
        state.roll(now.as_second());
        Gauge {
            minute: state.minute_count,
            in_flight: state.in_flight,
            today: state.day_count,
            month_spent: state.account.spent_in(&store::month(now)),
            spent: state.account.spent_usd,
        }
    }

    /// Resolves once an admission is settled after this call.
    pub(crate) fn settled(&self) -> tokio::sync::futures::Notified<'_> {
        self.settled.notified()
    }

    /// Wakes the requests waiting for a slot (a shared admission was settled).
    pub(super) fn notify_settled(&self) {
        self.settled.notify_waiters();
    }

    pub(super) fn ended(&self, key: &str) {
        state_of(&mut self.lock(), key).ending += 1;
    }

    pub(super) fn settle(&self, admission: &Admission, cost: Option<Decimal>) {
        {
            let mut keys = self.lock();
            let state = state_of(&mut keys, admission.key());
            state.holds -= admission.hold();
            state.in_flight = state.in_flight.saturating_sub(1);
            if admission.has_ended() {
                state.ending = state.ending.saturating_sub(1);
            }
            if let Some(cost) = cost {
                state.account.add(&store::month(admission.started()), cost);
            }
        }
        self.settled.notify_waiters();
    }
}

/// `key`'s state, created when missing (its name is copied only then).
fn state_of<'a>(keys: &'a mut NamedMap<State>, key: &str) -> &'a mut State {
    if !keys.contains_key(key) {
        keys.insert(key.to_owned(), State::default());
    }
    keys.get_mut(key).expect("inserted above")
}

#[cfg(test)]
mod tests {
    use axum::http::{HeaderMap, StatusCode};

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

    fn kind(decision: Decision) -> &'static str {
        match decision {
            Decision::Admitted(_) => "admitted",
            Decision::Refused(refusal) => refusal.error.kind.as_str(),
            Decision::RetrySoon => "retry soon",
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
        assert_eq!(refused.error.kind.as_str(), "rate_limit_error");
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
        assert_eq!(
            kind(limiter.admit(&c, Decimal::ZERO, now, true)),
            "rate_limit_error"
        );
        running.ended();
        assert_eq!(
            kind(limiter.admit(&c, Decimal::ZERO, now, true)),
            "retry soon"
        );
        assert_eq!(
            limiter.peek(&c, now).remaining,
            9,
            "a request told to retry soon takes nothing"
        );
        let last_try = limiter.admit(&c, Decimal::ZERO, now, false).unwrap_err();
        assert_eq!(last_try.error.kind.as_str(), "rate_limit_error");
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
        assert_eq!(refused.error.kind.as_str(), "quota_exceeded");
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
        assert_eq!(refused.error.kind.as_str(), "insufficient_balance");
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
                            .filter(|_| limiter.admit(&c, Decimal::ZERO, now, false).is_admitted())
                            .count()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(admitted, 60);
    }
}
