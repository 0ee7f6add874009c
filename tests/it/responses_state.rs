//! Stateful Responses through the real gateway: `previous_response_id` on both provider kinds,
//! plain and streamed; `GET`/`DELETE /responses/{id}` and `input_items`; stored responses
//! belong to their key; `store: false`; eviction by size and age.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Gateway, KEY, Mock, http, mock_config};

const OTHER: &str = "izzi-other-key-0123456789abcdef";

fn config(mock: &Mock, extra: &str) -> String {
    mock_config(
        mock,
        &format!("[[keys]]\nname = \"other\"\nkey = \"{OTHER}\"\nplan = \"ultra\"\n{extra}"),
    )
}

/// A `POST /responses` answered 200: the response object (a stream's `response.completed`).
async fn respond(gw: &Gateway, prefix: &str, body: &Value) -> Value {
    let response = gw.post(&format!("{prefix}/responses"), KEY, body).await;
    let status = response.status();
    let text = response.text().await.expect("a body");
    assert_eq!(status, 200, "{text}");
    if body["stream"] != true {
        return serde_json::from_str(&text).expect("a JSON answer");
    }
    text.split("\n\n")
        .filter_map(|event| event.lines().find_map(|l| l.strip_prefix("data: ")))
        .filter_map(|data| serde_json::from_str::<Value>(data).ok())
        .find(|event| event["type"] == "response.completed")
        .map_or_else(
            || panic!("no response.completed in {text}"),
            |event| event["response"].clone(),
        )
}

async fn delete(gw: &Gateway, path: &str, key: &str) -> reqwest::Response {
    http()
        .delete(format!("{}{path}", gw.url))
        .bearer_auth(key)
        .send()
        .await
        .expect("DELETE sent")
}

/// The error a 404 carries, in the one error shape.
async fn not_found(response: reqwest::Response) {
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.expect("a JSON error");
    assert_eq!(body["error"]["type"], "not_found", "{body}");
}

/// Texts of a message item's content, a string or parts.
fn text_of(item: &Value) -> String {
    match &item["content"] {
        Value::String(text) => text.clone(),
        Value::Array(parts) => parts.iter().filter_map(|p| p["text"].as_str()).collect(),
        _ => String::new(),
    }
}

/// A second turn names only the first's id; the upstream (Anthropic- and OpenAI-kind, plain and
/// streamed) gets the whole conversation, and the second response is stored with it, on every
/// prefix.
#[tokio::test]
async fn previous_response_id_continues_on_both_provider_kinds() {
    let mock = Mock::start();
    let gw = Gateway::start(&config(&mock, ""));
    for (n, (model, stream, prefix)) in [
        ("sonnet", false, "/v1"),
        ("sonnet", true, "/openai/v1"),
        ("gpt-4.1", false, "/api/v1"),
        ("gpt-4.1", true, "/v1"),
    ]
    .into_iter()
    .enumerate()
    {
        let first = respond(
            &gw,
            prefix,
            &json!({"model": model, "stream": stream, "input": format!("alpha{n} mock:rid=a{n}")}),
        )
        .await;
        assert_eq!(first["id"], format!("resp_a{n}"));
        let second = respond(
            &gw,
            prefix,
            &json!({"model": model, "stream": stream, "previous_response_id": first["id"],
                    "input": [{"role": "user", "content": format!("beta{n} mock:rid=b{n}")}]}),
        )
        .await;
        assert_eq!(second["id"], format!("resp_b{n}"));
        let sent = mock.requests().await.pop().unwrap();
        let upstream = sent["body"].to_string();
        assert!(!upstream.contains("previous_response_id"), "{upstream}");
        let (alpha, answer, beta) = (
            upstream.find(&format!("alpha{n}")).expect("the first turn"),
            upstream
                .find("Hello from the mock")
                .expect("the first answer"),
            upstream.find(&format!("beta{n}")).expect("this turn"),
        );
        assert!(alpha < answer && answer < beta, "{upstream}");
        let got = gw
            .get_json(&format!("{prefix}/responses/resp_b{n}"), KEY)
            .await;
        assert_eq!(got["id"], second["id"]);
        assert_eq!(got["output"], second["output"]);
        let items = gw
            .get_json(&format!("{prefix}/responses/resp_b{n}/input_items"), KEY)
            .await;
        let data = items["data"].as_array().unwrap();
        let texts: Vec<String> = data.iter().map(text_of).collect();
        assert_eq!(data.len(), 3, "{items}");
        assert!(texts[0].starts_with(&format!("beta{n}")), "{texts:?}");
        assert!(texts[1].starts_with("Hello from the mock"), "{texts:?}");
        assert!(texts[2].starts_with(&format!("alpha{n}")), "{texts:?}");
        assert_eq!(items["has_more"], false);
        assert_eq!(items["first_id"], data[0]["id"]);
    }
}

/// Another key cannot read, continue or delete a response; unknown ids and `store: false`
/// answers are 404 too.
#[tokio::test]
async fn stored_responses_belong_to_their_key() {
    let mock = Mock::start();
    let gw = Gateway::start(&config(&mock, ""));
    let made = respond(
        &gw,
        "/v1",
        &json!({"model": "sonnet", "input": "hi mock:rid=mine"}),
    )
    .await;
    let path = format!("/v1/responses/{}", made["id"].as_str().unwrap());
    assert_eq!(gw.get_json(&path, KEY).await["id"], "resp_mine");
    not_found(gw.get(&path, OTHER).await).await;
    not_found(gw.get(&format!("{path}/input_items"), OTHER).await).await;
    let continued =
        json!({"model": "sonnet", "previous_response_id": "resp_mine", "input": "more"});
    not_found(gw.post("/v1/responses", OTHER, &continued).await).await;
    not_found(delete(&gw, &path, OTHER).await).await;
    not_found(gw.get("/v1/responses/resp_unknown", KEY).await).await;
    let deleted = delete(&gw, &path, KEY).await;
    assert_eq!(deleted.status(), 200);
    let deleted: Value = deleted.json().await.unwrap();
    assert_eq!(
        deleted,
        json!({"id": "resp_mine", "object": "response", "deleted": true})
    );
    not_found(gw.get(&path, KEY).await).await;
    // `store: false` keeps nothing, streamed or not.
    for stream in [false, true] {
        let body = json!({"model": "gpt-4.1", "store": false, "stream": stream, "input": format!("x mock:rid=nostore{stream}")});
        let answer = respond(&gw, "/v1", &body).await;
        not_found(
            gw.get(
                &format!("/v1/responses/{}", answer["id"].as_str().unwrap()),
                KEY,
            )
            .await,
        )
        .await;
    }
    // A wrongly typed id is a 400 that names it.
    let bad = json!({"model": "sonnet", "previous_response_id": 7, "input": "x"});
    let response = gw.post("/v1/responses", KEY, &bad).await;
    assert_eq!(response.status(), 400);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("previous_response_id")
    );
}

/// `input_items` pages as OpenAI does: `limit`, `order`, `after`, `has_more`.
#[tokio::test]
async fn input_items_page() {
    let mock = Mock::start();
    let gw = Gateway::start(&config(&mock, ""));
    let input: Vec<Value> = (0..5)
        .map(|i| json!({"role": "user", "content": format!("m{i}")}))
        .collect();
    let body = json!({"model": "sonnet", "input": input, "instructions": "mock:rid=paged"});
    respond(&gw, "/v1", &body).await;
    let page = |query: &str| {
        let path = format!("/v1/responses/resp_paged/input_items?{query}");
        let gw = &gw;
        async move { gw.get_json(&path, KEY).await }
    };
    let first = page("limit=2&order=asc").await;
    let texts = |page: &Value| -> Vec<String> {
        page["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(text_of)
            .collect()
    };
    assert_eq!(texts(&first), ["m0", "m1"]);
    assert_eq!(first["has_more"], true);
    assert_eq!(first["object"], "list");
    let after = first["last_id"].as_str().unwrap();
    let second = page(&format!("limit=2&order=asc&after={after}")).await;
    assert_eq!(texts(&second), ["m2", "m3"]);
    let last = page(&format!(
        "limit=2&order=asc&after={}",
        second["last_id"].as_str().unwrap()
    ))
    .await;
    assert_eq!(texts(&last), ["m4"]);
    assert_eq!(last["has_more"], false);
    assert_eq!(texts(&page("").await), ["m4", "m3", "m2", "m1", "m0"]);
    for bad in ["limit=0", "limit=101", "order=up", "after=nope"] {
        let response = gw
            .get(&format!("/v1/responses/resp_paged/input_items?{bad}"), KEY)
            .await;
        assert_eq!(response.status(), 400, "{bad}");
    }
}

/// Past `[responses] max_bytes` the oldest response goes; past `max_age_s` every one does.
#[tokio::test]
async fn stored_responses_are_evicted_by_size_and_age() {
    let mock = Mock::start();
    let gw = Gateway::start(&config(&mock, "[responses]\nmax_bytes = 2500\n"));
    let big = "y".repeat(1000);
    for id in ["old", "new"] {
        respond(
            &gw,
            "/v1",
            &json!({"model": "sonnet", "input": format!("{big} mock:rid={id}")}),
        )
        .await;
    }
    not_found(gw.get("/v1/responses/resp_old", KEY).await).await;
    assert_eq!(
        gw.get_json("/v1/responses/resp_new", KEY).await["id"],
        "resp_new"
    );

    let mock = Mock::start();
    let gw = Gateway::start(&config(&mock, "[responses]\nmax_age_s = 1\n"));
    respond(
        &gw,
        "/v1",
        &json!({"model": "sonnet", "input": "x mock:rid=brief"}),
    )
    .await;
    assert_eq!(
        gw.get_json("/v1/responses/resp_brief", KEY).await["id"],
        "resp_brief"
    );
    tokio::time::sleep(Duration::from_millis(2100)).await;
    not_found(gw.get("/v1/responses/resp_brief", KEY).await).await;
}

/// Codex's remote compaction on both provider kinds, on every prefix: the answer is OpenAI's
/// `response.compaction` (the user's messages, then one `compaction` item), and the next turn,
/// which carries that item back, reaches the provider as the summary's text.
#[tokio::test]
async fn compact_then_continue_on_both_provider_kinds() {
    let mock = Mock::start();
    let gw = Gateway::start(&config(&mock, ""));
    let tools = json!([{"type": "function", "name": "shell",
                        "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}}}}]);
    for (model, prefix) in [
        ("sonnet", "/v1"),
        ("gpt-4.1", "/openai/v1"),
        ("gpt-4.1", "/api/v1"),
    ] {
        let history = json!([
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Build the parser"}]},
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Working on it"}]},
            {"type": "function_call", "call_id": "call_1", "name": "shell", "arguments": "{\"cmd\":\"ls\"}"},
            {"type": "function_call_output", "call_id": "call_1", "output": "src tests"},
        ]);
        let body = json!({"model": model, "instructions": "You are Codex.", "input": history,
                          "tools": tools, "parallel_tool_calls": false});
        let response = gw
            .post(&format!("{prefix}/responses/compact"), KEY, &body)
            .await;
        assert_eq!(response.status(), 200);
        let compacted: Value = response.json().await.unwrap();
        assert_eq!(compacted["object"], "response.compaction", "{compacted}");
        let output = compacted["output"].as_array().unwrap();
        assert_eq!(output.len(), 2, "{compacted}");
        assert_eq!(
            (
                &output[0]["type"],
                &output[0]["role"],
                &output[0]["content"]
            ),
            (&json!("message"), &json!("user"), &history[0]["content"])
        );
        assert!(output[0]["id"].is_string(), "{compacted}");
        assert_eq!(output[1]["type"], "compaction");
        assert!(output[1]["encrypted_content"].is_string());
        assert!(compacted["usage"]["output_tokens"].as_u64().unwrap() > 0);
        let asked = mock.requests().await.pop().unwrap()["body"].to_string();
        assert!(
            asked.contains("about to be compacted") && asked.contains("src tests"),
            "{asked}"
        );

        // Codex's next turn: the compacted history, then the new message (`store: false`).
        let mut input = output.clone();
        input.push(json!({"type": "message", "role": "user", "content": "Now add tests"}));
        let next = json!({"model": model, "store": false, "input": input, "tools": tools});
        let response = gw.post(&format!("{prefix}/responses"), KEY, &next).await;
        assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
        let sent = mock.requests().await.pop().unwrap()["body"].to_string();
        assert!(sent.contains("This conversation was compacted"), "{sent}");
        assert!(
            sent.contains("Hello from the mock upstream."),
            "the summary: {sent}"
        );
        assert!(
            !sent.contains("izzi-compaction") && !sent.contains("src tests"),
            "{sent}"
        );
    }
    // Nothing to compact is a 400.
    let response = gw
        .post("/v1/responses/compact", KEY, &json!({"model": "sonnet"}))
        .await;
    assert_eq!(response.status(), 400);
}

/// With `[state].postgres_url`, stored responses live in PostgreSQL: one instance continues,
/// reads and deletes what another stored, and the size bound holds there too.
#[tokio::test]
async fn stored_responses_are_shared_through_postgres() {
    let pg = crate::shared_state::Postgres::start();
    let url = pg.database().await;
    let mock = Mock::start();
    let config = config(
        &mock,
        &format!("[responses]\nmax_bytes = 6000\n[state]\npostgres_url = \"{url}\"\n"),
    );
    let (a, b) = (Gateway::start(&config), Gateway::start(&config));
    respond(
        &a,
        "/v1",
        &json!({"model": "sonnet", "input": "first mock:rid=pg1"}),
    )
    .await;
    let continued = json!({"model": "gpt-4.1", "previous_response_id": "resp_pg1",
                           "input": "second mock:rid=pg2"});
    respond(&b, "/v1", &continued).await;
    let sent = mock.requests().await.pop().unwrap()["body"].to_string();
    assert!(sent.contains("first") && sent.contains("second"), "{sent}");
    let items = a.get_json("/v1/responses/resp_pg2/input_items", KEY).await;
    assert_eq!(items["data"].as_array().unwrap().len(), 3, "{items}");
    not_found(b.get("/v1/responses/resp_pg1", OTHER).await).await;
    assert_eq!(
        delete(&b, "/v1/responses/resp_pg1", KEY).await.status(),
        200
    );
    not_found(a.get("/v1/responses/resp_pg1", KEY).await).await;
    // 6,000 bytes hold two of these, not three: the oldest goes.
    let big = "z".repeat(2000);
    for id in ["big1", "big2", "big3"] {
        respond(
            &a,
            "/v1",
            &json!({"model": "sonnet", "input": format!("{big} mock:rid={id}")}),
        )
        .await;
    }
    not_found(b.get("/v1/responses/resp_big1", KEY).await).await;
    assert_eq!(
        b.get_json("/v1/responses/resp_big3", KEY).await["id"],
        "resp_big3"
    );
}

/// The Agents SDK's loop over stored state: the first turn calls a tool, the second sends only
/// the tool's output with `previous_response_id`; the provider gets the call and its result.
#[tokio::test]
async fn a_tool_loop_continues_from_stored_state_on_both_provider_kinds() {
    let mock = Mock::start();
    let gw = Gateway::start(&config(&mock, ""));
    let tools = json!([{"type": "function", "name": "get_weather",
                        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}]);
    for model in ["sonnet", "gpt-4.1"] {
        let first = respond(
            &gw,
            "/v1",
            &json!({"model": model, "tools": tools, "input": format!("Weather? mock:tools mock:rid=t{model}")}),
        )
        .await;
        let call = first["output"]
            .as_array()
            .unwrap()
            .iter()
            .find(|item| item["type"] == "function_call")
            .unwrap_or_else(|| panic!("no call in {first}"))
            .clone();
        let second = json!({"model": model, "tools": tools, "previous_response_id": first["id"],
                            "input": [{"type": "function_call_output", "call_id": call["call_id"],
                                       "output": "sunny, 21 C"}]});
        respond(&gw, "/v1", &second).await;
        let sent = mock.requests().await.pop().unwrap()["body"].to_string();
        assert!(
            sent.contains("get_weather") && sent.contains("sunny, 21 C"),
            "{sent}"
        );
        assert!(sent.contains(call["call_id"].as_str().unwrap()), "{sent}");
    }
}
