//! Pitfalls of streams (protocols.md §4.1, §4.2, §4.4, §4.5, §4.12) in every direction, and
//! what each stream machine owes the gateway: error events at the end, usage and completion
//! read, the first event written at once.

use bytes::BytesMut;
use serde_json::json;

use super::transcript::{
    anthropic_event, assert_anthropic_invariants, chunk, done, message_start, sse_of, tool_json,
    translate_stream,
};
use super::*;

/// §4.1: the first delta of a block is written with its start; a chunk's several tool calls
/// are all kept; parallel calls have their own argument buffers and slots.
#[test]
fn pitfall_block_bookkeeping_chat_to_messages() {
    let input = sse_of(&[
        chunk(json!({"role":"assistant","content":"Hel"}), None),
        chunk(json!({"content":"lo"}), None),
        chunk(
            json!({"tool_calls":[
            {"index":0,"id":"call_a","type":"function","function":{"name":"read","arguments":"{\"p\":"}},
            {"index":1,"id":"call_b","type":"function","function":{"name":"list","arguments":"{\"d\":"}}]}),
            None,
        ),
        chunk(
            json!({"tool_calls":[{"index":1,"function":{"arguments":"1}"}}]}),
            None,
        ),
        chunk(json!({}), Some("tool_calls")),
        done(),
    ]);
    let (events, _) = translate_stream(Format::Messages, Kind::Openai, EMPTY_REQUEST, &input);
    assert_anthropic_invariants(&events);
    let first_text = events
        .iter()
        .find(|(n, d)| n.as_deref() == Some("content_block_delta") && d["index"] == 0)
        .unwrap();
    assert_eq!(
        first_text.1["delta"]["text"], "Hel",
        "the first delta must not be lost"
    );
    let tools: Vec<_> = events
        .iter()
        .filter(|(_, d)| d["content_block"]["type"] == "tool_use")
        .map(|(_, d)| d["content_block"]["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        tools,
        ["call_a", "call_b"],
        "both calls of one chunk are kept"
    );
    assert_eq!(tool_json(&events, 1), "{\"p\":");
    assert_eq!(
        tool_json(&events, 2),
        "{\"d\":1}",
        "each call has its own argument buffer"
    );
}

/// §4.1 the other way: Chat slots advance per tool call (not per Anthropic block), the first
/// chunk has the role, and thinking never goes into a text delta.
#[test]
fn pitfall_block_bookkeeping_messages_to_chat() {
    let input = sse_of(&[
        message_start(json!({"input_tokens":5,"output_tokens":1})),
        anthropic_event(
            json!({"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":""}}),
        ),
        anthropic_event(
            json!({"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"hmm"}}),
        ),
        anthropic_event(json!({"type":"content_block_stop","index":0})),
        anthropic_event(
            json!({"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}}),
        ),
        anthropic_event(
            json!({"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"ok"}}),
        ),
        anthropic_event(json!({"type":"content_block_stop","index":1})),
        anthropic_event(
            json!({"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"toolu_a","name":"a","input":{}}}),
        ),
        anthropic_event(
            json!({"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"{}"}}),
        ),
        anthropic_event(json!({"type":"content_block_stop","index":2})),
        anthropic_event(
            json!({"type":"content_block_start","index":3,"content_block":{"type":"tool_use","id":"toolu_b","name":"b","input":{}}}),
        ),
        anthropic_event(json!({"type":"content_block_stop","index":3})),
        anthropic_event(
            json!({"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":9}}),
        ),
        anthropic_event(json!({"type":"message_stop"})),
    ]);
    let (events, _) = translate_stream(Format::Chat, Kind::Anthropic, EMPTY_REQUEST, &input);
    assert_eq!(events[0].1["choices"][0]["delta"]["role"], "assistant");
    let slots: Vec<u64> = events
        .iter()
        .filter_map(|(_, d)| {
            d["choices"][0]["delta"]["tool_calls"][0]["id"]
                .as_str()
                .map(|_| d)
        })
        .map(|d| {
            d["choices"][0]["delta"]["tool_calls"][0]["index"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(
        slots,
        [0, 1],
        "tool slots count tool calls, not Anthropic blocks"
    );
    for (_, data) in &events {
        assert!(
            data["choices"][0]["delta"]["content"] != "hmm",
            "thinking leaked into the text"
        );
    }
    assert_eq!(events.last().unwrap().1, "[DONE]");
}

/// §4.2: `tool_calls: []` on a text chunk is not a tool call.
#[test]
fn pitfall_empty_tool_calls_are_not_calls() {
    let input = sse_of(&[
        chunk(
            json!({"role":"assistant","content":"hi","tool_calls":[]}),
            None,
        ),
        chunk(json!({"content":" there","tool_calls":[]}), Some("stop")),
        done(),
    ]);
    let (events, _) = translate_stream(Format::Messages, Kind::Openai, EMPTY_REQUEST, &input);
    assert_anthropic_invariants(&events);
    assert!(
        events
            .iter()
            .all(|(_, d)| d["content_block"]["type"] != "tool_use")
    );
    let stop = events
        .iter()
        .find(|(n, _)| n.as_deref() == Some("message_delta"))
        .unwrap();
    assert_eq!(stop.1["delta"]["stop_reason"], "end_turn");
}

/// §4.4: tool input given whole in `content_block_start.input` still reaches the client.
#[test]
fn pitfall_tool_input_only_in_block_start() {
    let input = sse_of(&[
        message_start(json!({"input_tokens":5,"output_tokens":1})),
        anthropic_event(
            json!({"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"toolu_a","name":"Read","input":{"path":"a.rs"}}}),
        ),
        anthropic_event(json!({"type":"content_block_stop","index":0})),
        anthropic_event(
            json!({"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":9}}),
        ),
        anthropic_event(json!({"type":"message_stop"})),
    ]);
    let (events, _) = translate_stream(Format::Chat, Kind::Anthropic, EMPTY_REQUEST, &input);
    let arguments: String = events
        .iter()
        .filter_map(|(_, d)| {
            d["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str()
        })
        .collect();
    assert_eq!(arguments, r#"{"path":"a.rs"}"#);
}

/// §4.5: cached tokens counted once each way, cumulative `message_delta` not added to
/// `message_start`, usage arriving after `finish_reason` still lands in `message_delta`.
#[test]
fn pitfall_usage_arithmetic() {
    // Anthropic → Chat and the gateway's own count.
    let input = sse_of(&[
        message_start(
            json!({"input_tokens":10,"output_tokens":1,"cache_read_input_tokens":100,"cache_creation_input_tokens":20}),
        ),
        anthropic_event(
            json!({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}),
        ),
        anthropic_event(
            json!({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"x"}}),
        ),
        anthropic_event(json!({"type":"content_block_stop","index":0})),
        anthropic_event(
            json!({"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":30}}),
        ),
        anthropic_event(
            json!({"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":42}}),
        ),
        anthropic_event(json!({"type":"message_stop"})),
    ]);
    let request =
        br#"{"model":"m","messages":[],"stream":true,"stream_options":{"include_usage":true}}"#;
    let (events, usage) = translate_stream(Format::Chat, Kind::Anthropic, request, &input);
    assert_eq!(
        usage,
        Usage {
            input_tokens: 10,
            output_tokens: 42,
            cache_read_tokens: 100,
            cache_write_tokens: 20,
            cache_write_1h_tokens: 0
        }
    );
    let chat_usage = &events
        .iter()
        .find(|(_, d)| d["usage"].is_object())
        .unwrap()
        .1["usage"];
    assert_eq!(chat_usage["prompt_tokens"], 130);
    assert_eq!(chat_usage["prompt_tokens_details"]["cached_tokens"], 100);
    assert_eq!(chat_usage["completion_tokens"], 42);
    assert_eq!(chat_usage["total_tokens"], 172);

    // Chat → Anthropic: usage chunk after the finish chunk.
    let input = sse_of(&[
        chunk(json!({"role":"assistant","content":"x"}), None),
        chunk(json!({}), Some("stop")),
        (
            None,
            json!({"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","choices":[],
            "usage":{"prompt_tokens":130,"completion_tokens":7,"total_tokens":137,"prompt_tokens_details":{"cached_tokens":100}}}),
        ),
        done(),
    ]);
    let (events, usage) = translate_stream(Format::Messages, Kind::Openai, EMPTY_REQUEST, &input);
    assert_eq!(
        usage,
        Usage {
            input_tokens: 30,
            output_tokens: 7,
            cache_read_tokens: 100,
            cache_write_tokens: 0,
            cache_write_1h_tokens: 0
        }
    );
    let delta = events
        .iter()
        .find(|(n, _)| n.as_deref() == Some("message_delta"))
        .unwrap();
    assert_eq!(delta.1["usage"]["input_tokens"], 30);
    assert_eq!(delta.1["usage"]["cache_read_input_tokens"], 100);
    assert_eq!(delta.1["usage"]["output_tokens"], 7);
    let start = &events[0].1["message"]["usage"];
    assert_eq!(
        start["cache_creation_input_tokens"], 0,
        "message_start has the cache fields"
    );
    assert_eq!(start["cache_read_input_tokens"], 0);
}

/// §4.12: an upstream error mid-stream reaches each client as its own error event, never as a
/// finish reason or `[DONE]`; a stream cut before its end is an error too.
#[test]
fn pitfall_stream_errors() {
    let input = sse_of(&[
        chunk(json!({"role":"assistant","content":"par"}), None),
        (
            None,
            json!({"error":{"message":"overloaded","type":"server_error"}}),
        ),
    ]);
    let (events, _) = translate_stream(Format::Messages, Kind::Openai, EMPTY_REQUEST, &input);
    let last = events.last().unwrap();
    assert_eq!(last.0.as_deref(), Some("error"));
    assert_eq!(last.1["type"], "error");
    assert_eq!(last.1["error"]["message"], "overloaded");
    assert!(
        events
            .iter()
            .all(|(n, _)| n.as_deref() != Some("message_stop"))
    );

    let input = sse_of(&[
        message_start(json!({"input_tokens":5,"output_tokens":1})),
        anthropic_event(
            json!({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}),
        ),
    ]);
    let (events, _) = translate_stream(Format::Chat, Kind::Anthropic, EMPTY_REQUEST, &input);
    let last = events.last().unwrap();
    assert_eq!(last.0, None);
    assert_eq!(last.1["error"]["type"], "overloaded_error");
    assert!(
        events
            .iter()
            .all(|(_, d)| d != "[DONE]" && d["choices"][0]["finish_reason"].is_null())
    );

    // Cut: EOF without `[DONE]` / `message_stop`.
    let input = sse_of(&[chunk(json!({"role":"assistant","content":"par"}), None)]);
    for format in [Format::Messages, Format::Responses] {
        let (events, _) = translate_stream(format, Kind::Openai, EMPTY_REQUEST, &input);
        assert!(
            events.iter().any(|(n, _)| n.as_deref() == Some("error")),
            "{format:?}"
        );
        assert!(events.iter().all(|(n, _)| {
            !matches!(n.as_deref(), Some("message_stop" | "response.completed"))
        }));
    }
    let input = sse_of(&[message_start(json!({"input_tokens":5,"output_tokens":1}))]);
    let (events, _) = translate_stream(Format::Chat, Kind::Anthropic, EMPTY_REQUEST, &input);
    assert!(events.last().unwrap().1["error"].is_object());
}

/// The gateway's error argument to `end` becomes the client's error event.
#[test]
fn transport_error_at_end_is_an_error_event() {
    let request_body = Body::parse(EMPTY_REQUEST).unwrap();
    let t = target(&request_body, &PLAIN);
    for (format, kind) in [
        (Format::Messages, Kind::Openai),
        (Format::Chat, Kind::Anthropic),
        (Format::Responses, Kind::Openai),
        (Format::Responses, Kind::Anthropic),
        (Format::Chat, Kind::Openai),
    ] {
        let mut machine = stream(format, kind, &t);
        let mut out = BytesMut::new();
        machine.end(&mut out, Some(("connection_error", "reset by peer")));
        let text = String::from_utf8(out.to_vec()).unwrap();
        assert!(
            text.contains("reset by peer"),
            "{format:?} {kind:?}: {text}"
        );
        assert!(!machine.completed());
    }
}

/// Same format both ways: nothing is written, usage and completion are read.
#[test]
fn observers_read_usage_and_completion() {
    let input = sse_of(&[
        message_start(
            json!({"input_tokens":10,"output_tokens":1,"cache_read_input_tokens":7,"cache_creation_input_tokens":3}),
        ),
        anthropic_event(
            json!({"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":12}}),
        ),
        anthropic_event(json!({"type":"message_stop"})),
    ]);
    let request_body = Body::parse(EMPTY_REQUEST).unwrap();
    let t = target(&request_body, &PLAIN);
    let (out, usage, completed) = run_stream(Format::Messages, Kind::Anthropic, &t, &[&input]);
    assert!(out.is_empty());
    assert!(completed);
    assert_eq!(
        usage,
        Usage {
            input_tokens: 10,
            output_tokens: 12,
            cache_read_tokens: 7,
            cache_write_tokens: 3,
            cache_write_1h_tokens: 0
        }
    );

    let input = sse_of(&[
        chunk(json!({"role":"assistant","content":"x"}), Some("stop")),
        (
            None,
            json!({"id":"c","choices":[],"usage":{"prompt_tokens":50,"completion_tokens":5,"total_tokens":55,"prompt_tokens_details":{"cached_tokens":40}}}),
        ),
        done(),
    ]);
    let (out, usage, completed) = run_stream(Format::Chat, Kind::Openai, &t, &[&input]);
    assert!(out.is_empty());
    assert!(completed);
    assert_eq!(
        usage,
        Usage {
            input_tokens: 10,
            output_tokens: 5,
            cache_read_tokens: 40,
            cache_write_tokens: 0,
            cache_write_1h_tokens: 0
        }
    );

    let (out, _, completed) = run_stream(
        Format::Chat,
        Kind::Openai,
        &t,
        &[&input[..input.len() - 16]],
    );
    assert!(!completed);
    assert!(
        out.contains("\"error\""),
        "a cut passthrough stream ends with an error event"
    );

    let body = br#"{"id":"x","usage":{"prompt_tokens":50,"completion_tokens":5,"total_tokens":55,"prompt_tokens_details":{"cached_tokens":40}}}"#;
    let (out, usage) = response(Format::Chat, Kind::Openai, body, &t).unwrap();
    assert!(matches!(out, Cow::Borrowed(_)));
    assert_eq!(usage.total_input(), 50);
    assert_eq!(usage.cache_read_tokens, 40);
}

/// Each translated stream writes the first client event for the first upstream event, so
/// the client sees the first token when the upstream sends it (no buffering to the end).
#[test]
fn first_event_is_written_at_once() {
    let request_body = Body::parse(EMPTY_REQUEST).unwrap();
    let t = target(&request_body, &PLAIN);
    let first_chat = sse::Event {
        event: None,
        data: chunk(json!({"role":"assistant","content":"Hi"}), None)
            .1
            .to_string(),
    };
    let first_anthropic = sse::Event {
        event: Some("message_start".into()),
        data: message_start(json!({"input_tokens":1,"output_tokens":1}))
            .1
            .to_string(),
    };
    for (format, kind, event) in [
        (Format::Messages, Kind::Openai, &first_chat),
        (Format::Responses, Kind::Openai, &first_chat),
        (Format::Chat, Kind::Anthropic, &first_anthropic),
        (Format::Responses, Kind::Anthropic, &first_anthropic),
    ] {
        let mut machine = stream(format, kind, &t);
        let mut out = BytesMut::new();
        machine.event(event, &mut out);
        assert!(
            !out.is_empty(),
            "{format:?} from {kind:?} wrote nothing for the first event"
        );
    }
}

/// §4.1 for compatible hosts: tool calls without `index`, or several calls all at index 0,
/// still become separate blocks with their own arguments.
#[test]
fn pitfall_tool_slots_without_a_usable_index() {
    let input = sse_of(&[
        chunk(
            json!({"role":"assistant","tool_calls":[{"id":"a","type":"function","function":{"name":"f","arguments":"{\"x\":"}}]}),
            None,
        ),
        chunk(
            json!({"tool_calls":[{"function":{"arguments":"1}"}}]}),
            None,
        ),
        chunk(
            json!({"tool_calls":[{"index":0,"id":"b","type":"function","function":{"name":"g","arguments":"{}"}}]}),
            None,
        ),
        chunk(json!({}), Some("tool_calls")),
        done(),
    ]);
    let (events, _) = translate_stream(Format::Messages, Kind::Openai, EMPTY_REQUEST, &input);
    assert_anthropic_invariants(&events);
    let starts: Vec<&str> = events
        .iter()
        .filter(|(_, d)| d["content_block"]["type"] == "tool_use")
        .map(|(_, d)| d["content_block"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(starts, ["a", "b"]);
    assert_eq!(tool_json(&events, 0), "{\"x\":1}");
    assert_eq!(tool_json(&events, 1), "{}");
}
