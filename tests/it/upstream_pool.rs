//! A plain-HTTP provider's connections: kept and reused between requests, and a connection the
//! provider closed while idle is never used (the request goes out on a new one).

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Gateway, KEY};

/// A provider speaking just enough HTTP/1.1: every request gets a Chat Completions answer with
/// its length and keep-alive; with `close_after_answer` it then closes the connection without
/// saying so first (as a server whose keep-alive timeout is shorter than the client's).
struct Upstream {
    addr: std::net::SocketAddr,
    connections: Arc<AtomicUsize>,
}

impl Upstream {
    fn start(close_after_answer: bool) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("address");
        let connections = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&connections);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                counted.fetch_add(1, Ordering::SeqCst);
                std::thread::spawn(move || serve(stream, close_after_answer));
            }
        });
        Self { addr, connections }
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

fn serve(stream: TcpStream, close_after_answer: bool) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut writer = stream;
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
