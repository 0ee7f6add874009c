//! OpenTelemetry traces: one span per admitted request, sent to an OTLP/HTTP collector
//! (`[telemetry] otlp_endpoint`, else `OTEL_EXPORTER_OTLP_ENDPOINT`) as OTLP JSON.
//!
//! Off unless an endpoint is set, and then nothing on the request path: the ledger thread
//! hands each finished row (which has the usage, the cost and the timing) to a bounded queue
//! with `try_send` (a full queue drops the span and counts it); one task batches the queue,
//! up to `BATCH` spans or `FLUSH_EVERY`, into one POST. Attributes follow the GenAI semantic
//! conventions (`gen_ai.*`) plus `izzi.*`; never a prompt, an answer or a key.

use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{Context as _, Result};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};

use crate::store::Row;

/// Spans waiting for the exporter at most; beyond it new ones are dropped.
const QUEUE: usize = 8192;
/// Spans per POST at most.
const BATCH: usize = 512;
/// How long a span waits for its batch to fill.
const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// One POST's deadline.
const POST_TIMEOUT: Duration = Duration::from_secs(10);

/// How long shutdown waits for the last spans to be sent.
const FLUSH_WAIT: Duration = Duration::from_secs(5);

/// The exporter's queue, set once when an endpoint is configured; unset, every call is a no-op.
static SPANS: OnceLock<mpsc::Sender<Message>> = OnceLock::new();

enum Message {
    Span(Value),
    /// Send what is queued now, then answer (shutdown, after the ledger's last rows).
    Flush(oneshot::Sender<()>),
}

/// Where spans go: `base` is the collector's OTLP/HTTP base URL (`http://HOST:4318`), to which
/// `/v1/traces` is added, as the OpenTelemetry SDKs do with `OTEL_EXPORTER_OTLP_ENDPOINT`.
pub(crate) fn start(base: &str) -> Result<()> {
    let url = reqwest::Url::parse(&format!("{}/v1/traces", base.trim_end_matches('/')))
        .with_context(|| format!("the OTLP endpoint `{base}` is not a URL"))?;
    let client = reqwest::Client::builder()
        .timeout(POST_TIMEOUT)
        .build()
        .context("cannot make the OTLP client")?;
    let (tx, rx) = mpsc::channel(QUEUE);
    if SPANS.set(tx).is_ok() {
        tokio::spawn(export(client, url, rx));
    }
    Ok(())
}

/// Queues `row`'s span; called by the ledger thread once the row is priced.
pub(crate) fn finished(row: &Row) {
    let Some(spans) = SPANS.get() else {
        return;
    };
    if spans.try_send(Message::Span(span(row))).is_err() {
        metrics::counter!("izzi_otlp_spans_dropped_total").increment(1);
    }
}

/// Sends the spans still queued; called once the server has stopped and the ledger is flushed.
pub(crate) async fn flush() {
    let Some(spans) = SPANS.get() else {
        return;
    };
    let (ack, done) = oneshot::channel();
    if spans.send(Message::Flush(ack)).await.is_ok()
        && tokio::time::timeout(FLUSH_WAIT, done).await.is_err()
    {
        tracing::warn!(
            "the last spans were not sent within {} seconds",
            FLUSH_WAIT.as_secs()
        );
    }
}

async fn export(client: reqwest::Client, url: reqwest::Url, mut rx: mpsc::Receiver<Message>) {
    let mut failing = false;
    let mut batch = Vec::new();
    while let Some(first) = rx.recv().await {
        let mut flushed = None;
        match first {
            Message::Span(span) => batch.push(span),
            Message::Flush(ack) => flushed = Some(ack),
        }
        let deadline = tokio::time::Instant::now() + FLUSH_EVERY;
        while flushed.is_none() && batch.len() < BATCH {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(Message::Span(span))) => batch.push(span),
                Ok(Some(Message::Flush(ack))) => flushed = Some(ack),
                Ok(None) | Err(_) => break,
            }
        }
        if !batch.is_empty() {
            failing = post(&client, &url, std::mem::take(&mut batch), failing).await;
        }
        if let Some(ack) = flushed {
            let _ = ack.send(());
        }
    }
}

/// POSTs one batch; gives whether the endpoint is failing, logging when that changes.
async fn post(
    client: &reqwest::Client,
    url: &reqwest::Url,
    batch: Vec<Value>,
    failing: bool,
) -> bool {
    let count = batch.len();
    let sent = client
        .post(url.clone())
        .json(&envelope(batch))
        .send()
        .await
        .and_then(reqwest::Response::error_for_status);
    match sent {
        Ok(_) => {
            if failing {
                tracing::warn!("the OTLP endpoint takes spans again");
            }
            false
        }
        Err(err) => {
            metrics::counter!("izzi_otlp_spans_dropped_total").increment(count as u64);
            if !failing {
                tracing::error!(error = %err, "cannot send spans to the OTLP endpoint; they are dropped until it answers");
            }
            true
        }
    }
}

/// The OTLP `ExportTraceServiceRequest` around `spans`.
fn envelope(spans: Vec<Value>) -> Value {
    let version = env!("CARGO_PKG_VERSION");
    json!({"resourceSpans": [{
        "resource": {"attributes": [
            attribute("service.name", json!({"stringValue": "izzi"})),
            attribute("service.version", json!({"stringValue": version})),
        ]},
        "scopeSpans": [{"scope": {"name": "izzi", "version": version}, "spans": spans}],
    }]})
}

fn attribute(key: &str, value: Value) -> Value {
    json!({"key": key, "value": value})
}

/// One request's span (kind SERVER): GenAI attributes, the route, the limits' decision, cost.
fn span(row: &Row) -> Value {
    let start = row.started_at.as_nanosecond();
    let end = start + i128::from(row.latency_ms) * 1_000_000;
    let text = |v: &str| json!({"stringValue": v});
    // OTLP JSON carries 64-bit integers as strings.
    let int = |v: u64| json!({"intValue": v.to_string()});
    let mut attributes = vec![
        attribute("gen_ai.operation.name", text("chat")),
        attribute("gen_ai.provider.name", text(&row.provider)),
        attribute("gen_ai.request.model", text(&row.model)),
        attribute("gen_ai.response.model", text(&row.model)),
        attribute("gen_ai.usage.input_tokens", int(row.usage.total_input())),
        attribute("gen_ai.usage.output_tokens", int(row.usage.output_tokens)),
        attribute("http.response.status_code", int(u64::from(row.status))),
        attribute("izzi.request_id", text(&row.request_id)),
        attribute("izzi.key_name", text(&row.key_name)),
        attribute("izzi.route.provider", text(&row.provider)),
        attribute("izzi.limits.outcome", text("admitted")),
        attribute("izzi.outcome", text(row.outcome.as_str())),
        attribute("izzi.stream", json!({"boolValue": row.stream})),
        attribute("izzi.usage_source", text(row.usage_source.as_str())),
        attribute(
            "izzi.cost_usd",
            json!({"doubleValue": decimal_f64(row.cost_usd)}),
        ),
    ];
    if let Some(ttft) = row.ttft_ms {
        attributes.push(attribute("izzi.ttft_ms", int(ttft)));
    }
    // STATUS_CODE_ERROR for what the server got wrong; a client's 4xx leaves the span unset.
    let status = if row.status >= 500 { 2 } else { 0 };
    json!({
        "traceId": format!("{:032x}", rand::random::<u128>()),
        "spanId": format!("{:016x}", rand::random::<u64>()),
        "name": format!("chat {}", row.model),
        "kind": 2,
        "startTimeUnixNano": start.to_string(),
        "endTimeUnixNano": end.to_string(),
        "attributes": attributes,
        "status": {"code": status},
    })
}

fn decimal_f64(amount: rust_decimal::Decimal) -> f64 {
    use rust_decimal::prelude::ToPrimitive as _;
    amount.to_f64().unwrap_or(0.0)
}
