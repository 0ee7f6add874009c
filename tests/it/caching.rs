//! Prompt caching through the gateway: the breakpoints izzi adds when it translates toward
//! Anthropic (and what they save, from the ledger), `prompt_cache_key` toward OpenAI, and the
//! client's own cache fields forwarded byte for byte.

use std::path::Path;

use rust_decimal::Decimal;
use serde_json::{Value, json};

use crate::support::{Gateway, KEY, Mock, http, mock_config};

/// Cost and cache tokens of every ledger row, oldest first.
fn ledger(home: &Path) -> Vec<(Decimal, u64, u64)> {
    let db = rusqlite::Connection::open_with_flags(
        home.join("izzi.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("open izzi.db");
    let mut stmt = db
        .prepare("SELECT cost_usd, cache_read_tokens, cache_write_tokens FROM ledger ORDER BY id")
        .expect("ledger query");
    stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?.parse().expect("a decimal cost"),
            r.get::<_, i64>(1)?.try_into().expect("a count"),
            r.get::<_, i64>(2)?.try_into().expect("a count"),
        ))
    })
    .expect("ledger rows")
    .collect::<Result<_, _>>()
    .expect("ledger rows")
}

async fn wait_ledger(home: &Path, n: usize) -> Vec<(Decimal, u64, u64)> {
    for _ in 0..400 {
        let rows = ledger(home);
        if rows.len() >= n {
            return rows;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("the ledger never held {n} rows");
}

/// A coding agent's stable prefix: a long system prompt and a few tools (about 5,000 tokens).
fn agent_prefix() -> (String, Value) {
    let system = (0..200)
        .map(|i| {
            format!("Rule {i}: read the code before you change it, and keep each edit small. ")
        })
        .collect::<String>();
    let tools = json!(
        (0..4)
            .map(|i| json!({"type": "function", "function": {
        "name": format!("tool_{i}"),
        "description": "Runs one step of the agent's work in the user's workspace. ".repeat(20),
        "parameters": {"type": "object", "properties": {"path": {"type": "string"}}}}}))
            .collect::<Vec<_>>()
    );
    (system, tools)
}

/// Ten turns of a Chat client on a Claude model, each sending the whole conversation so far;
/// returns the cached tokens the client was told about, per turn.
async fn session(gw: &Gateway, topic: &str) -> Vec<u64> {
    let (system, tools) = agent_prefix();
    let mut messages = vec![json!({"role": "system", "content": system})];
    let mut cached = Vec::new();
    for turn in 0..10 {
        messages.push(json!({"role": "user", "content": format!("{topic}: step {turn}, go on.")}));
        let body =
            json!({"model": "sonnet", "max_tokens": 64, "messages": messages, "tools": tools});
        let answer = gw.post_ok("/v1/chat/completions", &[], &body).await;
        cached.push(
            answer["usage"]["prompt_tokens_details"]["cached_tokens"]
                .as_u64()
                .unwrap_or(0),
        );
        messages.push(answer["choices"][0]["message"].clone());
    }
    cached
}

fn total(rows: &[(Decimal, u64, u64)]) -> Decimal {
    rows.iter().map(|(cost, _, _)| *cost).sum()
}

#[tokio::test]
async fn a_chat_session_on_claude_costs_far_less_with_izzi_breakpoints() {
    let (mock_on, mock_off) = (Mock::start(), Mock::start());
    let on = Gateway::start(&mock_config(&mock_on, ""));
    let off = Gateway::start(&mock_config(
        &mock_off,
        "[server]\nprompt_caching = false\n",
    ));
    // Two sessions of the same agent: the second starts where the first left its prefix.
    let mut told = Vec::new();
    for topic in ["fix the parser", "write the docs"] {
        told.extend(session(&on, topic).await);
        session(&off, topic).await;
    }
    let (rows_on, rows_off) = (
        wait_ledger(on.home.path(), 20).await,
        wait_ledger(off.home.path(), 20).await,
    );
    // Every turn but the first read the cache, the ledger says so and so was the client told.
    assert!(
        rows_on[1..].iter().all(|(_, read, _)| *read > 0),
        "{rows_on:?}"
    );
    assert_eq!(rows_on[0].1, 0, "{rows_on:?}");
    assert!(
        rows_on[0].2 > 4000,
        "the first turn writes the prefix: {rows_on:?}"
    );
    assert!(told[1..].iter().all(|t| *t > 0), "{told:?}");
    assert!(
        rows_off
            .iter()
            .all(|(_, read, write)| *read == 0 && *write == 0),
        "{rows_off:?}"
    );
    for (sent, breakpoints) in [(&mock_on, true), (&mock_off, false)] {
        let requests = sent.requests().await;
        let marked = requests
            .iter()
            .filter(|r| r["body"].to_string().contains("cache_control"))
            .count();
        assert_eq!(marked, if breakpoints { 20 } else { 0 });
    }
    // At Anthropic's prices (writes 1.25x input, reads 0.1x) a cold ten-turn session saves at
    // most 1 - (1.25 + 9 * 0.1) / 10: 4.65x. The first session comes close; the second, whose
    // tools and system were cached by the first, saves more than 5x; both together too.
    let (first_on, first_off) = (total(&rows_on[..10]), total(&rows_off[..10]));
    let (second_on, second_off) = (total(&rows_on[10..]), total(&rows_off[10..]));
    assert!(
        first_off > first_on * Decimal::from(4),
        "{first_on} vs {first_off}"
    );
    assert!(
        second_off > second_on * Decimal::from(5),
        "{second_on} vs {second_off}"
    );
    let (all_on, all_off) = (total(&rows_on), total(&rows_off));
    assert!(all_off > all_on * Decimal::from(5), "{all_on} vs {all_off}");
}

#[tokio::test]
async fn prompt_caching_is_off_per_model_and_a_client_breakpoint_is_kept_alone() {
    let mock = Mock::start();
    let gw = Gateway::start(&mock_config(
        &mock,
        "[[models]]\nid = \"claude-3-5-haiku-20241022\"\nprompt_caching = false\n",
    ));
    let (system, tools) = agent_prefix();
    for model in ["haiku", "sonnet"] {
        let body = json!({"model": model, "max_tokens": 64, "tools": tools, "messages": [
            {"role": "system", "content": system}, {"role": "user", "content": "hi"}]});
        gw.post_ok("/v1/chat/completions", &[], &body).await;
    }
    // The client's own breakpoint (OpenRouter's convention on a text part), with a one-hour TTL.
    let own = json!({"model": "sonnet", "max_tokens": 64, "messages": [
        {"role": "system", "content": [{"type": "text", "text": system,
            "cache_control": {"type": "ephemeral", "ttl": "1h"}}]},
        {"role": "user", "content": "hi"}]});
    let answer = gw.post_ok("/v1/chat/completions", &[], &own).await;
    let requests = mock.requests().await;
    let marks = |i: usize| {
        let body = requests[i]["body"].to_string();
        body.matches("cache_control").count()
    };
    assert_eq!(marks(0), 0, "haiku has prompt caching off");
    assert_eq!(
        marks(1),
        3,
        "sonnet: the tools, the system and the user turn"
    );
    assert_eq!(marks(2), 1, "only the client's");
    assert_eq!(
        requests[2]["body"]["system"][0]["cache_control"],
        json!({"type": "ephemeral", "ttl": "1h"})
    );
    // Sonnet wrote tools and system before; the client's breakpoint after the system covers
    // the same prefix minus the tools, so it is written anew, as one-hour cache.
    assert!(
        answer["usage"]["prompt_tokens"].as_u64().unwrap() > 2000,
        "{answer}"
    );
    let rows = wait_ledger(gw.home.path(), 3).await;
    assert!(rows[2].2 > 2000, "{rows:?}");
}

#[tokio::test]
async fn the_session_becomes_prompt_cache_key_toward_openai_and_the_provider_caches_by_it() {
    let mock = Mock::start();
    let gw = Gateway::start(&mock_config(&mock, ""));
    let (system, _) = agent_prefix();
    let claude_code = |text: &str| {
        json!({"model": "gpt-4.1", "max_tokens": 64, "system": system,
               "messages": [{"role": "user", "content": text}]})
    };
    let session = [("x-claude-code-session-id", "9f1c-session")];
    let first = gw
        .post_ok("/v1/messages", &session, &claude_code("one"))
        .await;
    let second = gw
        .post_ok("/v1/messages", &session, &claude_code("two"))
        .await;
    // A client that names its own key keeps it.
    let chat = json!({"model": "gpt-4.1", "prompt_cache_key": "mine", "messages": [
        {"role": "system", "content": system}, {"role": "user", "content": "hi"}]});
    gw.post_ok("/v1/chat/completions", &session, &chat).await;
    // A Chat client on an OpenAI model, forwarded as it is, still gets its session as the key.
    let chat = json!({"model": "gpt-4.1", "messages": [{"role": "user", "content": "hi"}]});
    gw.post_ok(
        "/v1/chat/completions",
        &[("x-izzi-session", "cline-7")],
        &chat,
    )
    .await;
    gw.post_ok("/v1/chat/completions", &[], &chat).await;
    let requests = mock.requests().await;
    assert_eq!(requests[3]["body"]["prompt_cache_key"], "cline-7");
    assert!(requests[4]["body"].get("prompt_cache_key").is_none());
    assert_eq!(requests[0]["body"]["prompt_cache_key"], "9f1c-session");
    assert_eq!(requests[1]["body"]["prompt_cache_key"], "9f1c-session");
    assert_eq!(requests[2]["body"]["prompt_cache_key"], "mine");
    assert_eq!(
        first["usage"]["cache_read_input_tokens"]
            .as_u64()
            .unwrap_or(0),
        0,
        "{first}"
    );
    let read = second["usage"]["cache_read_input_tokens"].as_u64().unwrap();
    assert!(read >= 1024 && read % 128 == 0, "{second}");
    let rows = wait_ledger(gw.home.path(), 3).await;
    assert_eq!(rows[1].1, read, "{rows:?}");
}

#[tokio::test]
async fn same_format_forwarding_keeps_every_cache_field_byte_for_byte() {
    let mock = Mock::start();
    let gw = Gateway::start(&mock_config(&mock, ""));
    let (system, _) = agent_prefix();
    // Odd spacing, key order and a one-hour TTL, all of which must reach Anthropic as sent.
    let raw = format!(
        r#"{{"model":"claude-sonnet-4-20250514", "max_tokens":64,"system":[{{"type":"text","text":"{system}","cache_control":{{"ttl":"1h","type":"ephemeral"}}}}],
  "tools":[{{"name":"t","input_schema":{{"type":"object"}},"cache_control":{{"type":"ephemeral","ttl":"1h"}}}}],
  "messages":[{{"role":"user","content":[{{"type":"text","text":"hi mock:raw","cache_control":{{"type":"ephemeral"}}}}]}}]}}"#
    );
    let response = http()
        .post(format!("{}/v1/messages", gw.url))
        .header("x-api-key", KEY)
        .header("anthropic-beta", "extended-cache-ttl-2025-04-11")
        .body(raw.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    let requests = mock.requests().await;
    assert_eq!(requests[0]["raw"], raw.as_str());
    assert_eq!(
        requests[0]["headers"]["anthropic-beta"],
        "extended-cache-ttl-2025-04-11"
    );
    // The whole prefix was written to the one-hour cache, and the ledger prices it so.
    let hour = answer["usage"]["cache_creation"]["ephemeral_1h_input_tokens"]
        .as_u64()
        .unwrap();
    assert!(hour > 1024, "{answer}");
    let rows = wait_ledger(gw.home.path(), 1).await;
    assert_eq!(
        rows[0].2,
        answer["usage"]["cache_creation_input_tokens"]
            .as_u64()
            .unwrap()
    );
}
