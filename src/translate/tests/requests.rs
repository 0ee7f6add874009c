//! Pitfalls of requests (protocols.md §4.7, §4.8, §4.10, §4.11) and the refusals that name
//! their field (§3.9).

use serde_json::{Value, json};

use super::*;

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

/// §4.10: `max_completion_tokens` toward reasoning models, no Anthropic-only keys leak toward
/// OpenAI, and a forced tool with thinking is refused by name.
#[test]
fn pitfall_parameters() {
    let body = br#"{"model":"m","max_tokens":32000,"messages":[{"role":"user","content":"hi"}],
        "thinking":{"type":"enabled","budget_tokens":31999},"context_management":{"edits":[]},
        "output_config":{"effort":"high"},"metadata":{"user_id":"u1"},"top_p":0.9}"#;
    let out = upstream(Format::Messages, Kind::Openai, body, &reasoning(128_000));
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

/// Refusals name the field, for each §3.9 case that real clients can send.
#[test]
fn refusals_name_the_field() {
    let cases: &[(Format, Kind, &str, &str)] = &[
        (
            Format::Messages,
            Kind::Openai,
            r#"{"model":"m","max_tokens":10,"messages":[],"tools":[{"name":"a","input_schema":{}},{"name":"b","input_schema":{}},{"type":"computer_20250124","name":"computer"}]}"#,
            "`tools[2].type` `computer_20250124` cannot be sent to an OpenAI-kind provider",
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
            "`tools[0].custom.name`",
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

/// A forced freeform tool: Chat's `{type:"custom", custom:{name}}` and Responses'
/// `{type:"custom", name}` name the tool they become on a provider without freeform tools.
#[test]
fn a_forced_custom_tool_is_forced_as_the_function_it_becomes() {
    let body = br#"{"model":"m","messages":[{"role":"user","content":"patch it"}],
        "tools":[{"type":"custom","custom":{"name":"apply_patch","description":"Edit files."}}],
        "tool_choice":{"type":"custom","custom":{"name":"apply_patch"}}}"#;
    let out = upstream(Format::Chat, Kind::Anthropic, body, &PLAIN);
    assert_eq!(
        out["tool_choice"],
        json!({"type":"tool","name":"apply_patch"})
    );
    assert_eq!(out["tools"][0]["name"], "apply_patch");

    let body = br#"{"model":"m","input":"patch it",
        "tools":[{"type":"custom","name":"apply_patch","description":"Edit files."}],
        "tool_choice":{"type":"custom","name":"apply_patch"}}"#;
    for kind in [Kind::Anthropic, Kind::Openai] {
        let out = upstream(Format::Responses, kind, body, &PLAIN);
        let name = &out["tool_choice"];
        let forced = match kind {
            Kind::Anthropic => name["name"].clone(),
            Kind::Openai => name["function"]["name"].clone(),
        };
        assert_eq!(forced, "apply_patch", "{kind:?}: {out}");
    }

    // A choice that names nothing is refused by name.
    let body = br#"{"model":"m","messages":[{"role":"user","content":"hi"}],
        "tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":{"type":"custom"}}"#;
    let parsed = Body::parse(body).unwrap();
    let t = target(&parsed, &PLAIN);
    let err = request(Format::Chat, Kind::Anthropic, &parsed, &t).unwrap_err();
    assert!(err.0.contains("`tool_choice` names no tool"), "{err}");
}
