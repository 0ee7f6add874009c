//! `izzi count-tokens` on the real binary: every input shape, stdin, `--json`, the table, and the
//! errors with their exit codes; and `POST /v1/messages/count_tokens` through the real gateway
//! against the mock upstream. Expected counts come from OpenAI's Python `tiktoken` and the OpenAI
//! cookbook (see `src/tokens`).

use assert_cmd::Command;
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::support::{Gateway, KEY, Mock, http, izzi_bin, mock_config};

/// `izzi` with `IZZI_HOME` and `HOME` in `home`, so no real config is read.
pub(crate) fn izzi(home: &TempDir) -> Command {
    let mut cmd = Command::new(izzi_bin());
    cmd.env("IZZI_HOME", home.path())
        .env("HOME", home.path())
        .env_remove("IZZI_LOG");
    cmd
}

fn write(home: &TempDir, name: &str, text: impl AsRef<[u8]>) -> String {
    let path = home.path().join(name);
    std::fs::write(&path, text).expect("write the test file");
    path.to_str().expect("a UTF-8 temp path").to_owned()
}

/// Runs `count-tokens --json ARGS` and parses stdout.
fn count_json(home: &TempDir, args: &[&str]) -> Value {
    let out = izzi(home)
        .arg("count-tokens")
        .arg("--json")
        .args(args)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    serde_json::from_slice(&out).expect("count-tokens JSON")
}

fn row<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["models"]
        .as_array()
        .expect("a models array")
        .iter()
        .find(|r| r["id"] == id)
        .unwrap_or_else(|| panic!("no row for {id}: {report}"))
}

const COOKBOOK: &str = r#"{"model": "gpt-4.1", "messages": [
  {"role": "system", "content": "You are a helpful, pattern-following assistant that translates corporate jargon into plain English."},
  {"role": "system", "name": "example_user", "content": "New synergies will help drive top-line growth."},
  {"role": "system", "name": "example_assistant", "content": "Things working well together will increase revenue."},
  {"role": "system", "name": "example_user", "content": "Let's circle back when we have more bandwidth to touch base on opportunities for increased leverage."},
  {"role": "system", "name": "example_assistant", "content": "Let's talk later when we're less busy about how to do better."},
  {"role": "user", "content": "This late pivot means we don't have time to boil the ocean for the client deliverable."}]}"#;

#[test]
fn plain_text_file_counts_exactly_and_prices_input_and_output() {
    let home = TempDir::new().unwrap();
    let file = write(&home, "prompt.txt", "hello world");
    let report = count_json(&home, &["--model", "gpt-4.1", &file]);
    assert_eq!(
        report,
        json!({
            "source": file,
            "shape": "text",
            "request_model": null,
            "models": [{
                "id": "gpt-4.1",
                "provider": "openai",
                "tokenizer": "o200k_base",
                "input_tokens": 2,
                "exact": true,
                // 2 tokens at $2/M; 32,768 output tokens at $8/M.
                "input_cost_usd": "0.000004",
                "max_output_tokens": 32768,
                "output_cost_usd_max": "0.262144",
                "total_cost_usd_max": "0.262148",
            }]
        })
    );
}

#[test]
fn chat_body_counts_what_the_api_reported_in_the_cookbook() {
    let home = TempDir::new().unwrap();
    let file = write(&home, "chat.json", COOKBOOK);
    let report = count_json(&home, &["--model", "gpt-4.1", &file]);
    assert_eq!(report["shape"], "chat");
    assert_eq!(report["request_model"], "gpt-4.1");
    assert_eq!(report["models"][0]["input_tokens"], 124);
    assert_eq!(report["models"][0]["exact"], true);
}

#[test]
fn config_models_count_with_their_tokenizer() {
    let home = TempDir::new().unwrap();
    write(
        &home,
        "config.toml",
        r#"
[[models]]
id = "legacy-gpt-4"
provider = "openai"
tokenizer = "cl100k_base"
input_per_mtok = 30.0
output_per_mtok = 60.0
max_output = 4096
"#,
    );
    let file = write(&home, "chat.json", COOKBOOK);
    let report = count_json(&home, &["--model", "legacy-gpt-4", &file]);
    // The cookbook's API count for cl100k_base models (gpt-4, gpt-3.5-turbo).
    assert_eq!(report["models"][0]["input_tokens"], 129);
    assert_eq!(report["models"][0]["exact"], true);
    assert_eq!(report["models"][0]["input_cost_usd"], "0.00387");
}

#[test]
fn anthropic_body_without_model_lists_every_model_by_cost() {
    let home = TempDir::new().unwrap();
    let body = json!({"model": "sonnet", "max_tokens": 1000, "system": "You are terse.",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Explain BPE in two sentences."}]}]});
    let file = write(&home, "req.json", body.to_string());
    let report = count_json(&home, &[&file]);
    assert_eq!(report["shape"], "anthropic");
    assert_eq!(report["request_model"], "claude-sonnet-4-20250514");
    let models = report["models"].as_array().unwrap();
    let listed = izzi(&home).args(["models", "--json"]).output().unwrap();
    let catalog: Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(models.len(), catalog["models"].as_array().unwrap().len());
    let costs: Vec<f64> = models
        .iter()
        .map(|m| m["input_cost_usd"].as_str().unwrap().parse().unwrap())
        .collect();
    assert!(costs.windows(2).all(|w| w[0] <= w[1]), "{costs:?}");
    let gpt = row(&report, "gpt-4.1");
    let sonnet = row(&report, "claude-sonnet-4-20250514");
    assert_eq!(gpt["exact"], true);
    assert_eq!(sonnet["exact"], false);
    // Claude's estimate is the o200k_base count × 1.25, rounded up.
    let o200k = gpt["input_tokens"].as_u64().unwrap();
    assert_eq!(
        sonnet["input_tokens"].as_u64().unwrap(),
        (o200k * 125).div_ceil(100)
    );
    // The request's max_tokens bounds the output, below every model's own limit.
    assert!(models.iter().all(|m| m["max_output_tokens"] == 1000));
    assert_eq!(sonnet["output_cost_usd_max"], "0.015");
}

#[test]
fn responses_body_is_detected_and_its_output_limit_used() {
    let home = TempDir::new().unwrap();
    let body = json!({"model": "gpt-5", "instructions": "Be brief.", "input": "What is 2+2?",
        "max_output_tokens": 50});
    let file = write(&home, "resp.json", body.to_string());
    let report = count_json(&home, &["--model", "gpt-5", &file]);
    assert_eq!(report["shape"], "responses");
    // Python tiktoken: system message 3 + 1 + 3 ("Be brief."), user message 3 + 1 + 7
    // ("What is 2+2?"), reply priming 3.
    assert_eq!(report["models"][0]["input_tokens"], 21);
    assert_eq!(report["models"][0]["max_output_tokens"], 50);
}

#[test]
fn reads_stdin_for_dash_and_when_piped() {
    let home = TempDir::new().unwrap();
    for args in [
        &["--model", "gpt-4.1", "-"][..],
        &["--model", "gpt-4.1"][..],
    ] {
        let out = izzi(&home)
            .arg("count-tokens")
            .arg("--json")
            .args(args)
            .write_stdin(COOKBOOK)
            .assert()
            .success()
            .get_output()
            .stdout
            .clone();
        let report: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(report["source"], "-");
        assert_eq!(report["shape"], "chat");
        assert_eq!(report["models"][0]["input_tokens"], 124);
    }
}

#[test]
fn json_that_is_not_a_request_counts_as_text() {
    let home = TempDir::new().unwrap();
    let file = write(&home, "data.json", r#"{"a": 1}"#);
    let report = count_json(&home, &["--model", "gpt-4.1", &file]);
    assert_eq!(report["shape"], "text");
    assert!(report["models"][0]["input_tokens"].as_u64().unwrap() > 0);
}

#[test]
fn human_output_marks_estimates_and_the_requested_model() {
    let home = TempDir::new().unwrap();
    let body = json!({"model": "haiku", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]});
    let file = write(&home, "req.json", body.to_string());
    let out = izzi(&home).args(["count-tokens", &file]).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("claude-3-5-haiku-20241022 *"), "{text}");
    assert!(text.contains("gemini-2.5-pro"), "{text}");
    assert!(text.contains('~'), "{text}");
    assert!(text.contains("* the model the request names"), "{text}");
    let one = izzi(&home)
        .args(["count-tokens", "--model", "gpt-4.1", &file])
        .output()
        .unwrap();
    let text = String::from_utf8(one.stdout).unwrap();
    assert!(text.contains("(exact, o200k_base)"), "{text}");
    assert!(text.contains("up to 10 tokens"), "{text}");
}

#[test]
fn a_large_file_counts_exactly_and_draws_no_bar_off_a_terminal() {
    let home = TempDir::new().unwrap();
    // 45 bytes and 10 tokens per line in both encodings; 24,000 lines is over 1 MiB.
    let text = "The quick brown fox jumps over the lazy dog.\n".repeat(24_000);
    let file = write(&home, "big.txt", &text);
    let out = izzi(&home)
        .args(["count-tokens", "--json", "--model", "gpt-4.1", &file])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["models"][0]["input_tokens"], 240_000);
}

/// Runs `izzi ARGS`, expects `code`, and returns stderr, which must be one line.
fn fails(home: &TempDir, args: &[&str], code: i32) -> String {
    let out = izzi(home).args(args).output().expect("run izzi");
    assert_eq!(out.status.code(), Some(code), "{out:?}");
    assert!(out.stdout.is_empty());
    let err = String::from_utf8(out.stderr).expect("stderr is UTF-8");
    assert_eq!(err.lines().count(), 1, "{err}");
    err
}

#[test]
fn a_missing_or_unreadable_file_is_one_sentence_and_exit_1() {
    let home = TempDir::new().unwrap();
    let missing = home.path().join("nope.txt");
    let missing = missing.to_str().unwrap();
    let err = fails(&home, &["count-tokens", missing], 1);
    assert!(err.contains(&format!("`{missing}`")), "{err}");
    assert!(err.contains("no such file"), "{err}");
    let dir = home.path().to_str().unwrap();
    let err = fails(&home, &["count-tokens", dir], 1);
    assert!(err.contains("directory"), "{err}");
    let binary = write(&home, "blob.bin", [0xff, 0xfe, 0x00, 0x80]);
    let err = fails(&home, &["count-tokens", &binary], 1);
    assert!(err.contains("not UTF-8"), "{err}");
}

#[test]
fn malformed_json_gives_the_parse_position_and_exit_1() {
    let home = TempDir::new().unwrap();
    let bad = write(
        &home,
        "bad.json",
        "{\"model\": \"gpt-4.1\",\n \"messages\": [}\n",
    );
    let err = fails(&home, &["count-tokens", &bad], 1);
    assert!(err.contains("is not valid JSON"), "{err}");
    assert!(err.contains("line 2 column"), "{err}");
    // Text that starts with `{` is a body too, whatever the file is called.
    let braces = write(&home, "prompt.txt", "{ not json");
    let err = fails(&home, &["count-tokens", &braces], 1);
    assert!(err.contains("line 1 column"), "{err}");
}

#[test]
fn an_unknown_model_is_bad_usage_exit_2() {
    let home = TempDir::new().unwrap();
    let file = write(&home, "prompt.txt", "hello");
    let err = fails(&home, &["count-tokens", "--model", "gpt-9", &file], 2);
    assert!(
        err.contains("`gpt-9`") && err.contains("izzi models"),
        "{err}"
    );
}

/// `POST {prefix}/messages/count_tokens` on the gateway: the `x-izzi-token-count` header and
/// `input_tokens`.
async fn count_endpoint(gw: &Gateway, path: &str, body: &Value) -> (String, u64) {
    let response = http()
        .post(format!("{}{path}", gw.url))
        .header("x-api-key", KEY)
        .header("anthropic-version", "2023-06-01")
        .json(body)
        .send()
        .await
        .expect("count_tokens answer");
    assert_eq!(response.status(), 200, "{path}");
    let how = response.headers()["x-izzi-token-count"]
        .to_str()
        .expect("count_tokens answer")
        .to_owned();
    let answer: Value = response.json().await.expect("count_tokens answer");
    (
        how,
        answer["input_tokens"]
            .as_u64()
            .expect("count_tokens answer"),
    )
}

/// What `izzi count-tokens --model MODEL` says for `body`, with the gateway's config.
fn cli_count(gw: &Gateway, model: &str, body: &Value) -> u64 {
    let file = gw.home.path().join("count-body.json");
    std::fs::write(&file, body.to_string()).expect("count-tokens JSON");
    let out = Command::new(izzi_bin())
        .env("IZZI_HOME", gw.home.path())
        .env("HOME", gw.home.path())
        .args(["count-tokens", "--json", "--model", model])
        .arg(&file)
        .output()
        .expect("count-tokens JSON");
    assert!(out.status.success(), "{out:?}");
    let report: Value = serde_json::from_slice(&out.stdout).expect("count-tokens JSON");
    report["models"][0]["input_tokens"]
        .as_u64()
        .expect("count-tokens JSON")
}

async fn upstream_counts(mock: &Mock) -> usize {
    mock.requests()
        .await
        .iter()
        .filter(|r| r["path"] == "/v1/messages/count_tokens")
        .count()
}

#[tokio::test]
async fn endpoint_counts_at_anthropic_and_falls_back_to_the_local_estimate() {
    let mock = Mock::start();
    let gw = Gateway::start(&mock_config(&mock, ""));
    let body = json!({"model": "sonnet", "system": "Be brief.", "messages": [
        {"role": "user", "content": "What is BPE?"},
        {"role": "assistant", "content": "A tokenizer."},
        {"role": "user", "content": "Say more."}]});
    // The mock answers 1000 + the number of messages, unlike any local count.
    for path in [
        "/v1/messages/count_tokens?beta=true",
        "/api/v1/messages/count_tokens",
    ] {
        assert_eq!(
            count_endpoint(&gw, path, &body).await,
            ("upstream".to_owned(), 1003)
        );
    }
    assert_eq!(upstream_counts(&mock).await, 2);
    let failing = json!({"model": "sonnet", "messages": [
        {"role": "user", "content": "Explain tokenizers. mock:status=500"}]});
    let (how, tokens) = count_endpoint(&gw, "/v1/messages/count_tokens", &failing).await;
    assert_eq!(how, "estimate");
    assert_eq!(tokens, cli_count(&gw, "sonnet", &failing));
    assert!(tokens > 0);
}

#[tokio::test]
async fn endpoint_counts_openai_models_locally_and_exactly() {
    let mock = Mock::start();
    let gw = Gateway::start(&mock_config(&mock, ""));
    let body: Value = serde_json::from_str(COOKBOOK).unwrap();
    let (how, tokens) = count_endpoint(&gw, "/v1/messages/count_tokens", &body).await;
    assert_eq!((how.as_str(), tokens), ("exact", 124));
    // An Anthropic-shaped body with a tool for an OpenAI model: local, and an estimate.
    let with_tool = json!({"model": "gpt-4.1", "system": "Be brief.",
        "tools": [{"name": "weather", "input_schema": {"type": "object"}}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Weather in Paris?"}]}]});
    let (how, tokens) = count_endpoint(&gw, "/openai/v1/messages/count_tokens", &with_tool).await;
    assert_eq!(how, "estimate");
    assert_eq!(tokens, cli_count(&gw, "gpt-4.1", &with_tool));
    assert_eq!(upstream_counts(&mock).await, 0);
}
