//! Money against the real binary: a key with credits or a budget never runs free (unpriced
//! models, duplicate members, holds that undercount images and documents), a client that leaves
//! early still pays for its prompt, costs match the catalog for every usage shape, and upstream
//! answers are read within their caps.

use std::path::Path;
use std::time::Duration;

use rust_decimal::Decimal;
use serde_json::{Value, json};

use crate::ledger::{izzi, json_of, rows, wait_rows};
use crate::limits::{body, error, key, send};
use crate::support::{Gateway, KEY, Mock, http_builder, mock_config};

const CREDITS: &str = "izzi-credits-0000000";
const BUDGET: &str = "izzi-budget-00000000";

/// Tokens and cost of the ledger's last row.
fn last_usage(home: &Path) -> ([u64; 4], Decimal) {
    let db = rusqlite::Connection::open_with_flags(
        home.join("izzi.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("open izzi.db");
    db.query_row(
        "SELECT input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, cost_usd
         FROM ledger ORDER BY id DESC LIMIT 1",
        [],
        |r| {
            let n = |i| {
                r.get::<_, i64>(i)
                    .map(|v| u64::try_from(v).expect("a count"))
            };
            Ok((
                [n(0)?, n(1)?, n(2)?, n(3)?],
                r.get::<_, String>(4)?.parse().expect("a decimal cost"),
            ))
        },
    )
    .expect("a ledger row")
}

/// USD per million tokens as typed from the catalog.
fn per_mtok(tokens: u64, price: &str) -> Decimal {
    Decimal::from(tokens) * price.parse::<Decimal>().expect("a price") / Decimal::from(1_000_000)
}

#[tokio::test]
async fn an_unpriced_model_never_runs_free_for_a_key_with_money_limits() {
    let mock = Mock::start();
    let extra = [
        key("credits", CREDITS, "credits_usd = 0.0001"),
        key("budget", BUDGET, "monthly_budget_usd = 5.0"),
    ]
    .concat();
    let gw = Gateway::start(&mock_config(&mock, &extra));
    // A priced model is refused for the balance, as before.
    let response = send(&gw, CREDITS, &body("gpt-4.1", "hi", false)).await;
    error(response, 402, "insufficient_balance").await;
    // A name only the provider's glob routes has no price: refused before it counts, with
    // the fix named, for credits and budgets alike, streamed or not.
    for (key, stream) in [(CREDITS, false), (CREDITS, true), (BUDGET, false)] {
        let response = send(&gw, key, &body("gpt-9-unknown", "hi", stream)).await;
        let (_, message) = error(response, 400, "invalid_request_error").await;
        assert!(
            message.contains("`gpt-9-unknown` has no price")
                && message.contains("[[models]]")
                && message.contains("[default_price]"),
            "{message}"
        );
    }
    assert!(mock.requests().await.is_empty(), "nothing went upstream");
    // A key without money limits keeps working; its usage is marked unpriced.
    let response = send(&gw, KEY, &body("gpt-9-unknown", "hi", false)).await;
    assert_eq!(response.status(), 200);
    let _ = response.bytes().await;
    let home = gw.home.path();
    let row = wait_rows(home, 1).await.remove(0);
    assert_eq!(
        (row.model.as_str(), row.pricing.as_str(), row.cost),
        ("gpt-9-unknown", "unpriced", Decimal::ZERO)
    );
    let report = json_of(home, &["usage", "--json"]);
    assert_eq!(report["total"]["unpriced_requests"], 1, "{report}");
    let (table, _, code) = izzi(home, &["usage"]);
    assert_eq!(code, 0);
    assert!(table.contains("(1 unpriced)"), "{table}");
    let metrics = gw.get_text("/metrics").await;
    assert!(
        metrics.contains("izzi_unpriced_requests_total{model=\"other\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("izzi_refusals_total{reason=\"unpriced_model\"} 3"),
        "{metrics}"
    );
    // A name a client invents never becomes a series of its own.
    assert!(!metrics.contains("gpt-9-unknown"), "{metrics}");
    assert!(
        metrics.contains(
            "izzi_requests_total{model=\"other\",status=\"200\",outcome=\"completed\"} 1"
        ),
        "{metrics}"
    );
}

#[tokio::test]
async fn default_price_charges_models_without_prices_of_their_own() {
    let mock = Mock::start();
    let extra = format!(
        "{}\n[[models]]\nid = \"my-unpriced\"\nprovider = \"openai\"\n\n[default_price]\ninput_per_mtok = 2.5\noutput_per_mtok = 10.0\n",
        key("credits", CREDITS, "credits_usd = 1.0")
    );
    let gw = Gateway::start(&mock_config(&mock, &extra));
    let home = gw.home.path();
    for (i, model) in ["gpt-9-unknown", "my-unpriced"].into_iter().enumerate() {
        let response = send(&gw, CREDITS, &body(model, "hi", false)).await;
        assert_eq!(response.status(), 200, "{model}");
        let _ = response.bytes().await;
        let row = wait_rows(home, i + 1).await.remove(i);
        let ([input, output, ..], cost) = last_usage(home);
        assert_eq!(row.pricing, "default", "{model}");
        assert!(cost > Decimal::ZERO, "{model}");
        assert_eq!(
            cost,
            per_mtok(input, "2.5") + per_mtok(output, "10.0"),
            "{model}"
        );
    }
}

#[tokio::test]
async fn a_member_given_twice_is_refused_before_it_counts() {
    let mock = Mock::start();
    let gw = Gateway::start(&mock_config(
        &mock,
        &key("credits", CREDITS, "credits_usd = 0.0001"),
    ));
    // izzi would read the first `max_tokens` for the hold; an upstream reads the last.
    let raw = br#"{"model":"gpt-4.1","max_tokens":1,"messages":[{"role":"user","content":"hi"}],"max_tokens":30000}"#;
    let response = gw
        .post_bytes("/v1/chat/completions", CREDITS, raw.to_vec())
        .await;
    let (_, message) = error(response, 400, "invalid_request_error").await;
    assert!(message.contains("`max_tokens` more than once"), "{message}");
    assert!(mock.requests().await.is_empty(), "nothing went upstream");
    assert!(rows(gw.home.path()).is_empty(), "nothing was admitted");
}

#[tokio::test]
async fn images_and_documents_are_held_at_their_tokens_not_their_bytes() {
    let mock = Mock::start();
    let gw = Gateway::start(&mock_config(
        &mock,
        &key("credits", CREDITS, "credits_usd = 0.01"),
    ));
    let message = |content: Value| json!({"model": "sonnet", "max_tokens": 1, "messages": [{"role": "user", "content": content}]});
    let response = send(&gw, CREDITS, &message(json!("hi"))).await;
    assert_eq!(response.status(), 200, "a short text fits the balance");
    let _ = response.bytes().await;
    // Ten image URLs: a few hundred bytes, more than 10,000 tokens at Sonnet's prices.
    let images: Vec<Value> = (0..10)
        .map(|i| json!({"type": "image", "source": {"type": "url", "url": format!("https://example.com/{i}.png")}}))
        .collect();
    let response = send(&gw, CREDITS, &message(Value::Array(images))).await;
    error(response, 402, "insufficient_balance").await;
    // A document by URL: its pages are unknown until it is read.
    let document = json!([{"type": "document", "source": {"type": "url", "url": "https://example.com/a.pdf"}}]);
    let response = send(&gw, CREDITS, &message(document)).await;
    error(response, 402, "insufficient_balance").await;
    assert_eq!(
        mock.requests().await.len(),
        1,
        "only the text went upstream"
    );
}

#[tokio::test]
async fn a_client_that_leaves_before_the_answer_still_pays_for_its_prompt() {
    let mock = Mock::start();
    let gw = Gateway::start(&mock_config(&mock, ""));
    let client = http_builder()
        .timeout(Duration::from_millis(300))
        .build()
        .expect("client");
    let sent = client
        .post(format!("{}/v1/chat/completions", gw.url))
        .bearer_auth(KEY)
        .json(&body(
            "gpt-4.1",
            "mock:delay_ms=3000 a prompt the provider reads",
            false,
        ))
        .send()
        .await;
    assert!(sent.is_err(), "the client gave up first");
    let row = wait_rows(gw.home.path(), 1).await.remove(0);
    assert_eq!(
        (row.status, row.outcome.as_str(), row.usage_source.as_str()),
        (499, "client_gone", "estimate")
    );
    assert!(row.input_tokens > 0 && row.output_tokens == 0, "{row:?}");
    let ([input, ..], cost) = last_usage(gw.home.path());
    assert_eq!(cost, per_mtok(input, "2.0"), "{row:?}");
}

/// One request's body in the client's format, its mock directives in the user message.
fn shaped(path: &str, model: &str, text: &str, stream: bool) -> Value {
    let mut out = body(model, text, stream);
    if path.ends_with("chat/completions") && stream {
        out["stream_options"] = json!({"include_usage": true});
    }
    out
}

#[tokio::test]
async fn costs_match_the_catalogs_prices_for_every_usage_shape() {
    let mock = Mock::start();
    let gw = Gateway::start(&mock_config(&mock, ""));
    let home = gw.home.path();
    // Prices per million tokens from the catalog: (input, output, cache read, cache write).
    let sonnet = ["3.0", "15.0", "0.3", "3.75"];
    // gpt-4.1 lists no cache-write price: writes are charged as input.
    let gpt = ["2.0", "8.0", "0.5", "2.0"];
    // (client path, model, directives, prices, cache writes and one-hour writes reported). The
    // mock reads 100 tokens from the cache and writes 50; Chat Completions has no cache writes:
    // its `prompt_tokens` holds them as input, and the 100 cached ones, counted once.
    let cases = [
        ("/v1/messages", "sonnet", "mock:cache", sonnet, 50, 0),
        ("/v1/messages", "sonnet", "mock:cache_1h", sonnet, 50, 30),
        (
            "/v1/chat/completions",
            "sonnet",
            "mock:cache_1h",
            sonnet,
            50,
            30,
        ),
        ("/v1/chat/completions", "gpt-4.1", "mock:cache", gpt, 0, 0),
        ("/v1/messages", "gpt-4.1", "mock:cache", gpt, 0, 0),
    ];
    let mut n = 0;
    for (path, model, text, [input_p, output_p, read_p, write_p], writes, hour) in cases {
        for stream in [false, true] {
            let response = gw.post(path, KEY, &shaped(path, model, text, stream)).await;
            assert_eq!(response.status(), 200, "{path} {model} {text} {stream}");
            let _ = response.bytes().await;
            n += 1;
            wait_rows(home, n).await;
            let ([input, output, read, write], cost) = last_usage(home);
            let case =
                format!("{path} {model} {text} stream={stream}: {input} {output} {read} {write}");
            assert_eq!((read, write), (100, writes), "{case}");
            let one_hour_rate =
                (input_p.parse::<Decimal>().expect("price") * Decimal::TWO).to_string();
            let expected = per_mtok(input, input_p)
                + per_mtok(output, output_p)
                + per_mtok(read, read_p)
                + per_mtok(write - hour, write_p)
                + per_mtok(hour, &one_hour_rate);
            assert_eq!(cost, expected, "{case}");
        }
    }
    // By hand, one case: Sonnet with 100 cache reads, 20 five-minute and 30 one-hour writes
    // costs $0.000030 + $0.000075 + $0.000180 beyond its input and output.
    assert_eq!(
        per_mtok(100, "0.3") + per_mtok(20, "3.75") + per_mtok(30, "6.0"),
        "0.000285".parse::<Decimal>().expect("decimal")
    );
}

#[tokio::test]
async fn upstream_answers_and_events_over_their_caps_end_as_invalid() {
    let mock = Mock::start();
    let extra = "[server]\nmax_upstream_body_bytes = 4096\nmax_upstream_event_bytes = 4096\n";
    let gw = Gateway::start(&mock_config(&mock, extra));
    let home = gw.home.path();
    // Small answers pass under the caps.
    let response = send(&gw, KEY, &body("gpt-4.1", "hi", false)).await;
    assert_eq!(response.status(), 200);
    let _ = response.bytes().await;
    // A whole answer over the cap: 502, and a row that says why.
    let big = "mock:words=1 mock:word_bytes=10000";
    for (i, model) in ["gpt-4.1", "sonnet"].into_iter().enumerate() {
        let response = send(&gw, KEY, &body(model, big, false)).await;
        let (_, message) = error(response, 502, "upstream_error").await;
        assert!(message.contains("max_upstream_body_bytes"), "{message}");
        let row = wait_rows(home, i + 2).await.remove(i + 1);
        assert_eq!(
            (row.status, row.outcome.as_str()),
            (502, "upstream_invalid")
        );
    }
    // One stream event over the cap: the stream ends with an error event.
    for (i, model) in ["gpt-4.1", "sonnet"].into_iter().enumerate() {
        let response = send(&gw, KEY, &body(model, big, true)).await;
        assert_eq!(response.status(), 200);
        let text = response.text().await.expect("stream");
        assert!(text.contains("max_upstream_event_bytes"), "{text}");
        let row = wait_rows(home, i + 4).await.remove(i + 3);
        assert_eq!(
            (row.status, row.outcome.as_str()),
            (200, "upstream_invalid")
        );
    }
}
