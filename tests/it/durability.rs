//! A database the ledger cannot write (another process holds `izzi.db`'s write lock, or
//! `IZZI_HOME` is on a full disk): requests keep flowing and keep freeing their concurrency
//! slots, `/health` says degraded, the rows arrive once the lock is released or space returns,
//! and shutdown still ends.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::limits::{body, send};
use crate::support::{Gateway, KEY, Mock, mock_config};

/// `/health`, which stays 200 while degraded.
async fn health(gw: &Gateway) -> Value {
    serde_json::from_str(&gw.get_text("/health").await).expect("health json")
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

/// Sends `requests` requests while the ledger cannot write (every `stream_every`th a stream),
/// each answered 200; waits until all are in the backlog and returns `/health`, asserted
/// degraded by an error that mentions `cause`.
async fn degrade(gw: &Gateway, requests: usize, stream_every: usize, cause: &str) -> Value {
    for i in 0..requests {
        assert_eq!(
            complete(gw, i.is_multiple_of(stream_every), i).await,
            200,
            "request {i}"
        );
    }
    let degraded = health_until(gw, Duration::from_secs(10), |h| {
        h["ledger"]["backlog_rows"] == requests
    })
    .await;
    assert_eq!(degraded["status"], "degraded", "{degraded}");
    let error = degraded["ledger"]["error"].as_str().unwrap_or_default();
    assert!(error.contains(cause), "{degraded}");
    degraded
}

/// Sends one request and reads its whole answer, which must be complete when it is a 200 (a
/// JSON body, or a stream up to its final event); returns the status.
async fn complete(gw: &Gateway, stream: bool, i: usize) -> u16 {
    let model = if i.is_multiple_of(2) {
        "sonnet"
    } else {
        "gpt-4.1"
    };
    let response = send(gw, KEY, &body(model, "hello", stream)).await;
    let status = response.status().as_u16();
    let text = response.text().await.expect("answer");
    let whole = if stream {
        text.contains("event: message_stop") || text.contains("data: [DONE]")
    } else {
        serde_json::from_str::<Value>(&text).is_ok()
    };
    assert!(status != 200 || (text.contains("Hello") && whole), "{text}");
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
    let degraded = degrade(&gw, requests, 3, "locked").await;
    let error = degraded["ledger"]["error"].as_str().unwrap_or_default();
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

/// Set in the copy of the full-disk test that runs inside its own user and mount namespace.
#[cfg(target_os = "linux")]
const IN_NAMESPACE: &str = "IZZI_TEST_IN_MOUNT_NAMESPACE";

/// A small tmpfs mounted on a directory, to be `IZZI_HOME` on a disk the test can fill.
/// Unmounted (lazily: whatever still holds a file lets go later) and removed when dropped;
/// declare it before the [`Gateway`] so the gateway is gone first.
#[cfg(target_os = "linux")]
struct Tmpfs(std::path::PathBuf);

#[cfg(target_os = "linux")]
impl Tmpfs {
    /// Mounts `size` (as `mount -o size=` takes it) on `dir`; `Err` holds mount's words.
    fn mount(dir: &Path, size: &str) -> Result<Self, String> {
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700")])
            .arg("izzi-test-tmpfs")
            .arg(dir)
            .output()
            .map_err(|err| format!("cannot run `mount`: {err}"))?;
        if out.status.success() {
            Ok(Self(dir.to_owned()))
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
        }
    }
}

#[cfg(target_os = "linux")]
impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("--lazy")
            .arg(&self.0)
            .status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// Runs test `name` (a path inside this test binary) again under `unshare -Urm`, where an
/// unprivileged user may mount a tmpfs, and fails with its output unless it passed.
#[cfg(target_os = "linux")]
fn rerun_in_namespace(name: &str, mount_error: &str) {
    let exe = std::env::current_exe().expect("test binary");
    let out = std::process::Command::new("unshare")
        .arg("-Urm")
        .arg(exe)
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(IN_NAMESPACE, "1")
        .output();
    let out = out.unwrap_or_else(|err| {
        panic!(
            "this test needs a tmpfs: `mount` said `{mount_error}` and `unshare` cannot run ({err}); run it as root (as .ci/run does) or install util-linux"
        )
    });
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "this test needs a tmpfs: `mount` said `{mount_error}`, and rerun under `unshare -Urm` it failed ({}): run it as root (as .ci/run does) or allow unprivileged user namespaces\n{stdout}\n{stderr}",
        out.status
    );
}

/// Fills the file system holding `dir` with one file until it refuses another byte.
#[cfg(target_os = "linux")]
fn fill(dir: &Path) -> std::path::PathBuf {
    use std::io::Write as _;
    let path = dir.join("filler");
    let mut file = std::fs::File::create(&path).expect("create filler");
    let chunk = vec![0_u8; 64 * 1024];
    let mut size = chunk.len();
    while size > 0 {
        match file.write(&chunk[..size]) {
            Ok(0) => break,
            Ok(_) => {}
            // Then smaller writes fill the last partial chunk.
            Err(err) if err.kind() == std::io::ErrorKind::StorageFull => size /= 2,
            Err(err) => panic!("writing the filler: {err}"),
        }
    }
    path
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn a_full_disk_degrades_health_and_its_rows_arrive_when_space_returns() {
    const NAME: &str =
        "durability::a_full_disk_degrades_health_and_its_rows_arrive_when_space_returns";
    let home = tempfile::tempdir().expect("temp home");
    let _tmpfs = match Tmpfs::mount(home.path(), "4m") {
        Ok(tmpfs) => tmpfs,
        Err(err) if std::env::var_os(IN_NAMESPACE).is_none() => {
            return rerun_in_namespace(NAME, &err);
        }
        Err(err) => panic!("cannot mount a tmpfs even under `unshare -Urm`: {err}"),
    };
    let mock = Mock::start();
    std::fs::write(
        home.path().join("config.toml"),
        mock_config(&mock, "concurrent = 1"),
    )
    .expect("write config");
    let gw = Gateway::start_in(home, &[]);
    let home = gw.home.path();
    // Rows written before the disk fills, so `izzi.db` and its WAL hold pages already.
    let before: usize = 3;
    for i in 0..before {
        assert_eq!(complete(&gw, i.is_multiple_of(2), i).await, 200);
    }
    health_until(&gw, Duration::from_secs(10), |h| h["status"] == "ok").await;
    let filler = fill(home);
    let requests: usize = 12;
    degrade(&gw, requests, 2, "full").await;
    // Still serving, through a retry or two of the backlog.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(complete(&gw, true, 0).await, 200);
    std::fs::remove_file(&filler).expect("remove filler");
    let healed = health_until(&gw, Duration::from_secs(15), |h| h["status"] == "ok").await;
    assert_eq!(healed["ledger"]["backlog_rows"], 0, "{healed}");
    assert_eq!(healed["ledger"]["dropped_rows"], 0, "{healed}");
    let reader = rusqlite::Connection::open(home.join("izzi.db")).expect("open izzi.db");
    assert_eq!(ledger_rows(&reader) as usize, before + requests + 1);
    let log = gw.log();
    assert!(log.contains("backlog written"), "{log}");
}
