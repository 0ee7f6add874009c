//! The HTTP surface in process: `server::Live` (the inference routes it answers itself, and
//! `server::app` for the rest) over the state `serve` builds, driven request by request. Routing, authentication and the error shapes need no
//! process, no socket and no upstream; what does (streams, signals, the ledger on disk, real
//! clients) is tested against the real binary in `tests/it`.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, StatusCode};
use serde_json::{Value, json};

use super::{AppState, auth, identity, ledger, limits, reload, routing, server, upstream};
use crate::config::Config;
use crate::store::{Database, ResponseStore, Store};

const KEY: &str = "izzi-test-key-0123456789abcdef";

/// A gateway's state with one client key and both provider kinds pointed at a closed port: a
/// request that got past the checks to an upstream would answer 502, never 4xx.
fn state(dir: &tempfile::TempDir) -> Arc<AppState> {
    crate::commands::install_tls_provider();
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = Config::parse(&format!(
        r#"
[[providers]]
name = "anthropic"
kind = "anthropic"
base_url = "http://127.0.0.1:{closed}"
api_key = "sk-upstream-anthropic"

[[providers]]
name = "openai"
kind = "openai"
base_url = "http://127.0.0.1:{closed}/v1"
api_key = "sk-upstream-openai"
models = ["*"]

[[keys]]
name = "test"
key = "{KEY}"
plan = "ultra"
"#
    ))
    .unwrap();
    let db = dir.path().join("izzi.db");
    let store = Database::from(Store::open(&db).unwrap());
    let keys = Arc::new(identity::Keys::new(&config.keys, None, &[]));
    let ledger = ledger::Ledger::start(store, Arc::clone(&keys), None).unwrap();
    let limits = limits::Limits::new(
        &config.state,
        limits::Limiter::default(),
        Arc::new(ledger.clone()),
        None,
    )
    .unwrap();
    Arc::new(AppState {
        router: routing::Router::new(&config, None).unwrap(),
        ip_block: Arc::new(auth::IpBlock::new(&config.security)),
        process: Arc::new(reload::Process::new(None)),
        client: upstream::Client::new(&config.server).unwrap(),
        metrics: metrics_exporter_prometheus::PrometheusBuilder::new()
            .build_recorder()
            .handle(),
        limits: Arc::new(limits),
        alerts: Arc::new(super::alerts::Alerts::new()),
        breakers: Arc::default(),
        affinity: Arc::default(),
        reader: Arc::new(super::api::Reader::new(&config.state)),
        responses: Arc::new(ResponseStore::Sqlite(Mutex::new(Store::open(&db).unwrap()))),
        keys,
        ledger,
        config,
    })
}

/// One request through the whole router, from a loopback peer; the status and the body as JSON
/// (`Null` when it is not JSON).
async fn send(
    state: &Arc<AppState>,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = Request::builder().method(method).uri(path);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let body = match body {
        Some(body) => {
            request = request.header("content-type", "application/json");
            Body::from(body.to_string())
        }
        None => Body::empty(),
    };
    let mut request = request.body(body).unwrap();
    request
        .extensions_mut()
        .insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 50_000))));
    let response = server::Live::new(Arc::clone(state)).call(request).await;
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// Asserts the documented error shape and kind.
fn assert_error((status, body): &(StatusCode, Value), want: u16, kind: &str) {
    assert_eq!(status.as_u16(), want, "{body}");
    assert_eq!(body["type"], "error", "{body}");
    assert_eq!(body["error"]["type"], kind, "{body}");
    assert!(
        !body["error"]["message"].as_str().unwrap().is_empty(),
        "{body}"
    );
}

fn bearer() -> (&'static str, String) {
    ("authorization", format!("Bearer {KEY}"))
}

#[tokio::test]
async fn health_root_and_unknown_paths() {
    let dir = tempfile::tempdir().unwrap();
    let state = state(&dir);
    let (status, health) = send(&state, Method::GET, "/health", &[], None).await;
    assert_eq!((status, &health["status"]), (StatusCode::OK, &json!("ok")));
    // Claude Code's preconnect: any answer works, without a key.
    let (status, _) = send(&state, Method::HEAD, "/", &[], None).await;
    assert_eq!(status, StatusCode::OK);
    let (name, value) = bearer();
    let auth = [(name, value.as_str())];
    assert_error(
        &send(&state, Method::GET, "/v2/nothing", &auth, None).await,
        404,
        "not_found",
    );
    // The inference paths the server matches itself answer as the router does: other methods
    // are 405, near misses 404.
    for (method, path, want, kind) in [
        (Method::GET, "/v1/messages", 405, "invalid_request_error"),
        (
            Method::PUT,
            "/openai/v1/chat/completions",
            405,
            "invalid_request_error",
        ),
        (Method::POST, "/v1/messages/", 404, "not_found"),
        (Method::POST, "/v1/chat/completions/x", 404, "not_found"),
        (Method::POST, "/v2/responses", 404, "not_found"),
        (Method::POST, "/v1//messages", 404, "not_found"),
    ] {
        let answer = send(&state, method.clone(), path, &auth, Some(json!({}))).await;
        assert_error(&answer, want, kind);
    }
}

#[tokio::test]
async fn keys_are_required_on_every_api_path_in_both_headers() {
    let dir = tempfile::tempdir().unwrap();
    let state = state(&dir);
    let hello = json!({"model": "claude-sonnet-4-20250514", "max_tokens": 16,
        "messages": [{"role": "user", "content": "hi"}]});
    for prefix in ["/v1", "/openai/v1", "/api/v1"] {
        let models = format!("{prefix}/models");
        for headers in [
            vec![],
            vec![("authorization", "Bearer izzi-wrong")],
            vec![("x-api-key", "izzi-wrong")],
        ] {
            let refused = send(&state, Method::GET, &models, &headers, None).await;
            assert_error(&refused, 401, "authentication_error");
        }
        let bearer = format!("Bearer {KEY}");
        for headers in [[("authorization", bearer.as_str())], [("x-api-key", KEY)]] {
            let (status, _) = send(&state, Method::GET, &models, &headers, None).await;
            assert_eq!(status, StatusCode::OK, "{prefix} {headers:?}");
        }
        let messages = format!("{prefix}/messages");
        let post = send(&state, Method::POST, &messages, &[], Some(hello.clone())).await;
        assert_error(&post, 401, "authentication_error");
    }
}

#[tokio::test]
async fn models_list_and_lookup_in_both_shapes() {
    let dir = tempfile::tempdir().unwrap();
    let state = state(&dir);
    let (name, value) = bearer();
    let auth = [(name, value.as_str())];
    let (_, list) = send(&state, Method::GET, "/v1/models", &auth, None).await;
    assert_eq!(list["object"], "list");
    let data = list["data"].as_array().unwrap();
    assert_eq!(data.len(), 11);
    let sonnet = data
        .iter()
        .find(|m| m["id"] == "claude-sonnet-4-20250514")
        .unwrap();
    assert_eq!(sonnet["object"], "model");
    assert_eq!(sonnet["pricing"]["input_per_mtok"], 3.0);
    assert_eq!(sonnet["pricing"]["cache_read_per_mtok"], 0.3);
    let anthropic_headers = [("x-api-key", KEY), ("anthropic-version", "2023-06-01")];
    let (_, anthropic) = send(&state, Method::GET, "/v1/models", &anthropic_headers, None).await;
    assert_eq!(anthropic["has_more"], false);
    assert_eq!(anthropic["data"][0]["type"], "model");
    assert!(
        anthropic["data"][0]["created_at"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    let (_, one) = send(&state, Method::GET, "/api/v1/models/sonnet", &auth, None).await;
    assert_eq!(one["id"], "claude-sonnet-4-20250514");
    assert_error(
        &send(&state, Method::GET, "/v1/models/gpt-9", &auth, None).await,
        404,
        "not_found",
    );
}

/// Codex's `ModelsResponse` (codex-rs/protocol/src/openai_models.rs), which it decodes from
/// `GET {base_url}/models?client_version=…`: a missing `models` fails its whole refresh.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CodexModels {
    models: Vec<Value>,
}

/// Codex's catalog query gets Codex's shape, empty (no entry, so Codex keeps its own prompt),
/// on every prefix and behind the key; without `client_version` the list stays OpenAI's.
#[tokio::test]
async fn codex_catalog_query_gets_an_empty_codex_catalog() {
    let dir = tempfile::tempdir().unwrap();
    let state = state(&dir);
    let (name, value) = bearer();
    let auth = [(name, value.as_str())];
    for path in [
        "/v1/models?client_version=0.150.1",
        "/openai/v1/models?client_version=99.99.99",
        "/api/v1/models?x=1&client_version=0.142.2",
    ] {
        let (status, body) = send(&state, Method::GET, path, &auth, None).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        let catalog: CodexModels = serde_json::from_value(body).unwrap();
        assert!(catalog.models.is_empty(), "{path}");
        assert_error(
            &send(&state, Method::GET, path, &[], None).await,
            401,
            "authentication_error",
        );
    }
    for path in [
        "/v1/models?client_versions=1",
        "/v1/models?x=client_version",
    ] {
        let (_, list) = send(&state, Method::GET, path, &auth, None).await;
        assert_eq!(list["object"], "list", "{path}");
        assert!(
            serde_json::from_value::<CodexModels>(list).is_err(),
            "{path}"
        );
    }
}

#[tokio::test]
async fn bad_bodies_get_the_documented_errors_before_any_upstream() {
    let dir = tempfile::tempdir().unwrap();
    let state = state(&dir);
    let (name, value) = bearer();
    let auth = [(name, value.as_str())];
    for (path, body) in [
        (
            "/v1/chat/completions",
            json!({"messages": [{"role": "user", "content": "hi"}]}),
        ),
        ("/v1/messages", json!(["not", "an", "object"])),
        (
            "/v1/responses",
            json!({"model": "gpt-4.1", "input": "hi", "max_output_tokens": "many"}),
        ),
    ] {
        // Claude Code adds `?beta=true`; the query is no part of the path matched.
        for (prefix, query) in [("", ""), ("/openai", ""), ("/api", ""), ("", "?beta=true")] {
            let path = format!("{prefix}{path}{query}");
            let answer = send(&state, Method::POST, &path, &auth, Some(body.clone())).await;
            assert_error(&answer, 400, "invalid_request_error");
        }
    }
}
