//! A database the ledger cannot write (another process holds `izzi.db`'s write lock, as a full
//! disk would refuse it): requests keep flowing and keep freeing their concurrency slots,
//! `/health` says degraded, the rows arrive once the lock is released, and shutdown still ends.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::limits::{body, send};
use crate::support::{Gateway, KEY, Mock, http, mock_config};

async fn health(gw: &Gateway) -> Value {
    let response = http()
        .get(format!("{}/health", gw.url))
        .send()
        .await
        .expect("health");
    assert_eq!(response.status(), 200, "/health stays 200 while degraded");
    response.json().await.expect("health json")
}

/// Polls `/health` until `done` holds for it, for at most `within`.
async fn health_until(gw: &Gateway, within: Duration, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let health = health(gw).await;
        if done(&health) {
            return health;
        }
        assert!(Instant::now() < deadline, "health stayed {health}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Holds `izzi.db`'s write lock, as another process would.
fn lock(home: &Path) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(home.join("izzi.db")).expect("open izzi.db");
    conn.busy_timeout(Duration::from_secs(10))
        .expect("busy timeout");
    conn.execute_batch("BEGIN EXCLUSIVE").expect("lock izzi.db");
    conn
}

fn ledger_rows(conn: &rusqlite::Connection) -> u32 {
    conn.query_row("SELECT COUNT(*) FROM ledger", [], |r| r.get(0))
        .expect("count rows")
}

/// Sends one request and reads its whole answer; returns the status.
async fn complete(gw: &Gateway, stream: bool, i: usize) -> u16 {
    let model = if i.is_multiple_of(2) {
        "sonnet"
    } else {
        "gpt-4.1"
    };
    let response = send(gw, KEY, &body(model, "hello", stream)).await;
    let status = response.status().as_u16();
    let text = response.text().await.expect("answer");
    assert!(status != 200 || text.contains("Hello"), "{text}");
    status
}

#[tokio::test]
async fn a_locked_database_degrades_health_and_its_rows_arrive_when_it_clears() {
    let mock = Mock::start();
    // One slot: were slots freed only at the commit, the second request would be refused.
    let gw = Gateway::start(&mock_config(&mock, "concurrent = 1"));
    let home = gw.home.path();
    assert_eq!(health(&gw).await["status"], "ok");
    let locker = lock(home);
    let requests: usize = 8;
    for i in 0..requests {
        assert_eq!(
            complete(&gw, i.is_multiple_of(3), i).await,
            200,
            "request {i}"
        );
    }
    let degraded = health_until(&gw, Duration::from_secs(10), |h| {
        h["ledger"]["backlog_rows"] == requests
    })
    .await;
    assert_eq!(degraded["status"], "degraded", "{degraded}");
    let error = degraded["ledger"]["error"].as_str().unwrap_or_default();
    assert!(error.contains("locked"), "{degraded}");
    assert!(!error.contains(&home.display().to_string()), "{degraded}");
    assert_eq!(ledger_rows(&locker), 0);
    locker.execute_batch("COMMIT").expect("unlock");
    drop(locker);
    let healed = health_until(&gw, Duration::from_secs(15), |h| h["status"] == "ok").await;
    assert_eq!(healed["ledger"]["backlog_rows"], 0, "{healed}");
    let reader = rusqlite::Connection::open(home.join("izzi.db")).expect("open izzi.db");
    assert_eq!(ledger_rows(&reader) as usize, requests);
    // Written in the order the requests ended, after the lock, with nothing dropped.
    assert_eq!(healed["ledger"]["dropped_rows"], 0);
    let log = gw.log();
    assert!(log.contains("database is locked"), "{log}");
    assert!(log.contains("backlog written"), "{log}");
}

#[cfg(unix)]
#[tokio::test]
async fn shutdown_with_a_locked_database_ends_and_logs_the_rows_it_could_not_write() {
    let mock = Mock::start();
    let mut gw = Gateway::start(&mock_config(&mock, ""));
    let locker = lock(gw.home.path());
    assert_eq!(complete(&gw, false, 0).await, 200);
    health_until(&gw, Duration::from_secs(10), |h| h["status"] == "degraded").await;
    let started = Instant::now();
    let status = gw.terminate();
    assert!(status.success(), "{status}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "shutdown took {:?}",
        started.elapsed()
    );
    assert_eq!(ledger_rows(&locker), 0);
    let log = gw.log();
    assert!(log.contains("row lost"), "{log}");
}
