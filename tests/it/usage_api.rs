//! The dashboard's JSON API (`/izzi/api/`) against the real gateway: after a scripted mix of
//! requests (two keys, five tools, sessions, upstream failures) it gives the numbers
//! `izzi usage --json` gives for the same filters; the request log pages and polls; the limits
//! and upstreams are this process's; other addresses need the admin key.

use serde_json::{Value, json};

use crate::attribution::{
    CLAUDE_SESSION, Client, anthropic_sdk, claude_code, cline, codex, openai_sdk, send_as,
};
use crate::ledger::{json_of, wait_rows};
use crate::support::{Gateway, KEY, Mock, home_with, http, mock_config};

const CI_KEY: &str = "izzi-ci-key-0123456789abcdef0";
const ADMIN_KEY: &str = "izzi-admin-0123456789abcdef";
/// A prompt that must never come back from the API.
const PROMPT: &str = "the-secret-prompt-text";

fn config(mock: &Mock) -> String {
    mock_config(
        mock,
        &format!(
            "[[keys]]\nname = \"ci\"\nkey = \"{CI_KEY}\"\nplan = \"pro\"\nmonthly_budget_usd = 50\ncredits_usd = 20\n\n[dashboard]\nadmin_key = \"{ADMIN_KEY}\"\n"
        ),
    )
}

/// `client` with the prompt `text`.
fn saying(mut client: Client, text: &str) -> Client {
    let body = &mut client.body;
    if body.get("input").is_some() {
        body["input"][0]["content"][0]["text"] = json!(text);
    } else {
        body["messages"][0]["content"] = json!(text);
    }
    client
}

/// Sends the mix; returns how many rows it leaves.
async fn scripted_mix(gw: &Gateway) -> usize {
    let mut sent = 0;
    for (key, client, text, status) in [
        (KEY, claude_code("sonnet"), "mock:cache", 200),
        (KEY, claude_code("sonnet"), PROMPT, 200),
        (KEY, claude_code("sonnet"), "mock:status=400", 400),
        (CI_KEY, codex("gpt-4.1"), PROMPT, 200),
        (CI_KEY, codex("gpt-4.1"), "mock:status=404", 404),
        (CI_KEY, cline("gpt-4.1"), PROMPT, 200),
        (KEY, openai_sdk("gpt-4.1"), "mock:status=400", 400),
        (KEY, openai_sdk("gpt-4.1"), PROMPT, 200),
        (CI_KEY, anthropic_sdk("haiku"), PROMPT, 200),
    ] {
        assert_eq!(
            send_as(gw, key, &saying(client, text)).await,
            status,
            "{text}"
        );
        sent += 1;
    }
    sent
}

async fn api(gw: &Gateway, path: &str) -> Value {
    let response = http()
        .get(format!("{}/izzi/api{path}", gw.url))
        .send()
        .await
        .expect("API request sent");
    assert_eq!(response.status(), 200, "{path}");
    let text = response.text().await.expect("API body");
    assert!(!text.contains(PROMPT), "{path} shows prompt text: {text}");
    serde_json::from_str(&text).expect("API body is JSON")
}

fn today() -> String {
    jiff::Timestamp::now().strftime("%Y-%m-%d").to_string()
}

#[tokio::test]
async fn the_api_gives_what_izzi_usage_json_gives_and_the_log_pages_and_polls() {
    let mock = Mock::start();
    let gw = Gateway::start(&config(&mock));
    let home = gw.home.path();
    let n = scripted_mix(&gw).await;
    let rows = wait_rows(home, n).await;
    for (by, since) in [
        ("key,model", None),
        ("day,model", Some("30d")),
        ("tool,session", Some("1h")),
        ("key,tool", Some(today().as_str())),
        ("session", Some("2000-01-01T00:00:00Z")),
    ] {
        let mut path = format!("/usage?by={by}");
        let mut args = vec!["usage", "--by", by, "--json"];
        if let Some(since) = since {
            path.push_str(&format!("&since={since}"));
            args.extend(["--since", since]);
        }
        assert_eq!(api(&gw, &path).await, json_of(home, &args), "{path}");
    }
    // Without `by`, the CLI's default.
    assert_eq!(
        api(&gw, "/usage").await,
        json_of(home, &["usage", "--json"])
    );
    let usage = api(&gw, "/usage?by=tool").await;
    assert_eq!(usage["total"]["requests"], n);
    assert_eq!(usage["total"]["outcomes"]["upstream_4xx"], 3);

    let summary = api(&gw, "/summary").await;
    let today_usage = json_of(home, &["usage", "--since", &today(), "--json"]);
    assert_eq!(summary["today"], today_usage["total"]);
    let month = jiff::Timestamp::now().strftime("%Y-%m-01").to_string();
    let month_usage = json_of(home, &["usage", "--since", &month, "--json"]);
    assert_eq!(summary["month"], month_usage["total"]);
    let t = &month_usage["total"];
    let (input, read, write) = (
        t["input_tokens"].as_f64().unwrap(),
        t["cache_read_tokens"].as_f64().unwrap(),
        t["cache_write_tokens"].as_f64().unwrap(),
    );
    assert!(read > 0.0, "mock:cache reported no cache reads");
    let rate = summary["cache_hit_rate"].as_f64().unwrap();
    assert!(
        (rate - read / (input + read + write)).abs() < 1e-12,
        "{rate}"
    );
    assert_eq!(summary["alerts"], json!([]));

    let sessions = api(&gw, "/sessions?since=1h").await["sessions"].clone();
    let claude = sessions
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["session"] == CLAUDE_SESSION)
        .expect("Claude Code's session");
    assert_eq!(claude["tool"], "claude-code");
    assert_eq!(claude["turns"], 3);
    assert_eq!(claude["models"], json!(["claude-sonnet-4-20250514"]));
    let claude_cost = json_of(home, &["usage", "--by", "session", "--json"])["lines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["session"] == CLAUDE_SESSION)
        .unwrap()["cost_usd"]
        .clone();
    assert_eq!(claude["cost_usd"], claude_cost);
    // The latest active first: the OpenAI SDK's session came after Claude Code's.
    assert_eq!(sessions[0]["session"], "review-42");

    // The log: newest first, in pages.
    let all = api(&gw, "/requests").await;
    let all = all["requests"].as_array().unwrap().clone();
    assert_eq!(all.len(), n);
    let seqs: Vec<i64> = all.iter().map(|r| r["seq"].as_i64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] > w[1]), "{seqs:?}");
    assert_eq!(all[n - 1]["tool"], "claude-code");
    assert_eq!(all[n - 1]["requested_model"], "sonnet");
    assert_eq!(all[n - 1]["model"], "claude-sonnet-4-20250514");
    assert_eq!(all[n - 1]["route"], Value::Null);
    assert_eq!(all[n - 1]["session"], CLAUDE_SESSION);
    assert_eq!(all[0]["key"], "ci");
    let cost: rust_decimal::Decimal = rows.iter().map(|r| r.cost).sum();
    let logged: rust_decimal::Decimal = all
        .iter()
        .map(|r| {
            r["cost_usd"]
                .as_str()
                .unwrap()
                .parse::<rust_decimal::Decimal>()
                .unwrap()
        })
        .sum();
    assert_eq!(logged, cost);
    let page = api(&gw, "/requests?limit=4").await;
    assert_eq!(page["requests"].as_array().unwrap().len(), 4);
    let before = page["next_before"].as_i64().unwrap();
    assert_eq!(before, seqs[3]);
    let next = api(&gw, &format!("/requests?limit=4&before={before}")).await;
    assert_eq!(next["requests"][0]["seq"], seqs[4]);
    let codex_failures = api(&gw, "/requests?tool=codex&status=404").await;
    let codex_failures = codex_failures["requests"].as_array().unwrap();
    assert_eq!(codex_failures.len(), 1);
    assert_eq!(codex_failures[0]["outcome"], "upstream_4xx");
    let by_model = api(&gw, "/requests?model=sonnet&outcome=completed").await;
    assert_eq!(by_model["requests"].as_array().unwrap().len(), 2);
    assert_eq!(by_model["next_before"], Value::Null);
    // The live log: `after` the newest gives nothing, then exactly the new row.
    let newest = seqs[0];
    let none = api(&gw, &format!("/requests?after={newest}")).await;
    assert_eq!(none["requests"], json!([]));
    assert_eq!(send_as(&gw, KEY, &cline("gpt-4.1")).await, 200);
    wait_rows(home, n + 1).await;
    let new = api(&gw, &format!("/requests?after={newest}")).await;
    let new = new["requests"].as_array().unwrap();
    assert_eq!(new.len(), 1);
    assert!(new[0]["seq"].as_i64().unwrap() > newest);
    assert_eq!(new[0]["tool"], "cline");

    // Limits and upstreams, from this process.
    let limits = api(&gw, "/limits").await;
    let ci = limits["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["key"] == "ci")
        .unwrap()
        .clone();
    assert_eq!(ci["daily"]["used"], 4);
    assert_eq!(ci["rpm"]["limit"], 60);
    assert_eq!(ci["concurrent"]["used"], 0);
    assert_eq!(ci["budget"]["limit_usd"], "50");
    let ci_spent: rust_decimal::Decimal =
        rows.iter().filter(|r| r.key == "ci").map(|r| r.cost).sum();
    assert_eq!(ci["budget"]["spent_usd"], json!(ci_spent.to_string()));
    assert_eq!(
        ci["balance"]["remaining_usd"],
        json!((rust_decimal::Decimal::from(20) - ci_spent).to_string())
    );
    let test = limits["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["key"] == "test")
        .unwrap();
    assert_eq!(
        (test["budget"].clone(), test["balance"].clone()),
        (Value::Null, Value::Null)
    );
    let upstreams = api(&gw, "/upstreams").await["upstreams"].clone();
    let of = |name: &str| {
        upstreams
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["provider"] == name)
            .unwrap()
            .clone()
    };
    let (anthropic, openai) = (of("anthropic"), of("openai"));
    assert_eq!(
        (anthropic["requests"].clone(), anthropic["errors"].clone()),
        (json!(4), json!(1))
    );
    assert_eq!(
        (openai["requests"].clone(), openai["errors"].clone()),
        (json!(6), json!(2))
    );
    assert_eq!(openai["last_error"]["status"], 400);
    assert_eq!(openai["last_error"]["outcome"], "upstream_4xx");
    assert!(
        openai["latency_p95_ms"].as_u64().unwrap() >= openai["latency_p50_ms"].as_u64().unwrap()
    );
    assert_eq!(anthropic["circuit"], "closed");

    // Bad filters are 400s in the usual shape.
    for bad in [
        "/usage?by=colour",
        "/usage?since=yesterday",
        "/requests?limit=x",
        "/requests?colour=red",
    ] {
        let response = http()
            .get(format!("{}/izzi/api{bad}", gw.url))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{bad}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["type"], "invalid_request_error", "{bad}");
    }
}

/// This machine's address on its network, if it has one.
fn lan_address() -> Option<std::net::IpAddr> {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    // Connecting a UDP socket sends nothing; it picks the interface.
    socket.connect("198.51.100.1:9").ok()?;
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

#[tokio::test]
async fn other_addresses_need_the_admin_key_and_client_keys_never_open_the_api() {
    let Some(lan) = lan_address() else {
        eprintln!("skipped: this machine has no non-loopback address to call from");
        return;
    };
    let mock = Mock::start();
    let gw = Gateway::start_in(home_with(&config(&mock)), &["--host", "0.0.0.0"]);
    let port = gw.url.rsplit(':').next().unwrap().to_owned();
    let remote = format!("http://{lan}:{port}/izzi/api/summary");
    let get = |key: Option<&str>| {
        let mut request = http().get(&remote);
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        async move { request.send().await.unwrap() }
    };
    for key in [
        None,
        Some(KEY),
        Some(CI_KEY),
        Some("izzi-admin-wrong-00000000"),
    ] {
        let response = get(key).await;
        assert_eq!(response.status(), 403, "{key:?}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["type"], "error");
        assert_eq!(body["error"]["type"], "permission_error");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("admin_key")
        );
    }
    assert_eq!(get(Some(ADMIN_KEY)).await.status(), 200);
    // Loopback needs nothing.
    let local = http()
        .get(format!("http://127.0.0.1:{port}/izzi/api/summary"))
        .send()
        .await
        .unwrap();
    assert_eq!(local.status(), 200);
    // Without an admin key, other addresses are refused whatever they send.
    let closed = Gateway::start_in(home_with(&mock_config(&mock, "")), &["--host", "0.0.0.0"]);
    let port = closed.url.rsplit(':').next().unwrap().to_owned();
    let response = http()
        .get(format!("http://{lan}:{port}/izzi/api/requests"))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
}
