//! Pitfalls that span request, whole answer and stream (protocols.md §4.3, §4.6, §4.9): what
//! one way writes the other reads back, and a stream and a whole answer agree.

use serde_json::{Value, json};

use super::transcript::{chunk, done, sse_of, translate_stream};
use super::*;

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

/// §4.6: no signature is ever invented; unsigned reasoning is not replayed to Anthropic;
/// a signed block survives byte for byte through a Responses reasoning item.
#[test]
fn pitfall_thinking_signatures() {
    // Chat upstream reasoning → Messages client: a thinking block with no Anthropic signature,
    // only izzi's mark, never a forged one.
    let input = sse_of(&[
        chunk(
            json!({"role":"assistant","reasoning_content":"think"}),
            None,
        ),
        chunk(json!({"content":"answer"}), Some("stop")),
        done(),
    ]);
    let (events, _) = translate_stream(Format::Messages, Kind::Openai, EMPTY_REQUEST, &input);
    let signatures: Vec<&Value> = events
        .iter()
        .filter(|(_, d)| d["delta"]["type"] == "signature_delta")
        .map(|(_, d)| &d["delta"]["signature"])
        .collect();
    assert_eq!(signatures, [reasoning::UNSIGNED]);
    assert!(
        events
            .iter()
            .all(|(_, d)| d["content_block"].get("signature").is_none())
    );
    // Replayed toward Anthropic in the client's own format, that block is removed.
    let replay = br#"{"model":"m","max_tokens":10,"messages":[{"role":"user","content":"q"},
        {"role":"assistant","content":[{"type":"thinking","thinking":"think","signature":"izzi-unsigned"},
        {"type":"text","text":"answer"}]},{"role":"user","content":"q2"}]}"#;
    let out = upstream(Format::Messages, Kind::Anthropic, replay, &PLAIN);
    assert_eq!(
        out["messages"][1]["content"],
        json!([{"type":"text","text":"answer"}])
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
