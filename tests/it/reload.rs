//! SIGHUP reloads `config.toml` while the gateway serves: keys and providers change for new
//! requests, requests in flight finish on the config they started with, no request fails, and a
//! broken file changes nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use serde_json::{Value, json};

use crate::support::{Gateway, KEY, Mock, http, mock_config};

const NEW_KEY: &str = "izzi-added-by-reload-0000000000";
/// The load's key: its limits stay out of the way.
const LOAD_KEY: &str = "izzi-load-key-000000000000000";
const LOAD: &str = "[[keys]]\nname = \"load\"\nkey = \"izzi-load-key-000000000000000\"\nrpm = 1000000\nconcurrent = 1000\ndaily = 10000000\n";

pub(crate) fn hangup(pid: u64) {
    let sent = std::process::Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(sent.success());
}

async fn health(gateway: &Gateway) -> Value {
    serde_json::from_str(&gateway.get_text("/health").await).expect("health JSON")
}

/// Waits until the gateway has finished `n` reloads; its `/health`.
pub(crate) async fn reloaded(gateway: &Gateway, n: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let health = health(gateway).await;
        if health["config"]["reloads"].as_u64() >= Some(n) {
            return health;
        }
        assert!(Instant::now() < deadline, "no reload:\n{}", gateway.log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn claude(stream: bool) -> Value {
    json!({
        "model": "sonnet",
        "max_tokens": 50,
        "stream": stream,
        "messages": [{"role": "user", "content": "hi mock:words=5"}],
    })
}

#[tokio::test]
async fn sighup_reloads_keys_and_providers_under_load_and_a_broken_file_changes_nothing() {
    let mock = Mock::start();
    let gateway = Gateway::start(&mock_config(&mock, LOAD));
    let pid = health(&gateway).await["pid"].as_u64().expect("pid");
    let config_path = gateway.home.path().join("config.toml");

    // Load on the Anthropic provider, which every config keeps, through all the reloads.
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let mut load = Vec::new();
    for i in 0..6 {
        let (url, stop, failures, done) = (
            gateway.url.clone(),
            Arc::clone(&stop),
            Arc::clone(&failures),
            Arc::clone(&done),
        );
        load.push(tokio::spawn(async move {
            let client = http();
            while !stop.load(Ordering::Relaxed) {
                let response = client
                    .post(format!("{url}/v1/messages"))
                    .bearer_auth(LOAD_KEY)
                    .json(&claude(i % 2 == 0))
                    .send()
                    .await;
                let ok = match response {
                    Ok(r) if r.status() == 200 => r.bytes().await.is_ok(),
                    _ => false,
                };
                if !ok {
                    failures.fetch_add(1, Ordering::Relaxed);
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }

    // A slow stream over the OpenAI provider, in flight while that provider is taken away.
    let slow = http()
        .post(format!("{}/v1/chat/completions", gateway.url))
        .bearer_auth(KEY)
        .json(&json!({
            "model": "gpt-4.1",
            "stream": true,
            "messages": [{"role": "user", "content": "hi mock:words=20 mock:chunk_delay_ms=60"}],
        }))
        .send()
        .await
        .expect("slow stream");
    assert_eq!(slow.status(), 200);
    let mut slow = slow.bytes_stream();
    let first = slow.next().await.expect("first chunk").expect("chunk");

    // A request whose body is still arriving: it came under the old config and stays on it.
    let (rest_tx, rest_rx) = tokio::sync::oneshot::channel::<()>();
    let body = serde_json::to_vec(&json!({
        "model": "gpt-4.1",
        "messages": [{"role": "user", "content": "arrived before the reload"}],
    }))
    .expect("body");
    let (head, tail) = body.split_at(body.len() / 2);
    let (head, tail) = (head.to_vec(), tail.to_vec());
    let parts = futures_util::stream::once(async move { Ok::<_, std::io::Error>(head) }).chain(
        futures_util::stream::once(async move {
            let _ = rest_rx.await;
            Ok(tail)
        }),
    );
    let arriving = tokio::spawn(
        http()
            .post(format!("{}/v1/chat/completions", gateway.url))
            .bearer_auth(KEY)
            .header("content-type", "application/json")
            .body(reqwest::Body::wrap_stream(parts))
            .send(),
    );
    // Its head is in when the mock has seen nothing more and the gateway holds the connection.
    tokio::time::sleep(Duration::from_millis(300)).await;

    // The new config: one more key, and the OpenAI provider moved to where nothing listens.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead_url = format!("http://{}/v1", dead.local_addr().expect("addr"));
    drop(dead);
    let new_config = mock_config(
        &mock,
        &format!("{LOAD}[[keys]]\nname = \"new\"\nkey = \"{NEW_KEY}\"\n"),
    )
    .replace(&format!("{}/v1", mock.url), &dead_url);
    assert!(new_config.contains(&dead_url));
    std::fs::write(&config_path, &new_config).expect("write config");
    let sent = Instant::now();
    hangup(pid);
    // The new key works within a second.
    loop {
        let status = gateway.get("/v1/models", NEW_KEY).await.status();
        if status == 200 {
            break;
        }
        assert!(
            sent.elapsed() < Duration::from_secs(1),
            "the new key still gets {status} after {:?}",
            sent.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let health = reloaded(&gateway, 1).await;
    assert_eq!(health["config"]["error"], Value::Null, "{health}");
    assert_eq!(health["pid"].as_u64(), Some(pid), "the process changed");

    // The stream started before the reload ends whole, on the provider it started with.
    let mut body = String::from_utf8_lossy(&first).into_owned();
    while let Some(chunk) = slow.next().await {
        body.push_str(&String::from_utf8_lossy(&chunk.expect("stream chunk")));
    }
    assert!(body.trim_end().ends_with("data: [DONE]"), "{body}");
    let _ = rest_tx.send(());
    let arrived = arriving.await.expect("task").expect("request sent");
    assert_eq!(
        arrived.status(),
        200,
        "the request in flight moved to the new provider"
    );
    // New requests take the new provider: nothing listens there.
    let moved = gateway
        .post(
            "/v1/chat/completions",
            KEY,
            &json!({"model": "gpt-4.1", "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
    assert!(moved.status().is_server_error(), "{}", moved.status());

    // A broken file: the error names the file and line, and nothing changes.
    std::fs::write(
        &config_path,
        format!(
            "{new_config}\n[[keys]]\nname = \"third\"\nkey = \"izzi-third-key-00000\"\nplan = 7\n"
        ),
    )
    .expect("write config");
    hangup(pid);
    let health = reloaded(&gateway, 2).await;
    let error = health["config"]["error"]
        .as_str()
        .expect("error")
        .to_owned();
    assert!(
        error.contains(&config_path.display().to_string()),
        "{error}"
    );
    assert!(error.contains("line"), "{error}");
    assert!(error.contains("plan"), "{error}");
    assert_eq!(gateway.get("/v1/models", NEW_KEY).await.status(), 200);
    assert_eq!(
        gateway
            .get("/v1/models", "izzi-third-key-00000")
            .await
            .status(),
        401
    );
    let log = gateway.log();
    assert!(log.contains("config not reloaded"), "{log}");

    // The message quotes the line at fault, but never a key on it.
    let leaked = "izzi-never-in-the-log-0000";
    std::fs::write(
        &config_path,
        format!("{new_config}\n[[keys]]\nname = \"fourth\"\nkey = \"{leaked}\" plan = \"pro\"\n"),
    )
    .expect("write config");
    hangup(pid);
    let health = reloaded(&gateway, 3).await;
    let error = health["config"]["error"]
        .as_str()
        .expect("error")
        .to_owned();
    assert!(error.contains("line"), "{error}");
    assert!(!error.contains(leaked), "{error}");
    assert!(!gateway.log().contains(leaked), "the key was logged");
    assert_eq!(gateway.get("/v1/models", leaked).await.status(), 401);

    // Back to a good file: reloaded again, the error cleared.
    std::fs::write(&config_path, &new_config).expect("write config");
    hangup(pid);
    let health = reloaded(&gateway, 4).await;
    assert_eq!(health["config"]["error"], Value::Null, "{health}");

    stop.store(true, Ordering::Relaxed);
    for task in load {
        task.await.expect("load task");
    }
    assert!(done.load(Ordering::Relaxed) > 20, "too little load");
    assert_eq!(
        failures.load(Ordering::Relaxed),
        0,
        "requests failed during reloads"
    );
    // Not a colour code in the log: stderr is a file here.
    assert!(!gateway.log().contains('\u{1b}'));
}
