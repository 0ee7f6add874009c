//! Hostile clients and upstreams: slow senders, idle floods, stalls, TLS mismatches, deep JSON.
//! Each gets the documented error or a closed connection, and everyone else is still served.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{Gateway, KEY, Mock, http, mock_config};

fn addr(gw: &Gateway) -> String {
    gw.url.trim_start_matches("http://").to_owned()
}

async fn still_serves(gw: &Gateway) {
    let r = http()
        .post(format!("{}/v1/chat/completions", gw.url))
        .bearer_auth(KEY)
        .json(&json!({"model": "gpt-4.1", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn slow_senders_are_cut_off_and_others_served() {
    let mock = Mock::start();
    let gw = Gateway::start(&mock_config(
        &mock,
        "[server]\nheader_read_timeout_s = 1\nbody_read_timeout_s = 1\n",
    ));
    // Headers that never finish: the connection is closed.
    let mut slow = TcpStream::connect(addr(&gw)).unwrap();
    slow.write_all(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    still_serves(&gw).await;
    let started = Instant::now();
    let mut buf = Vec::new();
    let _ = slow.read_to_end(&mut buf);
    assert!(
        started.elapsed() < Duration::from_secs(9),
        "the slow sender was not cut off"
    );
    // A body that never finishes: 408 in the documented shape.
    let mut slow_body = TcpStream::connect(addr(&gw)).unwrap();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"model\""
    );
    slow_body.write_all(head.as_bytes()).unwrap();
    slow_body
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut answer = String::new();
    let _ = slow_body.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        answer.contains(r#""type":"invalid_request_error""#),
        "{answer}"
    );
    still_serves(&gw).await;
}

#[tokio::test]
async fn a_thousand_idle_connections_do_not_stop_service() {
    let mock = Mock::start();
    let gw = Gateway::start(&mock_config(&mock, ""));
    let idle: Vec<TcpStream> = (0..1000)
        .map(|_| TcpStream::connect(addr(&gw)).unwrap())
        .collect();
    still_serves(&gw).await;
    drop(idle);
    still_serves(&gw).await;
}

#[tokio::test]
async fn connections_beyond_the_cap_wait_their_turn() {
    let mock = Mock::start();
    let gw = Gateway::start(&mock_config(
        &mock,
        "[server]\nmax_connections = 4\nheader_read_timeout_s = 1\n",
    ));
    let idle: Vec<TcpStream> = (0..4)
        .map(|_| TcpStream::connect(addr(&gw)).unwrap())
        .collect();
    // The four idle ones hold every slot until the header timeout closes them; then it is our turn.
    still_serves(&gw).await;
    drop(idle);
}

#[tokio::test]
async fn a_stalled_stream_ends_with_an_error_event() {
    let mock = Mock::start();
    let gw = Gateway::start(&mock_config(
        &mock,
        "[server]\nupstream_idle_timeout_s = 1\n",
    ));
    let text = http()
        .post(format!("{}/v1/messages", gw.url))
        .bearer_auth(KEY)
        .json(&json!({"model": "sonnet", "max_tokens": 50, "stream": true,
                      "messages": [{"role": "user", "content": "mock:chunk_delay_ms=3000"}]}))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("message_start"), "{text}");
    assert!(
        text.contains("event: error") && text.contains("connection_error"),
        "{text}"
    );
    assert!(!text.contains("message_stop"), "{text}");
}

#[tokio::test]
async fn a_tls_failure_is_a_connection_error() {
    let mock = Mock::start();
    // The mock speaks plain HTTP; asking it for TLS fails the handshake.
    let config = mock_config(&mock, "").replacen(
        &format!("base_url = \"{}\"", mock.url),
        &format!("base_url = \"{}\"", mock.url.replace("http://", "https://")),
        1,
    );
    let gw = Gateway::start(&config);
    let r = http()
        .post(format!("{}/v1/messages", gw.url))
        .bearer_auth(KEY)
        .json(&json!({"model": "sonnet", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["type"], "connection_error", "{body}");
}

#[tokio::test]
async fn deeply_nested_and_huge_json_is_refused_cleanly() {
    let mock = Mock::start();
    let gw = Gateway::start(&mock_config(&mock, ""));
    let deep = format!(
        r#"{{"model":"gpt-4.1","messages":[{{"role":"user","content":{}1{}}}]}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let r = http()
        .post(format!("{}/v1/chat/completions", gw.url))
        .bearer_auth(KEY)
        .header("content-type", "application/json")
        .body(deep)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let huge = json!({"model": "gpt-4.1", "messages": [{"role": "user", "content": "x".repeat(8 * 1024 * 1024)}]});
    let r = http()
        .post(format!("{}/v1/chat/completions", gw.url))
        .bearer_auth(KEY)
        .json(&huge)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "a large but legal body is forwarded");
    still_serves(&gw).await;
}
