//! Who sent each request, in the ledger: the headers real clients send (research/clients.md)
//! through a real gateway give each row its tool, session, project and the model asked for,
//! beside the model served; in `izzi.db` and in PostgreSQL.

use serde_json::{Value, json};

use crate::ledger::{izzi, json_of};
use crate::support::{Gateway, KEY, Mock, http, mock_config};

/// One client's request as it goes on the wire.
pub(crate) struct Client {
    pub(crate) path: &'static str,
    pub(crate) headers: &'static [(&'static str, &'static str)],
    pub(crate) body: Value,
}

pub(crate) const CLAUDE_SESSION: &str = "6f1c1f0e-2a51-4f0e-9a0c-5f5e0b1d2c3a";
pub(crate) const CODEX_SESSION: &str = "0199a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";

/// Claude Code 2.1.197: `POST /v1/messages?beta=true`, streamed, with its session header.
pub(crate) fn claude_code(model: &str) -> Client {
    Client {
        path: "/v1/messages?beta=true",
        headers: &[
            ("user-agent", "claude-cli/2.1.197 (external, cli)"),
            ("x-app", "cli"),
            ("anthropic-version", "2023-06-01"),
            (
                "anthropic-beta",
                "claude-code-20250219,interleaved-thinking-2025-05-14",
            ),
            ("x-claude-code-session-id", CLAUDE_SESSION),
            ("x-stainless-lang", "js"),
        ],
        body: json!({
            "model": model, "max_tokens": 32000, "stream": true,
            "messages": [{"role": "user", "content": "hi"}],
        }),
    }
}

/// Codex CLI 0.171.0: `POST /v1/responses`, streamed, `originator` and `session-id`.
pub(crate) fn codex(model: &str) -> Client {
    Client {
        path: "/v1/responses",
        headers: &[
            (
                "user-agent",
                "codex_cli_rs/0.171.0 (Ubuntu 24.04.2 LTS; x86_64) WindowsTerminal",
            ),
            ("originator", "codex_cli_rs"),
            ("session-id", CODEX_SESSION),
            ("accept", "text/event-stream"),
        ],
        body: json!({
            "model": model, "stream": true, "store": false,
            "input": [{"type": "message", "role": "user",
                       "content": [{"type": "input_text", "text": "hi"}]}],
        }),
    }
}

/// Cline CLI 3.0.65 as an OpenAI-compatible provider.
pub(crate) fn cline(model: &str) -> Client {
    Client {
        path: "/v1/chat/completions",
        headers: &[("user-agent", "Cline/3.0.65")],
        body: json!({
            "model": model, "stream": true, "stream_options": {"include_usage": true},
            "messages": [{"role": "user", "content": "hi"}],
        }),
    }
}

/// The OpenAI Python SDK, naming its session and project explicitly.
pub(crate) fn openai_sdk(model: &str) -> Client {
    Client {
        path: "/v1/chat/completions",
        headers: &[
            ("user-agent", "OpenAI/Python 1.109.1"),
            ("x-stainless-lang", "python"),
            ("x-izzi-session", "review-42"),
            ("x-izzi-project", "billing"),
        ],
        body: json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}),
    }
}

/// The Anthropic Python SDK, no session.
pub(crate) fn anthropic_sdk(model: &str) -> Client {
    Client {
        path: "/v1/messages",
        headers: &[
            ("user-agent", "Anthropic/Python 0.69.0"),
            ("anthropic-version", "2023-06-01"),
        ],
        body: json!({
            "model": model, "max_tokens": 64,
            "messages": [{"role": "user", "content": "hi"}],
        }),
    }
}

/// Sends `client`'s request with `key`; returns its status, the body read to the end.
pub(crate) async fn send_as(gw: &Gateway, key: &str, client: &Client) -> u16 {
    let mut request = http()
        .post(format!("{}{}", gw.url, client.path))
        .bearer_auth(key)
        .json(&client.body);
    for (name, value) in client.headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("request sent");
    let status = response.status().as_u16();
    let _ = response.bytes().await;
    status
}

/// (tool, session, project, requested model, served model, route) per row, oldest first.
type Attributed = (
    String,
    Option<String>,
    Option<String>,
    String,
    String,
    Option<String>,
);

fn expected() -> Vec<Attributed> {
    let row =
        |tool: &str, session: Option<&str>, project: Option<&str>, asked: &str, served: &str| {
            (
                tool.to_owned(),
                session.map(str::to_owned),
                project.map(str::to_owned),
                asked.to_owned(),
                served.to_owned(),
                None,
            )
        };
    let sonnet = "claude-sonnet-4-20250514";
    vec![
        row("claude-code", Some(CLAUDE_SESSION), None, "sonnet", sonnet),
        row("codex", Some(CODEX_SESSION), None, "gpt-4.1", "gpt-4.1"),
        row("cline", None, None, "gpt-4.1", "gpt-4.1"),
        row(
            "openai-sdk",
            Some("review-42"),
            Some("billing"),
            "gpt-4.1",
            "gpt-4.1",
        ),
        row("anthropic-sdk", None, None, "sonnet", sonnet),
    ]
}

async fn send_every_client(gw: &Gateway) {
    for client in [
        claude_code("sonnet"),
        codex("gpt-4.1"),
        cline("gpt-4.1"),
        openai_sdk("gpt-4.1"),
        anthropic_sdk("sonnet"),
    ] {
        // One at a time, so the rows' order is the clients'.
        assert_eq!(send_as(gw, KEY, &client).await, 200, "{}", client.path);
    }
}

#[tokio::test]
async fn each_ledger_row_names_the_real_clients_tool_session_project_and_models() {
    let mock = Mock::start();
    let gw = Gateway::start(&mock_config(&mock, ""));
    send_every_client(&gw).await;
    crate::ledger::wait_rows(gw.home.path(), 5).await;
    let db = rusqlite::Connection::open_with_flags(
        gw.home.path().join("izzi.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let rows: Vec<Attributed> = db
        .prepare(
            "SELECT tool, session, project, requested_model, model, route FROM ledger ORDER BY id",
        )
        .unwrap()
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        })
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    assert_eq!(rows, expected());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_rows_record_the_same_attribution() {
    let pg = crate::shared_state::Postgres::start();
    let url = pg.database().await;
    let mock = Mock::start();
    let gw = Gateway::start(&format!(
        "{}\n[state]\npostgres_url = \"{url}\"\n",
        mock_config(&mock, "")
    ));
    send_every_client(&gw).await;
    pg.wait_rows(5).await;
    let client = pg.connect("izzi").await;
    let rows: Vec<Attributed> = client
        .query(
            "SELECT tool, session, project, requested_model, model, route FROM ledger ORDER BY id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5)))
        .collect();
    assert_eq!(rows, expected());
    // The same sums as from izzi.db.
    let usage = json_of(
        gw.home.path(),
        &["usage", "--by", "day,tool,session", "--json"],
    );
    let today = jiff::Timestamp::now().strftime("%Y-%m-%d").to_string();
    let lines: Vec<(&str, &str, Value)> = usage["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            assert_eq!(l["requests"], 1);
            (
                l["day"].as_str().unwrap(),
                l["tool"].as_str().unwrap(),
                l["session"].clone(),
            )
        })
        .collect();
    assert_eq!(lines.len(), 5);
    assert!(lines.iter().all(|(day, ..)| *day == today), "{lines:?}");
    assert_eq!(lines[1].1, "claude-code");
    assert_eq!(lines[1].2, json!(CLAUDE_SESSION));
    assert_eq!(usage["total"]["requests"], 5);
    // The JSON API reads PostgreSQL through the same queries.
    let api = |path: &'static str| {
        let url = format!("{}/izzi/api{path}", gw.url);
        async move {
            http()
                .get(url)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    assert_eq!(api("/usage?by=day,tool,session").await, usage);
    let requests = api("/requests?limit=2").await;
    assert_eq!(requests["requests"][0]["tool"], "anthropic-sdk");
    assert_eq!(requests["requests"][1]["session"], "review-42");
    assert_eq!(requests["requests"][1]["project"], "billing");
    let before = requests["next_before"].as_i64().unwrap();
    let rest = api("/requests").await["requests"].as_array().unwrap().len();
    assert_eq!(rest, 5);
    assert!(before > 0);
    let sessions = api("/sessions").await;
    let sessions: Vec<&str> = sessions["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["session"].as_str().unwrap())
        .collect();
    assert_eq!(sessions, ["review-42", CODEX_SESSION, CLAUDE_SESSION]);
}

#[tokio::test]
async fn usage_by_tool_and_session_in_json_and_csv() {
    let mock = Mock::start();
    let gw = Gateway::start(&mock_config(&mock, ""));
    send_every_client(&gw).await;
    send_every_client(&gw).await;
    let quoted = Client {
        path: "/v1/chat/completions",
        headers: &[
            ("user-agent", "OpenAI/Python 1.109.1"),
            ("x-izzi-session", "fix,\"quoted\""),
        ],
        body: json!({"model": "gpt-4.1", "messages": [{"role": "user", "content": "hi"}]}),
    };
    assert_eq!(send_as(&gw, KEY, &quoted).await, 200);
    let home = gw.home.path();
    let rows = crate::ledger::wait_rows(home, 11).await;
    let usage = json_of(home, &["usage", "--by", "tool,session", "--json"]);
    assert_eq!(usage["by"], json!(["tool", "session"]));
    let lines: Vec<(String, Value, u64)> = usage["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["tool"].as_str().unwrap().to_owned(),
                l["session"].clone(),
                l["requests"].as_u64().unwrap(),
            )
        })
        .collect();
    let line = |tool: &str, session: Value, n: u64| (tool.to_owned(), session, n);
    assert_eq!(
        lines,
        vec![
            line("anthropic-sdk", Value::Null, 2),
            line("claude-code", json!(CLAUDE_SESSION), 2),
            line("cline", Value::Null, 2),
            line("codex", json!(CODEX_SESSION), 2),
            line("openai-sdk", json!("fix,\"quoted\""), 1),
            line("openai-sdk", json!("review-42"), 2),
        ]
    );
    let total: rust_decimal::Decimal = rows.iter().map(|r| r.cost).sum();
    assert_eq!(usage["total"]["cost_usd"], json!(total.to_string()));
    assert_eq!(usage["total"]["requests"], 11);
    let (csv, stderr, code) = izzi(
        home,
        &["usage", "--by", "session", "--since", "1h", "--csv"],
    );
    assert_eq!(code, 0, "{stderr}");
    let csv: Vec<&str> = csv.split("\r\n").collect();
    assert_eq!(
        csv[0],
        "session,requests,input_tokens,output_tokens,cache_read_tokens,cache_write_tokens,cost_usd,unpriced_requests"
    );
    // No session sorts first (empty); a field with a comma or a quote is quoted.
    assert!(csv[1].starts_with(",4,"), "{csv:?}");
    assert!(csv[4].starts_with("\"fix,\"\"quoted\"\"\",1,"), "{csv:?}");
    assert_eq!((csv.len(), csv[6]), (7, ""), "{csv:?}");
    let table = izzi(home, &["usage", "--by", "day,tool"]).0;
    assert!(
        table.starts_with("DAY") && table.contains("claude-code"),
        "{table}"
    );
    let (_, stderr, code) = izzi(home, &["usage", "--by", "colour"]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("day, model, key, tool or session"),
        "{stderr}"
    );
    let (_, stderr, code) = izzi(home, &["usage", "--since", "yesterday"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("7d, 24h or 30m"), "{stderr}");
}
