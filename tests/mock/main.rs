//! A mock upstream for tests and benchmarks: speaks Anthropic Messages (`/v1/messages`,
//! `/v1/messages/count_tokens`) and OpenAI Chat Completions (`/v1/chat/completions`), plain and
//! streaming, records every request, and fails on demand.
//!
//! Behaviour is steered by directives anywhere in the request body (tests put them in the user
//! message), so concurrent tests never share state:
//! - `mock:status=N` answer with status N and an error body in the provider's format;
//!   `mock:retry_after=S` adds `Retry-After`; `mock:html` makes the error body an HTML page,
//!   `mock:text` a line of plain text (as proxies in front of a provider answer).
//! - `mock:fail_first=N mock:id=X` fail the first N requests carrying id X (then answer), with
//!   `mock:fail_status=N` (default 503); `mock:fail_model=M` fails every request for the model
//!   `M` (letters, digits and `_`), so one of two providers on the same mock fails.
//! - `mock:delay_ms=N` wait before the response head; `mock:chunk_delay_ms=N` between events.
//! - `mock:pause_ms=N` pause once, after the first stream event (a model thinking).
//! - `mock:drop_after=N` stream N events, then cut the connection; `mock:end_after=N` stream N
//!   events, then end the body cleanly, without the final ones; `mock:half_after=N` stream N
//!   events and the first half of the next, then cut the connection.
//! - `mock:words=N` reply with N more words; `mock:tools` call every tool offered (at most two;
//!   a tool whose one parameter is the string `input` gets a patch there, as Codex's freeform
//!   `apply_patch` would, one with a `command` list gets `["echo", "mock"]`);
//!   `mock:thinking` reason first; `mock:cache` report cached input tokens (`mock:cache_1h`:
//!   and split the cache writes into five-minute and one-hour ones, as Anthropic does);
//!   `mock:word_bytes=N` makes each added word N bytes long (one big stream event per word).
//! - `mock:rid=X` answers with the id `msg_X` / `chatcmpl-X` (default `mock`); the last one in the
//!   body counts, so a conversation's latest turn names its answer.
//!
//! As Anthropic does, the Anthropic wire refuses (400) a history with a thinking block whose
//! signature is not the mock's own (`mock-signature`).
//!
//! Without `mock:cache`, prompt caching works as the providers document it (tokens are bytes / 4):
//! on the Anthropic wire a `cache_control` breakpoint whose prefix (tools, system, messages, in
//! that order) holds at least 1024 tokens is written, and a later request whose breakpoint (or a
//! block up to 20 before it) ends the same prefix reads it: `cache_read_input_tokens`, then
//! `cache_creation_input_tokens` (split by `ttl` in `cache_creation`) up to the last breakpoint,
//! then `input_tokens`. On the OpenAI wire, prompts of 1024 tokens or more are cached at every
//! message boundary, per `prompt_cache_key`, and a later prompt with the same prefix reports
//! it, in 128-token steps, as `prompt_tokens_details.cached_tokens`.
//!
//! `GET /_mock/requests` lists what was received (path, headers, body, and with `mock:raw` the
//! body's exact text); `DELETE` clears it.
//! Run: `mock-upstream [--port N]`; it prints `mock upstream listening on http://ADDR`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

#[derive(Default)]
struct Mock {
    requests: Mutex<Vec<Value>>,
    /// Hashes of the prompt prefixes cached so far.
    cached: Mutex<std::collections::HashSet<u64>>,
    /// Requests seen per `mock:id`, for `mock:fail_first`.
    seen: Mutex<std::collections::HashMap<String, u64>>,
}

type Shared = Arc<Mock>;

#[derive(Clone, Copy, PartialEq)]
enum Wire {
    Anthropic,
    Openai,
}

/// The directives found in one request body.
#[derive(Default)]
struct Directives {
    status: Option<u16>,
    retry_after: Option<u64>,
    html: bool,
    text: bool,
    delay_ms: u64,
    chunk_delay_ms: u64,
    pause_ms: u64,
    drop_after: Option<usize>,
    end_after: Option<usize>,
    half_after: Option<usize>,
    words: usize,
    tools: bool,
    thinking: bool,
    cache: bool,
    cache_1h: bool,
    word_bytes: usize,
    fail_first: u64,
    fail_status: Option<u16>,
    fail_model: Option<String>,
    id: String,
    /// The answer's id (`msg_{rid}`, `chatcmpl-{rid}`); `mock` when not given.
    rid: Option<String>,
}

impl Directives {
    fn parse(body: &str) -> Self {
        let mut d = Directives::default();
        for (i, _) in body.match_indices("mock:") {
            let rest = &body[i + 5..];
            let token: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '=')
                .collect();
            let (key, value) = token.split_once('=').unwrap_or((token.as_str(), ""));
            let num = value.parse::<u64>().unwrap_or(0);
            match key {
                "status" => d.status = u16::try_from(num).ok(),
                "retry_after" => d.retry_after = Some(num),
                "html" => d.html = true,
                "text" => d.text = true,
                "delay_ms" => d.delay_ms = num,
                "chunk_delay_ms" => d.chunk_delay_ms = num,
                "pause_ms" => d.pause_ms = num,
                "drop_after" => d.drop_after = usize::try_from(num).ok(),
                "end_after" => d.end_after = usize::try_from(num).ok(),
                "half_after" => d.half_after = usize::try_from(num).ok(),
                "words" => d.words = usize::try_from(num).unwrap_or(0),
                "tools" => d.tools = true,
                "thinking" => d.thinking = true,
                "cache" => d.cache = true,
                "cache_1h" => {
                    d.cache = true;
                    d.cache_1h = true;
                }
                "word_bytes" => d.word_bytes = usize::try_from(num).unwrap_or(0),
                "fail_first" => d.fail_first = num,
                "fail_status" => d.fail_status = u16::try_from(num).ok(),
                "id" => value.clone_into(&mut d.id),
                "rid" => d.rid = Some(value.to_owned()),
                "fail_model" => d.fail_model = Some(value.to_owned()),
                _ => {}
            }
        }
        d
    }
}

#[tokio::main]
async fn main() {
    let mut port = 0u16;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--port" {
            port = args.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        }
    }
    let state: Shared = Arc::default();
    let app = Router::new()
        .route(
            "/v1/messages",
            post(|s: State<Shared>, h: HeaderMap, b: Bytes| {
                reply(s, h, b, Wire::Anthropic, "/v1/messages")
            }),
        )
        .route(
            "/v1/chat/completions",
            post(|s: State<Shared>, h: HeaderMap, b: Bytes| {
                reply(s, h, b, Wire::Openai, "/v1/chat/completions")
            }),
        )
        .route("/v1/messages/count_tokens", post(count_tokens))
        .route("/_mock/requests", get(requests).delete(clear))
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(state);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    {
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        writeln!(out, "mock upstream listening on http://{addr}").expect("stdout");
        out.flush().expect("flush");
    }
    axum::serve(listener, app).await.expect("serve");
}

fn record(state: &Mock, path: &str, headers: &HeaderMap, body: &[u8]) -> Value {
    let parsed: Value =
        serde_json::from_slice(body).unwrap_or_else(|_| json!(String::from_utf8_lossy(body)));
    let headers: serde_json::Map<String, Value> = headers
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), json!(v.to_str().unwrap_or(""))))
        .collect();
    let mut entry = json!({"path": path, "headers": headers, "body": parsed});
    if memchr::memmem::find(body, b"mock:raw").is_some() {
        entry["raw"] = json!(String::from_utf8_lossy(body));
    }
    state.requests.lock().expect("lock").push(entry);
    parsed
}

async fn requests(State(state): State<Shared>) -> Response {
    axum::Json(Value::Array(state.requests.lock().expect("lock").clone())).into_response()
}

async fn clear(State(state): State<Shared>) -> StatusCode {
    state.requests.lock().expect("lock").clear();
    StatusCode::NO_CONTENT
}

fn error_response(wire: Wire, d: &Directives, status: u16) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let message = format!("mock failure {}", status.as_u16());
    let (body, content_type) = if d.html {
        (
            format!("<html><body><h1>{message}</h1></body></html>"),
            "text/html",
        )
    } else if d.text {
        (format!("upstream connect error: {message}"), "text/plain")
    } else if wire == Wire::Anthropic {
        (
            json!({"type": "error", "error": {"type": "api_error", "message": message}})
                .to_string(),
            "application/json",
        )
    } else {
        (json!({"error": {"message": message, "type": "server_error", "param": null, "code": null}}).to_string(), "application/json")
    };
    let mut response = (status, body).into_response();
    response
        .headers_mut()
        .insert("content-type", content_type.parse().expect("header"));
    if let Some(seconds) = d.retry_after {
        response.headers_mut().insert("retry-after", seconds.into());
    }
    response
}

/// The status to fail with when this request is one of the first `fail_first` with its id.
fn failing(state: &Mock, d: &Directives) -> Option<u16> {
    if d.fail_first == 0 {
        return None;
    }
    let mut seen = state.seen.lock().expect("lock");
    let count = seen.entry(d.id.clone()).or_insert(0);
    *count += 1;
    (*count <= d.fail_first).then_some(d.fail_status.unwrap_or(503))
}

async fn count_tokens(State(state): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    record(&state, "/v1/messages/count_tokens", &headers, &body);
    let d = Directives::parse(&String::from_utf8_lossy(&body));
    if let Some(status) = d.status {
        return error_response(Wire::Anthropic, &d, status);
    }
    // Deterministic and unlike any local estimate, so tests can tell who counted.
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let messages = request
        .get("messages")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    axum::Json(json!({"input_tokens": 1000 + messages})).into_response()
}

/// What a called tool's parameters ask for.
#[derive(Clone, Copy)]
enum Shape {
    /// One `input` string: a freeform tool (Codex's `apply_patch`).
    Freeform,
    /// A `command` list: a shell tool.
    Command,
    Any,
}

/// What the mock model says and does for one request.
struct Plan {
    model: String,
    words: Vec<String>,
    reasoning: Option<String>,
    /// The tools called, and the arguments a tool of that shape gets.
    tools: Vec<String>,
    shapes: Vec<Shape>,
    truncated: bool,
    input_tokens: u64,
    cached: u64,
    cache_write: u64,
    /// Of `cache_write`, the writes to a one-hour cache (the rest are five-minute ones).
    cache_write_1h: Option<u64>,
    include_usage: bool,
    rid: String,
}

fn plan(request: &Value, body_len: usize, wire: Wire, d: &Directives) -> Plan {
    let mut words: Vec<String> = ["Hello", "from", "the", "mock", "upstream."]
        .iter()
        .map(|w| (*w).to_owned())
        .collect();
    words.extend((0..d.words).map(|i| format!("w{i:0>width$}", width = d.word_bytes)));
    let limit = request
        .get("max_tokens")
        .or_else(|| request.get("max_completion_tokens"))
        .and_then(Value::as_u64)
        .map(|n| usize::try_from(n).unwrap_or(usize::MAX));
    let truncated = limit.is_some_and(|n| n < words.len());
    if let Some(n) = limit {
        words.truncate(n.max(1));
    }
    let called: Vec<(String, Shape)> = if d.tools {
        request
            .get("tools")
            .and_then(Value::as_array)
            .map(|tools| {
                tools
                    .iter()
                    .filter_map(|t| {
                        let (name, schema) = match wire {
                            Wire::Anthropic => (t.get("name"), t.get("input_schema")),
                            Wire::Openai => (
                                t.pointer("/function/name"),
                                t.pointer("/function/parameters"),
                            ),
                        };
                        let kind = |property: &str| {
                            schema
                                .and_then(|s| s.pointer(&format!("/properties/{property}/type")))
                                .and_then(Value::as_str)
                        };
                        let shape = if kind("input") == Some("string") {
                            Shape::Freeform
                        } else if kind("command") == Some("array") {
                            Shape::Command
                        } else {
                            Shape::Any
                        };
                        Some((name?.as_str()?.to_owned(), shape))
                    })
                    .take(2)
                    .collect()
            })
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    let (tools, shapes) = called.into_iter().unzip();
    Plan {
        model: request
            .get("model")
            .and_then(Value::as_str)
            .unwrap_or("mock")
            .to_owned(),
        words,
        reasoning: d.thinking.then(|| "Let me think about this.".to_owned()),
        tools,
        shapes,
        truncated,
        input_tokens: (body_len / 4) as u64 + 1,
        cached: if d.cache { 100 } else { 0 },
        cache_write: if d.cache { 50 } else { 0 },
        cache_write_1h: d.cache_1h.then_some(30),
        include_usage: request
            .pointer("/stream_options/include_usage")
            .and_then(Value::as_bool)
            == Some(true),
        rid: d.rid.clone().unwrap_or_else(|| "mock".to_owned()),
    }
}

impl Plan {
    fn text(&self) -> String {
        self.words.join(" ")
    }
    fn output_tokens(&self) -> u64 {
        (self.words.len() + self.tools.len() * 5) as u64
    }
    fn args(&self, i: usize) -> Value {
        match self.shapes.get(i) {
            Some(Shape::Freeform) => {
                return json!({"input": "*** Begin Patch\n*** Add File: mock.txt\n+mock\n*** End Patch\n"});
            }
            Some(Shape::Command) => return json!({"command": ["echo", "mock"]}),
            _ => {}
        }
        json!({"city": "Paris", "n": i})
    }
    fn anthropic_stop(&self) -> &'static str {
        if !self.tools.is_empty() {
            "tool_use"
        } else if self.truncated {
            "max_tokens"
        } else {
            "end_turn"
        }
    }
    fn openai_finish(&self) -> &'static str {
        if !self.tools.is_empty() {
            "tool_calls"
        } else if self.truncated {
            "length"
        } else {
            "stop"
        }
    }
    fn anthropic_usage(&self) -> Value {
        let mut usage = json!({"input_tokens": self.input_tokens, "output_tokens": self.output_tokens(),
               "cache_read_input_tokens": self.cached, "cache_creation_input_tokens": self.cache_write});
        if let Some(hour) = self.cache_write_1h {
            usage["cache_creation"] = json!({"ephemeral_5m_input_tokens": self.cache_write - hour,
                                             "ephemeral_1h_input_tokens": hour});
        }
        usage
    }
    fn openai_usage(&self) -> Value {
        let prompt = self.input_tokens + self.cached + self.cache_write;
        json!({"prompt_tokens": prompt, "completion_tokens": self.output_tokens(),
               "total_tokens": prompt + self.output_tokens(),
               "prompt_tokens_details": {"cached_tokens": self.cached},
               "completion_tokens_details": {"reasoning_tokens": 0}})
    }

    fn anthropic_message(&self) -> Value {
        let mut content = Vec::new();
        if let Some(r) = &self.reasoning {
            content.push(json!({"type": "thinking", "thinking": r, "signature": "mock-signature"}));
        }
        content.push(json!({"type": "text", "text": self.text()}));
        for (i, name) in self.tools.iter().enumerate() {
            content.push(json!({"type": "tool_use", "id": format!("toolu_mock{i}"), "name": name, "input": self.args(i)}));
        }
        json!({"id": format!("msg_{}", self.rid), "type": "message", "role": "assistant", "model": self.model,
               "content": content, "stop_reason": self.anthropic_stop(), "stop_sequence": null,
               "usage": self.anthropic_usage()})
    }

    fn openai_completion(&self) -> Value {
        let calls: Vec<Value> = self
            .tools
            .iter()
            .enumerate()
            .map(|(i, name)| json!({"id": format!("call_mock{i}"), "type": "function",
                                    "function": {"name": name, "arguments": self.args(i).to_string()}}))
            .collect();
        let mut message = json!({"role": "assistant", "content": self.text(), "refusal": null});
        if !calls.is_empty() {
            message["tool_calls"] = Value::Array(calls);
        }
        if let Some(r) = &self.reasoning {
            message["reasoning_content"] = json!(r);
        }
        json!({"id": format!("chatcmpl-{}", self.rid), "object": "chat.completion", "created": 1_700_000_000, "model": self.model,
               "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": self.openai_finish()}],
               "usage": self.openai_usage()})
    }

    fn anthropic_events(&self) -> Vec<String> {
        let mut events = Vec::new();
        let mut push =
            |name: &str, data: Value| events.push(format!("event: {name}\ndata: {data}\n\n"));
        let mut start = self.anthropic_message();
        start["content"] = json!([]);
        start["stop_reason"] = Value::Null;
        start["usage"]["output_tokens"] = json!(1);
        push(
            "message_start",
            json!({"type": "message_start", "message": start}),
        );
        push("ping", json!({"type": "ping"}));
        let mut index = 0;
        if let Some(r) = &self.reasoning {
            push(
                "content_block_start",
                json!({"type": "content_block_start", "index": index, "content_block": {"type": "thinking", "thinking": ""}}),
            );
            push(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": index, "delta": {"type": "thinking_delta", "thinking": r}}),
            );
            push(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": index, "delta": {"type": "signature_delta", "signature": "mock-signature"}}),
            );
            push(
                "content_block_stop",
                json!({"type": "content_block_stop", "index": index}),
            );
            index += 1;
        }
        push(
            "content_block_start",
            json!({"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}}),
        );
        for (i, word) in self.words.iter().enumerate() {
            let text = if i == 0 {
                word.clone()
            } else {
                format!(" {word}")
            };
            push(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": text}}),
            );
        }
        push(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": index}),
        );
        for (i, name) in self.tools.iter().enumerate() {
            index += 1;
            push(
                "content_block_start",
                json!({"type": "content_block_start", "index": index,
                "content_block": {"type": "tool_use", "id": format!("toolu_mock{i}"), "name": name, "input": {}}}),
            );
            let args = self.args(i).to_string();
            let (a, b) = args.split_at(args.len() / 2);
            for part in [a, b] {
                push(
                    "content_block_delta",
                    json!({"type": "content_block_delta", "index": index, "delta": {"type": "input_json_delta", "partial_json": part}}),
                );
            }
            push(
                "content_block_stop",
                json!({"type": "content_block_stop", "index": index}),
            );
        }
        push(
            "message_delta",
            json!({"type": "message_delta", "delta": {"stop_reason": self.anthropic_stop(), "stop_sequence": null},
            "usage": {"output_tokens": self.output_tokens()}}),
        );
        push("message_stop", json!({"type": "message_stop"}));
        events
    }

    fn openai_events(&self) -> Vec<String> {
        let mut events = Vec::new();
        let chunk = |delta: Value, finish: Value| {
            let data = json!({"id": format!("chatcmpl-{}", self.rid), "object": "chat.completion.chunk", "created": 1_700_000_000, "model": self.model,
                "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}], "usage": null});
            format!("data: {data}\n\n")
        };
        events.push(chunk(
            json!({"role": "assistant", "content": ""}),
            Value::Null,
        ));
        if let Some(r) = &self.reasoning {
            events.push(chunk(json!({"reasoning_content": r}), Value::Null));
        }
        for (i, word) in self.words.iter().enumerate() {
            let text = if i == 0 {
                word.clone()
            } else {
                format!(" {word}")
            };
            events.push(chunk(json!({"content": text}), Value::Null));
        }
        for (i, name) in self.tools.iter().enumerate() {
            events.push(chunk(json!({"tool_calls": [{"index": i, "id": format!("call_mock{i}"), "type": "function",
                "function": {"name": name, "arguments": ""}}]}), Value::Null));
            let args = self.args(i).to_string();
            let (a, b) = args.split_at(args.len() / 2);
            for part in [a, b] {
                events.push(chunk(
                    json!({"tool_calls": [{"index": i, "function": {"arguments": part}}]}),
                    Value::Null,
                ));
            }
        }
        events.push(chunk(json!({}), json!(self.openai_finish())));
        if self.include_usage {
            let data = json!({"id": format!("chatcmpl-{}", self.rid), "object": "chat.completion.chunk", "created": 1_700_000_000,
                "model": self.model, "choices": [], "usage": self.openai_usage()});
            events.push(format!("data: {data}\n\n"));
        }
        events.push("data: [DONE]\n\n".to_owned());
        events
    }
}

/// Whether a thinking block in the history carries a signature the mock did not make.
fn forged_thinking(request: &Value) -> bool {
    let messages = request.get("messages").and_then(Value::as_array);
    messages.into_iter().flatten().any(|m| {
        let blocks = m.get("content").and_then(Value::as_array);
        blocks.into_iter().flatten().any(|b| {
            b.get("type").and_then(Value::as_str) == Some("thinking")
                && b.get("signature").and_then(Value::as_str) != Some("mock-signature")
        })
    })
}

/// Tokens of a prompt prefix, the mock's tokenizer.
fn tokens(bytes: usize) -> u64 {
    (bytes / 4) as u64
}

/// Anthropic's and OpenAI's shortest cacheable prefix.
const MIN_CACHED: u64 = 1024;

/// One block of a prompt, in the order providers cache them.
struct Piece {
    /// Bytes of the prompt up to and including this block.
    end: usize,
    /// Hash of the prompt up to and including this block.
    hash: u64,
    /// Its `cache_control`, if it is a breakpoint.
    mark: Option<Value>,
    /// The last block of a message.
    boundary: bool,
}

/// The prompt as pieces: tools, then system, then each message's blocks (`cache_control`
/// itself is not part of what is cached).
fn pieces(request: &Value, seed: &str) -> Vec<Piece> {
    use std::hash::{Hash as _, Hasher as _};
    let mut blocks: Vec<(Value, bool)> = Vec::new();
    let list = |v: Option<&Value>| match v {
        Some(Value::Array(items)) => items.clone(),
        Some(Value::Null) | None => Vec::new(),
        Some(other) => vec![other.clone()],
    };
    for tool in list(request.get("tools")) {
        blocks.push((tool, false));
    }
    for block in list(request.get("system")) {
        blocks.push((block, false));
    }
    for message in list(request.get("messages")) {
        let role = message.get("role").cloned().unwrap_or(Value::Null);
        let content = list(message.get("content"));
        let n = content.len();
        let extra = message.as_object().map(|m| {
            m.iter()
                .filter(|(k, _)| *k != "content")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect::<serde_json::Map<_, _>>()
        });
        blocks.push((json!({"role": role, "rest": extra}), n == 0));
        for (i, block) in content.into_iter().enumerate() {
            blocks.push((block, i + 1 == n));
        }
    }
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    seed.hash(&mut hasher);
    let mut end = 0;
    blocks
        .into_iter()
        .map(|(mut block, boundary)| {
            let mark = block
                .as_object_mut()
                .and_then(|b| b.remove("cache_control"));
            let text = block.to_string();
            end += text.len();
            text.hash(&mut hasher);
            Piece {
                end,
                hash: hasher.finish(),
                mark,
                boundary,
            }
        })
        .collect()
}

/// Anthropic's prompt caching: breakpoints read what an earlier request wrote (looking back up
/// to 20 blocks from each) and write their own prefixes.
fn anthropic_cache(request: &Value, cached: &mut std::collections::HashSet<u64>, plan: &mut Plan) {
    let pieces = pieces(request, "anthropic");
    let marks: Vec<usize> = (0..pieces.len())
        .filter(|&i| pieces[i].mark.is_some())
        .collect();
    if marks.is_empty() {
        return;
    }
    let hit = marks
        .iter()
        .flat_map(|&m| (m.saturating_sub(19)..=m).rev())
        .filter(|&i| tokens(pieces[i].end) >= MIN_CACHED && cached.contains(&pieces[i].hash))
        .max();
    let read_end = hit.map_or(0, |i| pieces[i].end);
    let (mut five, mut hour) = (0, 0);
    let mut from = read_end;
    for &m in &marks {
        let piece = &pieces[m];
        if tokens(piece.end) < MIN_CACHED {
            continue;
        }
        cached.insert(piece.hash);
        if piece.end > from {
            let written = tokens(piece.end) - tokens(from);
            let ttl = piece.mark.as_ref().and_then(|m| m.get("ttl"));
            if ttl.and_then(Value::as_str) == Some("1h") {
                hour += written;
            } else {
                five += written;
            }
            from = piece.end;
        }
    }
    plan.cached = tokens(read_end);
    plan.cache_write = five + hour;
    plan.cache_write_1h = Some(hour);
    plan.input_tokens = plan
        .input_tokens
        .saturating_sub(plan.cached + plan.cache_write);
}

/// OpenAI's automatic caching: every message boundary of a long prompt is cached, per
/// `prompt_cache_key`; reads come in 128-token steps.
fn openai_cache(request: &Value, cached: &mut std::collections::HashSet<u64>, plan: &mut Plan) {
    let key = request
        .get("prompt_cache_key")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let pieces = pieces(request, &format!("openai:{key}"));
    let boundaries: Vec<&Piece> = pieces
        .iter()
        .filter(|p| p.boundary && tokens(p.end) >= MIN_CACHED)
        .collect();
    let hit = boundaries
        .iter()
        .filter(|p| cached.contains(&p.hash))
        .map(|p| tokens(p.end))
        .max()
        .unwrap_or(0);
    cached.extend(boundaries.iter().map(|p| p.hash));
    plan.cached = hit / 128 * 128;
    plan.input_tokens = plan.input_tokens.saturating_sub(plan.cached);
}

async fn reply(
    State(state): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
    wire: Wire,
    path: &'static str,
) -> Response {
    let request = record(&state, path, &headers, &body);
    if !request.is_object() {
        // As the real APIs do: what does not parse as a JSON object is a 400.
        return error_response(wire, &Directives::default(), 400);
    }
    if wire == Wire::Anthropic && forged_thinking(&request) {
        // As Anthropic does: thinking it did not sign is refused.
        let body = json!({"type": "error", "error": {"type": "invalid_request_error",
            "message": "messages.1.content.0: Invalid `signature` in `thinking` block"}});
        return (StatusCode::BAD_REQUEST, axum::Json(body)).into_response();
    }
    let d = Directives::parse(&String::from_utf8_lossy(&body));
    if d.delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(d.delay_ms)).await;
    }
    let model = request.get("model").and_then(Value::as_str);
    if d.fail_model.is_some() && d.fail_model.as_deref() == model {
        return error_response(wire, &d, d.fail_status.unwrap_or(503));
    }
    if let Some(status) = d.status.or_else(|| failing(&state, &d)) {
        return error_response(wire, &d, status);
    }
    let mut plan = plan(&request, body.len(), wire, &d);
    if !d.cache {
        let mut cached = state.cached.lock().expect("lock");
        match wire {
            Wire::Anthropic => anthropic_cache(&request, &mut cached, &mut plan),
            Wire::Openai => openai_cache(&request, &mut cached, &mut plan),
        }
    }
    let stream = request.get("stream").and_then(Value::as_bool) == Some(true);
    if !stream {
        let value = match wire {
            Wire::Anthropic => plan.anthropic_message(),
            Wire::Openai => plan.openai_completion(),
        };
        return axum::Json(value).into_response();
    }
    let mut events = match wire {
        Wire::Anthropic => plan.anthropic_events(),
        Wire::Openai => plan.openai_events(),
    };
    if let Some(n) = d.end_after {
        events.truncate(n);
    }
    let mut drop_after = d.drop_after;
    if let Some(n) = d.half_after
        && let Some(event) = events.get_mut(n)
    {
        let mut half = event.len() / 2;
        while !event.is_char_boundary(half) {
            half -= 1;
        }
        event.truncate(half);
        events.truncate(n + 1);
        drop_after = Some(n + 1);
    }
    let delay = Duration::from_millis(d.chunk_delay_ms);
    let pause = Duration::from_millis(d.pause_ms);
    let body = futures_util::stream::unfold(
        (events.into_iter(), 0usize),
        move |(mut events, sent)| async move {
            if drop_after.is_some_and(|n| sent >= n) {
                // Let hyper write what was sent, then an error item makes it cut the connection
                // mid-body.
                tokio::time::sleep(delay.max(Duration::from_millis(10))).await;
                return Some((
                    Err::<Bytes, std::io::Error>(std::io::Error::other("mock drop")),
                    (events, sent),
                ));
            }
            let event = events.next()?;
            if sent > 0 && !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            if sent == 1 && !pause.is_zero() {
                tokio::time::sleep(pause).await;
            }
            Some((Ok(Bytes::from(event)), (events, sent + 1)))
        },
    );
    let mut response = Response::new(Body::from_stream(body));
    response
        .headers_mut()
        .insert("content-type", "text/event-stream".parse().expect("header"));
    response
        .headers_mut()
        .insert("request-id", "req_mock".parse().expect("header"));
    response
}
