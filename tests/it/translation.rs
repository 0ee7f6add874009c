//! What crosses the format boundary besides the conversation (docs/translation.md): headers and
//! beta fields per provider kind, server tools, freeform tools, provider-bound reasoning.

use serde_json::{Value, json};

use crate::support::{Gateway, KEY, Mock, http, mock_config};

/// The first output item of a type in a Responses answer.
fn output_item(answer: &Value, kind: &str) -> Value {
    answer["output"]
        .as_array()
        .and_then(|items| items.iter().find(|item| item["type"] == kind))
        .unwrap_or_else(|| panic!("no `{kind}` in {answer}"))
        .clone()
}

#[tokio::test]
async fn anthropic_beta_reaches_anthropic_kind_providers_only_translated_or_not() {
    let mock = Mock::start();
    let gw = Gateway::start(&mock_config(&mock, ""));
    let beta = [(
        "anthropic-beta",
        "context-1m-2025-08-07,interleaved-thinking-2025-05-14",
    )];
    let chat =
        |model: &str| json!({"model": model, "messages": [{"role": "user", "content": "hi"}]});
    let messages = |model: &str| json!({"model": model, "max_tokens": 32, "messages": [{"role": "user", "content": "hi"}]});
    gw.post_ok("/v1/chat/completions", &beta, &chat("sonnet"))
        .await;
    gw.post_ok("/v1/messages", &beta, &messages("sonnet")).await;
    gw.post_ok(
        "/v1/responses",
        &beta,
        &json!({"model": "sonnet", "input": "hi"}),
    )
    .await;
    gw.post_ok("/v1/messages", &beta, &messages("gpt-4.1"))
        .await;
    gw.post_ok("/v1/chat/completions", &beta, &chat("gpt-4.1"))
        .await;
    let requests = mock.requests().await;
    let sent: Vec<(&str, Option<&str>)> = requests
        .iter()
        .map(|r| {
            (
                r["path"].as_str().unwrap(),
                r["headers"]["anthropic-beta"].as_str(),
            )
        })
        .collect();
    let both = Some(beta[0].1);
    assert_eq!(
        sent,
        [
            ("/v1/messages", both),
            ("/v1/messages", both),
            ("/v1/messages", both),
            ("/v1/chat/completions", None),
            ("/v1/chat/completions", None),
        ]
    );
}

#[tokio::test]
async fn web_search_becomes_the_providers_own_or_is_dropped_never_a_400() {
    let mock = Mock::start();
    let gw = Gateway::start(&mock_config(
        &mock,
        "[[models]]\nid = \"gpt-4o-search-preview\"\nprovider = \"openai\"\nweb_search = true\n",
    ));
    // Claude Code's WebSearch and WebFetch, with its other tools.
    let claude_code = |model: &str| {
        json!({"model": model, "max_tokens": 32, "messages": [{"role": "user", "content": "news?"}],
               "tools": [{"name": "Bash", "input_schema": {"type": "object"}},
                         {"type": "web_search_20250305", "name": "web_search", "max_uses": 8},
                         {"type": "web_fetch_20250910", "name": "web_fetch"}]})
    };
    gw.post_ok("/v1/messages", &[], &claude_code("gpt-4.1"))
        .await;
    gw.post_ok("/v1/messages", &[], &claude_code("gpt-4o-search-preview"))
        .await;
    // Codex's built-in web search on Claude.
    let codex = json!({"model": "sonnet", "input": "news?", "tools": [{"type": "web_search"}]});
    gw.post_ok("/v1/responses", &[], &codex).await;
    let requests = mock.requests().await;
    let plain = &requests[0]["body"];
    assert!(plain.get("web_search_options").is_none(), "{plain}");
    assert_eq!(plain["tools"].as_array().unwrap().len(), 1, "{plain}");
    assert_eq!(requests[1]["body"]["web_search_options"], json!({}));
    assert_eq!(
        requests[2]["body"]["tools"],
        json!([{"type": "web_search_20250305", "name": "web_search"}])
    );
}

#[tokio::test]
async fn thinking_made_from_another_providers_reasoning_never_reaches_anthropic() {
    let mock = Mock::start();
    let gw = Gateway::start(&mock_config(&mock, ""));
    // Claude Code on a GPT model that reasons (a route or a fallback), then back on Claude.
    let mut messages = vec![json!({"role": "user", "content": "list the files mock:thinking"})];
    let body = |model: &str, messages: &[Value]| {
        json!({"model": model, "max_tokens": 4096, "messages": messages,
               "thinking": {"type": "enabled", "budget_tokens": 2048}})
    };
    let first = gw
        .post_ok("/v1/messages", &[], &body("gpt-4.1", &messages))
        .await;
    assert_eq!(first["content"][0]["type"], "thinking", "{first}");
    messages.push(json!({"role": "assistant", "content": first["content"]}));
    messages.push(json!({"role": "user", "content": "and now? mock:thinking"}));
    let second = gw
        .post_ok("/v1/messages", &[], &body("sonnet", &messages))
        .await;
    // Claude's own signed thinking goes back to Claude untouched.
    messages.push(json!({"role": "assistant", "content": second["content"]}));
    messages.push(json!({"role": "user", "content": "thanks"}));
    gw.post_ok("/v1/messages", &[], &body("sonnet", &messages))
        .await;
    let requests = mock.requests().await;
    let visible: Vec<&Value> = first["content"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["type"] != "thinking")
        .collect();
    assert_eq!(
        requests[1]["body"]["messages"][1]["content"],
        json!(visible)
    );
    assert_eq!(
        requests[2]["body"]["messages"][3]["content"][0]["signature"],
        "mock-signature"
    );
}

#[tokio::test]
async fn codex_freeform_tools_work_on_claude_and_chat_providers_streamed_or_not() {
    let mock = Mock::start();
    let gw = Gateway::start(&mock_config(&mock, ""));
    let tools = json!([{"type": "custom", "name": "apply_patch", "description": "Edit files.",
        "format": {"type": "grammar", "syntax": "lark", "definition": "start: /.+/"}}]);
    for model in ["sonnet", "gpt-4.1"] {
        // The call comes back as a `custom_tool_call` with the raw input…
        let first = json!({"model": model, "tools": tools, "input": "add mock.txt mock:tools"});
        let answer = gw.post_ok("/v1/responses", &[], &first).await;
        let call = output_item(&answer, "custom_tool_call");
        assert_eq!(call["name"], "apply_patch");
        assert!(
            call["input"]
                .as_str()
                .unwrap()
                .starts_with("*** Begin Patch\n"),
            "{call}"
        );
        // … and goes back with its output on the next turn, streamed this time.
        let next = json!({"model": model, "tools": tools, "stream": true, "input": [
            {"role": "user", "content": "add mock.txt"}, call,
            {"type": "custom_tool_call_output", "call_id": call["call_id"], "output": "Done."}]});
        let response = http()
            .post(format!("{}/v1/responses", gw.url))
            .bearer_auth(KEY)
            .json(&next)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let text = response.text().await.unwrap();
        assert!(text.contains("response.completed"), "{text}");
    }
    let requests = mock.requests().await;
    // Anthropic got a tool with one string; the call and its result went back as a pair.
    let claude = &requests[1]["body"];
    assert_eq!(
        claude["tools"][0]["input_schema"]["properties"]["input"]["type"],
        "string"
    );
    assert_eq!(claude["messages"][1]["content"][0]["type"], "tool_use");
    assert_eq!(claude["messages"][2]["content"][0]["content"], "Done.");
    let chat = &requests[3]["body"];
    assert_eq!(chat["tools"][0]["type"], "function");
    assert_eq!(chat["messages"][2]["role"], "tool");
}

#[tokio::test]
async fn chat_custom_tools_come_back_as_custom_calls_from_claude() {
    let mock = Mock::start();
    let gw = Gateway::start(&mock_config(&mock, ""));
    let tools = json!([{"type": "custom", "custom": {"name": "apply_patch", "description": "Edit files."}}]);
    let body = json!({"model": "sonnet", "tools": tools,
                      "messages": [{"role": "user", "content": "add mock.txt mock:tools"}]});
    let answer = gw.post_ok("/v1/chat/completions", &[], &body).await;
    let call = &answer["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(call["type"], "custom", "{answer}");
    assert_eq!(call["custom"]["name"], "apply_patch");
    let input = call["custom"]["input"].as_str().unwrap().to_owned();
    assert!(input.starts_with("*** Begin Patch\n"), "{call}");
    // Streamed, the raw input arrives whole in one fragment after the call's name.
    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    let text = http()
        .post(format!("{}/v1/chat/completions", gw.url))
        .bearer_auth(KEY)
        .json(&streamed)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let fragments: String = text
        .lines()
        .filter_map(|line| line.strip_prefix("data: "))
        .filter_map(|data| serde_json::from_str::<Value>(data).ok())
        .filter_map(|chunk| {
            chunk["choices"][0]["delta"]["tool_calls"][0]["custom"]["input"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(fragments, input);
}

#[tokio::test]
async fn codex_local_shell_works_on_claude() {
    let mock = Mock::start();
    let gw = Gateway::start(&mock_config(&mock, ""));
    let tools = json!([{"type": "local_shell"}]);
    let first = json!({"model": "sonnet", "tools": tools, "input": "what is here? mock:tools"});
    let answer = gw.post_ok("/v1/responses", &[], &first).await;
    let call = output_item(&answer, "local_shell_call");
    assert_eq!(
        call["action"],
        json!({"type": "exec", "command": ["echo", "mock"]})
    );
    let next = json!({"model": "sonnet", "tools": tools, "input": [
        {"role": "user", "content": "what is here?"}, call,
        {"type": "function_call_output", "call_id": call["call_id"], "output": "mock"}]});
    gw.post_ok("/v1/responses", &[], &next).await;
    let requests = mock.requests().await;
    let sent = &requests[1]["body"]["messages"];
    assert_eq!(
        sent[1]["content"][0]["input"],
        json!({"command": ["echo", "mock"]})
    );
    assert_eq!(sent[2]["content"][0]["tool_use_id"], call["call_id"]);
}
