//! What the gateway's logs never hold, at the most verbose level a user would turn on: no
//! prompt, no completion, no client key and no upstream key, through every path a request can
//! take (native and translated, plain and streamed, upstream errors, cut streams, bad bodies,
//! token counting). izzi has no body logging to turn on, so this holds at every setting.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Gateway, KEY, Mock, home_with, mock_config};

/// In every prompt; a log line holding it would be logging the prompt.
const PROMPT: &str = "zebra-prompt-7f3a91";
/// The mock's answer always starts with this word (streams carry it alone in one event).
const COMPLETION: &str = "Hello";

async fn post(gw: &Gateway, path: &str, body: &Value) -> (u16, String) {
    let response = gw.post(&format!("/v1/{path}"), KEY, body).await;
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

#[tokio::test]
async fn debug_logs_hold_no_prompt_completion_or_key() {
    let mock = Mock::start();
    // Failures on purpose, many per provider: no circuit breaker may skip them.
    let config = mock_config(&mock, "[breaker]\nfailures = 0\n");
    // Every crate at debug, izzi at trace.
    let mut gw = Gateway::start_logging(home_with(&config), &[], "debug,izzi=trace");
    let mut answers = Vec::new();
    for stream in [false, true] {
        for (path, model) in [
            ("messages", "sonnet"),
            ("chat/completions", "gpt-4.1"),
            // Translated both ways.
            ("messages", "gpt-4.1"),
            ("chat/completions", "sonnet"),
        ] {
            for directive in [
                "",
                "mock:status=500",
                "mock:html mock:status=502",
                "mock:drop_after=2",
            ] {
                let body = json!({
                    "model": model,
                    "max_tokens": 64,
                    "stream": stream,
                    "system": format!("system {PROMPT}"),
                    "messages": [{"role": "user", "content": format!("{PROMPT} {directive}")}],
                });
                answers.push(post(&gw, path, &body).await);
            }
        }
        let body = json!({"model": "sonnet", "stream": stream, "input": format!("{PROMPT}")});
        answers.push(post(&gw, "responses", &body).await);
    }
    let counted = json!({"model": "sonnet", "messages": [{"role": "user", "content": PROMPT}]});
    answers.push(post(&gw, "messages/count_tokens", &counted).await);
    // A request the translation cannot read: its error quotes the prompt back to the client.
    let unreadable = json!({"model": "gpt-4.1", "max_tokens": 8, "temperature": PROMPT, "messages": [{"role": "user", "content": "hi"}]});
    let (status, text) = post(&gw, "messages", &unreadable).await;
    assert_eq!(status, 400, "{text}");
    assert!(
        text.contains(PROMPT),
        "the needle reached an error message: {text}"
    );
    // A body that is not JSON, and one of the wrong shape, both holding the prompt.
    answers.push(post(&gw, "messages", &json!(format!("{PROMPT}"))).await);
    let unterminated = format!("{{\"model\":\"sonnet\",\"messages\":\"{PROMPT}\"");
    let raw = gw
        .post_bytes("/v1/messages", KEY, unterminated.into_bytes())
        .await;
    answers.push((raw.status().as_u16(), raw.text().await.unwrap_or_default()));
    // The needles are real: the answers carried the completion.
    let completed = answers
        .iter()
        .filter(|(status, text)| *status == 200 && text.contains(COMPLETION))
        .count();
    assert!(completed >= 8, "{answers:?}");
    assert!(
        answers.iter().any(|(status, _)| *status >= 500),
        "{answers:?}"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    #[cfg(unix)]
    assert!(gw.terminate().success());
    let log = gw.log();
    assert!(
        log.contains("request finished"),
        "debug logging ran:\n{log}"
    );
    for secret in [
        PROMPT,
        COMPLETION,
        KEY,
        "sk-upstream-anthropic",
        "sk-upstream-openai",
    ] {
        let line = log.lines().find(|l| l.contains(secret));
        assert!(line.is_none(), "`{secret}` is in the log: {line:?}");
    }
}
