//! Hostile clients and upstreams: slow senders, idle floods, stalls, TLS mismatches, deep JSON.
//! Each gets the documented error or a closed connection, and everyone else is still served.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{Gateway, KEY, Mock, http_builder, mock_config, open_file_limits};

fn addr(gw: &Gateway) -> String {
    gw.url.trim_start_matches("http://").to_owned()
}

/// How long `stream` stays open once its client sends nothing more (at most 10 s).
fn time_to_close(stream: &mut TcpStream) -> Duration {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    let started = Instant::now();
    let _ = stream.read_to_end(&mut Vec::new());
    started.elapsed()
}

async fn still_serves(gw: &Gateway) {
    let r = gw
        .post(
            "/v1/chat/completions",
            KEY,
            &json!({"model": "gpt-4.1", "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
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
    still_serves(&gw).await;
    assert!(
        time_to_close(&mut slow) < Duration::from_secs(9),
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
async fn thousands_of_idle_connections_do_not_stop_service_or_grow_memory_unbounded() {
    let mock = Mock::start();
    let gw = Gateway::start(&mock_config(&mock, ""));
    still_serves(&gw).await;
    #[cfg(target_os = "linux")]
    let before = gw.rss_kib();
    // Thousands, within the open-file limit this test and the gateway inherit.
    let count =
        open_file_limits("self").map_or(3000, |(soft, _)| soft.saturating_sub(256).min(3000));
    let mut idle = Vec::new();
    for i in 0..count {
        idle.push(TcpStream::connect(addr(&gw)).unwrap());
        // Breaths for the accept loop: a full listen backlog would drop connection attempts
        // and leave them to the kernel's one-second retransmits.
        if i % 100 == 99 {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    still_serves(&gw).await;
    // Each idle connection is a parked task waiting for its first byte: some KiB (debug
    // builds), and `max_connections` caps their number.
    #[cfg(target_os = "linux")]
    {
        let grown = gw.rss_kib().saturating_sub(before);
        assert!(
            grown < count as u64 * 32,
            "RSS grew {grown} KiB for {count} idle connections"
        );
    }
    drop(idle);
    still_serves(&gw).await;
}

/// A soft limit of 1,024 open files is a common default; a gateway kept to it would stop near
/// 500 streams while the system allows more.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn a_low_open_file_limit_is_raised_so_hundreds_of_connections_are_served() {
    let mock = Mock::start();
    let gw = Gateway::start_with_open_files(&mock_config(&mock, ""), 128);
    let hard = open_file_limits("self").and_then(|(_, hard)| hard);
    let limit = gw.open_file_limit();
    assert!(limit > 128, "the gateway kept the soft limit of 128");
    if let Some(hard) = hard {
        assert_eq!(limit, hard, "raised to the hard limit");
    }
    // More idle connections than 128 descriptors allow, each accepted and waiting for its
    // request; a request still gets through at once.
    let idle: Vec<TcpStream> = (0..300)
        .map(|i| {
            if i % 100 == 99 {
                std::thread::sleep(Duration::from_millis(20));
            }
            TcpStream::connect(addr(&gw)).unwrap()
        })
        .collect();
    tokio::time::timeout(Duration::from_secs(10), still_serves(&gw))
        .await
        .expect("served while 300 idle connections are open");
    drop(idle);
}

/// POSTs `body` to `path` over `h2`, a client speaking HTTP/2 with prior knowledge.
async fn post_h2(
    h2: &reqwest::Client,
    gw: &Gateway,
    path: &str,
    body: &Value,
) -> reqwest::Response {
    let r = h2
        .post(format!("{}{path}", gw.url))
        .bearer_auth(KEY)
        .json(body)
        .send()
        .await
        .expect("HTTP/2 request sent");
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    r
}

#[tokio::test]
async fn http2_with_prior_knowledge_and_http1_in_pieces_are_both_served() {
    let mock = Mock::start();
    let gw = Gateway::start(&mock_config(&mock, "[server]\nheader_read_timeout_s = 1\n"));
    let chat = json!({"model": "gpt-4.1", "messages": [{"role": "user", "content": "hi"}]});
    // HTTP/2 in plain text, from a client that knows the gateway speaks it.
    let h2 = http_builder().http2_prior_knowledge().build().unwrap();
    let r = post_h2(&h2, &gw, "/v1/chat/completions", &chat).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["object"], "chat.completion", "{body}");
    // HTTP/1 whose first bytes could start the HTTP/2 preface ("P", then "PR") until the rest
    // arrives: told apart by the next byte, and the request is whole.
    let body = chat.to_string();
    let request = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut pieces = TcpStream::connect(addr(&gw)).unwrap();
    pieces
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    for piece in [&request[..1], &request[1..2], &request[2..]] {
        pieces.write_all(piece.as_bytes()).unwrap();
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut answer = String::new();
    let _ = pieces.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("chat.completion"), "{answer}");
    // The start of the preface and then nothing: closed at the header timeout.
    let mut stalled = TcpStream::connect(addr(&gw)).unwrap();
    stalled.write_all(b"PRI * HTTP/2.0").unwrap();
    assert!(
        time_to_close(&mut stalled) < Duration::from_secs(9),
        "a stalled preface held its connection"
    );
    still_serves(&gw).await;
}

/// An HTTP/2 connection with no request in flight is closed after the same idle cutoff as an
/// HTTP/1 one (`header_read_timeout_s`), with a GOAWAY its client understands; a request that
/// runs longer than the cutoff, silent for longer than it too, is not cut.
#[tokio::test]
async fn idle_http2_connections_are_closed_like_http1_ones() {
    let mock = Mock::start();
    let gw = Gateway::start(&mock_config(&mock, "[server]\nheader_read_timeout_s = 1\n"));
    // The preface and an empty SETTINGS frame, then nothing.
    let mut idle = TcpStream::connect(addr(&gw)).unwrap();
    idle.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").unwrap();
    idle.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0]).unwrap();
    let took = time_to_close(&mut idle);
    assert!(
        (Duration::from_millis(900)..Duration::from_secs(5)).contains(&took),
        "an idle HTTP/2 connection stayed open {took:?}"
    );
    // The same for HTTP/1 after a request, for comparison.
    let mut kept = TcpStream::connect(addr(&gw)).unwrap();
    kept.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert!(time_to_close(&mut kept) < Duration::from_secs(5));
    let h2 = http_builder().http2_prior_knowledge().build().unwrap();
    let stream = json!({"model": "sonnet", "max_tokens": 50, "stream": true,
        "messages": [{"role": "user", "content": "mock:pause_ms=2500"}]});
    let started = Instant::now();
    let text = post_h2(&h2, &gw, "/v1/messages", &stream)
        .await
        .text()
        .await
        .unwrap();
    assert!(started.elapsed() > Duration::from_secs(2));
    assert!(text.contains("message_stop"), "{text}\n{}", gw.log());
    // The connection went idle and was closed with a GOAWAY: the client opens a new one.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let r = h2
        .get(format!("{}/v1/models", gw.url))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
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
    let text = gw
        .post(
            "/v1/messages",
            KEY,
            &json!({"model": "sonnet", "max_tokens": 50, "stream": true,
                      "messages": [{"role": "user", "content": "mock:chunk_delay_ms=3000"}]}),
        )
        .await
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
    let hi = json!({"model": "sonnet", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]});
    let r = gw.post("/v1/messages", KEY, &hi).await;
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
    let r = gw
        .post_bytes("/v1/chat/completions", KEY, deep.into_bytes())
        .await;
    assert_eq!(r.status(), 400);
    let huge = json!({"model": "gpt-4.1", "messages": [{"role": "user", "content": "x".repeat(8 * 1024 * 1024)}]});
    let r = gw.post("/v1/chat/completions", KEY, &huge).await;
    assert_eq!(r.status(), 200, "a large but legal body is forwarded");
    still_serves(&gw).await;
}

#[tokio::test]
async fn an_upstream_that_never_accepts_fails_at_the_configured_connect_timeout() {
    // A listener that never accepts, its backlog full: the kernel drops further connection
    // attempts, so they hang until the connecting side gives up.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let upstream = listener.local_addr().unwrap();
    let mut held = Vec::new();
    while let Ok(stream) = TcpStream::connect_timeout(&upstream, Duration::from_millis(200)) {
        held.push(stream);
        assert!(held.len() < 10_000, "the backlog never filled");
    }
    let gw = Gateway::start(&format!(
        r#"
[server]
connect_timeout_s = 1
upstream_idle_timeout_s = 60

[[providers]]
name = "anthropic"
kind = "anthropic"
base_url = "http://{upstream}"
max_retries = 0

[[keys]]
name = "test"
key = "{KEY}"
"#
    ));
    let started = Instant::now();
    let hi = json!({"model": "sonnet", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]});
    let r = gw.post("/v1/messages", KEY, &hi).await;
    let elapsed = started.elapsed();
    assert_eq!(r.status(), 502);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["type"], "connection_error", "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("`anthropic` did not answer in time"),
        "{body}"
    );
    // The connect timeout, not the 60 s idle one (nor the OS's own minutes).
    assert!(
        elapsed >= Duration::from_secs(1) && elapsed < Duration::from_secs(10),
        "{elapsed:?}"
    );
    drop(held);
}

/// Sends raw bytes on a fresh connection and reads the answer until the server closes it.
fn exchange(gw: &Gateway, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr(gw)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("read timeout");
    stream.write_all(request).expect("send");
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn bodies_over_the_limit_get_413_before_they_are_read() {
    let mock = Mock::start();
    let gw = Gateway::start(&mock_config(
        &mock,
        "[server]\nmax_body_bytes = 1024\nbody_read_timeout_s = 30\n",
    ));
    let head = |framing: &str| {
        format!(
            "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\nContent-Type: application/json\r\nConnection: close\r\n{framing}\r\n\r\n"
        )
    };
    // A gigabyte declared, not one byte of it sent: refused on the header alone.
    let started = Instant::now();
    let answer = exchange(&gw, head("Content-Length: 1000000000").as_bytes());
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("invalid_request_error"), "{answer}");
    // Chunked, so no length to judge by: refused once 1 KiB has come, the rest never sent.
    let mut chunked = head("Transfer-Encoding: chunked").into_bytes();
    for _ in 0..3 {
        chunked.extend_from_slice(format!("200\r\n{}\r\n", "x".repeat(0x200)).as_bytes());
    }
    let answer = exchange(&gw, &chunked);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the bodies were waited for: {:?}",
        started.elapsed()
    );
    still_serves(&gw).await;
}

#[tokio::test]
async fn request_headers_are_never_forwarded_blindly() {
    let mock = Mock::start();
    let gw = Gateway::start(&mock_config(&mock, ""));
    // Hop-by-hop headers (RFC 9110 §7.6.1, and one named by `Connection`), proxy credentials,
    // cookies, forwarding headers, the client's own key and an arbitrary header.
    let hostile = [
        ("Connection", "close, X-Hop-Named"),
        ("X-Hop-Named", "hop"),
        ("Keep-Alive", "timeout=5"),
        ("Proxy-Connection", "keep-alive"),
        ("Proxy-Authorization", "Basic cHJveHktc2VjcmV0"),
        ("TE", "trailers"),
        ("Trailer", "X-After"),
        ("Upgrade", "h2c"),
        ("Cookie", "session=cookie-secret"),
        ("X-Forwarded-For", "10.9.8.7"),
        ("Forwarded", "for=10.9.8.7"),
        ("X-Custom-Secret", "custom-secret"),
        ("User-Agent", "client-agent/1.0"),
    ];
    for (path, auth, model) in [
        ("/v1/messages", format!("X-Api-Key: {KEY}"), "sonnet"),
        (
            "/v1/chat/completions",
            format!("Authorization: Bearer {KEY}"),
            "gpt-4.1",
        ),
    ] {
        let body = json!({"model": model, "max_tokens": 5,
                          "messages": [{"role": "user", "content": "headers"}]})
        .to_string();
        let mut request = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\n{auth}\r\nanthropic-version: 2023-06-01\r\nanthropic-beta: beta-kept\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        );
        for (name, value) in hostile {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        request.push_str(&body);
        let answer = exchange(&gw, request.as_bytes());
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }
    let seen = mock.requests().await;
    assert_eq!(seen.len(), 2);
    for request in &seen {
        let headers = request["headers"].as_object().expect("headers");
        for (name, _) in hostile {
            let name = name.to_ascii_lowercase();
            assert!(
                name == "user-agent" || !headers.contains_key(&name),
                "`{name}` was forwarded: {request}"
            );
        }
        let text = request.to_string();
        for secret in [
            KEY,
            "cHJveHktc2VjcmV0",
            "cookie-secret",
            "custom-secret",
            "10.9.8.7",
            "client-agent",
        ] {
            assert!(
                !text.contains(secret),
                "`{secret}` was forwarded: {request}"
            );
        }
    }
    // What is meant for the upstream does arrive.
    assert_eq!(seen[0]["headers"]["x-api-key"], "sk-upstream-anthropic");
    assert_eq!(seen[0]["headers"]["anthropic-beta"], "beta-kept");
    assert_eq!(
        seen[1]["headers"]["authorization"],
        "Bearer sk-upstream-openai"
    );
}
