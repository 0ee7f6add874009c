//! A plain-HTTP provider's connections: kept and reused between requests, and a connection the
//! provider closed while idle is never used (the request goes out on a new one).

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Gateway, KEY};

/// A provider speaking just enough HTTP/1.1: every request gets a Chat Completions answer with
/// its length and keep-alive; with `close_after_answer` it then closes the connection without
/// saying so first (as a server whose keep-alive timeout is shorter than the client's). A
/// streamed request gets its first event at once and the rest once the test says `release`.
struct Upstream {
    addr: std::net::SocketAddr,
    connections: Arc<AtomicUsize>,
    release: Arc<AtomicBool>,
}

impl Upstream {
    fn start(close_after_answer: bool) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("address");
        let connections = Arc::new(AtomicUsize::new(0));
        let release = Arc::new(AtomicBool::new(false));
        let (counted, released) = (Arc::clone(&connections), Arc::clone(&release));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                counted.fetch_add(1, Ordering::SeqCst);
                let released = Arc::clone(&released);
                std::thread::spawn(move || serve(stream, close_after_answer, &released));
            }
        });
        Self {
            addr,
            connections,
            release,
        }
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

/// One SSE event of a Chat Completions stream, as one HTTP chunk.
fn chunk(event: &Value) -> String {
    let data = format!("data: {event}\n\n");
    format!("{:x}\r\n{data}\r\n", data.len())
}

/// A streamed answer: the first event, then (once released) the last with its usage, `[DONE]`
/// and the end of the chunked body.
fn stream(writer: &mut TcpStream, release: &AtomicBool) -> std::io::Result<()> {
    let event = |delta: Value, finish: Value| {
        json!({"id": "chatcmpl-pool", "object": "chat.completion.chunk", "created": 1,
               "model": "gpt-4.1",
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    };
    writer.write_all(
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n",
    )?;
    let first = event(
        json!({"role": "assistant", "content": "first"}),
        Value::Null,
    );
    writer.write_all(chunk(&first).as_bytes())?;
    while !release.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut last = event(json!({}), json!("stop"));
    last["usage"] = json!({"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4});
    let done = "data: [DONE]\n\n";
    writer.write_all(format!("{}{:x}\r\n{done}\r\n0\r\n\r\n", chunk(&last), done.len()).as_bytes())
}

fn serve(connection: TcpStream, close_after_answer: bool, release: &AtomicBool) {
    let mut reader = BufReader::new(connection.try_clone().expect("clone"));
    let mut writer = connection;
    loop {
        let mut length = 0_usize;
        let mut line = String::new();
        // The head, up to its empty line; a closed connection ends the loop.
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            if line == "\r\n" {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().expect("a length");
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).expect("the body");
        if String::from_utf8_lossy(&body).contains("\"stream\":true") {
            if stream(&mut writer, release).is_err() {
                return;
            }
            continue;
        }
        let answer = json!({
            "id": "chatcmpl-pool",
            "object": "chat.completion",
            "created": 1,
            "model": "gpt-4.1",
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": "pooled"}}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}
        })
        .to_string();
        let head = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            answer.len()
        );
        if writer
            .write_all(format!("{head}{answer}").as_bytes())
            .is_err()
        {
            return;
        }
        if close_after_answer {
            return;
        }
    }
}

fn gateway(upstream: &Upstream) -> Gateway {
    Gateway::start(&format!(
        r#"
[[providers]]
name = "local"
kind = "openai"
base_url = "http://{addr}/v1"
models = ["*"]
# A failure must show: no second attempt hides a request sent on a dead connection.
max_retries = 0

[[keys]]
name = "test"
key = "{KEY}"
plan = "ultra"
"#,
        addr = upstream.addr
    ))
}

async fn ask(gw: &Gateway) -> Value {
    let hi = json!({"model": "gpt-4.1", "messages": [{"role": "user", "content": "hi"}]});
    let r = gw.post("/v1/chat/completions", KEY, &hi).await;
    assert_eq!(r.status(), 200);
    r.json().await.expect("json")
}

#[tokio::test]
async fn requests_one_after_another_share_one_connection() {
    let upstream = Upstream::start(false);
    let gw = gateway(&upstream);
    for _ in 0..5 {
        let body = ask(&gw).await;
        assert_eq!(body["choices"][0]["message"]["content"], "pooled", "{body}");
    }
    assert_eq!(upstream.connections(), 1);
    // Concurrent requests open more connections, and those are kept too: four bursts of four
    // need at most four at once, not sixteen.
    for _ in 0..4 {
        futures_util::future::join_all((0..4).map(|_| ask(&gw))).await;
    }
    let opened = upstream.connections();
    assert!(opened <= 5, "{opened} connections for 4 bursts of 4");
}

#[tokio::test]
async fn a_connection_the_provider_closed_while_idle_is_not_used() {
    let upstream = Upstream::start(true);
    let gw = gateway(&upstream);
    for round in 1..=5 {
        let body = ask(&gw).await;
        assert_eq!(body["choices"][0]["message"]["content"], "pooled", "{body}");
        assert_eq!(upstream.connections(), round);
        // Let the close reach the gateway, as between two requests of a person typing.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_connection_carrying_a_stream_is_not_lent_until_the_stream_ends() {
    let upstream = Upstream::start(false);
    let gw = gateway(&upstream);
    let streamed = json!({"model": "gpt-4.1", "stream": true,
                          "messages": [{"role": "user", "content": "hi"}]});
    let mut open = gw.post("/v1/chat/completions", KEY, &streamed).await;
    assert_eq!(open.status(), 200);
    let first = open
        .chunk()
        .await
        .expect("readable")
        .expect("the first event");
    assert!(String::from_utf8_lossy(&first).contains("first"));
    // The stream's connection is busy until its body ends: this request gets another one and
    // its answer while the stream is still open (were the busy one lent, it would wait for ever).
    let body = tokio::time::timeout(Duration::from_secs(20), ask(&gw))
        .await
        .expect("answered while the stream is open");
    assert_eq!(body["choices"][0]["message"]["content"], "pooled", "{body}");
    assert_eq!(upstream.connections(), 2);
    upstream.release.store(true, Ordering::SeqCst);
    let mut rest = Vec::new();
    while let Some(bytes) = open.chunk().await.expect("readable") {
        rest.extend_from_slice(&bytes);
    }
    assert!(String::from_utf8_lossy(&rest).contains("[DONE]"));
    // Both connections are idle now, and the next requests reuse them.
    for _ in 0..3 {
        ask(&gw).await;
    }
    assert_eq!(upstream.connections(), 2);
}
