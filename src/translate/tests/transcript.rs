//! SSE transcripts for the pitfall tests: builders of upstream streams, a reader of the
//! client's events, and the Anthropic stream invariants.

use bytes::BytesMut;
use serde_json::{Value, json};

use super::*;

/// Parses our SSE output into `(event name, data as JSON or string)`.
fn events(out: &str) -> Vec<(Option<String>, Value)> {
    let mut parser = sse::Parser::default();
    parser.push(out.as_bytes());
    let mut all = Vec::new();
    while let Some(event) = parser.next_event().unwrap() {
        let data = serde_json::from_str(&event.data).unwrap_or(Value::String(event.data.clone()));
        all.push((event.event, data));
    }
    all
}

pub(super) fn sse_of(events: &[(Option<&str>, Value)]) -> Vec<u8> {
    let mut out = BytesMut::new();
    for (name, data) in events {
        let bytes = match data {
            Value::String(s) => s.as_bytes().to_vec(),
            other => serde_json::to_vec(other).unwrap(),
        };
        sse::write_event(&mut out, *name, &bytes);
    }
    out.to_vec()
}

pub(super) fn chunk(delta: Value, finish: Option<&str>) -> (Option<&'static str>, Value) {
    (
        None,
        json!({"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m",
               "choices":[{"index":0,"delta":delta,"finish_reason":finish}]}),
    )
}

pub(super) fn done() -> (Option<&'static str>, Value) {
    (None, Value::String("[DONE]".into()))
}

pub(super) fn translate_stream(
    format: Format,
    kind: Kind,
    request_body: &[u8],
    input: &[u8],
) -> (Vec<(Option<String>, Value)>, Usage) {
    let body = Body::parse(request_body).unwrap();
    let target = target(&body, &PLAIN);
    let (out, usage, _) = run_stream(format, kind, &target, &[input]);
    (events(&out), usage)
}

pub(super) fn anthropic_event(data: Value) -> (Option<&'static str>, Value) {
    let name = match data["type"].as_str().unwrap() {
        "message_start" => "message_start",
        "content_block_start" => "content_block_start",
        "content_block_delta" => "content_block_delta",
        "content_block_stop" => "content_block_stop",
        "message_delta" => "message_delta",
        "message_stop" => "message_stop",
        "ping" => "ping",
        _ => "error",
    };
    (Some(name), data)
}

pub(super) fn message_start(usage: Value) -> (Option<&'static str>, Value) {
    anthropic_event(
        json!({"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude","content":[],"stop_reason":null,"stop_sequence":null,"usage":usage}}),
    )
}

/// The arguments an Anthropic stream gave the tool block at `index`, its deltas joined.
pub(super) fn tool_json(events: &[(Option<String>, Value)], index: u64) -> String {
    events
        .iter()
        .filter(|(_, d)| d["index"] == index && d["delta"]["type"] == "input_json_delta")
        .map(|(_, d)| d["delta"]["partial_json"].as_str().unwrap().to_owned())
        .collect()
}

/// Checks the Anthropic stream invariants Claude Code and the SDK rely on: `message_start`
/// first and once, one block open at a time, indices contiguous from 0, every delta inside
/// its open block, `message_stop` last.
pub(super) fn assert_anthropic_invariants(events: &[(Option<String>, Value)]) {
    assert_eq!(events[0].0.as_deref(), Some("message_start"));
    let mut open: Option<u64> = None;
    let mut next = 0;
    let mut starts = 0;
    for (name, data) in events {
        assert_eq!(
            name.as_deref(),
            data["type"].as_str(),
            "event name equals its type"
        );
        match name.as_deref() {
            Some("message_start") => starts += 1,
            Some("content_block_start") => {
                assert_eq!(open, None, "a block opened while another was open");
                assert_eq!(data["index"], next, "block indices must be contiguous");
                open = Some(next);
                next += 1;
            }
            Some("content_block_delta") => {
                assert_eq!(
                    Some(data["index"].as_u64().unwrap()),
                    open,
                    "delta outside its block"
                );
            }
            Some("content_block_stop") => {
                assert_eq!(Some(data["index"].as_u64().unwrap()), open);
                open = None;
            }
            _ => {}
        }
    }
    assert_eq!(starts, 1);
    assert_eq!(open, None);
    assert_eq!(events.last().unwrap().0.as_deref(), Some("message_stop"));
}
