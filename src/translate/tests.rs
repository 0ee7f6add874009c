//! Tests of the translation: golden files under `tests/golden/` (one input and one expected
//! output per case, walked by [`golden_files`]), chunking properties of streams, and one test
//! per pitfall of protocols.md §4.
//!
//! A golden directory is named `<what>-<client format>-<provider kind>`, `what` being
//! `request`, `response` or `stream`. A case is `NAME.in.json` (or `.in.sse`) with
//! `NAME.out.json` (`.out.sse`) beside it, plus optional `NAME.request.json` (the client's
//! request, for responses and streams) and `NAME.target.json` (`reasoning`, `max_output`).
//! `IZZI_BLESS=1 cargo test --lib translate::` rewrites the expected files; review the diff.

use std::path::{Path, PathBuf};

use bytes::BytesMut;
use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;

const CREATED: u64 = 1_750_000_000;

fn golden_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn format_of(name: &str) -> Format {
    match name {
        "chat" => Format::Chat,
        "messages" => Format::Messages,
        "responses" => Format::Responses,
        other => panic!("unknown format `{other}` in a golden directory name"),
    }
}

fn kind_of(name: &str) -> Kind {
    match name {
        "openai" => Kind::Openai,
        "anthropic" => Kind::Anthropic,
        other => panic!("unknown kind `{other}` in a golden directory name"),
    }
}

/// Target settings of a case.
struct Settings {
    reasoning: bool,
    max_output: u32,
}

/// No reasoning, 8192 output tokens: what most cases need.
const PLAIN: Settings = Settings {
    reasoning: false,
    max_output: 8192,
};

/// Reasoning on, up to `max_output` tokens.
fn reasoning(max_output: u32) -> Settings {
    Settings {
        reasoning: true,
        max_output,
    }
}

fn settings(path: &Path) -> Settings {
    let value: Value = fs_err::read(path)
        .ok()
        .map(|b| serde_json::from_slice(&b).unwrap())
        .unwrap_or(Value::Null);
    Settings {
        reasoning: value["reasoning"].as_bool().unwrap_or(false),
        max_output: value["max_output"].as_u64().map_or(8192, |v| v as u32),
    }
}

fn target<'a>(request: &'a Body<'a>, settings: &Settings) -> Target<'a> {
    Target {
        upstream_model: "upstream-model",
        client_model: "client-model",
        max_output: settings.max_output,
        reasoning: settings.reasoning,
        request,
        created: CREATED,
    }
}

/// The upstream request `body` (a client's, in `format`) becomes toward a `kind` provider.
fn upstream(format: Format, kind: Kind, body: &[u8], settings: &Settings) -> Value {
    let parsed = Body::parse(body).unwrap();
    let out = request(format, kind, &parsed, &target(&parsed, settings)).unwrap();
    serde_json::from_slice(&out.body).unwrap()
}

/// Runs a whole stream through a fresh translator, in the given byte chunks.
fn run_stream(
    format: Format,
    kind: Kind,
    target: &Target<'_>,
    chunks: &[&[u8]],
) -> (String, Usage, bool) {
    let mut machine = stream(format, kind, target);
    let mut parser = sse::Parser::default();
    let mut out = BytesMut::new();
    for chunk in chunks {
        parser.push(chunk);
        while let Some(event) = parser.next_event().unwrap() {
            machine.event(&event, &mut out);
        }
    }
    if let Some(event) = parser.finish() {
        machine.event(&event, &mut out);
    }
    let completed = machine.completed();
    machine.end(&mut out, None);
    (
        String::from_utf8(out.to_vec()).unwrap(),
        machine.usage(),
        completed,
    )
}

/// The output of one case, as it is written to its expected file.
fn run_case(dir: &str, input: &Path) -> String {
    let mut parts = dir.splitn(3, '-');
    let what = parts.next().unwrap();
    let format = format_of(parts.next().unwrap());
    let kind = kind_of(parts.next().unwrap());
    let stem = input
        .to_str()
        .unwrap()
        .split(".in.")
        .next()
        .unwrap()
        .to_owned();
    let settings = settings(Path::new(&format!("{stem}.target.json")));
    let raw = fs_err::read(input).unwrap();
    match what {
        "request" => {
            let body = Body::parse(&raw).unwrap();
            let target = target(&body, &settings);
            match request(format, kind, &body, &target) {
                Ok(prepared) => {
                    let value: Value = serde_json::from_slice(&prepared.body).unwrap();
                    serde_json::to_string_pretty(&value).unwrap() + "\n"
                }
                Err(err) => format!("error: {err}\n"),
            }
        }
        "response" | "stream" => {
            let request_raw = fs_err::read(format!("{stem}.request.json"))
                .unwrap_or_else(|_| br#"{"model":"client-model","messages":[]}"#.to_vec());
            let body = Body::parse(&request_raw).unwrap();
            let target = target(&body, &settings);
            if what == "response" {
                let (out, usage) = response(format, kind, &raw, &target).unwrap();
                let body: Value = serde_json::from_slice(&out).unwrap();
                let both = json!({"izzi_usage": usage, "body": body});
                serde_json::to_string_pretty(&both).unwrap() + "\n"
            } else {
                let (out, usage, completed) = run_stream(format, kind, &target, &[&raw]);
                format!(
                    "{out}: izzi usage={} completed={completed}\n",
                    serde_json::to_string(&usage).unwrap()
                )
            }
        }
        other => panic!("unknown golden kind `{other}`"),
    }
}

/// Every case under `tests/golden/`: each input's translation must equal its expected file.
#[test]
fn golden_files() {
    let bless = std::env::var_os("IZZI_BLESS").is_some();
    let mut failures = Vec::new();
    let mut cases = 0;
    let mut dirs: Vec<_> = fs_err::read_dir(golden_root())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    dirs.sort();
    for dir in dirs {
        let dir_name = dir.file_name().unwrap().to_str().unwrap().to_owned();
        let mut inputs: Vec<_> = fs_err::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.to_str().unwrap().contains(".in."))
            .collect();
        inputs.sort();
        for input in inputs {
            cases += 1;
            let actual = run_case(&dir_name, &input);
            let expected_path = PathBuf::from(input.to_str().unwrap().replace(".in.", ".out."));
            let expected = fs_err::read_to_string(&expected_path).unwrap_or_default();
            if actual != expected {
                if bless {
                    fs_err::write(&expected_path, &actual).unwrap();
                } else {
                    failures.push(format!(
                        "{}:\n--- expected\n{expected}\n--- actual\n{actual}",
                        expected_path.display()
                    ));
                }
            }
        }
    }
    assert!(cases >= 40, "only {cases} golden cases found");
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// The stream cases, for the chunking property.
fn stream_cases() -> Vec<(Format, Kind, Vec<u8>, Vec<u8>)> {
    let mut cases = Vec::new();
    for entry in fs_err::read_dir(golden_root()).unwrap() {
        let dir = entry.unwrap().path();
        let name = dir.file_name().unwrap().to_str().unwrap().to_owned();
        let Some(pair) = name.strip_prefix("stream-") else {
            continue;
        };
        let (format, kind) = pair.split_once('-').unwrap();
        for file in fs_err::read_dir(&dir).unwrap() {
            let path = file.unwrap().path();
            let text = path.to_str().unwrap().to_owned();
            if !text.ends_with(".in.sse") {
                continue;
            }
            let stem = text.trim_end_matches(".in.sse");
            let request = fs_err::read(format!("{stem}.request.json"))
                .unwrap_or_else(|_| br#"{"model":"client-model","messages":[]}"#.to_vec());
            cases.push((
                format_of(format),
                kind_of(kind),
                fs_err::read(&path).unwrap(),
                request,
            ));
        }
    }
    assert!(cases.len() >= 15, "stream golden cases missing");
    cases
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any stream cut into arbitrary byte chunks translates to what the whole stream does.
    #[test]
    fn chunking_never_changes_a_translated_stream(cuts in proptest::collection::vec(0.0f64..1.0, 0..40)) {
        for (format, kind, input, request) in stream_cases() {
            let body = Body::parse(&request).unwrap();
            let target = target(&body, &PLAIN);
            let whole = run_stream(format, kind, &target, &[&input]);
            let mut points: Vec<usize> = cuts.iter().map(|c| (c * input.len() as f64) as usize).collect();
            points.sort_unstable();
            let mut chunks = Vec::new();
            let mut last = 0;
            for point in points {
                chunks.push(&input[last..point]);
                last = point;
            }
            chunks.push(&input[last..]);
            let cut = run_stream(format, kind, &target, &chunks);
            prop_assert_eq!(&cut, &whole);
        }
    }
}

// ---- Helpers for the pitfall tests -------------------------------------------------------

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

fn sse_of(events: &[(Option<&str>, Value)]) -> Vec<u8> {
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

fn chunk(delta: Value, finish: Option<&str>) -> (Option<&'static str>, Value) {
    (
        None,
        json!({"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m",
               "choices":[{"index":0,"delta":delta,"finish_reason":finish}]}),
    )
}

fn done() -> (Option<&'static str>, Value) {
    (None, Value::String("[DONE]".into()))
}

const EMPTY_REQUEST: &[u8] = br#"{"model":"client-model","messages":[]}"#;

fn translate_stream(
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

fn anthropic_event(data: Value) -> (Option<&'static str>, Value) {
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

fn message_start(usage: Value) -> (Option<&'static str>, Value) {
    anthropic_event(
        json!({"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude","content":[],"stop_reason":null,"stop_sequence":null,"usage":usage}}),
    )
}

/// The arguments an Anthropic stream gave the tool block at `index`, its deltas joined.
fn tool_json(events: &[(Option<String>, Value)], index: u64) -> String {
    events
        .iter()
        .filter(|(_, d)| d["index"] == index && d["delta"]["type"] == "input_json_delta")
        .map(|(_, d)| d["delta"]["partial_json"].as_str().unwrap().to_owned())
        .collect()
}

/// Checks the Anthropic stream invariants Claude Code and the SDK rely on: `message_start`
/// first and once, one block open at a time, indices contiguous from 0, every delta inside
/// its open block, `message_stop` last.
fn assert_anthropic_invariants(events: &[(Option<String>, Value)]) {
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

// ---- Pitfalls of protocols.md §4 ----------------------------------------------------------

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
        if data["choices"][0]["delta"]["content"] == "hmm" {
            panic!("thinking leaked into the text");
        }
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

/// §4.3: a tool turn whose upstream says `stop` is `tool_use`, streamed and whole.
#[test]
fn pitfall_tool_turn_with_stop_is_tool_use() {
    let input = sse_of(&[
        chunk(
            json!({"role":"assistant","tool_calls":[{"index":0,"id":"c1","type":"function","function":{"name":"Bash","arguments":"{}"}}]}),
            None,
        ),
        chunk(json!({}), Some("stop")),
        done(),
    ]);
    let (events, _) = translate_stream(Format::Messages, Kind::Openai, EMPTY_REQUEST, &input);
    let stop = events
        .iter()
        .find(|(n, _)| n.as_deref() == Some("message_delta"))
        .unwrap();
    assert_eq!(stop.1["delta"]["stop_reason"], "tool_use");
    let body = json!({"id":"x","choices":[{"index":0,"message":{"role":"assistant","content":null,
        "tool_calls":[{"id":"c1","type":"function","function":{"name":"Bash","arguments":"{}"}}]},"finish_reason":"stop"}]});
    let request = Body::parse(EMPTY_REQUEST).unwrap();
    let target = target(&request, &PLAIN);
    let raw = serde_json::to_vec(&body).unwrap();
    let (out, _) = response(Format::Messages, Kind::Openai, &raw, &target).unwrap();
    let out: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(out["stop_reason"], "tool_use");
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

/// §4.6: no signature is ever invented; unsigned reasoning is not replayed to Anthropic;
/// a signed block survives byte for byte through a Responses reasoning item.
#[test]
fn pitfall_thinking_signatures() {
    // Chat upstream reasoning → Messages client: a thinking block without a signature.
    let input = sse_of(&[
        chunk(
            json!({"role":"assistant","reasoning_content":"think"}),
            None,
        ),
        chunk(json!({"content":"answer"}), Some("stop")),
        done(),
    ]);
    let (events, _) = translate_stream(Format::Messages, Kind::Openai, EMPTY_REQUEST, &input);
    assert!(
        events
            .iter()
            .all(|(_, d)| d["delta"]["type"] != "signature_delta")
    );
    assert!(
        events
            .iter()
            .all(|(_, d)| d["content_block"].get("signature").is_none())
    );

    // Unsigned reasoning in Chat history is not sent as thinking.
    let body = br#"{"model":"m","reasoning_effort":"high","max_tokens":8000,"messages":[
        {"role":"user","content":"q"},
        {"role":"assistant","content":"a","reasoning_content":"unsigned"},
        {"role":"user","content":"q2"}]}"#;
    let out = upstream(Format::Chat, Kind::Anthropic, body, &reasoning(64000));
    assert_eq!(
        out["messages"][1]["content"],
        json!([{"type":"text","text":"a"}])
    );

    // Anthropic thinking → Responses reasoning item → back to Anthropic, byte-identical.
    let signature = "EqQBCkYIBxgCKkB+/=sig";
    let upstream = json!({"id":"msg_1","type":"message","role":"assistant","model":"c","content":[
        {"type":"thinking","thinking":"Let me see.\n","signature":signature},
        {"type":"tool_use","id":"toolu_1","name":"shell","input":{"cmd":"ls"}}],
        "stop_reason":"tool_use","stop_sequence":null,"usage":{"input_tokens":1,"output_tokens":2}});
    let req = br#"{"model":"m","input":"hi"}"#;
    let parsed = Body::parse(req).unwrap();
    let t = target(&parsed, &reasoning(64000));
    let upstream = serde_json::to_vec(&upstream).unwrap();
    let (out, _) = response(Format::Responses, Kind::Anthropic, &upstream, &t).unwrap();
    let out: Value = serde_json::from_slice(&out).unwrap();
    let mut items = out["output"].as_array().unwrap().clone();
    items.push(json!({"type":"function_call_output","call_id":"toolu_1","output":"files"}));
    let mut input = vec![json!({"role":"user","content":"hi"})];
    input.extend(items);
    let next =
        serde_json::to_vec(&json!({"model":"m","input":input,"reasoning":{"effort":"high"}}))
            .unwrap();
    let parsed = Body::parse(&next).unwrap();
    let t = target(&parsed, &reasoning(64000));
    let out = request(Format::Responses, Kind::Anthropic, &parsed, &t).unwrap();
    let out: Value = serde_json::from_slice(&out.body).unwrap();
    assert_eq!(
        out["messages"][1]["content"][0],
        json!({"type":"thinking","thinking":"Let me see.\n","signature":signature})
    );
    assert!(
        out["thinking"].is_object(),
        "thinking stays on with its history intact"
    );

    // A reasoning item izzi did not write (OpenAI's own) is not forged into a signature.
    let foreign = br#"{"model":"m","input":[{"role":"user","content":"hi"},
        {"type":"reasoning","id":"rs_1","summary":[],"encrypted_content":"gAAAA-openai-blob"},
        {"role":"assistant","content":[{"type":"output_text","text":"yo"}]}]}"#;
    let parsed = Body::parse(foreign).unwrap();
    let out = request(Format::Responses, Kind::Anthropic, &parsed, &t).unwrap();
    assert!(!String::from_utf8_lossy(&out.body).contains("gAAAA"));
}

/// §4.7: `content: ""` on a tool-call turn does not become an empty text block.
#[test]
fn pitfall_no_empty_text_blocks() {
    let body = br#"{"model":"m","messages":[{"role":"user","content":"go"},
        {"role":"assistant","content":"","tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":""}}]},
        {"role":"tool","tool_call_id":"c1","content":"done"}]}"#;
    let out = upstream(Format::Chat, Kind::Anthropic, body, &PLAIN);
    assert_eq!(
        out["messages"][1]["content"],
        json!([{"type":"tool_use","id":"c1","name":"f","input":{}}])
    );
}

/// §4.8: consecutive tool messages become one user turn, results first, text after.
#[test]
fn pitfall_tool_result_placement() {
    let body = br#"{"model":"m","messages":[{"role":"user","content":"go"},
        {"role":"assistant","tool_calls":[
            {"id":"a","type":"function","function":{"name":"f","arguments":"{}"}},
            {"id":"b","type":"function","function":{"name":"f","arguments":"{}"}}]},
        {"role":"tool","tool_call_id":"a","content":"A"},
        {"role":"tool","tool_call_id":"b","content":"B"},
        {"role":"user","content":"and?"}]}"#;
    let parsed = Body::parse(body).unwrap();
    let t = target(&parsed, &PLAIN);
    let out = request(Format::Chat, Kind::Anthropic, &parsed, &t).unwrap();
    let out: Value = serde_json::from_slice(&out.body).unwrap();
    assert_eq!(out["messages"].as_array().unwrap().len(), 3);
    assert_eq!(
        out["messages"][2]["content"],
        json!([
            {"type":"tool_result","tool_use_id":"a","content":"A"},
            {"type":"tool_result","tool_use_id":"b","content":"B"},
            {"type":"text","text":"and?"}])
    );
    // A call left unanswered is named, not passed on to fail upstream.
    let body = br#"{"model":"m","messages":[{"role":"user","content":"go"},
        {"role":"assistant","tool_calls":[{"id":"a","type":"function","function":{"name":"f","arguments":"{}"}}]},
        {"role":"user","content":"hm"}]}"#;
    let parsed = Body::parse(body).unwrap();
    let err = request(Format::Chat, Kind::Anthropic, &parsed, &t).unwrap_err();
    assert!(err.0.contains("`messages[1].tool_calls`"), "{err}");
}

/// §4.9: odd ids are sanitized the same in `tool_use` and `tool_result`; names over 64
/// characters are shortened upstream and restored in the answer.
#[test]
fn pitfall_ids_and_long_names() {
    let body = br#"{"model":"m","messages":[{"role":"user","content":"go"},
        {"role":"assistant","tool_calls":[{"id":"functions.Bash:0","type":"function","function":{"name":"Bash","arguments":"{}"}}]},
        {"role":"tool","tool_call_id":"functions.Bash:0","content":"ok"}]}"#;
    let out = upstream(Format::Chat, Kind::Anthropic, body, &PLAIN);
    assert_eq!(out["messages"][1]["content"][0]["id"], "functions_Bash_0");
    assert_eq!(
        out["messages"][2]["content"][0]["tool_use_id"],
        "functions_Bash_0"
    );

    let long = format!("mcp__{}", "server_with_a_long_name_".repeat(4));
    let body = serde_json::to_vec(&json!({"model":"m","max_tokens":100,"messages":[{"role":"user","content":"go"}],
        "tools":[{"name":long,"input_schema":{"type":"object"}}],"tool_choice":{"type":"tool","name":long}})).unwrap();
    let parsed = Body::parse(&body).unwrap();
    let t = target(&parsed, &PLAIN);
    let out = request(Format::Messages, Kind::Openai, &parsed, &t).unwrap();
    let out: Value = serde_json::from_slice(&out.body).unwrap();
    let short = out["tools"][0]["function"]["name"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(short.len() <= 64);
    assert_eq!(out["tool_choice"]["function"]["name"], short.as_str());
    let answer = serde_json::to_vec(&json!({"id":"x","choices":[{"index":0,"message":{"role":"assistant",
        "tool_calls":[{"id":"c","type":"function","function":{"name":short,"arguments":"{}"}}]},"finish_reason":"tool_calls"}]})).unwrap();
    let (out, _) = response(Format::Messages, Kind::Openai, &answer, &t).unwrap();
    let out: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(out["content"][0]["name"], long.as_str());
    let input = sse_of(&[
        chunk(
            json!({"role":"assistant","tool_calls":[{"index":0,"id":"c","type":"function","function":{"name":short,"arguments":"{}"}}]}),
            Some("tool_calls"),
        ),
        done(),
    ]);
    let (events, _) = translate_stream(Format::Messages, Kind::Openai, &body, &input);
    let start = events
        .iter()
        .find(|(_, d)| d["content_block"]["type"] == "tool_use")
        .unwrap();
    assert_eq!(start.1["content_block"]["name"], long.as_str());
}

/// §4.10: `max_completion_tokens` toward reasoning models, no Anthropic-only keys leak toward
/// OpenAI, and a forced tool with thinking is refused by name.
#[test]
fn pitfall_parameters() {
    let body = br#"{"model":"m","max_tokens":32000,"messages":[{"role":"user","content":"hi"}],
        "thinking":{"type":"enabled","budget_tokens":31999},"context_management":{"edits":[]},
        "output_config":{"effort":"high"},"metadata":{"user_id":"u1"},"top_p":0.9}"#;
    let out = upstream(Format::Messages, Kind::Openai, body, &reasoning(128000));
    assert_eq!(out["max_completion_tokens"], 32000);
    assert!(out.get("max_tokens").is_none());
    for leaked in [
        "thinking",
        "context_management",
        "output_config",
        "metadata",
        "reasoning",
        "top_p",
    ] {
        assert!(out.get(leaked).is_none(), "`{leaked}` leaked: {out}");
    }
    assert_eq!(out["reasoning_effort"], "high");
    assert_eq!(out["user"], "u1");

    let body = br#"{"model":"m","messages":[{"role":"user","content":"hi"}],"reasoning_effort":"high",
        "tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}],"tool_choice":"required"}"#;
    let parsed = Body::parse(body).unwrap();
    let t = target(&parsed, &reasoning(64000));
    let err = request(Format::Chat, Kind::Anthropic, &parsed, &t).unwrap_err();
    assert!(err.0.contains("`tool_choice`"), "{err}");
}

/// §4.11: tool schemas go through unchanged (Anthropic's own 400 names its complaint).
#[test]
fn pitfall_schemas_pass_unchanged() {
    let schema = json!({"$schema":"https://json-schema.org/draft/2020-12/schema","type":"object",
        "properties":{"a":{"type":"string"}},"required":["a"],"additionalProperties":false});
    let body = serde_json::to_vec(
        &json!({"model":"m","messages":[{"role":"user","content":"hi"}],
        "tools":[{"type":"function","function":{"name":"f","parameters":schema}}]}),
    )
    .unwrap();
    let out = upstream(Format::Chat, Kind::Anthropic, &body, &PLAIN);
    assert_eq!(out["tools"][0]["input_schema"], schema);
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

/// Refusals name the field, for each §3.9 case that real clients can send.
#[test]
fn refusals_name_the_field() {
    let cases: &[(Format, Kind, &str, &str)] = &[
        (
            Format::Messages,
            Kind::Openai,
            r#"{"model":"m","max_tokens":10,"messages":[],"tools":[{"name":"a","input_schema":{}},{"name":"b","input_schema":{}},{"type":"web_search_20250305","name":"web_search"}]}"#,
            "`tools[2].type` `web_search_20250305` cannot be sent to an OpenAI-kind provider",
        ),
        (
            Format::Messages,
            Kind::Openai,
            r#"{"model":"m","max_tokens":10,"messages":[],"top_k":5}"#,
            "`top_k`",
        ),
        (
            Format::Messages,
            Kind::Openai,
            r#"{"model":"m","max_tokens":10,"messages":[],"mcp_servers":[{}]}"#,
            "`mcp_servers`",
        ),
        (
            Format::Messages,
            Kind::Openai,
            r#"{"model":"m","max_tokens":10,"messages":[],"stop_sequences":["a","b","c","d","e"]}"#,
            "`stop_sequences`",
        ),
        (
            Format::Chat,
            Kind::Anthropic,
            r#"{"model":"m","messages":[],"n":2}"#,
            "`n`",
        ),
        (
            Format::Chat,
            Kind::Anthropic,
            r#"{"model":"m","messages":[],"logprobs":true}"#,
            "`logprobs`",
        ),
        (
            Format::Chat,
            Kind::Anthropic,
            r#"{"model":"m","messages":[],"logit_bias":{"1":5}}"#,
            "`logit_bias`",
        ),
        (
            Format::Chat,
            Kind::Anthropic,
            r#"{"model":"m","messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{}}]}]}"#,
            "`messages[0].content[0].type` `input_audio`",
        ),
        (
            Format::Chat,
            Kind::Anthropic,
            r#"{"model":"m","messages":[],"tools":[{"type":"custom","custom":{}}]}"#,
            "`tools[0].type` `custom`",
        ),
        (
            Format::Responses,
            Kind::Openai,
            r#"{"model":"m","input":"x","previous_response_id":"resp_1"}"#,
            "`previous_response_id`",
        ),
        (
            Format::Responses,
            Kind::Anthropic,
            r#"{"model":"m","input":"x","tools":[{"type":"file_search"}]}"#,
            "`tools[0].type` `file_search`",
        ),
        (
            Format::Responses,
            Kind::Anthropic,
            r#"{"model":"m","input":[{"type":"item_reference","id":"x"}]}"#,
            "`input[0].type` `item_reference`",
        ),
        (
            Format::Messages,
            Kind::Openai,
            r#"{"model":"m","max_tokens":10,"messages":[{"role":"user","content":5}]}"#,
            "`messages[0].content`",
        ),
        // A text part whose text is not a string was once sent on as an empty prompt.
        (
            Format::Responses,
            Kind::Openai,
            r#"{"model":"m","input":[{"role":"user","content":[{"type":"input_text","text":7}]}]}"#,
            "`input[0].content[0].text` is not valid",
        ),
        (
            Format::Responses,
            Kind::Anthropic,
            r#"{"model":"m","input":[{"role":"assistant","content":[{"type":"refusal"}]}]}"#,
            "`input[0].content[0].refusal` is not valid",
        ),
        (
            Format::Responses,
            Kind::Anthropic,
            r#"{"model":"m","input":[{"type":"function_call_output","call_id":"c","output":[{"type":"input_text","text":{"a":1}}]}]}"#,
            "`input[0].output[0].text` is not valid",
        ),
    ];
    for (format, kind, body, wanted) in cases {
        let parsed = Body::parse(body.as_bytes()).unwrap();
        let t = target(&parsed, &PLAIN);
        let err = request(*format, *kind, &parsed, &t).unwrap_err();
        assert!(err.0.contains(wanted), "{body}: {err}");
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
