//! `[[routes]]`, circuit breakers and session affinity against the real binary and the mock:
//! which model serves a request, what the answer says about it, what the ledger charges, and
//! which requests the upstream sees.

use std::time::Duration;

use serde_json::{Value, json};

use crate::ledger::wait_rows;
use crate::support::{Gateway, KEY, Mock, home_with, http, izzi_bin, mock_config};

/// `POST /v1/messages` as Claude Code sends it: its user agent and session header.
async fn claude_code(gw: &Gateway, session: &str, body: &Value) -> reqwest::Response {
    http()
        .post(format!("{}/v1/messages", gw.url))
        .header("x-api-key", KEY)
        .header("user-agent", "claude-cli/2.0.14 (external, cli)")
        .header("anthropic-version", "2023-06-01")
        .header("x-claude-code-session-id", session)
        .json(body)
        .send()
        .await
        .expect("POST sent")
}

fn messages(model: &str, text: &str) -> Value {
    json!({
        "model": model,
        "max_tokens": 512,
        "system": [{"type": "text", "text": "You are Claude Code, Anthropic's official CLI for Claude."}],
        "messages": [{"role": "user", "content": text}],
    })
}

/// The upstream models the mock was asked for, in order.
async fn upstream_models(mock: &Mock) -> Vec<String> {
    mock.requests()
        .await
        .iter()
        .filter_map(|r| r["body"]["model"].as_str().map(str::to_owned))
        .collect()
}

fn header<'a>(r: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    r.headers()
        .get(name)
        .map(|v| v.to_str().expect("a text header"))
}

const ROUTES: &str = r#"
[[routes]]
name = "background"
model = "claude-*haiku*"
tool = "claude-code"
to = "gpt-4.1-mini"

[[routes]]
name = "long-context"
min_input_tokens = 5000
to = "gemini-2.5-pro"
"#;

#[tokio::test]
async fn claude_code_background_requests_go_to_the_cheap_model_and_are_charged_for_it() {
    let mock = Mock::start();
    let gw = Gateway::start(&mock_config(&mock, ROUTES));
    let haiku = messages(
        "claude-3-5-haiku-20241022",
        "Summarize this title in 5 words",
    );
    let r = claude_code(&gw, "s-bg", &haiku).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-izzi-model"), Some("gpt-4.1-mini"));
    assert_eq!(header(&r, "x-izzi-route"), Some("background"));
    // Translated to Chat Completions for the cheap model, answered as Messages.
    let answer: Value = r.json().await.unwrap();
    assert_eq!(answer["type"], "message", "{answer}");
    let seen = mock.requests().await;
    assert_eq!(seen[0]["path"], "/v1/chat/completions");
    assert_eq!(seen[0]["body"]["model"], "gpt-4.1-mini");
    // The same model from another client, and the main model from Claude Code, are not routed.
    let r = gw.post("/v1/messages", KEY, &haiku).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-izzi-route"), None);
    let r = claude_code(&gw, "s-bg", &messages("sonnet", "Fix the bug")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-izzi-route"), None);
    let sonnet = header(&r, "x-izzi-model").unwrap().to_owned();
    assert!(sonnet.starts_with("claude-sonnet"), "{sonnet}");
    assert_eq!(
        upstream_models(&mock).await[1..],
        ["claude-3-5-haiku-20241022".to_owned(), sonnet.clone()]
    );
    // The ledger charges what served: the cheap model at its price.
    let rows = wait_rows(gw.home.path(), 3).await;
    assert_eq!(rows[0].model, "gpt-4.1-mini");
    assert_eq!(rows[2].model, sonnet);
    let per_token = |row: &crate::ledger::Row| {
        row.cost / rust_decimal::Decimal::from(row.input_tokens + row.output_tokens)
    };
    assert!(rows[0].cost > rust_decimal::Decimal::ZERO);
    assert!(per_token(&rows[0]) * rust_decimal::Decimal::from(5) < per_token(&rows[2]));
    // Each row names the model asked for and the rule that moved it.
    let db = rusqlite::Connection::open(gw.home.path().join("izzi.db")).unwrap();
    let asked: Vec<(String, Option<String>)> = db
        .prepare("SELECT requested_model, route FROM ledger ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        asked,
        [
            (
                "claude-3-5-haiku-20241022".to_owned(),
                Some("background".to_owned())
            ),
            ("claude-3-5-haiku-20241022".to_owned(), None),
            ("sonnet".to_owned(), None),
        ]
    );
}

#[tokio::test]
async fn a_long_prompt_goes_to_the_long_context_model() {
    let mock = Mock::start();
    let gw = Gateway::start(&mock_config(&mock, ROUTES));
    let short = claude_code(&gw, "s-long", &messages("sonnet", "short question")).await;
    assert_eq!(short.status(), 200);
    assert_eq!(header(&short, "x-izzi-route"), None);
    // About 30 KB of code: some 7500 tokens by the estimate.
    let long_text = "fn main() { println!(\"hello\"); }\n".repeat(900);
    let long = claude_code(&gw, "s-long", &messages("sonnet", &long_text)).await;
    assert_eq!(long.status(), 200);
    assert_eq!(header(&long, "x-izzi-route"), Some("long-context"));
    assert_eq!(header(&long, "x-izzi-model"), Some("gemini-2.5-pro"));
    let models = upstream_models(&mock).await;
    assert!(models[0].starts_with("claude-sonnet"), "{models:?}");
    assert!(models[1].starts_with("gemini-2.5-pro"), "{models:?}");
}

/// Two providers on the mock: `work` on `flaky` falls back to `backup` on `steady`.
fn two_providers(mock: &Mock, flaky_retries: u32, breaker: &str) -> String {
    format!(
        r#"
[[providers]]
name = "flaky"
kind = "openai"
base_url = "{url}/v1"
max_retries = {flaky_retries}

[[providers]]
name = "steady"
kind = "openai"
base_url = "{url}/v1"

[[models]]
id = "work"
provider = "flaky"
upstream_id = "flaky"
fallbacks = ["backup"]

[[models]]
id = "backup"
provider = "steady"
upstream_id = "steady"

[[keys]]
name = "test"
key = "{KEY}"
plan = "ultra"
{breaker}
"#,
        url = mock.url
    )
}

fn chat(text: &str) -> Value {
    json!({"model": "work", "messages": [{"role": "user", "content": text}]})
}

async fn count(mock: &Mock, model: &str) -> usize {
    upstream_models(mock)
        .await
        .iter()
        .filter(|m| *m == model)
        .count()
}

async fn health(gw: &Gateway) -> Value {
    serde_json::from_str(&gw.get_text("/health").await).expect("/health is JSON")
}

#[tokio::test]
async fn a_provider_failing_5_times_is_skipped_during_its_cool_down_then_probed() {
    let mock = Mock::start();
    let breaker = "[breaker]\nfailures = 5\nwindow_s = 60\ncooldown_s = 3\n";
    let gw = Gateway::start(&two_providers(&mock, 2, breaker));
    // Each request tries `flaky` three times (two retries): the fifth failure, in the second
    // request, opens its circuit, and the third try goes to the fallback at once.
    for i in 0..2 {
        let r = gw
            .post(
                "/v1/chat/completions",
                KEY,
                &chat(&format!("turn {i} mock:fail_model=flaky")),
            )
            .await;
        assert_eq!(r.status(), 200);
        assert_eq!(header(&r, "x-izzi-model"), Some("backup"));
    }
    assert_eq!(count(&mock, "flaky").await, 5);
    assert_eq!(health(&gw).await["providers"]["flaky"]["state"], "open");
    assert_eq!(health(&gw).await["providers"]["steady"]["state"], "closed");
    // The dashboard's upstreams view shows it too.
    let upstreams: Value =
        serde_json::from_str(&gw.get_text("/izzi/api/upstreams").await).expect("JSON");
    let circuit = |name: &str| {
        upstreams["upstreams"]
            .as_array()
            .expect("a list")
            .iter()
            .find(|u| u["provider"] == name)
            .map(|u| u["circuit"].clone())
    };
    assert_eq!(circuit("flaky"), Some(Value::from("open")), "{upstreams}");
    let metrics = gw.get_text("/metrics").await;
    assert!(
        metrics.contains("izzi_circuit_open{provider=\"flaky\"} 1"),
        "{metrics}"
    );
    // During the cool-down `flaky` sees nothing, even from requests that would not fail there.
    for i in 0..5 {
        let r = gw
            .post("/v1/chat/completions", KEY, &chat(&format!("cool {i}")))
            .await;
        assert_eq!(r.status(), 200);
        assert_eq!(header(&r, "x-izzi-model"), Some("backup"));
    }
    assert_eq!(count(&mock, "flaky").await, 5);
    assert_eq!(count(&mock, "steady").await, 7);
    // After it, one request probes `flaky`; it answers, and the circuit closes.
    tokio::time::sleep(Duration::from_millis(3200)).await;
    let r = gw.post("/v1/chat/completions", KEY, &chat("probe")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-izzi-model"), Some("work"));
    assert_eq!(count(&mock, "flaky").await, 6);
    assert_eq!(health(&gw).await["providers"]["flaky"]["state"], "closed");
    let log = gw.log();
    assert_eq!(log.matches("circuit opened").count(), 1, "{log}");
    assert_eq!(log.matches("circuit closed").count(), 1, "{log}");
}

#[tokio::test]
async fn with_no_fallback_an_open_circuit_still_gets_one_try_and_a_failed_probe_reopens_it() {
    let mock = Mock::start();
    let breaker = "[breaker]\nfailures = 2\ncooldown_s = 2\n";
    let config = two_providers(&mock, 0, breaker).replace("fallbacks = [\"backup\"]\n", "");
    let gw = Gateway::start(&config);
    let fail = || chat("mock:fail_model=flaky");
    for _ in 0..2 {
        let r = gw.post("/v1/chat/completions", KEY, &fail()).await;
        assert_eq!(r.status(), 502);
    }
    assert_eq!(health(&gw).await["providers"]["flaky"]["state"], "open");
    // Open, but the only way to answer: one try, and its failure is the client's answer.
    let r = gw.post("/v1/chat/completions", KEY, &fail()).await;
    assert_eq!(r.status(), 502);
    assert_eq!(count(&mock, "flaky").await, 3);
    assert_eq!(health(&gw).await["providers"]["flaky"]["state"], "open");
    // After the cool-down the probe fails: open again.
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let r = gw.post("/v1/chat/completions", KEY, &fail()).await;
    assert_eq!(r.status(), 502);
    assert_eq!(count(&mock, "flaky").await, 4);
    let h = health(&gw).await;
    assert_eq!(h["providers"]["flaky"]["state"], "open", "{h}");
    assert!(
        h["providers"]["flaky"]["probe_in_s"].as_u64().unwrap() >= 1,
        "{h}"
    );
    // An answer closes it.
    let r = gw.post("/v1/chat/completions", KEY, &chat("fine")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(health(&gw).await["providers"]["flaky"]["state"], "closed");
    let log = gw.log();
    assert_eq!(log.matches("circuit opened").count(), 2, "{log}");
    assert_eq!(log.matches("circuit closed").count(), 1, "{log}");
}

#[tokio::test]
async fn a_session_stays_on_the_provider_that_served_it_for_20_turns() {
    let mock = Mock::start();
    let gw = Gateway::start(&two_providers(&mock, 0, ""));
    // The first turn's primary fails once (not enough to open its circuit): the fallback serves.
    let first = gw
        .post(
            "/v1/chat/completions",
            KEY,
            &chat("turn 0 mock:fail_first=1 mock:id=affinity"),
        )
        .await;
    assert_eq!(header(&first, "x-izzi-model"), Some("backup"));
    let send = |session: &'static str, text: String| {
        let url = gw.url.clone();
        async move {
            http()
                .post(format!("{url}/v1/chat/completions"))
                .bearer_auth(KEY)
                .header("x-izzi-session", session)
                .json(&chat(&text))
                .send()
                .await
                .unwrap()
        }
    };
    // The same opening turn, now in a session: it fails over, and the session remembers it.
    let r = send(
        "s-affinity",
        "opening mock:fail_first=1 mock:id=session".into(),
    )
    .await;
    assert_eq!(header(&r, "x-izzi-model"), Some("backup"));
    for turn in 1..=20 {
        let r = send("s-affinity", format!("turn {turn}")).await;
        assert_eq!(r.status(), 200);
        assert_eq!(header(&r, "x-izzi-model"), Some("backup"), "turn {turn}");
        // Both providers are healthy: another session, and no session, get the primary.
        if turn % 5 == 0 {
            let other = send("s-other", format!("other {turn}")).await;
            assert_eq!(header(&other, "x-izzi-model"), Some("work"), "turn {turn}");
            let none = gw
                .post("/v1/chat/completions", KEY, &chat(&format!("none {turn}")))
                .await;
            assert_eq!(header(&none, "x-izzi-model"), Some("work"), "turn {turn}");
        }
    }
    let h = health(&gw).await;
    assert_eq!(h["providers"]["flaky"]["state"], "closed", "{h}");
    assert_eq!(count(&mock, "flaky").await, 2 + 8);
}

#[test]
fn bad_routes_are_refused_at_start_with_file_line_and_field() {
    let mock = Mock::start();
    for (routes, expected) in [
        (
            "[[routes]]\nname = \"all\"\nto = \"sonnet\"\n\n[[routes]]\nname = \"late\"\nmodel = \"claude-*\"\nto = \"opus\"\n",
            "`routes[1].to`: the route `late` can never match",
        ),
        (
            "[[routes]]\nmodel = \"x\"\nto = \"no-such-model\"\n",
            "`routes[0].to`: the model `no-such-model` is neither in the catalog",
        ),
        (
            "[[models]]\nid = \"a1\"\nprovider = \"anthropic\"\nfallbacks = [\"a2\"]\n[[models]]\nid = \"a2\"\nprovider = \"anthropic\"\nfallbacks = [\"a1\"]\n",
            "`models[0].fallbacks`: the fallbacks form a cycle: a1 → a2 → a1",
        ),
    ] {
        // Only the Anthropic provider: a name no glob matches is unknown.
        let config = mock_config(&mock, routes).replace("models = [\"*\"]", "models = [\"gpt-*\"]");
        let home = home_with(&config);
        let lines = config.lines().count();
        let out = std::process::Command::new(izzi_bin())
            .args(["serve", "--port", "0"])
            .env("IZZI_HOME", home.path())
            .env("HOME", home.path())
            .env("IZZI_KEYRING", "file")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&out.stderr);
        let file = home.path().join("config.toml");
        assert!(
            stderr.contains(&format!("the config file `{}` is invalid", file.display())),
            "{stderr}"
        );
        assert!(stderr.contains(expected), "{stderr}");
        // The line named is the config's own.
        let line: usize = stderr
            .split("line ")
            .nth(1)
            .and_then(|rest| rest.split(',').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no line in {stderr}"));
        assert!(line > 0 && line <= lines, "{line} {stderr}");
        let field = expected.split('`').nth(1).unwrap();
        let key = field.rsplit('.').next().unwrap();
        assert!(
            config.lines().nth(line - 1).unwrap().starts_with(key),
            "line {line} is not `{key}`: {stderr}"
        );
    }
}

#[test]
fn route_explain_says_which_rule_matches_and_why_and_what_it_costs() {
    let mock = Mock::start();
    let home = home_with(&mock_config(&mock, ROUTES));
    let body = home.path().join("haiku.json");
    std::fs::write(
        &body,
        messages("claude-3-5-haiku-20241022", "Summarize this").to_string(),
    )
    .unwrap();
    let explain = |args: &[&str]| {
        let out = std::process::Command::new(izzi_bin())
            .args(["route", "explain"])
            .args(args)
            .arg(&body)
            .env("IZZI_HOME", home.path())
            .env("HOME", home.path())
            .output()
            .unwrap();
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
            out.status.code(),
        )
    };
    let (text, _, code) = explain(&["--tool", "claude-code"]);
    assert_eq!(code, Some(0));
    assert!(
        text.contains("route `background` → gpt-4.1-mini: matches"),
        "{text}"
    );
    assert!(
        text.contains("yes tool = claude-code (request: claude-code)"),
        "{text}"
    );
    assert!(
        text.contains("served by    gpt-4.1-mini (openai)"),
        "{text}"
    );
    let (json, _, _) = explain(&["--json"]);
    let report: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(report["route"], Value::Null, "{report}");
    let tool = report["rules"][0]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["condition"] == "tool")
        .unwrap_or_else(|| panic!("a tool condition: {report}"));
    assert_eq!(
        (&tool["actual"], &tool["holds"]),
        (&json!("other"), &json!(false))
    );
    assert_eq!(
        report["rules"][1]["conditions"][0]["condition"],
        "min_input_tokens"
    );
    assert_eq!(report["models"][0], "claude-3-5-haiku-20241022");
    let (_, stderr, code) = explain(&["--tool", "vim"]);
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains("`--tool vim` is not a tool izzi knows"),
        "{stderr}"
    );
}
