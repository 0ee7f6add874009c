//! `izzi statusline` as Claude Code runs it: its session's JSON on stdin, a real ledger behind,
//! the live rpm from the running gateway; and every way it can go wrong still prints a line and
//! exits 0.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rust_decimal::Decimal;
use serde_json::json;

use crate::attribution::{CLAUDE_SESSION, claude_code, codex, send_as};
use crate::ledger::wait_rows;
use crate::support::{Gateway, KEY, Mock, izzi_bin, mock_config};

/// What Claude Code pipes to its status line command (2.x).
fn claude_stdin(session: &str) -> String {
    json!({
        "hook_event_name": "Status",
        "session_id": session,
        "transcript_path": "/home/dev/.claude/projects/app/6f1c1f0e.jsonl",
        "cwd": "/home/dev/app",
        "model": {"id": "claude-sonnet-4-20250514", "display_name": "Sonnet 4"},
        "workspace": {"current_dir": "/home/dev/app", "project_dir": "/home/dev/app"},
        "version": "2.1.197",
        "output_style": {"name": "default"},
        "cost": {
            "total_cost_usd": 0.0123, "total_duration_ms": 45000, "total_api_duration_ms": 2300,
            "total_lines_added": 156, "total_lines_removed": 23
        },
        "exceeds_200k_tokens": false
    })
    .to_string()
}

/// Runs `izzi statusline` in `home` with `stdin`; its stdout, and how long it took.
fn statusline(home: &Path, args: &[&str], stdin: &str) -> (String, Duration) {
    let started = Instant::now();
    let mut child = Command::new(izzi_bin())
        .arg("statusline")
        .args(args)
        .env("IZZI_HOME", home)
        .env("HOME", home)
        .env("IZZI_KEYRING", "file")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run izzi statusline");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    let out = child.wait_with_output().expect("statusline ends");
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(out.stderr.is_empty(), "{out:?}");
    (String::from_utf8(out.stdout).expect("utf-8"), took)
}

/// Money as the status line shows it.
fn money(amount: Decimal) -> String {
    if amount >= Decimal::ONE {
        format!("${:.2}", amount.round_dp(2))
    } else {
        format!("${}", amount.round_dp(4).normalize())
    }
}

#[tokio::test]
async fn claude_codes_stdin_gets_today_the_session_and_the_live_rpm() {
    let mock = Mock::start();
    let gw = Gateway::start(&mock_config(&mock, ""));
    let home = gw.home.path();
    for client in [
        claude_code("sonnet"),
        claude_code("sonnet"),
        codex("gpt-4.1"),
    ] {
        assert_eq!(send_as(&gw, KEY, &client).await, 200);
    }
    let rows = wait_rows(home, 3).await;
    let today: Decimal = rows.iter().map(|r| r.cost).sum();
    let session: Decimal = rows[..2].iter().map(|r| r.cost).sum();
    assert!(session > Decimal::ZERO && today > session);
    // The config the status line reads names the port the gateway listens on.
    let port = gw.url.rsplit(':').next().unwrap().to_owned();
    let config = home.join("statusline.toml");
    let base = std::fs::read_to_string(home.join("config.toml")).unwrap();
    std::fs::write(&config, format!("{base}\n[server]\nport = {port}\n")).unwrap();
    let config = config.display().to_string();
    let with_config = ["--config", config.as_str()];

    let mut fastest = Duration::MAX;
    for _ in 0..3 {
        let (line, took) = statusline(home, &with_config, &claude_stdin(CLAUDE_SESSION));
        fastest = fastest.min(took);
        let expected = format!(
            "izzi · today {} · session {} · ",
            money(today),
            money(session)
        );
        assert!(line.starts_with(&expected), "{line}");
        let rpm = line.trim_end().strip_prefix(&expected).unwrap();
        let (used, limit) = rpm.strip_suffix(" rpm").unwrap().split_once('/').unwrap();
        // The minute may have turned since the requests.
        assert!(used.parse::<u32>().unwrap() <= 3, "{line}");
        assert_eq!(limit, "120", "{line}");
    }
    eprintln!("izzi statusline (debug build), fastest of 3: {fastest:?}");
    assert!(fastest < Duration::from_millis(50), "{fastest:?}");

    // An unknown session costs nothing yet; without the gateway there is no rpm.
    let (line, _) = statusline(home, &[], &claude_stdin("a-new-session"));
    assert_eq!(
        line,
        format!("izzi · today {} · session $0\n", money(today))
    );
    // Not Claude Code's JSON: today only.
    let (line, _) = statusline(home, &[], "this is not JSON");
    assert_eq!(line, format!("izzi · today {}\n", money(today)));
}

#[test]
fn without_a_ledger_or_a_config_it_still_prints_a_line() {
    let home = tempfile::tempdir().unwrap();
    let (line, _) = statusline(home.path(), &[], &claude_stdin(CLAUDE_SESSION));
    assert_eq!(line, "izzi · no usage yet\n");
    assert!(!home.path().join("izzi.db").exists(), "created a ledger");
    std::fs::write(home.path().join("config.toml"), "[server\nbroken").unwrap();
    let (line, _) = statusline(home.path(), &[], "");
    assert_eq!(line, "izzi · no usage yet\n");
}
