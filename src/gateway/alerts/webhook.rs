//! `[alerts].webhook_url`: each alert POSTed as JSON by one task, never on the request path.
//! The queue is bounded (an alert beyond it is dropped with a warning, it is still logged); a
//! failed POST (no connection, timeout, a status other than 2xx) is retried with doubling
//! backoff, then given up with a warning.

use std::time::Duration;

use jiff::Timestamp;
use serde::Serialize;
use tokio::sync::mpsc;

use super::Alert;

/// Alerts waiting to be sent at most.
const QUEUE: usize = 256;
/// Tries per alert, and the wait before the first retry (doubled after each).
const TRIES: u32 = 5;
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// How long one POST may take.
const TIMEOUT: Duration = Duration::from_secs(5);

/// What the webhook receives.
#[derive(Debug, Serialize)]
struct Payload {
    #[serde(flatten)]
    alert: Alert,
    /// The UTC month (`YYYY-MM`) the alert belongs to.
    month: String,
    at: String,
    service: &'static str,
}

/// One alert for one URL.
struct Delivery {
    url: String,
    payload: Payload,
}

/// The sending end; the task ends when it is dropped.
#[derive(Debug, Default)]
pub(super) struct Queue(Option<mpsc::Sender<Delivery>>);

impl Queue {
    /// The queue, with its sender task on the current runtime.
    pub(super) fn start() -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(deliver(rx));
        Self(Some(tx))
    }

    /// Queues `alert` for `url`, without waiting.
    pub(super) fn send(&self, url: &str, alert: &Alert, month: &str, at: Timestamp) {
        let Some(tx) = &self.0 else { return };
        let delivery = Delivery {
            url: url.to_owned(),
            payload: Payload {
                alert: alert.clone(),
                month: month.to_owned(),
                at: at.to_string(),
                service: "izzi",
            },
        };
        if tx.try_send(delivery).is_err() {
            tracing::warn!(key = %alert.key, "the alert webhook's queue is full; this alert is only logged");
        }
    }
}

async fn deliver(mut rx: mpsc::Receiver<Delivery>) {
    let client = match reqwest::Client::builder().timeout(TIMEOUT).build() {
        Ok(client) => client,
        Err(err) => {
            tracing::warn!(error = %err, "cannot make the alert webhook's HTTP client; alerts are only logged");
            return;
        }
    };
    while let Some(delivery) = rx.recv().await {
        let mut backoff = FIRST_BACKOFF;
        for attempt in 1..=TRIES {
            let sent = client
                .post(&delivery.url)
                .json(&delivery.payload)
                .send()
                .await
                .map_err(|err| err.without_url().to_string())
                .and_then(|r| {
                    if r.status().is_success() {
                        Ok(())
                    } else {
                        Err(format!("status {}", r.status()))
                    }
                });
            match sent {
                Ok(()) => break,
                Err(error) if attempt == TRIES => {
                    tracing::warn!(key = %delivery.payload.alert.key, %error, "the alert webhook failed {TRIES} times; giving up on this alert");
                }
                Err(error) => {
                    tracing::debug!(%error, attempt, "the alert webhook failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff *= 2;
                }
            }
        }
    }
}
