//! The dashboard: its page and files from the binary, who may open them (loopback, or the admin
//! key from elsewhere; `HEAD /` stays open and never counts), budget and balance alerts (one log
//! line and one webhook per threshold, the headers on the key's answers), and `izzi dashboard`.

use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rust_decimal::Decimal;
use serde_json::Value;

use crate::ledger::json_of;
use crate::limits::{body, error, send};
use crate::reload::{hangup, reloaded};
use crate::support::{Gateway, KEY, Mock, home_with, http, http_builder, mock_config};

const ADMIN: &str = "izzi-admin-key-0123456789abcdef";

/// The page links its files; each is served with its type, all of them small, and every one
/// carries a policy that keeps the page to the gateway's origin.
#[tokio::test]
async fn the_page_and_its_files_come_from_the_binary_and_stay_on_this_origin() {
    let mock = Mock::start();
    let gw = Gateway::start(&mock_config(&mock, ""));
    let page = http().get(format!("{}/", gw.url)).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    let policy = page.headers()["content-security-policy"].to_str().unwrap();
    assert!(policy.starts_with("default-src 'self';"), "{policy}");
    let html = page.text().await.unwrap();
    let files: Vec<&str> = html
        .split("\"/izzi/ui/")
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap())
        .collect();
    let mut total = html.len();
    for (file, kind) in [
        ("app.js", "text/javascript"),
        ("app.css", "text/css"),
        ("icon.svg", "image/svg+xml"),
    ] {
        assert!(files.contains(&file), "{file} not linked: {files:?}");
        let response = http()
            .get(format!("{}/izzi/ui/{file}", gw.url))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{file}");
        let content_type = response.headers()["content-type"].to_str().unwrap();
        assert!(content_type.starts_with(kind), "{file}: {content_type}");
        assert!(response.headers().contains_key("content-security-policy"));
        total += response.bytes().await.unwrap().len();
    }
    assert!(total < 64 * 1024, "the page weighs {total} bytes");
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "{html}"
    );
    let missing = http()
        .get(format!("{}/izzi/ui/nothing.js", gw.url))
        .send()
        .await
        .unwrap();
    error(missing, 404, "not_found").await;
    let wrong_method = http().post(format!("{}/", gw.url)).send().await.unwrap();
    error(wrong_method, 405, "invalid_request_error").await;
}

/// An address of this machine that is not loopback, for requests that arrive from "elsewhere".
fn outside_address() -> IpAddr {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").expect("a UDP socket");
    // No packet is sent: connecting a UDP socket only picks the route and its source address.
    socket
        .connect("192.0.2.1:9")
        .expect("this test needs a network interface besides loopback (a route to 192.0.2.1)");
    let ip = socket.local_addr().expect("its address").ip();
    assert!(!ip.is_loopback(), "{ip}");
    ip
}

fn form(key: &str) -> String {
    format!("key={key}")
}

/// From an address other than loopback: the page only with the admin key (header, or the
/// cookie its form sets), never with a client key; a wrong admin key counts toward the IP
/// block, `HEAD /` (Claude Code's preconnect) is answered without one and never counts.
#[tokio::test]
async fn from_elsewhere_the_dashboard_needs_the_admin_key_but_head_does_not() {
    let mock = Mock::start();
    let config = format!(
        "[dashboard]\nadmin_key = \"{ADMIN}\"\n[security]\nip_block_after_failures = 3\n{}",
        mock_config(&mock, "")
    );
    let gw = Gateway::start_in(home_with(&config), &["--host", "0.0.0.0"]);
    let port = gw.url.rsplit(':').next().unwrap();
    let outside = format!("http://{}:{port}", outside_address());
    let client = http_builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let get = |path: &str, auth: Option<&str>| {
        let mut request = client.get(format!("{outside}{path}"));
        if let Some(auth) = auth {
            request = request.bearer_auth(auth);
        }
        request.send()
    };
    let login = |key: &str| {
        client
            .post(format!("{outside}/izzi/login"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(key))
            .send()
    };
    for _ in 0..20 {
        let head = client.head(format!("{outside}/")).send().await.unwrap();
        assert_eq!(head.status(), 200);
    }
    let page = get("/", None).await.unwrap();
    assert_eq!(page.status(), 403);
    let text = page.text().await.unwrap();
    assert!(
        text.contains("name=\"key\"") && text.contains("admin key"),
        "{text}"
    );
    error(
        get("/izzi/ui/app.js", None).await.unwrap(),
        403,
        "permission_error",
    )
    .await;
    error(
        get("/izzi/ui/app.js", Some(KEY)).await.unwrap(),
        403,
        "permission_error",
    )
    .await;
    assert_eq!(get("/", Some(ADMIN)).await.unwrap().status(), 200);
    assert_eq!(
        get("/izzi/ui/app.js", Some(ADMIN)).await.unwrap().status(),
        200
    );
    // The form: a cookie that opens the page, holding a digest, not the key.
    let signed_in = login(ADMIN).await.unwrap();
    assert_eq!(signed_in.status(), 303);
    let cookie = signed_in.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(!cookie.contains(ADMIN), "{cookie}");
    let pair = cookie.split(';').next().unwrap();
    let with_cookie = client
        .get(format!("{outside}/"))
        .header("cookie", pair)
        .send()
        .await
        .unwrap();
    assert_eq!(with_cookie.status(), 200);
    // Twenty preconnects and the missing keys above did not count; the client key was one
    // wrong key, two more block the address, even for the admin key.
    assert_eq!(login("izzi-guess-00000000").await.unwrap().status(), 403);
    assert_eq!(login("izzi-guess-00000000").await.unwrap().status(), 403);
    error(
        get("/izzi/ui/app.js", Some(ADMIN)).await.unwrap(),
        403,
        "ip_blocked",
    )
    .await;
    let blocked = get("/", Some(ADMIN)).await.unwrap();
    assert_eq!(blocked.status(), 403);
    let text = blocked.text().await.unwrap();
    assert!(
        text.contains("blocked after too many failed authentications"),
        "{text}"
    );
    // Loopback is never asked.
    assert_eq!(
        http()
            .get(format!("http://127.0.0.1:{port}/"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

/// What the local webhook receiver got, and how many POSTs it refuses first.
#[derive(Default)]
struct Received {
    bodies: Vec<Value>,
    refuse: usize,
}

/// A local HTTP receiver for the webhook: answers 500 to the first `refuse` POSTs, then 200.
async fn receiver(refuse: usize) -> (String, Arc<Mutex<Received>>) {
    let received = Arc::new(Mutex::new(Received {
        refuse,
        ..Received::default()
    }));
    let state = Arc::clone(&received);
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: axum::Json<Value>| {
            let state = Arc::clone(&state);
            async move {
                let mut got = state.lock().expect("not poisoned");
                got.bodies.push(body.0);
                if got.refuse > 0 {
                    got.refuse -= 1;
                    axum::http::StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    axum::http::StatusCode::OK
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port for the receiver");
    let url = format!(
        "http://{}/hook",
        listener.local_addr().expect("its address")
    );
    tokio::spawn(async move {
        axum::serve(listener, app)
            .await
            .expect("the receiver serves");
    });
    (url, received)
}

/// The alert lines in the log: (threshold or kind, key).
fn alert_lines(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains("monthly budget in") || l.contains("of credit left"))
        .map(str::to_owned)
        .collect()
}

fn config(mock: &Mock, webhook: &str, money: &str) -> String {
    format!(
        "[alerts]\nwebhook_url = \"{webhook}\"\nbalance_floor_usd = 0.5\n{}",
        mock_config(
            mock,
            &format!("[[keys]]\nname = \"team\"\nkey = \"izzi-team-key-000000000\"\n{money}\n")
        )
    )
}

/// The key's spend so far, from `izzi usage`, once it has `requests` rows.
async fn spent(home: &Path, requests: u64) -> Decimal {
    let started = Instant::now();
    loop {
        let usage = json_of(home, &["usage", "--json", "--key", "team"]);
        if usage["total"]["requests"] == requests {
            return usage["total"]["cost_usd"]
                .as_str()
                .and_then(|cost| cost.parse().ok())
                .expect("a decimal cost");
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{usage}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The alert headers on an answer to the team key that costs nothing.
async fn alert_headers(gw: &Gateway) -> (Option<String>, Option<String>) {
    let response = gw.get("/v1/models", "izzi-team-key-000000000").await;
    assert_eq!(response.status(), 200);
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().expect("an ASCII header").to_owned())
    };
    (
        header("x-izzi-budget-alert"),
        header("x-izzi-balance-alert"),
    )
}

/// Waits until the log holds `n` alert lines; fails if more come.
async fn wait_for_alerts(gw: &Gateway, n: usize) -> Vec<String> {
    let started = Instant::now();
    loop {
        let lines = alert_lines(&gw.log());
        assert!(lines.len() <= n, "{lines:#?}");
        if lines.len() == n {
            return lines;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "{}", gw.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A budget that the spend crosses (here lowered by a reload under the spend already made, as
/// a request cannot overspend its hold) is logged once per threshold, however many answers
/// follow, each threshold is posted to the webhook (retried after a 500), and the key's answers
/// carry the highest threshold; the balance under its floor likewise. A restart repeats none.
#[cfg(unix)]
#[tokio::test]
async fn budget_and_balance_alerts_are_logged_once_posted_and_sent_as_headers() {
    let mock = Mock::start();
    let (webhook, received) = receiver(1).await;
    let home = home_with(&config(&mock, &webhook, "monthly_budget_usd = 100.0"));
    let mut gw = Gateway::start_in(home, &[]);
    let health: Value = serde_json::from_str(&gw.get_text("/health").await).unwrap();
    let pid = health["pid"].as_u64().unwrap();
    for _ in 0..3 {
        let response = send(&gw, "izzi-team-key-000000000", &body("sonnet", "hi", false)).await;
        assert_eq!(response.status(), 200);
        let _ = response.bytes().await;
    }
    let spent = spent(gw.home.path(), 3).await;
    assert!(spent > Decimal::ZERO);
    assert_eq!(alert_headers(&gw).await, (None, None));

    // 85 % of the budget: the 80 % alert.
    let path = gw.home.path().join("config.toml");
    let budget = (spent / Decimal::new(85, 2)).round_dp(9);
    let money = format!("monthly_budget_usd = {budget}");
    std::fs::write(&path, config(&mock, &webhook, &money)).unwrap();
    hangup(pid);
    reloaded(&gw, 1).await;
    let lines = wait_for_alerts(&gw, 1).await;
    assert!(
        lines[0].contains("past 80 %") && lines[0].contains("team"),
        "{lines:?}"
    );
    for _ in 0..5 {
        assert_eq!(alert_headers(&gw).await, (Some("80".into()), None));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        wait_for_alerts(&gw, 1).await.len(),
        1,
        "once, not per answer"
    );

    // All of it (the config's floats may round the amount up), and the credits under the
    // floor: 90 and 100 at once, and the balance.
    let credits = spent + Decimal::new(2, 1);
    let budget = (spent * Decimal::new(999, 3)).round_dp(9);
    let money = format!("monthly_budget_usd = {budget}\ncredits_usd = {credits}");
    std::fs::write(&path, config(&mock, &webhook, &money)).unwrap();
    hangup(pid);
    reloaded(&gw, 2).await;
    let lines = wait_for_alerts(&gw, 4).await;
    assert!(lines[1].contains("past 90 %"), "{lines:?}");
    assert!(lines[2].contains("past 100 %"), "{lines:?}");
    assert!(
        lines[3].contains("$0.2 of credit left, under the $0.5 floor"),
        "{lines:?}"
    );
    assert_eq!(
        alert_headers(&gw).await,
        (Some("100".into()), Some("0.2".into()))
    );
    let refused = send(&gw, "izzi-team-key-000000000", &body("sonnet", "hi", false)).await;
    assert_eq!(refused.headers()["x-izzi-budget-alert"], "100");
    error(refused, 402, "budget_exceeded").await;

    // The webhook: each alert once, the first after a retry.
    let started = Instant::now();
    let bodies = loop {
        let bodies = received.lock().unwrap().bodies.clone();
        if bodies.len() >= 5 || started.elapsed() > Duration::from_secs(10) {
            break bodies;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let seen: Vec<(Value, Value)> = bodies
        .iter()
        .map(|b| (b["kind"].clone(), b["threshold"].clone()))
        .collect();
    assert_eq!(
        seen,
        [
            ("budget".into(), 80.into()),
            ("budget".into(), 80.into()),
            ("budget".into(), 90.into()),
            ("budget".into(), 100.into()),
            ("balance".into(), Value::Null),
        ],
        "{bodies:#?}"
    );
    assert_eq!(bodies[0]["key"], "team");
    assert!(bodies[0]["message"].as_str().unwrap().contains("past 80 %"));
    assert!(bodies[0]["month"].as_str().unwrap().len() == 7);
    assert!(
        !bodies
            .iter()
            .any(|b| b.to_string().contains("izzi-team-key"))
    );

    // A restart: the alerts stand (headers) but are not logged or posted again.
    gw.terminate();
    let home = std::mem::replace(&mut gw.home, tempfile::tempdir().unwrap());
    drop(gw);
    let gw = Gateway::start_in(home, &[]);
    assert_eq!(
        alert_headers(&gw).await,
        (Some("100".into()), Some("0.2".into()))
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(alert_lines(&gw.log()), Vec::<String>::new());
    assert_eq!(received.lock().unwrap().bodies.len(), 5);
}

/// `izzi dashboard` prints the page's URL and hands it to the system's opener; with no gateway
/// answering it still prints the URL and says so.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn izzi_dashboard_prints_the_url_and_opens_it() {
    use std::os::unix::fs::PermissionsExt as _;
    let mock = Mock::start();
    let gw = Gateway::start(&mock_config(&mock, ""));
    let port = gw.url.rsplit(':').next().unwrap().to_owned();
    let bin = tempfile::tempdir().unwrap();
    let opened = bin.path().join("opened");
    let opener = bin.path().join("xdg-open");
    std::fs::write(
        &opener,
        format!("#!/bin/sh\necho \"$@\" > '{}'\n", opened.display()),
    )
    .unwrap();
    std::fs::set_permissions(&opener, std::fs::Permissions::from_mode(0o755)).unwrap();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(crate::support::izzi_bin())
            .args(args)
            .env("IZZI_HOME", gw.home.path())
            .env("HOME", gw.home.path())
            .env("PATH", bin.path())
            .output()
            .unwrap();
        (
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
            out.status.code(),
        )
    };
    let url = format!("http://127.0.0.1:{port}/");
    let (stdout, stderr, code) = run(&["dashboard", "--port", &port]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stdout.trim(), url);
    assert_eq!(std::fs::read_to_string(&opened).unwrap().trim(), url);
    std::fs::remove_file(&opened).unwrap();
    let (stdout, _, code) = run(&["dashboard", "--port", &port, "--no-open"]);
    assert_eq!((stdout.trim(), code), (url.as_str(), Some(0)));
    assert!(!opened.exists());
    // No gateway on the config's address (an empty home: port 8745 is not this test's).
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let free_port = free.local_addr().unwrap().port().to_string();
    drop(free);
    let (stdout, stderr, code) = run(&["dashboard", "--port", &free_port]);
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(stdout.trim(), format!("http://127.0.0.1:{free_port}/"));
    assert!(
        stderr.contains(&format!(
            "no izzi gateway answers on http://127.0.0.1:{free_port}"
        )),
        "{stderr}"
    );
    assert!(!opened.exists());
}
