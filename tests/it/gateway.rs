//! Gateway core: endpoints, auth, forwarding, streaming, errors, shutdown.

use std::time::Duration;

use futures_util::StreamExt as _;
use serde_json::{Value, json};

use crate::support::{Gateway, KEY, Mock, home_with, http, izzi_bin, mock_config};

fn claude_body(text: &str, stream: bool) -> Value {
    json!({
        "model": "sonnet",
        "max_tokens": 100,
        "stream": stream,
        "messages": [{"role": "user", "content": text}],
        "x_unknown_field": {"kept": [1, 2.50, "é"]},
    })
}

fn gpt_body(text: &str, stream: bool) -> Value {
    json!({
        "model": "gpt-4.1",
        "stream": stream,
        "messages": [{"role": "user", "content": text}],
        "x_unknown_field": {"kept": true},
    })
}

/// Asserts the seed's error shape, status and type; returns the message.
async fn assert_error(response: reqwest::Response, status: u16, kind: &str) -> String {
    assert_eq!(response.status().as_u16(), status, "status");
    assert_eq!(response.headers()["content-type"], "application/json");
    let body: Value = response.json().await.expect("error body is JSON");
    assert_eq!(body["type"], "error", "{body}");
    assert_eq!(body["error"]["type"], kind, "{body}");
    let message = body["error"]["message"]
        .as_str()
        .expect("message")
        .to_owned();
    assert!(!message.is_empty());
    message
}

#[tokio::test]
async fn same_format_forwarding_rewrites_only_model_and_never_sends_the_client_key() {
    let mock = Mock::start();
    let gw = Gateway::start(&mock_config(&mock, ""));
    // No `host` in config or on the command line: loopback only.
    assert!(gw.url.starts_with("http://127.0.0.1:"), "{}", gw.url);
    let client = http();
    let answer: Value = client
        .post(format!("{}/v1/messages?beta=true", gw.url))
        .header("x-api-key", KEY)
        // Not the default (2023-06-01): the client's version replaces it.
        .header("anthropic-version", "2023-01-01")
        .header("anthropic-beta", "interleaved-thinking-2025-05-14")
        .json(&claude_body("hello", false))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        answer["content"][0]["text"],
        "Hello from the mock upstream."
    );
    // Anthropic's headers go to Anthropic-kind providers only.
    let chat: Value = client
        .post(format!("{}/openai/v1/chat/completions", gw.url))
        .bearer_auth(KEY)
        .header("anthropic-version", "2023-01-01")
        .header("anthropic-beta", "interleaved-thinking-2025-05-14")
        .json(&gpt_body("hello", false))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        chat["choices"][0]["message"]["content"],
        "Hello from the mock upstream."
    );

    let seen = mock.requests().await;
    assert_eq!(seen.len(), 2);
    let (anthropic, openai) = (&seen[0], &seen[1]);
    assert_eq!(anthropic["path"], "/v1/messages");
    assert_eq!(anthropic["body"]["model"], "claude-sonnet-4-20250514");
    assert_eq!(
        anthropic["body"]["x_unknown_field"],
        json!({"kept": [1, 2.5, "é"]})
    );
    assert_eq!(anthropic["headers"]["x-api-key"], "sk-upstream-anthropic");
    assert_eq!(anthropic["headers"]["anthropic-version"], "2023-01-01");
    assert_eq!(
        anthropic["headers"]["anthropic-beta"],
        "interleaved-thinking-2025-05-14"
    );
    assert_eq!(openai["path"], "/v1/chat/completions");
    assert_eq!(openai["body"]["model"], "gpt-4.1");
    assert_eq!(openai["body"]["x_unknown_field"]["kept"], true);
    assert_eq!(
        openai["headers"]["authorization"],
        "Bearer sk-upstream-openai"
    );
    let openai_headers = openai["headers"].as_object().unwrap();
    assert!(
        !openai_headers.contains_key("anthropic-version")
            && !openai_headers.contains_key("anthropic-beta"),
        "{openai}"
    );
    for request in &seen {
        assert!(
            !request.to_string().contains(KEY),
            "the client key reached the upstream: {request}"
        );
    }
    assert!(!gw.log().contains(KEY), "the client key was logged");
}

#[tokio::test]
async fn streams_are_relayed_as_they_arrive() {
    let mock = Mock::start();
    let gw = Gateway::start(&mock_config(&mock, ""));
    // 25 events 100 ms apart: the stream takes over two seconds upstream.
    let body = claude_body("mock:words=20 mock:chunk_delay_ms=100", true);
    let response = http()
        .post(format!("{}/v1/messages", gw.url))
        .header("x-api-key", KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut stream = response.bytes_stream();
    let first = String::from_utf8(stream.next().await.unwrap().unwrap().to_vec()).unwrap();
    assert!(first.contains("message_start"), "{first}");
    assert!(
        !first.contains("message_stop"),
        "the first chunk came only after the upstream finished"
    );
    let mut rest = String::new();
    while let Some(chunk) = stream.next().await {
        rest.push_str(std::str::from_utf8(&chunk.unwrap()).unwrap());
    }
    assert!(rest.contains("event: ping"), "pings are kept");
    assert!(
        rest.trim_end()
            .ends_with("data: {\"type\":\"message_stop\"}"),
        "{rest}"
    );
    assert_eq!(rest.matches("text_delta").count(), 25);
}

#[tokio::test]
async fn upstream_errors_map_as_spec_says() {
    let mock = Mock::start();
    // Every failure here is on purpose: no circuit breaker may skip the provider.
    let gw = Gateway::start(&mock_config(&mock, "[breaker]\nfailures = 0\n"));
    let gw = &gw;
    let send = |text: &str, claude: bool| {
        let (path, body) = if claude {
            ("/v1/messages", claude_body(text, false))
        } else {
            ("/v1/chat/completions", gpt_body(text, false))
        };
        async move { gw.post(path, KEY, &body).await }
    };
    let r = send("mock:status=429 mock:retry_after=7", true).await;
    assert_eq!(r.headers()["retry-after"], "7");
    assert_error(r, 429, "rate_limit_error").await;
    // Without Retry-After (retried, then passed on as it came).
    let r = send("mock:status=429", false).await;
    assert!(r.headers().get("retry-after").is_none(), "{r:?}");
    assert_error(r, 429, "rate_limit_error").await;
    let message = assert_error(
        send("mock:status=400", false).await,
        400,
        "invalid_request_error",
    )
    .await;
    assert_eq!(
        message, "mock failure 400",
        "the upstream's own message is passed on"
    );
    assert_error(send("mock:status=404", true).await, 404, "not_found").await;
    assert_error(
        send("mock:status=413", true).await,
        413,
        "invalid_request_error",
    )
    .await;
    assert_error(
        send("mock:status=422", false).await,
        422,
        "invalid_request_error",
    )
    .await;
    for status in [401, 403, 500, 503, 529] {
        let r = send(&format!("mock:status={status}"), status % 2 == 0).await;
        assert_error(r, 502, "upstream_error").await;
    }
    let html = assert_error(
        send("mock:status=500 mock:html", true).await,
        502,
        "upstream_error",
    )
    .await;
    assert!(html.contains("mock failure 500"), "{html}");
    // A body that is not JSON at all, as a proxy in front of the provider sends.
    let plain = assert_error(
        send("mock:status=503 mock:text", false).await,
        502,
        "upstream_error",
    )
    .await;
    assert!(plain.contains("mock failure 503"), "{plain}");
    // A stream that fails before its first byte is still a proper status.
    let r = gw
        .post("/v1/messages", KEY, &claude_body("mock:status=503", true))
        .await;
    assert_error(r, 502, "upstream_error").await;
}

#[tokio::test]
async fn unreachable_and_silent_upstreams_are_connection_errors() {
    // A port nothing listens on: bind one, then free it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mock = Mock::start();
    let config = format!(
        r#"
[server]
upstream_idle_timeout_s = 1

[[providers]]
name = "anthropic"
kind = "anthropic"
base_url = "http://127.0.0.1:{port}"

[[providers]]
name = "openai"
kind = "openai"
base_url = "{}/v1"
models = ["*"]

[[keys]]
name = "test"
key = "{KEY}"
"#,
        mock.url
    );
    let gw = Gateway::start(&config);
    let r = gw
        .post("/v1/messages", KEY, &claude_body("hi", false))
        .await;
    let message = assert_error(r, 502, "connection_error").await;
    assert!(message.contains("`anthropic`"), "{message}");
    let r = gw
        .post(
            "/v1/chat/completions",
            KEY,
            &gpt_body("mock:delay_ms=3000", false),
        )
        .await;
    let message = assert_error(r, 502, "connection_error").await;
    assert!(message.contains("in time"), "{message}");
}

#[tokio::test]
async fn a_provider_behind_a_proxy_from_the_environment_is_reached_through_it() {
    let mock = Mock::start();
    // The Anthropic provider's host does not resolve: only the proxy reaches it. The mock stands
    // in for the proxy (it serves a forwarded request's absolute URI by its path); the OpenAI
    // provider, at the mock's own address, is excluded by NO_PROXY and goes direct.
    let config = mock_config(&mock, "").replacen(
        &format!("base_url = \"{}\"", mock.url),
        "base_url = \"http://provider.invalid\"",
        1,
    );
    let mut command = std::process::Command::new(izzi_bin());
    command
        .env("HTTP_PROXY", &mock.url)
        .env("NO_PROXY", "127.0.0.1");
    let gw = Gateway::spawn(command, home_with(&config), &[], "izzi=debug,info");
    let r = gw
        .post("/v1/messages", KEY, &claude_body("hi", false))
        .await;
    assert_eq!(r.status(), 200);
    let text = gw
        .post("/v1/messages", KEY, &claude_body("hi", true))
        .await
        .text()
        .await
        .unwrap();
    assert!(text.contains("message_stop"), "{text}");
    let r = gw
        .post("/v1/chat/completions", KEY, &gpt_body("hi", false))
        .await;
    assert_eq!(r.status(), 200);
    let seen = mock.requests().await;
    let hosts: Vec<&str> = seen
        .iter()
        .map(|r| r["headers"]["host"].as_str().unwrap_or_default())
        .collect();
    let direct = mock.url.trim_start_matches("http://");
    assert_eq!(
        hosts,
        ["provider.invalid", "provider.invalid", direct],
        "{seen:?}"
    );
    // Through the proxy as direct: the provider's key and the constant headers.
    assert_eq!(seen[0]["headers"]["x-api-key"], "sk-upstream-anthropic");
    assert_eq!(seen[0]["headers"]["anthropic-version"], "2023-06-01");
    assert_eq!(
        seen[2]["headers"]["authorization"],
        "Bearer sk-upstream-openai"
    );
}

#[tokio::test]
async fn a_stream_cut_by_the_upstream_ends_with_an_error_event() {
    let mock = Mock::start();
    let gw = Gateway::start(&mock_config(&mock, ""));
    // Cut between events and in the middle of one, and ended cleanly but without the final
    // events; native and translated.
    let anthropic_error = "event: error";
    let openai_error = "data: {\"type\":\"error\"";
    for (path, body, marker) in [
        (
            "/v1/messages",
            claude_body("mock:drop_after=4 mock:chunk_delay_ms=20", true),
            anthropic_error,
        ),
        (
            "/v1/chat/completions",
            gpt_body("mock:drop_after=3 mock:chunk_delay_ms=20", true),
            openai_error,
        ),
        (
            "/v1/messages",
            claude_body("mock:half_after=3 mock:chunk_delay_ms=10", true),
            anthropic_error,
        ),
        (
            "/v1/chat/completions",
            gpt_body("mock:half_after=2 mock:chunk_delay_ms=10", true),
            openai_error,
        ),
        (
            "/v1/messages",
            claude_body("mock:end_after=4", true),
            anthropic_error,
        ),
        (
            "/v1/chat/completions",
            gpt_body("mock:end_after=3", true),
            openai_error,
        ),
        (
            "/v1/messages",
            gpt_body("mock:end_after=3", true),
            anthropic_error,
        ),
        (
            "/v1/chat/completions",
            claude_body("mock:end_after=4", true),
            openai_error,
        ),
    ] {
        let text = gw.post(path, KEY, &body).await.text().await.unwrap();
        assert!(text.contains(marker), "{text}");
        assert!(
            !text.contains("message_stop") && !text.contains("[DONE]"),
            "{text}"
        );
        // Whole events only: a client's SDK parses every one, the error included.
        assert!(text.ends_with("\n\n"), "{text:?}");
        for event in text.split_terminator("\n\n") {
            let data = event.lines().find_map(|l| l.strip_prefix("data: "));
            let data = data.unwrap_or_else(|| panic!("an event without data: {event:?}"));
            assert!(
                serde_json::from_str::<serde_json::Value>(data).is_ok(),
                "{event:?} in {text:?}"
            );
        }
    }
}

#[tokio::test]
async fn bad_input_gets_a_clear_4xx_and_the_server_keeps_serving() {
    let mock = Mock::start();
    let gw = Gateway::start(&mock_config(&mock, "[server]\nmax_body_bytes = 2048\n"));
    let post = |body: Vec<u8>| gw.post_bytes("/v1/chat/completions", KEY, body);
    let big = serde_json::to_vec(&gpt_body(&"x".repeat(4096), false)).unwrap();
    assert_error(post(big).await, 413, "invalid_request_error").await;
    let truncated = br#"{"model":"gpt-4.1","messages":[{"role":"us"#.to_vec();
    let m = assert_error(post(truncated).await, 400, "invalid_request_error").await;
    assert!(m.contains("not valid JSON"), "{m}");
    let invalid_utf8 =
        b"{\"model\":\"gpt-4.1\",\"messages\":[{\"role\":\"user\",\"content\":\"\xff\xfe\"}]}"
            .to_vec();
    assert_error(post(invalid_utf8).await, 400, "invalid_request_error").await;
    let m = assert_error(
        post(br#"{"messages":[]}"#.to_vec()).await,
        400,
        "invalid_request_error",
    )
    .await;
    assert!(m.contains("`model`"), "{m}");
    let m = assert_error(
        post(br#"{"model":7,"messages":[]}"#.to_vec()).await,
        400,
        "invalid_request_error",
    )
    .await;
    assert!(m.contains("`model` must be a string"), "{m}");
    let m = assert_error(
        post(br#"{"model":"gpt-4.1","messages":{}}"#.to_vec()).await,
        400,
        "invalid_request_error",
    )
    .await;
    assert!(m.contains("`messages`"), "{m}");
    let m = assert_error(
        post(br#"{"model":"gpt-4.1","stream":"yes","messages":[]}"#.to_vec()).await,
        400,
        "invalid_request_error",
    )
    .await;
    assert!(m.contains("`stream`"), "{m}");
    let m = assert_error(post(br"[1,2]".to_vec()).await, 400, "invalid_request_error").await;
    assert!(m.contains("JSON"), "{m}");
    let unknown = gw
        .post(
            "/v1/messages",
            KEY,
            &json!({"model": "claude-9", "max_tokens": 5, "messages": []}),
        )
        .await;
    // The openai provider's `*` glob takes unknown models; claude-9 goes there, not a 404.
    assert_ne!(unknown.status(), 404);
    let ok = gw
        .post("/v1/chat/completions", KEY, &gpt_body("hi", false))
        .await;
    assert_eq!(ok.status(), 200, "the server still serves");
}

#[tokio::test]
async fn unknown_models_are_404_without_a_catch_all_provider() {
    let mock = Mock::start();
    let config = mock_config(&mock, "").replace("models = [\"*\"]", "models = [\"gpt-*\"]");
    let gw = Gateway::start(&config);
    let r = gw
        .post(
            "/v1/chat/completions",
            KEY,
            &json!({"model": "nope-1", "messages": []}),
        )
        .await;
    let m = assert_error(r, 404, "not_found").await;
    assert!(m.contains("`nope-1`"), "{m}");
}

#[cfg(unix)]
#[tokio::test]
async fn sigterm_lets_an_in_flight_stream_finish() {
    let mock = Mock::start();
    let mut gw = Gateway::start(&mock_config(&mock, ""));
    let response = gw
        .post(
            "/v1/messages",
            KEY,
            &claude_body("mock:words=10 mock:chunk_delay_ms=100", true),
        )
        .await;
    let mut stream = response.bytes_stream();
    let _first = stream.next().await.unwrap().unwrap();
    let status = tokio::task::spawn_blocking(move || {
        let status = gw.terminate();
        (status, gw)
    });
    let mut rest = String::new();
    while let Some(chunk) = stream.next().await {
        rest.push_str(std::str::from_utf8(&chunk.unwrap()).unwrap());
    }
    assert!(rest.contains("message_stop"), "the stream was cut: {rest}");
    let (status, _gw) = status.await.unwrap();
    assert!(status.success(), "{status}");
}

#[tokio::test]
async fn a_client_that_leaves_mid_stream_is_recorded_as_gone() {
    let mock = Mock::start();
    let gw = Gateway::start(&mock_config(&mock, ""));
    let response = gw
        .post(
            "/v1/messages",
            KEY,
            &claude_body("mock:words=50 mock:chunk_delay_ms=50", true),
        )
        .await;
    let mut stream = response.bytes_stream();
    let _first = stream.next().await.unwrap().unwrap();
    drop(stream);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !gw.log().contains("outcome=\"client_gone\"") && !gw.log().contains("outcome=client_gone")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no client_gone record:\n{}",
            gw.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[test]
fn a_bad_config_names_file_line_and_field_and_does_not_start() {
    let home = tempfile::tempdir().unwrap();
    let path = home.path().join("config.toml");
    std::fs::write(&path, "[server]\nport = 8745\nhots = \"0.0.0.0\"\n").unwrap();
    let output = std::process::Command::new(izzi_bin())
        .args(["serve", "--config"])
        .arg(&path)
        .env("IZZI_HOME", home.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&path.display().to_string()), "{stderr}");
    assert!(stderr.contains("line 3"), "{stderr}");
    assert!(stderr.contains("hots"), "{stderr}");
}

#[test]
fn refuses_to_listen_beyond_loopback_without_client_keys() {
    let home = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(izzi_bin())
        .args(["serve", "--host", "0.0.0.0", "--port", "0"])
        .env("IZZI_HOME", home.path())
        .env("IZZI_KEYRING", "file")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("refusing to listen on 0.0.0.0"));
    // With client keys it listens there.
    let home = tempfile::tempdir().unwrap();
    std::fs::write(
        home.path().join("config.toml"),
        format!("[[keys]]\nname = \"lan\"\nkey = \"{KEY}\"\n"),
    )
    .unwrap();
    let gw = Gateway::start_in(home, &["--host", "0.0.0.0"]);
    assert!(gw.url.starts_with("http://0.0.0.0:"), "{}", gw.url);
}

/// With no D-Bus session bus (headless machines, containers, CI) the gateway does not start
/// zbus to look for a keyring that is not there: it runs the same threads as with the file
/// store forced, and says at debug level why it skipped the keyring.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn without_a_session_bus_the_gateway_starts_no_keyring_threads() {
    let runtime_dir = tempfile::tempdir().unwrap(); // no `bus` socket in it
    let mut headless = std::process::Command::new(izzi_bin());
    headless
        .env_remove("IZZI_KEYRING")
        .env_remove("DBUS_SESSION_BUS_ADDRESS")
        .env("XDG_RUNTIME_DIR", runtime_dir.path());
    let gw = Gateway::spawn(headless, home_with(""), &[], "izzi=debug,info");
    let forced = Gateway::start("");
    assert_eq!(gw.thread_names(), forced.thread_names());
    assert!(
        gw.log()
            .contains("the OS keyring is unusable: no D-Bus session bus"),
        "{}",
        gw.log()
    );
    // It still serves: the stored-key lookup went on to the (absent) file.
    gw.get_text("/health").await;
}

/// Requests the mock received whose body mentions `marker`.
async fn received(mock: &Mock, marker: &str) -> Vec<Value> {
    mock.requests()
        .await
        .into_iter()
        .filter(|r| r["body"].to_string().contains(marker))
        .collect()
}

#[tokio::test]
async fn retryable_upstream_failures_are_retried_before_the_first_byte() {
    let mock = Mock::start();
    let gw = Gateway::start(&mock_config(&mock, ""));
    // (why, mock id, path, body, its directives, stream, status the client gets, what its answer
    // contains, tries the mock saw)
    let cases = [
        (
            "two 503s, then an answer: the default two retries absorb them",
            "plain",
            "/v1/chat/completions",
            gpt_body as fn(&str, bool) -> Value,
            "mock:fail_first=2",
            false,
            200,
            "",
            3,
        ),
        (
            "a 429 with Retry-After: 1 is waited out",
            "limited",
            "/v1/messages",
            claude_body,
            "mock:fail_first=1 mock:fail_status=429 mock:retry_after=1",
            false,
            200,
            "",
            2,
        ),
        (
            "a stream that fails before its first byte is retried too",
            "stream",
            "/v1/messages",
            claude_body,
            "mock:fail_first=1",
            true,
            200,
            "message_stop",
            2,
        ),
        (
            "three failures are one too many",
            "many",
            "/v1/chat/completions",
            gpt_body,
            "mock:fail_first=3",
            false,
            502,
            "\"type\":\"upstream_error\"",
            3,
        ),
        (
            "client errors are never retried",
            "bad",
            "/v1/chat/completions",
            gpt_body,
            "mock:fail_first=1 mock:fail_status=400",
            false,
            400,
            "",
            1,
        ),
        (
            "once bytes reached the client nothing is retried",
            "cut",
            "/v1/messages",
            claude_body,
            "mock:drop_after=4 mock:chunk_delay_ms=20",
            true,
            200,
            "event: error",
            1,
        ),
    ];
    for (why, id, path, body, directives, stream, status, contains, tries) in cases {
        let body = body(&format!("{directives} mock:id={id}"), stream);
        let r = gw.post(path, KEY, &body).await;
        assert_eq!(r.status(), status, "{why}");
        let text = r.text().await.unwrap();
        assert!(text.contains(contains), "{why}: {text}");
        let seen = received(&mock, &format!("mock:id={id}")).await.len();
        assert_eq!(seen, tries, "{why}");
    }
}

#[tokio::test]
async fn fallbacks_are_tried_in_order_when_a_provider_fails() {
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mock = Mock::start();
    let extra = format!(
        r#"
[[providers]]
name = "dead"
kind = "openai"
base_url = "http://127.0.0.1:{dead}/v1"
max_retries = 0

[[models]]
id = "gpt-4.1"
provider = "dead"
fallbacks = ["gpt-9-unknown-to-all", "gpt-4.1-mini"]
"#
    );
    let config =
        mock_config(&mock, &extra).replace("models = [\"*\"]", "models = [\"gpt-4.1-mini\"]");
    let gw = Gateway::start(&config);
    let r = gw
        .post(
            "/v1/chat/completions",
            KEY,
            &gpt_body("fallback please", false),
        )
        .await;
    assert_eq!(r.status(), 200);
    let seen = received(&mock, "fallback please").await;
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0]["body"]["model"], "gpt-4.1-mini");
}

#[tokio::test]
async fn count_tokens_takes_openai_and_responses_bodies() {
    let mock = Mock::start();
    let gw = Gateway::start(&mock_config(&mock, ""));
    for body in [
        json!({"model": "gpt-4.1", "input": "Hello there, how are you?"}),
        json!({"model": "gpt-4.1", "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello"}]}),
    ] {
        let r = gw.post("/v1/messages/count_tokens", KEY, &body).await;
        assert_eq!(r.status(), 200, "{body}");
        assert_eq!(r.headers()["x-izzi-token-count"], "exact");
        let counted: Value = r.json().await.unwrap();
        assert!(counted["input_tokens"].as_u64().unwrap() > 3, "{counted}");
    }
    let r = gw
        .post(
            "/v1/messages/count_tokens",
            KEY,
            &json!({"model": "gpt-4.1"}),
        )
        .await;
    assert_error(r, 400, "invalid_request_error").await;
}

#[tokio::test]
async fn a_request_the_provider_cannot_carry_is_refused_before_it_counts() {
    let mock = Mock::start();
    let one = "izzi-one-request-a-minute";
    let gw = Gateway::start(&mock_config(
        &mock,
        &format!("\n[[keys]]\nname = \"one\"\nkey = \"{one}\"\nrpm = 1\n"),
    ));
    let server_tool = json!({"model": "gpt-4.1", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}],
                             "tools": [{"type": "computer_20250124", "name": "computer", "display_width_px": 1024, "display_height_px": 768}]});
    let r = gw.post("/v1/messages", one, &server_tool).await;
    let message = assert_error(r, 400, "invalid_request_error").await;
    assert!(message.contains("tools[0]"), "{message}");
    let ok = gw
        .post("/v1/messages", one, &claude_body("hi", false))
        .await;
    assert_eq!(ok.status(), 200, "the refused request used no RPM");
}

#[tokio::test]
async fn silent_translated_streams_get_the_clients_own_keepalive() {
    let mock = Mock::start();
    // Claude models behind an OpenAI-kind provider, GPT models behind an Anthropic-kind one.
    let config = format!(
        r#"
[server]
keepalive_s = 1

[[providers]]
name = "anthropic"
kind = "openai"
base_url = "{url}/v1"

[[providers]]
name = "openai"
kind = "anthropic"
base_url = "{url}"
models = ["*"]

[[keys]]
name = "test"
key = "{KEY}"
plan = "ultra"
"#,
        url = mock.url
    );
    let gw = Gateway::start(&config);
    let slow = "mock:pause_ms=2500";
    let text = gw
        .post("/v1/messages", KEY, &claude_body(slow, true))
        .await
        .text()
        .await
        .unwrap();
    assert!(text.contains("event: ping"), "{text}");
    assert!(
        text.trim_end()
            .ends_with("data: {\"type\":\"message_stop\"}"),
        "{text}"
    );
    let text = gw
        .post("/v1/chat/completions", KEY, &gpt_body(slow, true))
        .await
        .text()
        .await
        .unwrap();
    assert!(text.contains(": keep-alive\n\n"), "{text}");
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
}

/// Every path to a value in `value` (members and elements, nested), as JSON pointers.
fn pointers_of(value: &Value, at: String, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let p = format!("{at}/{k}");
                out.push(p.clone());
                pointers_of(v, p, out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                let p = format!("{at}/{i}");
                out.push(p.clone());
                pointers_of(v, p, out);
            }
        }
        _ => {}
    }
}

/// Wrong-typed values for a field holding `current`: a number for a string, a string for the
/// rest, and an object (an array for an object).
fn wrong_values(current: &Value) -> [Value; 2] {
    [
        if current.is_string() {
            json!(7)
        } else {
            json!("x")
        },
        if current.is_object() {
            json!([1])
        } else {
            json!({"a": 1})
        },
    ]
}

#[tokio::test]
async fn wrong_types_in_every_field_get_a_clear_4xx() {
    let mock = Mock::start();
    let gw = Gateway::start(&mock_config(&mock, "rpm = 100000"));
    let schema = json!({"type": "object", "properties": {}});
    let messages = json!({
        "max_tokens": 20, "system": "be brief", "temperature": 0.5, "top_p": 0.9,
        "stop_sequences": ["zz"], "stream": false, "metadata": {"user_id": "u"},
        "tools": [{"name": "f", "description": "d", "input_schema": schema}],
        "tool_choice": {"type": "auto"},
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
    });
    let chat = json!({
        "max_tokens": 20, "temperature": 0.5, "top_p": 0.9, "stop": ["zz"], "stream": false,
        "tools": [{"type": "function", "function": {"name": "f", "description": "d", "parameters": schema}}],
        "tool_choice": "auto", "user": "u",
        "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
    });
    let responses = json!({
        "max_output_tokens": 20, "instructions": "be brief", "temperature": 0.5, "stream": false,
        "tools": [{"type": "function", "name": "f", "parameters": schema}],
        "input": [{"role": "user", "content": [{"type": "input_text", "text": "hi"}]}],
    });
    // What the gateway reads itself, whichever way the request goes.
    let checked = ["/model", "/stream", "/messages", "/input"];
    // A string is also valid here (content, stop sequences, input may be one).
    let string_too = ["/messages/0/content", "/stop", "/input", "/input/0/content"];
    let mut refused = 0;
    for (path, template, native) in [
        ("messages", &messages, "sonnet"),
        ("chat/completions", &chat, "gpt-4.1"),
        ("responses", &responses, ""),
    ] {
        for model in ["sonnet", "gpt-4.1"] {
            let mut body = template.clone();
            body["model"] = json!(model);
            // Translated requests are parsed field by field; a native one goes on as it came
            // (the upstream judges the rest) once the gateway's own fields are checked.
            let translated = model != native;
            let mut pointers = Vec::new();
            pointers_of(&body, String::new(), &mut pointers);
            for pointer in pointers {
                let current = body.pointer(&pointer).cloned().unwrap_or_default();
                for value in wrong_values(&current) {
                    let mut bad = body.clone();
                    *bad.pointer_mut(&pointer).unwrap() = value.clone();
                    let r = gw.post(&format!("/v1/{path}"), KEY, &bad).await;
                    let case = format!("{path} {model} {pointer} = {value}");
                    let status = r.status().as_u16();
                    // JSON Schemas are the tool's own business, passed on unchanged.
                    let opaque =
                        pointer.contains("/input_schema") || pointer.contains("/parameters");
                    let alternative = value.is_string() && string_too.contains(&pointer.as_str());
                    if !alternative
                        && (checked.contains(&pointer.as_str()) || (translated && !opaque))
                    {
                        assert_eq!(status, 400, "{case}");
                        let message = assert_error(r, 400, "invalid_request_error").await;
                        assert!(message.contains('`'), "{case}: {message}");
                        refused += 1;
                    } else {
                        assert!(status < 500, "{case}: {status} {}", r.text().await.unwrap());
                    }
                }
            }
        }
    }
    assert!(refused > 150, "{refused}");
    let ok = gw
        .post("/v1/chat/completions", KEY, &gpt_body("hi", false))
        .await;
    assert_eq!(ok.status(), 200, "the server still serves");
}
