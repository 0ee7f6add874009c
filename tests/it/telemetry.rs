//! OpenTelemetry export against a local OTLP/HTTP receiver the test starts: one span per
//! request with the GenAI attributes, batched off the request path; no prompt, answer or key
//! in what is sent.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::routing::post;
use serde_json::{Value, json};

use crate::support::{Gateway, KEY, Mock, home_with, izzi_bin, mock_config};

const PROMPT: &str = "otter-prompt-5c1d";

/// Records every body POSTed to `/v1/traces`.
struct Receiver {
    url: String,
    bodies: Arc<Mutex<Vec<Value>>>,
}

impl Receiver {
    async fn start() -> Self {
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&bodies);
        let app = axum::Router::new().route(
            "/v1/traces",
            post(move |body: axum::body::Bytes| {
                let seen = Arc::clone(&seen);
                async move {
                    let value: Value = serde_json::from_slice(&body).expect("OTLP JSON");
                    seen.lock().expect("lock").push(value);
                    "{}"
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, bodies }
    }

    /// Every span received, waiting up to 10 s for at least `n`.
    async fn spans(&self, n: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let spans: Vec<Value> = self
                .bodies
                .lock()
                .expect("lock")
                .iter()
                .flat_map(|b| {
                    b["resourceSpans"][0]["scopeSpans"][0]["spans"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default()
                })
                .collect();
            if spans.len() >= n || Instant::now() > deadline {
                return spans;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn attr<'a>(span: &'a Value, key: &str) -> &'a Value {
    span["attributes"]
        .as_array()
        .and_then(|a| a.iter().find(|kv| kv["key"] == key))
        .map_or(&Value::Null, |kv| &kv["value"])
}

/// The mock's config with traces sent to `receiver`.
fn traced_config(mock: &Mock, receiver: &Receiver) -> String {
    format!(
        "{}\n[telemetry]\notlp_endpoint = \"{}\"\n",
        mock_config(mock, ""),
        receiver.url
    )
}

async fn three_requests(gw: &Gateway) {
    for model in ["sonnet", "gpt-4.1", "sonnet"] {
        let body = json!({"model": model, "max_tokens": 16,
            "messages": [{"role": "user", "content": PROMPT}]});
        let response = gw.post("/v1/messages", KEY, &body).await;
        assert_eq!(response.status(), 200);
        response.text().await.expect("answer");
    }
}

#[tokio::test]
async fn one_span_per_request_with_genai_attributes_and_no_prompt_or_key() {
    let receiver = Receiver::start().await;
    let mock = Mock::start();
    let config = traced_config(&mock, &receiver);
    let gw = Gateway::start(&config);
    three_requests(&gw).await;
    let spans = receiver.spans(3).await;
    assert_eq!(spans.len(), 3, "{spans:#?}");
    // Batched: fewer POSTs than spans is allowed, never more.
    assert!(receiver.bodies.lock().expect("lock").len() <= 3);

    let body = serde_json::to_string(&*receiver.bodies.lock().expect("lock")).expect("json");
    for secret in [PROMPT, KEY, "sk-upstream-anthropic", "sk-upstream-openai"] {
        assert!(!body.contains(secret), "`{secret}` was exported");
    }
    let resource = &receiver.bodies.lock().expect("lock")[0]["resourceSpans"][0]["resource"];
    assert_eq!(resource["attributes"][0]["value"]["stringValue"], "izzi");

    let sonnet = spans
        .iter()
        .find(|s| attr(s, "gen_ai.request.model")["stringValue"] == "claude-sonnet-4-20250514")
        .expect("a sonnet span");
    assert_eq!(sonnet["name"], "chat claude-sonnet-4-20250514");
    assert_eq!(sonnet["kind"], 2);
    assert_eq!(sonnet["traceId"].as_str().map(str::len), Some(32));
    assert_eq!(sonnet["spanId"].as_str().map(str::len), Some(16));
    let start: u128 = sonnet["startTimeUnixNano"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let end: u128 = sonnet["endTimeUnixNano"].as_str().unwrap().parse().unwrap();
    assert!(end >= start && start > 1_700_000_000_000_000_000);
    assert_eq!(attr(sonnet, "gen_ai.operation.name")["stringValue"], "chat");
    assert_eq!(
        attr(sonnet, "gen_ai.provider.name")["stringValue"],
        "anthropic"
    );
    assert_eq!(
        attr(sonnet, "gen_ai.response.model")["stringValue"],
        "claude-sonnet-4-20250514"
    );
    let input: u64 = attr(sonnet, "gen_ai.usage.input_tokens")["intValue"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(input > 0);
    assert!(attr(sonnet, "gen_ai.usage.output_tokens")["intValue"].is_string());
    assert_eq!(attr(sonnet, "http.response.status_code")["intValue"], "200");
    assert_eq!(attr(sonnet, "izzi.key_name")["stringValue"], "test");
    assert_eq!(
        attr(sonnet, "izzi.limits.outcome")["stringValue"],
        "admitted"
    );
    assert_eq!(attr(sonnet, "izzi.outcome")["stringValue"], "completed");
    assert!(
        attr(sonnet, "izzi.cost_usd")["doubleValue"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    // The translated request went to the OpenAI-kind provider.
    let gpt = spans
        .iter()
        .find(|s| attr(s, "gen_ai.request.model")["stringValue"] == "gpt-4.1")
        .expect("a gpt span");
    assert_eq!(attr(gpt, "gen_ai.provider.name")["stringValue"], "openai");
}

#[tokio::test]
async fn the_standard_variable_turns_export_on() {
    let receiver = Receiver::start().await;
    let mock = Mock::start();
    let mut command = std::process::Command::new(izzi_bin());
    command.env("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.url);
    let gw = Gateway::spawn(
        command,
        home_with(&mock_config(&mock, "")),
        &[],
        "izzi=debug,info",
    );
    three_requests(&gw).await;
    assert_eq!(receiver.spans(3).await.len(), 3);
}

/// A span still in its batch window when the gateway is told to stop is sent before it exits.
/// Two workers: `terminate` blocks one while the receiver answers on the other.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_queued_at_shutdown_are_sent_before_exit() {
    let receiver = Receiver::start().await;
    let mock = Mock::start();
    let config = traced_config(&mock, &receiver);
    let mut gw = Gateway::start(&config);
    let body = json!({"model": "sonnet", "max_tokens": 16,
        "messages": [{"role": "user", "content": "hi"}]});
    let response = gw.post("/v1/messages", KEY, &body).await;
    assert_eq!(response.status(), 200);
    response.text().await.expect("answer");
    assert!(gw.terminate().success());
    // The process has exited: whatever arrived, arrived before it did.
    let received = receiver.bodies.lock().expect("lock").len();
    assert_eq!(received, 1, "{}", gw.log());
}
