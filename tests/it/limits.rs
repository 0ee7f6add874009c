//! Limits against the real binary: every step of SPEC's check order with its status, type and
//! headers; exact admission under concurrency (RPM and concurrent streams); a Retry-After that
//! is true; the IP block and its expiry; `GET /metrics`.

use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

use crate::support::{Gateway, KEY, Mock, http, mock_config};

/// A request body for `model` (an alias or id), with mock directives in the user message.
pub(crate) fn body(model: &str, text: &str, stream: bool) -> Value {
    json!({
        "model": model,
        "max_tokens": 64,
        "stream": stream,
        "messages": [{"role": "user", "content": text}],
    })
}

/// POSTs `body` to `/v1/messages` (Claude models) or `/v1/chat/completions` (the rest).
pub(crate) async fn send(gw: &Gateway, key: &str, body: &Value) -> reqwest::Response {
    let model = body["model"].as_str().unwrap_or_default();
    let path = if model.starts_with("claude") || ["sonnet", "opus", "haiku"].contains(&model) {
        "/v1/messages"
    } else {
        "/v1/chat/completions"
    };
    gw.post(path, key, body).await
}

/// Asserts `response` is a 429 for concurrency, every one of `limit` slots taken; returns its
/// headers and rate.
pub(crate) async fn refused_for_concurrency(
    response: reqwest::Response,
    limit: u32,
) -> (HeaderMap, Rate) {
    let (headers, message) = error(response, 429, "rate_limit_error").await;
    assert!(message.contains("Concurrent"), "{message}");
    let refused = rate(&headers);
    assert_eq!(
        (refused.concurrent_limit, refused.concurrent_remaining),
        (limit, 0)
    );
    (headers, refused)
}

/// Sends `body` until it is admitted, every refusal a 429 `rate_limit_error`, for at most
/// `within` (else fails saying `never`); returns the 200.
pub(crate) async fn admitted_within(
    gw: &Gateway,
    key: &str,
    body: &Value,
    within: Duration,
    never: &str,
) -> reqwest::Response {
    let deadline = Instant::now() + within;
    loop {
        let response = send(gw, key, body).await;
        if response.status() == 200 {
            return response;
        }
        error(response, 429, "rate_limit_error").await;
        assert!(Instant::now() < deadline, "{never}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The six rate-limit headers, checked for presence and form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rate {
    pub(crate) tier: String,
    pub(crate) limit: u32,
    pub(crate) remaining: u32,
    pub(crate) reset: jiff::Timestamp,
    pub(crate) concurrent_limit: u32,
    pub(crate) concurrent_remaining: u32,
}

pub(crate) fn rate(headers: &HeaderMap) -> Rate {
    let get = |name: &str| {
        headers
            .get(name)
            .unwrap_or_else(|| panic!("`{name}` missing from {headers:?}"))
            .to_str()
            .expect("ascii header")
            .to_owned()
    };
    let num = |name: &str| get(name).parse::<u32>().expect("a number header");
    let reset_text = get("x-ratelimit-reset-requests");
    let reset: jiff::Timestamp = reset_text.parse().expect("an RFC 3339 reset");
    assert!(
        reset_text.ends_with(":00Z") && reset.as_second() % 60 == 0,
        "the reset is a UTC minute boundary in whole seconds: {reset_text}"
    );
    let now = jiff::Timestamp::now().as_second();
    assert!(
        reset.as_second() > now - 2 && reset.as_second() <= now + 60,
        "{reset_text} is the next minute boundary"
    );
    Rate {
        tier: get("x-ratelimit-tier"),
        limit: num("x-ratelimit-limit-requests"),
        remaining: num("x-ratelimit-remaining-requests"),
        reset,
        concurrent_limit: num("x-concurrent-limit"),
        concurrent_remaining: num("x-concurrent-remaining"),
    }
}

fn retry_after(headers: &HeaderMap) -> u64 {
    headers["retry-after"]
        .to_str()
        .expect("ascii Retry-After")
        .parse()
        .expect("whole seconds")
}

/// Asserts status and error type; returns the headers and the message.
pub(crate) async fn error(
    response: reqwest::Response,
    status: u16,
    kind: &str,
) -> (HeaderMap, String) {
    let headers = response.headers().clone();
    let got = response.status().as_u16();
    let body: Value = response.json().await.expect("error body is JSON");
    assert_eq!(
        (got, body["error"]["type"].as_str()),
        (status, Some(kind)),
        "{body}"
    );
    assert_eq!(body["type"], "error");
    (
        headers,
        body["error"]["message"]
            .as_str()
            .expect("error message")
            .to_owned(),
    )
}

/// Waits, if needed, until at least `room` seconds are left in the current UTC minute, so a
/// burst stays inside one RPM window.
pub(crate) async fn inside_one_minute(room: i64) {
    let second = jiff::Timestamp::now().as_second() % 60;
    if second > 60 - room {
        tokio::time::sleep(Duration::from_secs(
            u64::try_from(61 - second).expect("seconds"),
        ))
        .await;
    }
}

pub(crate) fn key(name: &str, key: &str, fields: &str) -> String {
    format!("[[keys]]\nname = \"{name}\"\nkey = \"{key}\"\n{fields}\n")
}

#[tokio::test]
async fn each_check_in_spec_order_with_its_status_type_and_headers() {
    let mock = Mock::start();
    let extra = [
        key(
            "broke",
            "izzi-broke-0000000000",
            "plan = \"starter\"\ncredits_usd = 0.0\nmonthly_budget_usd = 0.0\nrpm = 2",
        ),
        key(
            "budget",
            "izzi-budget-000000000",
            "plan = \"max\"\nmonthly_budget_usd = 0.0",
        ),
        key("daily", "izzi-daily-0000000000", "daily = 1\nrpm = 1"),
        key("rpm", "izzi-rpm-000000000000", "plan = \"free\"\nrpm = 1"),
    ]
    .concat();
    // No catch-all provider, so an unknown model is a 404.
    let config = mock_config(&mock, &extra).replace(r#"models = ["*"]"#, r#"models = ["gpt-*"]"#);
    let gw = Gateway::start(&config);
    inside_one_minute(20).await;

    // Shape before model: an unknown model in a body without `messages` is a 400.
    let response = send(&gw, "izzi-broke-0000000000", &json!({"model": "nope"})).await;
    let (headers, _) = error(response, 400, "invalid_request_error").await;
    assert_eq!(rate(&headers).tier, "starter");
    // Model before balance: the broke key learns of the unknown model first.
    let response = send(&gw, "izzi-broke-0000000000", &body("nope", "hi", false)).await;
    let (headers, _) = error(response, 404, "not_found").await;
    assert_eq!(rate(&headers).remaining, 2);
    // Balance before budget (this key has neither credits nor budget left).
    let response = send(&gw, "izzi-broke-0000000000", &body("sonnet", "hi", false)).await;
    let (headers, message) = error(response, 402, "insufficient_balance").await;
    assert!(message.contains("balance"), "{message}");
    assert!(headers.get("retry-after").is_none());
    let broke = rate(&headers);
    assert_eq!(
        (broke.limit, broke.remaining),
        (2, 2),
        "a refusal takes nothing"
    );
    let response = send(&gw, "izzi-budget-000000000", &body("sonnet", "hi", true)).await;
    let (headers, message) = error(response, 402, "budget_exceeded").await;
    assert!(message.contains("monthly budget"), "{message}");
    assert_eq!(rate(&headers).tier, "max");

    // Daily quota before RPM: both are spent after one request; the day's quota is named.
    let ok = send(&gw, "izzi-daily-0000000000", &body("gpt-4.1", "hi", false)).await;
    assert_eq!(ok.status(), 200);
    assert_eq!(rate(ok.headers()).remaining, 0);
    let response = send(&gw, "izzi-daily-0000000000", &body("gpt-4.1", "hi", false)).await;
    let (headers, message) = error(response, 429, "quota_exceeded").await;
    let now = jiff::Timestamp::now().as_second();
    let midnight = now - now % 86_400 + 86_400;
    let wait = retry_after(&headers);
    assert!(
        (midnight - now).abs_diff(i64::try_from(wait).unwrap()) <= 2,
        "Retry-After {wait} is the time to UTC midnight"
    );
    assert!(message.contains(&format!("{wait} seconds")), "{message}");
    rate(&headers);

    // RPM.
    let ok = send(&gw, "izzi-rpm-000000000000", &body("sonnet", "hi", true)).await;
    assert_eq!(ok.status(), 200);
    let first = rate(ok.headers());
    assert_eq!(
        (
            first.tier.as_str(),
            first.limit,
            first.remaining,
            first.concurrent_limit
        ),
        ("free", 1, 0, 1)
    );
    let _ = ok.bytes().await.unwrap();
    let response = send(&gw, "izzi-rpm-000000000000", &body("sonnet", "hi", false)).await;
    let (headers, message) = error(response, 429, "rate_limit_error").await;
    let refused = rate(&headers);
    let wait = retry_after(&headers);
    let left = refused.reset.as_second() - jiff::Timestamp::now().as_second();
    assert!(
        (1..=60).contains(&wait) && left.abs_diff(i64::try_from(wait).unwrap()) <= 1,
        "Retry-After {wait} is the time to the reset ({left}s)"
    );
    assert!(
        message.starts_with("Rate limit exceeded. Try again in"),
        "{message}"
    );

    // count_tokens and models need the key but count toward nothing, and carry the headers.
    let counted = gw
        .post(
            "/v1/messages/count_tokens",
            "izzi-rpm-000000000000",
            &body("sonnet", "hi", false),
        )
        .await;
    assert_eq!(counted.status(), 200);
    assert_eq!(rate(counted.headers()).remaining, 0);
    let models = gw.get("/v1/models", "izzi-rpm-000000000000").await;
    assert_eq!(models.status(), 200);
    assert_eq!(rate(models.headers()).tier, "free");

    // Keys: a wrong key is a 401 with no rate-limit headers.
    let response = send(&gw, "izzi-not-a-key-at-all", &body("sonnet", "hi", false)).await;
    let (headers, message) = error(response, 401, "authentication_error").await;
    assert!(headers.get("x-ratelimit-tier").is_none());
    assert!(!message.contains("izzi-not-a-key-at-all"));
    // Nothing refused reached the upstream: one request each from `daily` and `rpm`.
    let inference = mock
        .requests()
        .await
        .into_iter()
        .filter(|r| r["path"] != "/v1/messages/count_tokens")
        .count();
    assert_eq!(inference, 2);
}

#[tokio::test]
async fn rpm_60_admits_exactly_60_of_200_simultaneous_requests() {
    let mock = Mock::start();
    let gw = Gateway::start(&mock_config(
        &mock,
        &key(
            "burst",
            "izzi-burst-0000000000",
            "plan = \"pro\"\nconcurrent = 500\ndaily = 100000",
        ),
    ));
    inside_one_minute(20).await;
    let requests = (0..200).map(|i| {
        let model = if i % 2 == 0 { "sonnet" } else { "gpt-4.1" };
        let body = body(model, "mock:delay_ms=20", i % 3 == 0);
        let gw = &gw;
        async move {
            let response = send(gw, "izzi-burst-0000000000", &body).await;
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let text = response.text().await.unwrap();
            (status, headers, text)
        }
    });
    let answers = futures_util::future::join_all(requests).await;
    let admitted = answers.iter().filter(|(s, _, _)| *s == 200).count();
    assert_eq!(admitted, 60, "exactly the RPM is admitted");
    let mut remaining: Vec<u32> = Vec::new();
    for (status, headers, text) in &answers {
        let r = rate(headers);
        assert_eq!((r.limit, r.tier.as_str()), (60, "pro"));
        if *status == 200 {
            remaining.push(r.remaining);
        } else {
            assert_eq!(*status, 429, "{text}");
            assert!(text.contains("rate_limit_error"), "{text}");
            assert_eq!(r.remaining, 0);
            assert!((1..=60).contains(&retry_after(headers)));
        }
    }
    // Each admitted request saw its own place in the window: 59, 58, ... 0, once each.
    remaining.sort_unstable();
    assert_eq!(remaining, (0..60).collect::<Vec<u32>>());
    assert_eq!(mock.requests().await.len(), 60);
}

#[tokio::test]
async fn concurrency_3_refuses_a_fourth_stream_until_one_ends() {
    let mock = Mock::start();
    let gw = Gateway::start(&mock_config(
        &mock,
        &key(
            "three",
            "izzi-three-0000000000",
            "plan = \"pro\"\nrpm = 1000",
        ),
    ));
    // The first stream ends after about 2 s; the others run far longer, so only the first can
    // free a slot while the test watches.
    let slow = body("sonnet", "mock:words=40 mock:chunk_delay_ms=50", true);
    let long = body("sonnet", "mock:words=400 mock:chunk_delay_ms=50", true);
    let mut streams = Vec::new();
    for (expected, stream) in [(2, &slow), (1, &long), (0, &long)] {
        let response = send(&gw, "izzi-three-0000000000", stream).await;
        assert_eq!(response.status(), 200);
        assert_eq!(rate(response.headers()).concurrent_remaining, expected);
        streams.push(response.bytes_stream());
    }
    let fourth = body("gpt-4.1", "hi", true);
    let response = send(&gw, "izzi-three-0000000000", &fourth).await;
    let (headers, refused) = refused_for_concurrency(response, 3).await;
    assert_eq!(refused.remaining, 997, "the refused request used no RPM");
    let wait = retry_after(&headers);
    assert_eq!(wait, 1);
    // Still three running after Retry-After: refused again.
    tokio::time::sleep(Duration::from_secs(wait)).await;
    let response = send(&gw, "izzi-three-0000000000", &fourth).await;
    error(response, 429, "rate_limit_error").await;
    // One stream ends: a fourth stream is admitted at once, and the three slots are full again.
    let mut first = streams.remove(0);
    while let Some(chunk) = first.next().await {
        chunk.unwrap();
    }
    let response = send(&gw, "izzi-three-0000000000", &long).await;
    assert_eq!(response.status(), 200, "admitted once a stream ended");
    assert_eq!(rate(response.headers()).concurrent_remaining, 0);
    streams.push(response.bytes_stream());
    // A client that walks away mid-stream frees its slot too, as soon as the gateway notices.
    let mut gone = streams.remove(0);
    gone.next().await.unwrap().unwrap();
    drop(gone);
    let response = admitted_within(
        &gw,
        "izzi-three-0000000000",
        &fourth,
        Duration::from_secs(5),
        "the abandoned stream's slot was never freed",
    )
    .await;
    let _ = response.bytes().await.unwrap();
    drop(streams);
}

#[tokio::test]
async fn retry_after_is_true_a_client_that_waits_that_long_is_admitted() {
    let mock = Mock::start();
    let gw = Gateway::start(&mock_config(
        &mock,
        &key("two", "izzi-two-000000000000", "rpm = 2"),
    ));
    for _ in 0..2 {
        let ok = send(&gw, "izzi-two-000000000000", &body("gpt-4.1", "hi", false)).await;
        assert_eq!(ok.status(), 200);
    }
    let response = send(&gw, "izzi-two-000000000000", &body("gpt-4.1", "hi", false)).await;
    let (headers, _) = error(response, 429, "rate_limit_error").await;
    let wait = retry_after(&headers);
    assert!((1..=60).contains(&wait));
    tokio::time::sleep(Duration::from_secs(wait)).await;
    let ok = send(&gw, "izzi-two-000000000000", &body("gpt-4.1", "hi", false)).await;
    assert_eq!(
        ok.status(),
        200,
        "admitted after waiting Retry-After ({wait}s)"
    );
    assert_eq!(rate(ok.headers()).remaining, 1, "a new window");
}

#[tokio::test]
async fn the_ip_block_counts_only_wrong_keys_and_expires() {
    let mock = Mock::start();
    let config = format!(
        "[security]\nip_block_after_failures = 3\nip_block_window_s = 60\nip_block_duration_s = 2\n{}",
        mock_config(&mock, "")
    );
    let gw = Gateway::start(&config);
    let client = http();
    let root = format!("{}/", gw.url);
    let models = format!("{}/v1/models", gw.url);
    // Preconnects, health checks and missing keys never count.
    for _ in 0..10 {
        assert_eq!(client.head(&root).send().await.unwrap().status(), 200);
        gw.get_text("/health").await;
        let missing = client.get(&models).send().await.unwrap();
        error(missing, 401, "authentication_error").await;
    }
    assert_eq!(gw.get("/v1/models", KEY).await.status(), 200);
    // Three wrong keys block the address for wrong and missing keys. This is loopback, which
    // every local tool shares, so the right key still passes (elsewhere it would not: unit
    // tests in `gateway::auth`).
    for _ in 0..3 {
        let wrong = gw.get("/v1/models", "izzi-guess").await;
        error(wrong, 401, "authentication_error").await;
    }
    let blocked = gw.get("/v1/models", "izzi-guess").await;
    let (headers, message) = error(blocked, 403, "ip_blocked").await;
    assert!(headers.get("x-ratelimit-tier").is_none());
    let wait = retry_after(&headers);
    assert!((1..=2).contains(&wait), "{wait}");
    assert!(message.contains(&format!("{wait} seconds")), "{message}");
    let missing = client.get(&models).send().await.unwrap();
    error(missing, 403, "ip_blocked").await;
    assert_eq!(gw.get("/v1/models", KEY).await.status(), 200);
    gw.get_text("/health").await;
    assert_eq!(client.head(&root).send().await.unwrap().status(), 200);
    // The block expires after its duration.
    tokio::time::sleep(Duration::from_secs(wait) + Duration::from_millis(100)).await;
    let wrong = gw.get("/v1/models", "izzi-guess").await;
    error(wrong, 401, "authentication_error").await;
    assert_eq!(gw.get("/v1/models", KEY).await.status(), 200);
    assert!(mock.requests().await.is_empty());
}

#[tokio::test]
async fn metrics_are_prometheus_text_without_a_key() {
    let mock = Mock::start();
    let gw = Gateway::start(&mock_config(
        &mock,
        &key("one", "izzi-one-000000000000", "rpm = 1"),
    ));
    inside_one_minute(10).await;
    let ok = send(&gw, "izzi-one-000000000000", &body("sonnet", "hi", true)).await;
    assert_eq!(ok.status(), 200);
    let _ = ok.bytes().await.unwrap();
    let refused = send(&gw, "izzi-one-000000000000", &body("sonnet", "hi", true)).await;
    assert_eq!(refused.status(), 429);
    let plain = send(&gw, KEY, &body("gpt-4.1", "hi", false)).await;
    assert_eq!(plain.status(), 200);
    let _ = plain.bytes().await.unwrap();
    let client = http();
    let deadline = Instant::now() + Duration::from_secs(10);
    let text = loop {
        let response = client
            .get(format!("{}/metrics", gw.url))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/plain")
        );
        let text = response.text().await.unwrap();
        // Requests are counted once their ledger rows are committed.
        if text.contains("model=\"gpt-4.1\",status=\"200\"") || Instant::now() > deadline {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    for expected in [
        "izzi_requests_total{model=\"claude-sonnet-4-20250514\",status=\"200\",outcome=\"completed\"} 1",
        "izzi_requests_total{model=\"gpt-4.1\",status=\"200\",outcome=\"completed\"} 1",
        "izzi_request_duration_seconds_count{model=\"gpt-4.1\"} 1",
        "izzi_time_to_first_byte_seconds_count{model=\"claude-sonnet-4-20250514\"} 1",
        "izzi_refusals_total{reason=\"rpm\"} 1",
        "izzi_tokens_total{model=\"gpt-4.1\",kind=\"input\"}",
        "izzi_cost_nanodollars_total{model=\"gpt-4.1\"}",
        "# TYPE izzi_request_duration_seconds histogram",
        "izzi_request_duration_seconds_bucket{model=\"gpt-4.1\",le=\"+Inf\"} 1",
    ] {
        assert!(
            text.contains(expected),
            "`{expected}` missing from:\n{text}"
        );
    }
    assert!(!text.contains("izzi_time_to_first_byte_seconds_count{model=\"gpt-4.1\"}"));
    assert!(!text.contains(KEY) && !text.contains("izzi-one-000000000000"));
}

/// The hold for a key with a balance or a budget is first bounded by the body's length; a bound
/// over the balance or budget is tightened by counting the prompt before anything is refused,
/// and only a real refusal is counted.
#[tokio::test]
async fn a_hold_bounded_by_length_is_counted_before_a_refusal() {
    let mock = Mock::start();
    let extra = [
        key("credits", "izzi-credits-0000000", "credits_usd = 0.03"),
        key(
            "budget",
            "izzi-budget-00000000",
            "monthly_budget_usd = 0.03",
        ),
        key("poor", "izzi-poor-0000000000", "credits_usd = 0.005"),
    ]
    .concat();
    let gw = Gateway::start(&mock_config(&mock, &extra));
    // ~20 KB of prompt: bounded by its length the hold is ~$0.061 at Sonnet's $3/M input, but
    // its ~3,400 tokens cost ~$0.011.
    let prompt = "hello ".repeat(3_400);
    for key in ["izzi-credits-0000000", "izzi-budget-00000000"] {
        let response = send(&gw, key, &body("sonnet", &prompt, false)).await;
        assert_eq!(response.status(), 200, "{key}");
        let _ = response.bytes().await.unwrap();
    }
    let response = send(&gw, "izzi-poor-0000000000", &body("sonnet", &prompt, false)).await;
    let (_, message) = error(response, 402, "insufficient_balance").await;
    // The message gives the counted hold, not the length bound.
    let hold: f64 = message
        .rsplit("up to $")
        .next()
        .and_then(|rest| rest.split(':').next())
        .and_then(|amount| amount.parse().ok())
        .unwrap_or_else(|| panic!("no hold in: {message}"));
    assert!((0.005..0.03).contains(&hold), "{message}");
    let text = gw.get_text("/metrics").await;
    assert!(
        text.contains("izzi_refusals_total{reason=\"insufficient_balance\"} 1"),
        "{text}"
    );
    assert!(!text.contains("budget_exceeded"), "{text}");
}
