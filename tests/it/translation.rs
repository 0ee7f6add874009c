//! What crosses the format boundary besides the conversation (docs/translation.md): headers and
//! beta fields per provider kind, server tools, freeform tools, provider-bound reasoning.

use serde_json::{Value, json};

use crate::support::{Gateway, KEY, Mock, http, mock_config};

async fn post(gw: &Gateway, path: &str, headers: &[(&str, &str)], body: &Value) -> Value {
    let mut request = http()
        .post(format!("{}{path}", gw.url))
        .bearer_auth(KEY)
        .json(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("gateway answers");
    let status = response.status();
    let answer: Value = response.json().await.expect("a JSON answer");
    assert_eq!(status, 200, "{answer}");
    answer
}

#[tokio::test]
async fn anthropic_beta_reaches_anthropic_kind_providers_only_translated_or_not() {
    let mock = Mock::start();
    let gw = Gateway::start(&mock_config(&mock, ""));
    let beta = [(
        "anthropic-beta",
        "context-1m-2025-08-07,interleaved-thinking-2025-05-14",
    )];
    let chat =
        |model: &str| json!({"model": model, "messages": [{"role": "user", "content": "hi"}]});
    let messages = |model: &str| json!({"model": model, "max_tokens": 32, "messages": [{"role": "user", "content": "hi"}]});
    post(&gw, "/v1/chat/completions", &beta, &chat("sonnet")).await;
    post(&gw, "/v1/messages", &beta, &messages("sonnet")).await;
    post(
        &gw,
        "/v1/responses",
        &beta,
        &json!({"model": "sonnet", "input": "hi"}),
    )
    .await;
    post(&gw, "/v1/messages", &beta, &messages("gpt-4.1")).await;
    post(&gw, "/v1/chat/completions", &beta, &chat("gpt-4.1")).await;
    let requests = mock.requests().await;
    let sent: Vec<(&str, Option<&str>)> = requests
        .iter()
        .map(|r| {
            (
                r["path"].as_str().unwrap(),
                r["headers"]["anthropic-beta"].as_str(),
            )
        })
        .collect();
    let both = Some(beta[0].1);
    assert_eq!(
        sent,
        [
            ("/v1/messages", both),
            ("/v1/messages", both),
            ("/v1/messages", both),
            ("/v1/chat/completions", None),
            ("/v1/chat/completions", None),
        ]
    );
}
