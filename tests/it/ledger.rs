//! The usage ledger against the real binary: rows survive SIGKILL and match what clients saw,
//! spend and counts are rebuilt at restart, a client gone mid-stream leaves a row and frees its
//! slot, SIGTERM flushes, `izzi keys` and `izzi usage` report it, and no key is ever written
//! anywhere but where the user put it.

use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use rust_decimal::Decimal;
use serde_json::Value;

use crate::limits::{body, error, rate, send};
use crate::support::{Gateway, KEY, Mock, http, izzi_bin, mock_config};

/// One ledger row, read straight from `izzi.db`.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    pub(crate) key: String,
    pub(crate) model: String,
    pub(crate) status: u16,
    pub(crate) outcome: String,
    pub(crate) stream: bool,
    pub(crate) input_tokens: u64,
    pub(crate) output_tokens: u64,
    pub(crate) cost: Decimal,
    pub(crate) latency_ms: u64,
    pub(crate) ttft_ms: Option<u64>,
    pub(crate) usage_source: String,
    pub(crate) pricing: String,
}

pub(crate) fn rows(home: &Path) -> Vec<Row> {
    let db = rusqlite::Connection::open_with_flags(
        home.join("izzi.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("open izzi.db");
    let mut stmt = db
        .prepare(
            "SELECT key_name, model, status, outcome, stream, input_tokens + cache_read_tokens
                    + cache_write_tokens, output_tokens, cost_usd, latency_ms, ttft_ms,
                    usage_source, pricing
             FROM ledger ORDER BY id",
        )
        .expect("ledger query");
    stmt.query_map([], |r| {
        Ok(Row {
            key: r.get(0)?,
            model: r.get(1)?,
            status: r.get(2)?,
            outcome: r.get(3)?,
            stream: r.get(4)?,
            input_tokens: r.get::<_, i64>(5)?.try_into().expect("a count"),
            output_tokens: r.get::<_, i64>(6)?.try_into().expect("a count"),
            cost: r.get::<_, String>(7)?.parse().expect("a decimal cost"),
            latency_ms: r.get::<_, i64>(8)?.try_into().expect("a latency"),
            ttft_ms: r
                .get::<_, Option<i64>>(9)?
                .map(|v| v.try_into().expect("a ttft")),
            usage_source: r.get(10)?,
            pricing: r.get(11)?,
        })
    })
    .expect("ledger rows")
    .collect::<Result<_, _>>()
    .expect("ledger rows")
}

/// Waits until the ledger holds at least `n` rows.
pub(crate) async fn wait_rows(home: &Path, n: usize) -> Vec<Row> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let rows = rows(home);
        if rows.len() >= n {
            return rows;
        }
        assert!(
            Instant::now() < deadline,
            "{} rows of {n}: {rows:?}",
            rows.len()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Runs `izzi ARGS` in `home`; returns stdout, stderr and the exit code.
pub(crate) fn izzi(home: &Path, args: &[&str]) -> (String, String, i32) {
    let out = Command::new(izzi_bin())
        .args(args)
        .env("IZZI_HOME", home)
        .env("HOME", home)
        .env("IZZI_KEYRING", "file")
        .output()
        .expect("run izzi");
    (
        String::from_utf8(out.stdout).expect("utf-8 stdout"),
        String::from_utf8(out.stderr).expect("utf-8 stderr"),
        out.status.code().unwrap_or(-1),
    )
}

pub(crate) fn json_of(home: &Path, args: &[&str]) -> Value {
    let (stdout, stderr, code) = izzi(home, args);
    assert_eq!(code, 0, "{stderr}");
    serde_json::from_str(&stdout).expect("JSON output")
}

fn dec(value: &Value) -> Decimal {
    value
        .as_str()
        .expect("an amount string")
        .parse()
        .expect("a decimal amount")
}

pub(crate) fn listed<'a>(keys: &'a Value, name: &str) -> &'a Value {
    keys.as_array()
        .expect("a key list")
        .iter()
        .find(|k| k["name"] == name)
        .expect("the listed key")
}

/// Sends a request and reads its whole answer; `Some(true)` only for a complete 200.
async fn complete(client: &reqwest::Client, gw_url: &str, body: &Value) -> Option<bool> {
    let path = if body["model"] == "sonnet" {
        "messages"
    } else {
        "chat/completions"
    };
    let response = client
        .post(format!("{gw_url}/v1/{path}"))
        .bearer_auth("izzi-load-0000000000")
        .json(body)
        .send()
        .await
        .ok()?;
    let status = response.status();
    let text = response.text().await.ok()?;
    let ended = if body["stream"] == true {
        text.contains("message_stop") || text.contains("[DONE]")
    } else {
        text.contains("\"usage\"")
    };
    Some(status == 200 && ended)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_load_keeps_a_row_for_every_ended_request_and_restarts_consistent() {
    let mock = Mock::start();
    let load_key = |daily: &str| {
        format!(
            "[[keys]]\nname = \"load\"\nkey = \"izzi-load-0000000000\"\nplan = \"ultra\"\nrpm = 100000\nconcurrent = 64\ndaily = {daily}\ncredits_usd = 1000.0\nmonthly_budget_usd = 1000.0\n"
        )
    };
    let mut gw = Gateway::start(&mock_config(&mock, &load_key("1000000")));
    let url = gw.url.clone();
    let client = http();
    let sent = Arc::new(Mutex::new(0_usize));
    let ended: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let workers: Vec<_> = (0..12)
        .map(|w| {
            let (url, sent, ended) = (url.clone(), Arc::clone(&sent), Arc::clone(&ended));
            let client = client.clone();
            tokio::spawn(async move {
                for i in 0.. {
                    let stream = (w + i) % 2 == 0;
                    let model = if (w + i) % 3 == 0 {
                        "gpt-4.1"
                    } else {
                        "sonnet"
                    };
                    let text = if stream {
                        "mock:words=20 mock:chunk_delay_ms=5"
                    } else {
                        "mock:delay_ms=20"
                    };
                    *sent.lock().unwrap() += 1;
                    match complete(&client, &url, &body(model, text, stream)).await {
                        Some(true) => ended.lock().unwrap().push(Instant::now()),
                        Some(false) => panic!("a request failed while the gateway ran"),
                        None => return,
                    }
                }
            })
        })
        .collect();
    // Kill once enough requests have ended (however busy the machine), and while more run.
    let deadline = Instant::now() + Duration::from_secs(60);
    while ended.lock().unwrap().len() < 40 {
        assert!(Instant::now() < deadline, "the load never got going");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    // SIGKILL: dropping the gateway kills the process; keep its home.
    let home = std::mem::replace(&mut gw.home, tempfile::tempdir().unwrap());
    let killed = Instant::now();
    drop(gw);
    for worker in workers {
        worker.await.unwrap();
    }
    let sent = *sent.lock().unwrap();
    let ended = ended.lock().unwrap().clone();
    // A row is committed a few milliseconds after its request's last byte; requests that
    // ended well before the kill must all be there.
    let well_before = ended
        .iter()
        .filter(|t| **t + Duration::from_millis(300) < killed)
        .count();
    let rows = rows(home.path());
    eprintln!(
        "{sent} requests sent, {} ended before the kill ({well_before} 300 ms before it), {} rows",
        ended.len(),
        rows.len()
    );
    assert!(
        well_before >= 20,
        "the load was real: {well_before} requests"
    );
    assert!(
        rows.len() >= well_before,
        "{} rows for {well_before} requests that ended before the kill",
        rows.len()
    );
    assert!(
        rows.len() <= sent,
        "never more rows than requests: {} > {sent}",
        rows.len()
    );
    for row in &rows {
        assert_eq!(
            (row.key.as_str(), row.status, row.outcome.as_str()),
            ("load", 200, "completed")
        );
        assert!(["claude-sonnet-4-20250514", "gpt-4.1"].contains(&row.model.as_str()));
        assert!(row.input_tokens > 0 && row.output_tokens > 0 && row.cost > Decimal::ZERO);
        assert_eq!(row.ttft_ms.is_some(), row.stream);
    }
    let spent: Decimal = rows.iter().map(|r| r.cost).sum();

    // The spend, balance and counts the CLI reports are those of the rows.
    let keys = json_of(home.path(), &["keys", "list", "--json"]);
    let load = listed(&keys, "load");
    assert_eq!(load["requests_today"], rows.len());
    assert_eq!(dec(&load["spent_usd"]), spent);
    assert_eq!(dec(&load["month_spent_usd"]), spent);
    assert_eq!(dec(&load["balance_usd"]), Decimal::from(1000) - spent);
    let usage = json_of(home.path(), &["usage", "--json", "--key", "load"]);
    assert_eq!(usage["total"]["requests"], rows.len());
    assert_eq!(dec(&usage["total"]["cost_usd"]), spent);

    // Restarted with a daily quota of one more than the rows: the rebuilt count admits exactly
    // one request.
    std::fs::write(
        home.path().join("config.toml"),
        mock_config(&mock, &load_key(&(rows.len() + 1).to_string())),
    )
    .unwrap();
    let gw = Gateway::start_in(home, &[]);
    let ok = send(&gw, "izzi-load-0000000000", &body("sonnet", "hi", false)).await;
    assert_eq!(ok.status(), 200, "{}", gw.log());
    let response = send(&gw, "izzi-load-0000000000", &body("sonnet", "hi", false)).await;
    error(response, 429, "quota_exceeded").await;
    let after = wait_rows(gw.home.path(), rows.len() + 1).await;
    let keys = json_of(gw.home.path(), &["keys", "list", "--json"]);
    let total: Decimal = after.iter().map(|r| r.cost).sum();
    assert_eq!(
        dec(&listed(&keys, "load")["balance_usd"]),
        Decimal::from(1000) - total
    );
}

#[tokio::test]
async fn a_client_gone_mid_stream_leaves_a_cut_row_and_frees_its_slot() {
    let mock = Mock::start();
    let gw = Gateway::start(&mock_config(
        &mock,
        "[[keys]]\nname = \"solo\"\nkey = \"izzi-solo-0000000000\"\nplan = \"free\"\n",
    ));
    let response = send(
        &gw,
        "izzi-solo-0000000000",
        &body("sonnet", "mock:words=200 mock:chunk_delay_ms=20", true),
    )
    .await;
    assert_eq!(response.status(), 200);
    let mut stream = response.bytes_stream();
    stream.next().await.unwrap().unwrap();
    stream.next().await.unwrap().unwrap();
    drop(stream);
    let rows = wait_rows(gw.home.path(), 1).await;
    let row = &rows[0];
    assert_eq!(
        (
            row.status,
            row.outcome.as_str(),
            row.stream,
            row.key.as_str()
        ),
        (200, "client_gone", true, "solo")
    );
    assert!(row.input_tokens > 0, "what was used is recorded: {row:?}");
    assert!(row.output_tokens > 0 && row.output_tokens < 200, "{row:?}");
    assert!(row.cost > Decimal::ZERO);
    assert!(row.ttft_ms.is_some_and(|t| t <= row.latency_ms));
    // The free plan allows one request at a time: the slot is free again.
    let next = send(&gw, "izzi-solo-0000000000", &body("sonnet", "hi", false)).await;
    assert_eq!(next.status(), 200);
    assert_eq!(rate(next.headers()).concurrent_remaining, 0);
}

#[cfg(unix)]
#[tokio::test]
async fn sigterm_flushes_the_rows_of_requests_finished_in_the_grace_period() {
    let mock = Mock::start();
    let mut gw = Gateway::start(&mock_config(&mock, ""));
    let response = send(
        &gw,
        KEY,
        &body("sonnet", "mock:words=20 mock:chunk_delay_ms=50", true),
    )
    .await;
    assert_eq!(response.status(), 200);
    let reader = tokio::spawn(async move { response.text().await.unwrap() });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let status = tokio::task::spawn_blocking(move || {
        let status = gw.terminate();
        (status, gw)
    });
    let text = reader.await.unwrap();
    assert!(text.contains("message_stop"), "{text}");
    let (status, gw) = status.await.unwrap();
    assert!(status.success(), "{}", gw.log());
    let rows = rows(gw.home.path());
    assert_eq!(rows.len(), 1, "{}", gw.log());
    assert_eq!(rows[0].outcome, "completed");
    assert!(gw.log().contains("usage ledger flushed"));
}

#[tokio::test]
async fn usage_and_keys_list_report_the_ledger() {
    let mock = Mock::start();
    let gw = Gateway::start(&mock_config(&mock, ""));
    let home = gw.home.path();
    let (made, stderr, code) = izzi(
        home,
        &[
            "keys",
            "create",
            "--name",
            "made",
            "--plan",
            "starter",
            "--credits",
            "5",
            "--budget",
            "3",
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    let made = made.trim().to_owned();
    tokio::time::sleep(Duration::from_secs(1)).await;
    for (key, model, stream) in [
        (KEY, "sonnet", false),
        (KEY, "sonnet", true),
        (KEY, "sonnet", false),
        (made.as_str(), "gpt-4.1", true),
        (made.as_str(), "gpt-4.1", false),
        (made.as_str(), "sonnet", false),
    ] {
        let response = send(&gw, key, &body(model, "hi", stream)).await;
        assert_eq!(response.status(), 200);
        let _ = response.bytes().await.unwrap();
    }
    let rows = wait_rows(home, 6).await;
    let usage = json_of(home, &["usage", "--json"]);
    let lines: Vec<(String, String, u64)> = usage["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["key"].as_str().unwrap().to_owned(),
                l["model"].as_str().unwrap().to_owned(),
                l["requests"].as_u64().unwrap(),
            )
        })
        .collect();
    let sonnet = "claude-sonnet-4-20250514";
    let expected: Vec<(String, String, u64)> = [
        ("made", sonnet, 1),
        ("made", "gpt-4.1", 2),
        ("test", sonnet, 3),
    ]
    .iter()
    .map(|(k, m, n)| ((*k).to_owned(), (*m).to_owned(), *n))
    .collect();
    assert_eq!(lines, expected);
    // Each line's cost is its tokens at the catalog's prices.
    for line in usage["lines"].as_array().unwrap() {
        let path = format!("/v1/models/{}", line["model"].as_str().unwrap());
        let model = gw.get_json(&path, KEY).await;
        let price = |field: &str| -> Decimal {
            model["pricing"][field]
                .to_string()
                .parse()
                .unwrap_or_default()
        };
        let tokens = |field: &str| Decimal::from(line[field].as_u64().unwrap());
        let cost = (tokens("input_tokens") * price("input_per_mtok")
            + tokens("output_tokens") * price("output_per_mtok")
            + tokens("cache_read_tokens") * price("cache_read_per_mtok")
            + tokens("cache_write_tokens") * price("cache_write_per_mtok"))
            / Decimal::from(1_000_000);
        assert_eq!(dec(&line["cost_usd"]), cost, "{line}");
    }
    let total: Decimal = rows.iter().map(|r| r.cost).sum();
    assert_eq!(dec(&usage["total"]["cost_usd"]), total);
    assert_eq!(usage["total"]["requests"], 6);
    let only_made = json_of(home, &["usage", "--json", "--key", "made"]);
    assert_eq!(only_made["total"]["requests"], 3);
    let tomorrow = jiff::Timestamp::now()
        .checked_add(jiff::SignedDuration::from_hours(24))
        .unwrap()
        .strftime("%Y-%m-%d")
        .to_string();
    let none = json_of(home, &["usage", "--json", "--since", &tomorrow]);
    assert_eq!(none["total"]["requests"], 0);
    let (table, _, code) = izzi(home, &["usage"]);
    assert_eq!(code, 0);
    assert!(
        table.starts_with("KEY") && table.contains("gpt-4.1") && table.contains("total"),
        "{table}"
    );

    let keys = json_of(home, &["keys", "list", "--json"]);
    let spent_made: Decimal = rows
        .iter()
        .filter(|r| r.key == "made")
        .map(|r| r.cost)
        .sum();
    let made_listed = listed(&keys, "made");
    assert_eq!(made_listed["source"], "created");
    assert_eq!(made_listed["plan"], "starter");
    assert_eq!(made_listed["limits"]["rpm"], 30);
    assert_eq!(made_listed["requests_today"], 3);
    assert_eq!(dec(&made_listed["month_spent_usd"]), spent_made);
    assert_eq!(dec(&made_listed["monthly_budget_usd"]), Decimal::from(3));
    assert_eq!(
        dec(&made_listed["balance_usd"]),
        Decimal::from(5) - spent_made
    );
    let test_listed = listed(&keys, "test");
    assert_eq!(
        (
            test_listed["source"].as_str(),
            test_listed["requests_today"].as_u64()
        ),
        (Some("config"), Some(3))
    );
    assert!(test_listed["balance_usd"].is_null());
}

#[tokio::test]
async fn keys_are_never_written_to_logs_the_database_or_errors_and_revocation_is_prompt() {
    let mock = Mock::start();
    let gw = Gateway::start(&mock_config(&mock, ""));
    let home = gw.home.path();
    let (made, stderr, code) = izzi(home, &["keys", "create", "--name", "made"]);
    assert_eq!(code, 0, "{stderr}");
    let made = made.trim().to_owned();
    assert!(made.starts_with("izzi-") && made.len() == 37, "{made}");
    assert!(!stderr.contains(&made));
    let (_, stderr, code) = izzi(home, &["keys", "create", "--name", "made"]);
    assert_eq!(code, 2, "a taken name: {stderr}");
    // The running gateway picks the new key up within a second.
    let started = Instant::now();
    loop {
        let response = send(&gw, &made, &body("sonnet", "hi", true)).await;
        if response.status() == 200 {
            let _ = response.text().await.unwrap();
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "the new key was not accepted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut messages = Vec::new();
    for (key, model) in [
        (KEY, "sonnet"),
        (made.as_str(), "nope"),
        ("izzi-a-wrong-guess-123", "sonnet"),
    ] {
        let response = send(&gw, key, &body(model, "mock:status=500", false)).await;
        messages.push(response.text().await.unwrap());
    }
    let (_, stderr, code) = izzi(home, &["keys", "revoke", "made"]);
    assert_eq!(code, 0, "{stderr}");
    let revoked = Instant::now();
    loop {
        let response = send(&gw, &made, &body("sonnet", "hi", false)).await;
        if response.status() == 401 {
            messages.push(response.text().await.unwrap());
            break;
        }
        assert!(
            revoked.elapsed() < Duration::from_secs(1),
            "the revoked key still works"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (listing, _, _) = izzi(home, &["keys", "list", "--json"]);
    let (usage, _, _) = izzi(home, &["usage"]);
    wait_rows(home, 2).await;
    for secret in [KEY, made.as_str(), "izzi-a-wrong-guess-123"] {
        for text in messages.iter().chain([&listing, &usage]) {
            assert!(!text.contains(secret), "`{secret}` in {text}");
        }
        for entry in std::fs::read_dir(home).unwrap() {
            let path = entry.unwrap().path();
            // config.toml holds the static key because the user put it there.
            if path.file_name().is_some_and(|n| n == "config.toml") || path.is_dir() {
                continue;
            }
            let bytes = std::fs::read(&path).unwrap();
            let found = bytes.windows(secret.len()).any(|w| w == secret.as_bytes());
            assert!(!found, "`{secret}` written to {}", path.display());
        }
    }
}

#[tokio::test]
async fn every_upstream_failure_leaves_a_row_saying_how_it_ended() {
    let mock = Mock::start();
    // A port nothing listens on: bind one, then free it.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let extra = format!(
        r#"
[[providers]]
name = "dead"
kind = "openai"
base_url = "http://127.0.0.1:{closed}/v1"
max_retries = 0

[[providers]]
name = "tls"
kind = "openai"
base_url = "{https}/v1"
max_retries = 0

[[models]]
id = "gpt-dead"
provider = "dead"

[[models]]
id = "gpt-tls"
provider = "tls"

[server]
upstream_idle_timeout_s = 1
"#,
        https = mock.url.replace("http://", "https://")
    );
    // No retries: one upstream answer per request, so the row is that answer's.
    let config = mock_config(&mock, &extra).replace(
        "api_key = \"sk-upstream-",
        "max_retries = 0\napi_key = \"sk-upstream-",
    );
    let gw = Gateway::start(&config);
    let home = gw.home.path();
    // (model, text, stream) → the status the client gets and the row's outcome.
    let cases: [(&str, &str, bool, u16, &str); 13] = [
        ("sonnet", "hi", true, 200, "completed"),
        ("sonnet", "mock:status=500", false, 502, "upstream_5xx"),
        (
            "gpt-4.1",
            "mock:status=503 mock:text",
            false,
            502,
            "upstream_5xx",
        ),
        (
            "gpt-4.1",
            "mock:status=502 mock:html",
            true,
            502,
            "upstream_5xx",
        ),
        (
            "sonnet",
            "mock:status=429 mock:retry_after=3",
            false,
            429,
            "upstream_4xx",
        ),
        ("gpt-4.1", "mock:status=429", true, 429, "upstream_4xx"),
        // Cut mid-body, ended without the final events, stalled past the idle timeout.
        (
            "sonnet",
            "mock:drop_after=4 mock:chunk_delay_ms=20",
            true,
            200,
            "upstream_cut",
        ),
        ("gpt-4.1", "mock:end_after=3", true, 200, "upstream_cut"),
        ("sonnet", "mock:end_after=4", true, 200, "upstream_cut"),
        ("sonnet", "mock:pause_ms=3000", true, 200, "timeout"),
        // No answer in time, no listener, no TLS.
        ("gpt-4.1", "mock:delay_ms=3000", false, 502, "timeout"),
        ("gpt-dead", "hi", false, 502, "connect_error"),
        ("gpt-tls", "hi", true, 502, "tls_error"),
    ];
    for (i, (model, text, stream, status, outcome)) in cases.into_iter().enumerate() {
        let response = send(&gw, KEY, &body(model, text, stream)).await;
        assert_eq!(response.status().as_u16(), status, "{model} {text}");
        let _ = response.bytes().await;
        let rows = wait_rows(home, i + 1).await;
        let row = &rows[i];
        assert_eq!(
            (
                row.status,
                row.outcome.as_str(),
                row.stream,
                row.key.as_str()
            ),
            (status, outcome, stream, "test"),
            "{model} {text}: {row:?}"
        );
        // A stream that ended before the upstream reported usage (Chat's comes last) is
        // counted from the request; Messages reports its input first.
        if status == 200 {
            assert!(row.input_tokens > 0, "{model} {text}: {row:?}");
        }
        // Failed before any answer: nothing generated, nothing charged.
        if status != 200 {
            assert_eq!(row.cost, Decimal::ZERO, "{model} {text}: {row:?}");
        }
    }
    // `izzi usage --json` and `/metrics` say how requests ended.
    let report = json_of(home, &["usage", "--json"]);
    let outcomes = &report["total"]["outcomes"];
    for (outcome, n) in [
        ("completed", 1),
        ("upstream_5xx", 3),
        ("upstream_4xx", 2),
        ("upstream_cut", 3),
        ("timeout", 2),
        ("connect_error", 1),
        ("tls_error", 1),
    ] {
        assert_eq!(outcomes[outcome], n, "{outcome}: {report}");
    }
    let metrics = gw.get_text("/metrics").await;
    for outcome in [
        "upstream_5xx",
        "upstream_cut",
        "timeout",
        "connect_error",
        "tls_error",
    ] {
        assert!(
            metrics.contains(&format!("outcome=\"{outcome}\"")),
            "{outcome}: {metrics}"
        );
    }
}
