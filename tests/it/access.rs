//! Who gets in from this machine: the key `izzi setup` stored keeps working for local tools
//! beside created and config keys (unless the config turns it off), keeps an account of its
//! own, and a tool left with an old key does not lock the other local tools out.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::ledger::{izzi, json_of, listed};
use crate::limits::{body, error, send};
use crate::support::{Gateway, KEY, Mock, home_with, mock_config, mock_providers};

/// The key `izzi setup` stored in these tests.
const STORED: &str = "izzi-stored-by-setup-0123456789";

/// A home holding `config` and, as `izzi setup` leaves it with `IZZI_KEYRING=file`, the key.
fn home_with_stored_key(config: &str) -> tempfile::TempDir {
    let home = home_with(config);
    let (stdout, stderr, code) = izzi(home.path(), &["setup", "--yes", "--key", STORED]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    home
}

/// Sends a small request with `key`; its status.
async fn status_with(gw: &Gateway, key: &str) -> u16 {
    let response = send(gw, key, &body("sonnet", "hi", false)).await;
    let status = response.status().as_u16();
    let _ = response.bytes().await;
    status
}

/// Waits until `izzi usage` has `requests` rows for `key`.
async fn wait_for_usage(home: &Path, key: &str, requests: u64) {
    let started = Instant::now();
    loop {
        let usage = json_of(home, &["usage", "--json", "--key", key]);
        if usage["total"]["requests"] == requests {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{key}: {usage}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_stored_key_keeps_working_beside_created_keys_with_an_account_of_its_own() {
    let mock = Mock::start();
    // A config key named as the stored key once was: no collision.
    let config = format!(
        "{}\n[[keys]]\nname = \"personal\"\nkey = \"izzi-personal-000000000\"\n",
        mock_providers(&mock)
    );
    let home = home_with_stored_key(&config);
    let gw = Gateway::start_in(home, &[]);
    let home = gw.home.path();
    assert_eq!(status_with(&gw, STORED).await, 200);
    assert_eq!(status_with(&gw, "izzi-personal-000000000").await, 200);
    let (created, stderr, code) = izzi(home, &["keys", "create", "--name", "ci"]);
    assert_eq!(code, 0, "{stderr}");
    let created = created.trim().to_owned();
    // The gateway re-reads the keys within a second: the new one works, and so does the old.
    let started = Instant::now();
    while status_with(&gw, &created).await != 200 {
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "the created key was not accepted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(status_with(&gw, STORED).await, 200);
    assert_eq!(status_with(&gw, &created).await, 200);
    // Each key's usage is its own.
    wait_for_usage(home, "@setup", 2).await;
    wait_for_usage(home, "personal", 1).await;
    wait_for_usage(home, "ci", 2).await;
    // `izzi keys list` shows the stored key as what it is.
    let keys = json_of(home, &["keys", "list", "--json"]);
    let setup = listed(&keys, "@setup");
    assert_eq!(setup["source"], "setup", "{keys}");
    assert_eq!(setup["plan"], "ultra");
    assert_eq!(setup["requests_today"], 2);
    assert_eq!(listed(&keys, "personal")["source"], "config");
    assert_eq!(listed(&keys, "personal")["requests_today"], 1);
    assert_eq!(listed(&keys, "ci")["source"], "created");
    let (table, _, code) = izzi(home, &["keys", "list"]);
    assert_eq!(code, 0);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("@setup") && l.contains("setup (loopback)")),
        "{table}"
    );
    // No key may take the stored key's name, and it is turned off in the config, not revoked.
    let (_, stderr, code) = izzi(home, &["keys", "create", "--name", "@setup"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("not a valid key name"), "{stderr}");
    let (_, stderr, code) = izzi(home, &["keys", "revoke", "@setup"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("accept_stored_key = false"), "{stderr}");
}

#[tokio::test]
async fn accept_stored_key_false_turns_the_stored_key_off() {
    let mock = Mock::start();
    let home = home_with_stored_key(&mock_config(
        &mock,
        "[security]\naccept_stored_key = false\n",
    ));
    let gw = Gateway::start_in(home, &[]);
    error(
        send(&gw, STORED, &body("sonnet", "hi", false)).await,
        401,
        "authentication_error",
    )
    .await;
    assert_eq!(status_with(&gw, KEY).await, 200);
    let keys = json_of(gw.home.path(), &["keys", "list", "--json"]);
    let names: Vec<&Value> = keys
        .as_array()
        .unwrap()
        .iter()
        .map(|k| &k["name"])
        .collect();
    assert_eq!(names, ["test"], "{keys}");
}

/// Ten wrong keys in a minute from a local tool left with an old key block the loopback
/// address for wrong keys only: every other local tool, on a valid key, is still served.
#[tokio::test]
async fn a_tool_with_an_old_key_does_not_lock_out_the_other_local_tools() {
    let mock = Mock::start();
    let gw = Gateway::start(&mock_config(&mock, ""));
    for _ in 0..10 {
        let wrong = gw.get("/v1/models", "izzi-an-old-key-0000000").await;
        error(wrong, 401, "authentication_error").await;
    }
    let wrong = gw.get("/v1/models", "izzi-an-old-key-0000000").await;
    error(wrong, 403, "ip_blocked").await;
    assert_eq!(status_with(&gw, KEY).await, 200);
    assert_eq!(gw.get("/v1/models", KEY).await.status(), 200);
    let wrong = send(&gw, "izzi-an-old-key-0000000", &body("sonnet", "hi", false)).await;
    error(wrong, 403, "ip_blocked").await;
}
