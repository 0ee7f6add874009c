//! Budget and balance alerts. A key's monthly budget crossing 80, 90 and 100 %, and its
//! remaining credits falling under `[alerts].balance_floor_usd`, each give one log line per
//! threshold and month and, with `[alerts].webhook_url`, one JSON POST (`webhook`: queued, sent
//! off the request path, retried). While an alert stands it is listed by the dashboard's
//! summary ([`standing`]) and sent on the key's answers as `x-izzi-budget-alert: 80|90|100` and
//! `x-izzi-balance-alert: REMAINING_USD` ([`annotate`]).
//!
//! Alerts are worked out from settled spend (`Limits::gauge`), never from a request's body.
//! A sweep every second ([`sweep`]) fires them (a request only reads what stands, for its
//! headers); at start the alerts already standing are only noted ([`Alerts::note_standing`]),
//! so a restart does not repeat this month's alerts.

mod webhook;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use jiff::Timestamp;
use rust_decimal::Decimal;
use serde::Serialize;

use super::AppState;
use super::identity::Client;
use super::limits::Gauge;
use crate::store;
use crate::wire::wire_enum;

/// How often the sweep looks at every key with money limits.
const SWEEP: Duration = Duration::from_secs(1);

/// The budget thresholds, in percent, lowest first.
const THRESHOLDS: [u8; 3] = [80, 90, 100];

wire_enum! {
    /// What an alert is about.
    Kind {
        Budget = "budget",
        Balance = "balance",
    }
}

/// One standing alert, as the dashboard's summary lists it and the webhook receives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Alert {
    pub(crate) key: String,
    pub(crate) kind: Kind,
    /// The budget threshold crossed, in percent; `None` for a balance alert.
    pub(crate) threshold: Option<u8>,
    pub(crate) message: String,
}

/// The alerts already fired for each key: one log line and webhook per threshold and month.
#[derive(Debug, Default)]
pub(crate) struct Alerts {
    fired: Mutex<HashMap<String, Fired>>,
    webhook: webhook::Queue,
}

/// What was fired for one key in `month`.
#[derive(Debug, Default)]
struct Fired {
    month: String,
    /// The highest budget threshold fired.
    budget: Option<u8>,
    /// Whether the balance alert fired; it fires again after the balance rose above the floor.
    balance: bool,
}

impl Alerts {
    /// No alert fired yet; the webhook's sender task runs on the current runtime.
    pub(crate) fn new() -> Self {
        Self {
            fired: Mutex::default(),
            webhook: webhook::Queue::start(),
        }
    }

    /// The alerts standing for `client` with the spend of `gauge` at `now`. Those not yet fired this
    /// month (every budget threshold crossed since the last look, each once) are logged and
    /// sent to the webhook, unless `quiet`: then only noted.
    fn check(
        &self,
        client: &Client,
        gauge: &Gauge,
        config: &crate::config::Alerts,
        now: Timestamp,
        quiet: bool,
    ) -> Vec<Alert> {
        let month = store::month(now);
        let standing = standing_for(client, gauge, config.balance_floor_usd, &month);
        let mut fresh = Vec::new();
        {
            let mut fired = self.fired.lock().unwrap_or_else(PoisonError::into_inner);
            let fired = fired.entry(client.name.clone()).or_default();
            if fired.month != month {
                *fired = Fired {
                    month: month.clone(),
                    ..Fired::default()
                };
            }
            let mut balance_low = false;
            for alert in &standing {
                match alert.kind {
                    Kind::Budget => {
                        let crossed = THRESHOLDS
                            .iter()
                            .filter(|&&t| Some(t) > fired.budget && Some(t) <= alert.threshold);
                        fresh.extend(
                            crossed.filter_map(|&t| budget_alert(client, gauge, &month, t)),
                        );
                        fired.budget = alert.threshold;
                    }
                    Kind::Balance => {
                        balance_low = true;
                        if !fired.balance {
                            fired.balance = true;
                            fresh.push(alert.clone());
                        }
                    }
                }
            }
            if !balance_low {
                fired.balance = false;
            }
        }
        if !quiet {
            for alert in fresh {
                tracing::warn!(
                    key = %alert.key,
                    kind = alert.kind.as_str(),
                    threshold = alert.threshold,
                    "{}",
                    alert.message
                );
                if let Some(url) = &config.webhook_url {
                    self.webhook.send(url, &alert, &month, now);
                }
            }
        }
        standing
    }

    /// Notes the alerts already standing, firing none: at start, so a restart does not repeat
    /// this month's alerts.
    pub(crate) fn note_standing(&self, state: &AppState) {
        self.look(state, true);
    }

    /// One look at every key with money limits.
    fn look(&self, state: &AppState, quiet: bool) {
        let now = Timestamp::now();
        for client in state.keys.clients() {
            if client.has_money_limits() {
                let gauge = state.limits.gauge(&client);
                self.check(&client, &gauge, &state.config.alerts, now, quiet);
            }
        }
    }
}

/// Looks at every key with money limits each second, on the state `current` gives (the config
/// reloads), until aborted: a key whose last request crossed a threshold is not left waiting
/// for its next one.
pub(crate) async fn sweep(current: impl Fn() -> Arc<AppState>) {
    let mut tick = tokio::time::interval(SWEEP);
    loop {
        tick.tick().await;
        let state = current();
        state.alerts.look(&state, false);
    }
}

/// Every alert standing now, for the dashboard's summary: keys with money limits, by name.
pub(crate) fn standing(state: &AppState) -> Vec<Alert> {
    let now = Timestamp::now();
    let mut clients = state.keys.clients();
    clients.retain(|c| c.has_money_limits());
    clients
        .iter()
        .flat_map(|client| {
            let gauge = state.limits.gauge(client);
            state
                .alerts
                .check(client, &gauge, &state.config.alerts, now, false)
        })
        .collect()
}

/// Writes the alert headers on an answer to `client`, when an alert stands for it. Only reads
/// the spend: firing (the log line, the webhook, the note of what fired) is the sweep's, so the
/// request path takes no lock here and never logs or posts.
pub(crate) fn annotate(state: &AppState, client: &Client, headers: &mut HeaderMap) {
    const BUDGET: HeaderName = HeaderName::from_static("x-izzi-budget-alert");
    const BALANCE: HeaderName = HeaderName::from_static("x-izzi-balance-alert");
    if !client.has_money_limits() {
        return;
    }
    let gauge = state.limits.gauge(client);
    let month = store::month(Timestamp::now());
    let standing = standing_for(
        client,
        &gauge,
        state.config.alerts.balance_floor_usd,
        &month,
    );
    if let Some(threshold) = standing.iter().filter_map(|a| a.threshold).max() {
        headers.insert(BUDGET, HeaderValue::from(u16::from(threshold)));
    }
    if standing.iter().any(|a| a.kind == Kind::Balance)
        && let Some(credits) = client.credits
        && let Ok(left) =
            HeaderValue::try_from((credits - gauge.spent).round_dp(6).normalize().to_string())
    {
        headers.insert(BALANCE, left);
    }
}

/// The alerts `client`'s spend (`gauge`, in `month`) makes stand: the highest budget threshold
/// reached, and the balance under `floor`.
fn standing_for(client: &Client, gauge: &Gauge, floor: Option<Decimal>, month: &str) -> Vec<Alert> {
    let mut alerts = Vec::new();
    let reached = THRESHOLDS
        .iter()
        .rev()
        .find_map(|&t| budget_alert(client, gauge, month, t));
    alerts.extend(reached);
    if let (Some(credits), Some(floor)) = (client.credits, floor) {
        let left = credits - gauge.spent;
        if left < floor {
            alerts.push(Alert {
                key: client.name.clone(),
                kind: Kind::Balance,
                threshold: None,
                message: format!(
                    "Key `{}` has {} of credit left, under the {} floor.",
                    client.name,
                    crate::output::usd(left),
                    crate::output::usd(floor),
                ),
            });
        }
    }
    alerts
}

/// The alert for `client`'s budget at `threshold` percent, if its spend in `month` (`gauge`)
/// reached it.
fn budget_alert(client: &Client, gauge: &Gauge, month: &str, threshold: u8) -> Option<Alert> {
    let budget = client.budget.filter(|b| *b > Decimal::ZERO)?;
    let spent = gauge.month_spent;
    if spent * Decimal::ONE_HUNDRED < budget * Decimal::from(threshold) {
        return None;
    }
    let share = (spent * Decimal::ONE_HUNDRED / budget).round_dp(0);
    Some(Alert {
        key: client.name.clone(),
        kind: Kind::Budget,
        threshold: Some(threshold),
        message: format!(
            "Key `{}` has spent {} of its {} monthly budget in {month} ({share} %, past {threshold} %).",
            client.name,
            crate::output::usd(spent),
            crate::output::usd(budget),
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::identity::tests::config_key;

    fn dec(text: &str) -> Decimal {
        text.parse().unwrap()
    }

    fn client(budget: &str, credits: &str) -> Client {
        let mut key = config_key("team", "izzi-team-0000000000");
        key.monthly_budget_usd = Some(dec(budget));
        key.credits_usd = Some(dec(credits));
        Client::from_config(&key)
    }

    fn gauge(spent_month: &str, spent: &str) -> Gauge {
        Gauge {
            minute: 0,
            in_flight: 0,
            today: 0,
            month_spent: dec(spent_month),
            spent: dec(spent),
        }
    }

    fn config(floor: &str) -> crate::config::Alerts {
        crate::config::Alerts {
            balance_floor_usd: Some(dec(floor)),
            webhook_url: None,
        }
    }

    /// What one look stands and fires: (kind, threshold) pairs.
    fn look(alerts: &Alerts, spent_month: &str, spent: &str, at: &str) -> Vec<(Kind, Option<u8>)> {
        let now: Timestamp = at.parse().unwrap();
        let client = client("10", "20");
        let standing = alerts.check(
            &client,
            &gauge(spent_month, spent),
            &config("5"),
            now,
            false,
        );
        standing.iter().map(|a| (a.kind, a.threshold)).collect()
    }

    /// Each threshold stands from the spend that reaches it (80 % exactly included); one look
    /// that jumps past several fires each of them once; a new month starts again.
    #[tokio::test]
    async fn thresholds_stand_and_fire_once_a_month() {
        let alerts = Alerts::new();
        let fired = |alerts: &Alerts| alerts.fired.lock().unwrap()["team"].budget;
        assert_eq!(look(&alerts, "7.99", "7.99", "2026-03-02T00:00:00Z"), []);
        assert_eq!(
            look(&alerts, "8", "8", "2026-03-02T00:00:00Z"),
            [(Kind::Budget, Some(80))]
        );
        assert_eq!(fired(&alerts), Some(80));
        assert_eq!(
            look(&alerts, "10.5", "16", "2026-03-03T00:00:00Z"),
            [(Kind::Budget, Some(100)), (Kind::Balance, None)]
        );
        assert_eq!(fired(&alerts), Some(100));
        // The balance rose above the floor (credits granted): its alert may fire again later.
        look(&alerts, "10.5", "1", "2026-03-03T00:00:00Z");
        assert!(!alerts.fired.lock().unwrap()["team"].balance);
        // April: nothing spent yet, nothing stands, and the thresholds are armed again.
        assert_eq!(
            look(&alerts, "0", "16", "2026-04-01T00:00:00Z")[..],
            [(Kind::Balance, None)]
        );
        assert_eq!(fired(&alerts), None);
    }

    #[test]
    fn the_messages_name_the_key_the_spend_and_the_threshold() {
        let client = client("50", "100");
        let spend = gauge("45.5", "96");
        let standing = standing_for(&client, &spend, Some(dec("5")), "2026-03");
        let messages: Vec<&str> = standing.iter().map(|a| a.message.as_str()).collect();
        assert_eq!(
            messages,
            [
                "Key `team` has spent $45.5 of its $50 monthly budget in 2026-03 (91 %, past 90 %).",
                "Key `team` has $4 of credit left, under the $5 floor.",
            ]
        );
        let json = serde_json::to_value(&standing[0]).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"key": "team", "kind": "budget", "threshold": 90,
                "message": messages[0]})
        );
        // No budget, no floor: nothing.
        let plain = Client::from_config(&config_key("plain", "izzi-plain-000000000"));
        assert_eq!(standing_for(&plain, &spend, None, "2026-03"), []);
    }
}
