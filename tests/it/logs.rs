//! `--log-format json` / `IZZI_LOG_FORMAT=json`: every line of the log is one JSON object, and
//! a request's line carries the stable fields README documents.

use std::process::Command;

use serde_json::{Value, json};

use crate::support::{Gateway, KEY, Mock, home_with, izzi_bin, mock_config};

fn json_lines(log: &str) -> Vec<Value> {
    log.lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect()
}

async fn one_request_logs_the_stable_fields(mut gw: Gateway) {
    let body = json!({"model": "sonnet", "max_tokens": 16,
        "messages": [{"role": "user", "content": "hi"}]});
    let response = gw.post("/v1/messages", KEY, &body).await;
    assert_eq!(response.status(), 200);
    response.text().await.expect("the answer");
    #[cfg(unix)]
    assert!(gw.terminate().success());

    let events = json_lines(&gw.log());
    let banner = events
        .iter()
        .find(|e| e["message"] == "izzi gateway listening")
        .expect("the banner is a JSON line");
    assert_eq!(banner["url"], gw.url.as_str());
    let finished: Vec<&Value> = events
        .iter()
        .filter(|e| e["message"] == "request finished")
        .collect();
    assert_eq!(finished.len(), 1, "{events:#?}");
    let event = finished[0];
    assert_eq!(event["level"], "DEBUG");
    assert!(
        event["timestamp"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z')),
        "{event}"
    );
    assert_eq!(event["key_name"], "test");
    assert_eq!(event["model"], "claude-sonnet-4-20250514");
    assert_eq!(event["status"], 200);
    assert_eq!(event["outcome"], "completed");
    assert!(event["duration_ms"].is_u64(), "{event}");
    // The request id is the ledger row's.
    let db = rusqlite::Connection::open(gw.home.path().join("izzi.db")).expect("izzi.db");
    let id: String = db
        .query_row("SELECT request_id FROM ledger", [], |r| r.get(0))
        .expect("one ledger row");
    assert_eq!(event["request_id"], id.as_str());
}

#[tokio::test]
async fn log_format_json_flag_writes_json_lines_with_stable_fields() {
    let mock = Mock::start();
    let gw = Gateway::start_logging(
        home_with(&mock_config(&mock, "")),
        &["--log-format", "json"],
        "info,izzi=debug",
    );
    one_request_logs_the_stable_fields(gw).await;
}

#[tokio::test]
async fn izzi_log_format_variable_writes_json_lines() {
    let mock = Mock::start();
    let mut command = Command::new(izzi_bin());
    command.env("IZZI_LOG_FORMAT", "JSON");
    let gw = Gateway::spawn(
        command,
        home_with(&mock_config(&mock, "")),
        &[],
        "info,izzi=debug",
    );
    one_request_logs_the_stable_fields(gw).await;
}

#[test]
fn an_unknown_log_format_is_a_usage_error() {
    let home = tempfile::tempdir().unwrap();
    let out = Command::new(izzi_bin())
        .args(["serve", "--port", "0"])
        .env("IZZI_HOME", home.path())
        .env("IZZI_LOG_FORMAT", "xml")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("`IZZI_LOG_FORMAT=xml`") && stderr.contains("json"),
        "{stderr}"
    );
    let out = Command::new(izzi_bin())
        .args(["serve", "--log-format", "xml"])
        .env("IZZI_HOME", home.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
