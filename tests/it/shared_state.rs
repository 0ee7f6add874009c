//! Several `izzi serve` instances sharing limits, money and the ledger through a real Redis and a
//! real PostgreSQL, each started by the test on free loopback ports in a temp dir: exact RPM,
//! concurrency and balance across instances, slots of a SIGKILLed instance freed within the
//! lease time, one ledger row per finished request from every instance, Redis restarted under
//! load, PostgreSQL away and back (rows spilled, none lost), fail closed and fail open, `izzi keys` and
//! `izzi usage` against PostgreSQL, and the latency Redis adds.
//!
//! Needs `redis-server` on `PATH` and PostgreSQL's `initdb` and `postgres` on `PATH` or in
//! `/usr/lib/postgresql/*/bin` (Debian's `postgresql` package). As root, PostgreSQL is run as
//! `nobody` through `setpriv`, since it refuses to run as root.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;

use crate::ledger::{izzi, json_of, listed};
use crate::limits::{
    admitted_within, body, error, inside_one_minute, key, rate, refused_for_concurrency, send,
};
use crate::support::{Gateway, Mock, http, mock_config};

/// A port nobody listens on right now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind a free port")
        .local_addr()
        .expect("local addr")
        .port()
}

/// Looks for a program on `PATH`, then in Debian's PostgreSQL folders.
fn program(name: &str) -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .map(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join(name))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    let mut debian: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|dirs| {
            dirs.filter_map(Result::ok)
                .map(|d| d.path().join("bin").join(name))
                .collect()
        })
        .unwrap_or_default();
    debian.sort();
    debian.reverse();
    on_path
        .into_iter()
        .chain(debian)
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("`{name}` is not installed: apt-get install redis-server postgresql")
        })
}

pub(crate) fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.starts_with(b"0\n"))
}

/// Sends `signal` to a child and waits for it, killing it if it does not go within 10 s.
fn stop(child: &mut Child, signal: &str) {
    let _ = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// A `redis-server` on a free port, without persistence: a restart loses every key.
pub(crate) struct Redis {
    pub(crate) port: u16,
    /// Where it listens, given the free port: `--port P`, or TLS options.
    listen: fn(u16) -> Vec<String>,
    dir: PathBuf,
    child: Option<Child>,
}

impl Redis {
    fn start() -> Self {
        Self::start_with(|port| vec!["--port".to_owned(), port.to_string()])
    }

    /// A server whose listening options `listen` gives for its free port.
    fn start_with(listen: fn(u16) -> Vec<String>) -> Self {
        Self::start_in(Path::new("."), listen)
    }

    /// A server started in `dir` (where relative paths in its options point).
    pub(crate) fn start_in(dir: &Path, listen: fn(u16) -> Vec<String>) -> Self {
        let mut redis = Self {
            port: free_port(),
            listen,
            dir: dir.to_owned(),
            child: None,
        };
        redis.spawn();
        redis
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn spawn(&mut self) {
        let child = Command::new(program("redis-server"))
            .args((self.listen)(self.port))
            .current_dir(&self.dir)
            .args(["--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("start redis-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGKILL: gone at once, with all its data.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop(&mut child, "-KILL");
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A PostgreSQL cluster of its own in a temp dir, on a free port, trusting user `izzi`.
pub(crate) struct Postgres {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) port: u16,
    /// More `postgres` options (`-c ssl=on`, ...).
    pub(crate) args: Vec<String>,
    child: Option<Child>,
}

impl Postgres {
    pub(crate) fn start() -> Self {
        let mut pg = Self::init();
        pg.spawn();
        pg
    }

    /// A new cluster in `dir/data`, not yet started.
    pub(crate) fn init() -> Self {
        let dir = tempfile::tempdir().expect("postgres dir");
        if is_root() {
            let status = Command::new("chown")
                .args(["nobody:nogroup", &dir.path().display().to_string()])
                .status()
                .expect("chown");
            assert!(status.success());
        }
        let out = Self::command("initdb")
            .arg("-D")
            .arg(dir.path().join("data"))
            .args([
                "-U",
                "izzi",
                "--auth=trust",
                "--no-locale",
                "-E",
                "UTF8",
                "-N",
            ])
            .output()
            .expect("run initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Self {
            dir,
            port: free_port(),
            args: Vec::new(),
            child: None,
        }
    }

    /// `name` from PostgreSQL, as `nobody` when the tests run as root.
    pub(crate) fn command(name: &str) -> Command {
        if is_root() {
            let mut command = Command::new("setpriv");
            command
                .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
                .arg(program(name));
            command
        } else {
            Command::new(program(name))
        }
    }

    pub(crate) fn spawn(&mut self) {
        let log = std::fs::File::options()
            .create(true)
            .append(true)
            .open(self.dir.path().join("postgres.log"))
            .expect("postgres log");
        let child = Self::command("postgres")
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-p", &self.port.to_string()])
            .arg("-k")
            .arg(self.dir.path())
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"])
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start postgres");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "postgres did not start: {}",
                std::fs::read_to_string(self.dir.path().join("postgres.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Fast shutdown (SIGINT): clients are cut off, the data stays.
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop(&mut child, "-INT");
        }
    }

    fn url(&self, database: &str) -> String {
        format!("postgres://izzi@127.0.0.1:{}/{database}", self.port)
    }

    pub(crate) async fn connect(&self, database: &str) -> tokio_postgres::Client {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match tokio_postgres::connect(&self.url(database), tokio_postgres::NoTls).await {
                Ok((client, connection)) => {
                    tokio::spawn(connection);
                    return client;
                }
                Err(err) => {
                    assert!(
                        Instant::now() < deadline,
                        "cannot connect to postgres: {err}"
                    );
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    /// A new, empty database's URL.
    pub(crate) async fn database(&self) -> String {
        let client = self.connect("postgres").await;
        client
            .batch_execute("CREATE DATABASE izzi")
            .await
            .expect("create database");
        self.url("izzi")
    }

    /// The ledger's rows: request id and key name, oldest first.
    async fn rows(&self) -> Vec<(String, String)> {
        let client = self.connect("izzi").await;
        client
            .query("SELECT request_id, key_name FROM ledger ORDER BY id", &[])
            .await
            .expect("ledger rows")
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect()
    }

    /// Waits until the ledger holds exactly `n` rows and stays so briefly.
    pub(crate) async fn wait_rows(&self, n: usize) -> Vec<(String, String)> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let rows = self.rows().await;
            if rows.len() == n {
                tokio::time::sleep(Duration::from_millis(300)).await;
                let again = self.rows().await;
                assert_eq!(again.len(), n, "more rows than requests admitted");
                return again;
            }
            assert!(
                Instant::now() < deadline && rows.len() < n,
                "{} ledger rows, expected {n}",
                rows.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The mock config plus `extra` keys and a `[state]` section.
fn config(mock: &Mock, extra: &str, state: &str) -> String {
    format!("{}\n[state]\n{state}\n", mock_config(mock, extra))
}

fn state(redis: Option<&Redis>, postgres: Option<&str>, on_unavailable: &str) -> String {
    let mut state = format!("on_unavailable = \"{on_unavailable}\"\nlease_s = 3\n");
    if let Some(redis) = redis {
        state.push_str(&format!("redis_url = \"{}\"\n", redis.url()));
    }
    if let Some(url) = postgres {
        state.push_str(&format!("postgres_url = \"{url}\"\n"));
    }
    state
}

fn three(config: &str) -> Vec<Gateway> {
    (0..3).map(|_| Gateway::start(config)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rpm_60_admits_exactly_60_of_200_across_three_instances_with_one_row_each() {
    let redis = Redis::start();
    let pg = Postgres::start();
    let url = pg.database().await;
    let mock = Mock::start();
    let extra = key(
        "burst",
        "izzi-burst-0000000000",
        "plan = \"pro\"\nconcurrent = 500\ndaily = 100000",
    );
    let gws = three(&config(
        &mock,
        &extra,
        &state(Some(&redis), Some(&url), "closed"),
    ));
    // One request per instance with another key, so each has its Redis connection open.
    for gw in &gws {
        let warm = send(gw, crate::support::KEY, &body("gpt-4.1", "hi", false)).await;
        assert_eq!(warm.status(), 200);
    }
    inside_one_minute(20).await;
    let requests = (0..200).map(|i| {
        let gw = &gws[i % 3];
        let model = if i % 2 == 0 { "sonnet" } else { "gpt-4.1" };
        let body = body(model, "mock:delay_ms=20", i % 3 == 0);
        async move {
            let response = send(gw, "izzi-burst-0000000000", &body).await;
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let text = response.text().await.unwrap();
            (i % 3, status, headers, text)
        }
    });
    let answers = futures_util::future::join_all(requests).await;
    let mut per_instance = [0_usize; 3];
    let mut remaining = Vec::new();
    for (instance, status, headers, text) in &answers {
        let r = rate(headers);
        assert_eq!((r.limit, r.tier.as_str()), (60, "pro"));
        if *status == 200 {
            per_instance[*instance] += 1;
            remaining.push(r.remaining);
        } else {
            assert_eq!(*status, 429, "{text}");
            assert!(text.contains("rate_limit_error"), "{text}");
            assert_eq!(r.remaining, 0);
        }
    }
    assert_eq!(per_instance.iter().sum::<usize>(), 60, "{per_instance:?}");
    assert!(
        per_instance.iter().all(|n| *n > 0),
        "every instance admitted some: {per_instance:?}"
    );
    // One shared window: each admitted request saw its own place in it, once.
    remaining.sort_unstable();
    assert_eq!(remaining, (0..60).collect::<Vec<u32>>());
    assert_eq!(mock.requests().await.len(), 63);
    // One ledger row per admitted request, from all three instances, each id once.
    let rows = pg.wait_rows(63).await;
    let mut ids: Vec<&String> = rows
        .iter()
        .filter(|(_, key)| key == "burst")
        .map(|(id, _)| id)
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 60);
}

/// Streams that run for about 16 s (64 events 250 ms apart), on the given instances.
async fn long_streams(gws: &[&Gateway], key: &str) -> Vec<impl futures_util::Stream + use<>> {
    let long = body("sonnet", "mock:words=400 mock:chunk_delay_ms=250", true);
    let mut streams = Vec::new();
    for gw in gws {
        let response = send(gw, key, &long).await;
        assert_eq!(response.status(), 200);
        streams.push(response.bytes_stream());
    }
    streams
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrency_3_holds_across_instances() {
    let redis = Redis::start();
    let mock = Mock::start();
    let extra = key(
        "three",
        "izzi-three-0000000000",
        "plan = \"pro\"\nrpm = 1000",
    );
    let gws = three(&config(&mock, &extra, &state(Some(&redis), None, "closed")));
    let k = "izzi-three-0000000000";
    // A short stream on the first instance, long ones on the others.
    let short = body("sonnet", "mock:words=30 mock:chunk_delay_ms=50", true);
    let first = send(&gws[0], k, &short).await;
    assert_eq!(first.status(), 200);
    assert_eq!(rate(first.headers()).concurrent_remaining, 2);
    let mut streams = long_streams(&[&gws[1], &gws[2]], k).await;
    for gw in &gws {
        let response = send(gw, k, &body("gpt-4.1", "hi", false)).await;
        refused_for_concurrency(response, 3).await;
    }
    // The short stream ends on the first instance: the third instance admits one more at once.
    let mut first = first.bytes_stream();
    while let Some(chunk) = first.next().await {
        chunk.unwrap();
    }
    let response = admitted_within(
        &gws[2],
        k,
        &body("gpt-4.1", "hi", false),
        Duration::from_secs(3),
        "the ended stream's slot never freed",
    )
    .await;
    assert_eq!(rate(response.headers()).concurrent_remaining, 0);
    streams.clear();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn holds_and_spend_keep_a_balance_across_instances() {
    let redis = Redis::start();
    let pg = Postgres::start();
    let url = pg.database().await;
    let mock = Mock::start();
    // A sonnet request with `max_tokens = 64` holds about $0.00107 (64 output tokens at $15
    // per million, plus its input at $3): two fit in $0.0025, a third does not.
    let extra = key(
        "thin",
        "izzi-thin-00000000000",
        "rpm = 1000\nconcurrent = 10\ncredits_usd = 0.0025",
    );
    let gws = three(&config(
        &mock,
        &extra,
        &state(Some(&redis), Some(&url), "closed"),
    ));
    let k = "izzi-thin-00000000000";
    let stream = body("sonnet", "mock:words=400 mock:chunk_delay_ms=30", true);
    let mut running = Vec::new();
    for gw in &gws[..2] {
        let response = send(gw, k, &stream).await;
        assert_eq!(response.status(), 200);
        running.push(response);
    }
    // Two holds on two instances leave too little for a third on the third instance.
    let (_, message) = error(send(&gws[2], k, &stream).await, 402, "insufficient_balance").await;
    assert!(message.contains("balance"), "{message}");
    for response in running {
        let _ = response.bytes().await.unwrap();
    }
    pg.wait_rows(2).await;
    // Settled to the real cost (the holds gone), the spend of both is shared: the third
    // instance, which served neither, still finds too little.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, message) = error(send(&gws[2], k, &stream).await, 402, "insufficient_balance").await;
    assert!(message.contains("balance is $0.000"), "{message}");
    let keys = json_of(gws[0].home.path(), &["keys", "list", "--json"]);
    let thin = listed(&keys, "thin");
    let spent: rust_decimal::Decimal = thin["spent_usd"].as_str().unwrap().parse().unwrap();
    let balance: rust_decimal::Decimal = thin["balance_usd"].as_str().unwrap().parse().unwrap();
    assert!(spent > rust_decimal::Decimal::new(2, 3), "{spent}");
    assert_eq!(balance, rust_decimal::Decimal::new(25, 4) - spent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sigkilled_instance_frees_its_slots_within_the_lease_time() {
    let redis = Redis::start();
    let mock = Mock::start();
    let extra = key("two", "izzi-two-000000000000", "concurrent = 2\nrpm = 1000");
    let config = config(&mock, &extra, &state(Some(&redis), None, "closed"));
    let doomed = Gateway::start(&config);
    let survivor = Gateway::start(&config);
    let k = "izzi-two-000000000000";
    let streams = long_streams(&[&doomed, &doomed], k).await;
    // Longer than the lease (3 s): the running streams' leases are renewed, so still full.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let refused = send(&survivor, k, &body("gpt-4.1", "hi", false)).await;
    error(refused, 429, "rate_limit_error").await;
    drop(doomed); // SIGKILL
    let killed = Instant::now();
    loop {
        let response = send(&survivor, k, &body("gpt-4.1", "hi", false)).await;
        if response.status() == 200 {
            break;
        }
        error(response, 429, "rate_limit_error").await;
        assert!(
            killed.elapsed() < Duration::from_secs(8),
            "the killed instance's slots were not freed within the lease time"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let freed = killed.elapsed();
    eprintln!("slots of the killed instance freed after {freed:?} (lease 3 s)");
    // A lease outlives its last renewal by the lease time (3 s); the rest is this loop's own
    // requests on a busy machine.
    assert!(freed <= Duration::from_millis(4500), "{freed:?}");
    drop(streams);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_restarted_under_load_crashes_nothing_and_loses_no_row() {
    let mut redis = Redis::start();
    let pg = Postgres::start();
    let url = pg.database().await;
    let mock = Mock::start();
    let extra = key(
        "load",
        "izzi-load-0000000000",
        "plan = \"ultra\"\nrpm = 100000\nconcurrent = 64\ndaily = 1000000",
    );
    let gws = three(&config(
        &mock,
        &extra,
        &state(Some(&redis), Some(&url), "open"),
    ));
    let urls: Vec<String> = gws.iter().map(|g| g.url.clone()).collect();
    let ok = Arc::new(Mutex::new(0_usize));
    let stop_at = Instant::now() + Duration::from_secs(4);
    let workers: Vec<_> = (0..9)
        .map(|w| {
            let (url, ok) = (urls[w % 3].clone(), Arc::clone(&ok));
            tokio::spawn(async move {
                let client = http();
                let mut i = 0;
                while Instant::now() < stop_at {
                    i += 1;
                    let stream = (w + i) % 2 == 0;
                    let text = if stream {
                        "mock:words=10 mock:chunk_delay_ms=5"
                    } else {
                        "mock:delay_ms=10"
                    };
                    let response = client
                        .post(format!("{url}/v1/messages"))
                        .bearer_auth("izzi-load-0000000000")
                        .json(&body("sonnet", text, stream))
                        .send()
                        .await
                        .expect("the gateway answers");
                    let status = response.status();
                    let text = response.text().await.expect("a whole answer");
                    assert_eq!(status, 200, "fail-open admits through the outage: {text}");
                    *ok.lock().unwrap() += 1;
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    redis.kill();
    tokio::time::sleep(Duration::from_millis(700)).await;
    redis.spawn();
    for worker in workers {
        worker.await.unwrap();
    }
    let ok = *ok.lock().unwrap();
    assert!(ok > 30, "the load was real: {ok} requests");
    for gw in &gws {
        gw.get_text("/health").await;
    }
    let rows = pg.wait_rows(ok).await;
    assert!(rows.iter().all(|(_, key)| key == "load"));
    let logs: String = gws.iter().map(Gateway::log).collect();
    assert!(
        logs.contains("Redis (`state.redis_url`) cannot be reached"),
        "{logs}"
    );
    assert!(logs.contains("reachable again"), "{logs}");
    eprintln!("{ok} requests across a Redis restart, {} rows", rows.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_away_fail_closed_gives_503_and_fail_open_admits_with_local_limits() {
    let mock = Mock::start();
    let nobody = format!("redis://127.0.0.1:{}", free_port());
    let extra = key("one", "izzi-one-000000000000", "rpm = 1");
    let with = |mode: &str| {
        config(
            &mock,
            &extra,
            &format!("redis_url = \"{nobody}\"\non_unavailable = \"{mode}\"\n"),
        )
    };
    let closed = Gateway::start(&with("closed"));
    let response = send(
        &closed,
        "izzi-one-000000000000",
        &body("sonnet", "hi", false),
    )
    .await;
    let (headers, message) = error(response, 503, "server_error").await;
    assert!(message.contains("shared state (Redis)"), "{message}");
    assert!(headers.get("retry-after").is_some());
    assert_eq!(rate(&headers).limit, 1);
    // Requests that count toward nothing still work.
    let models = closed.get("/v1/models", "izzi-one-000000000000").await;
    assert_eq!(models.status(), 200);
    let open = Gateway::start(&with("open"));
    let ok = send(&open, "izzi-one-000000000000", &body("sonnet", "hi", false)).await;
    assert_eq!(ok.status(), 200);
    // The local limits hold while Redis is away.
    let refused = send(&open, "izzi-one-000000000000", &body("sonnet", "hi", false)).await;
    error(refused, 429, "rate_limit_error").await;
    for (gw, mode) in [(&closed, "closed"), (&open, "open")] {
        let log = gw.log();
        let loud = log
            .lines()
            .filter(|l| l.contains("ERROR") && l.contains("cannot be reached"))
            .count();
        assert_eq!(
            loud, 1,
            "the outage is logged once, loudly ({mode}):\n{log}"
        );
        assert!(
            log.contains(&format!("on_unavailable = \"{mode}\"")),
            "{log}"
        );
    }
    assert!(!closed.log().contains(&nobody) && !open.log().contains(&nobody));
}

/// Rows waiting in an instance's spill file.
fn spilled(home: &Path) -> usize {
    let path = home.join("ledger-spill.db");
    if !path.exists() {
        return 0;
    }
    let db = rusqlite::Connection::open(path).expect("open the spill file");
    let n = db
        .query_row("SELECT COUNT(*) FROM ledger", [], |r| r.get::<_, i64>(0))
        .expect("count spilled rows");
    usize::try_from(n).expect("a count")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_away_spills_rows_and_writes_them_when_it_returns() {
    let mut pg = Postgres::start();
    let url = pg.database().await;
    let mock = Mock::start();
    let open = Gateway::start(&config(&mock, "", &state(None, Some(&url), "open")));
    let closed = Gateway::start(&config(&mock, "", &state(None, Some(&url), "closed")));
    let k = crate::support::KEY;
    for _ in 0..3 {
        let ok = send(&open, k, &body("gpt-4.1", "hi", false)).await;
        assert_eq!(ok.status(), 200);
    }
    pg.wait_rows(3).await;
    pg.stop();
    // Fail closed: refused as soon as the instance has noticed (it probes twice a second).
    let mut closed_ok = 0;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let response = send(&closed, k, &body("gpt-4.1", "hi", false)).await;
        if response.status() == 503 {
            let (_, message) = error(response, 503, "server_error").await;
            assert!(message.contains("PostgreSQL"), "{message}");
            break;
        }
        assert_eq!(response.status(), 200);
        let _ = response.bytes().await;
        closed_ok += 1;
        assert!(Instant::now() < deadline, "fail-closed never refused");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Fail open: admitted, and the rows wait in the spill file.
    for _ in 0..5 {
        let ok = send(&open, k, &body("gpt-4.1", "mock:words=5", true)).await;
        assert_eq!(ok.status(), 200);
        let _ = ok.bytes().await.unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while spilled(open.home.path()) < 5 {
        assert!(
            Instant::now() < deadline,
            "rows never reached the spill file"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    pg.spawn();
    // Every row: 3 before, 5 spilled by the open instance, and those the closed one admitted
    // before it noticed.
    let rows = pg.wait_rows(8 + closed_ok).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while spilled(open.home.path()) > 0 {
        assert!(
            Instant::now() < deadline,
            "the spill file was never emptied"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(rows.iter().all(|(_, key)| key == "test"));
    let ok = send(&closed, k, &body("gpt-4.1", "hi", false)).await;
    assert_eq!(ok.status(), 200, "fail-closed admits again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_and_usage_work_against_postgres_for_every_instance() {
    let redis = Redis::start();
    let pg = Postgres::start();
    let url = pg.database().await;
    let mock = Mock::start();
    let config = config(&mock, "", &state(Some(&redis), Some(&url), "closed"));
    let a = Gateway::start(&config);
    let b = Gateway::start(&config);
    let (created, stderr, code) = izzi(
        a.home.path(),
        &[
            "keys",
            "create",
            "--name",
            "team",
            "--plan",
            "starter",
            "--credits",
            "5",
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    let team = created.trim().to_owned();
    // The other instance, whose home never saw the key, accepts it within a second.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let response = send(&b, &team, &body("gpt-4.1", "hi", false)).await;
        if response.status() == 200 {
            assert_eq!(rate(response.headers()).tier, "starter");
            break;
        }
        assert_eq!(response.status(), 401);
        assert!(
            Instant::now() < deadline,
            "the created key never reached instance b"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ok = send(&a, &team, &body("sonnet", "hi", true)).await;
    assert_eq!(ok.status(), 200);
    let _ = ok.bytes().await.unwrap();
    pg.wait_rows(2).await;
    let usage = json_of(b.home.path(), &["usage", "--json", "--key", "team"]);
    assert_eq!(usage["total"]["requests"], 2);
    let keys = json_of(a.home.path(), &["keys", "list", "--json"]);
    let listed = listed(&keys, "team");
    assert_eq!(listed["requests_today"], 2);
    assert_eq!(listed["source"], "created");
    let spent: rust_decimal::Decimal = listed["spent_usd"].as_str().unwrap().parse().unwrap();
    assert!(spent > rust_decimal::Decimal::ZERO);
    assert_eq!(
        usage["total"]["cost_usd"]
            .as_str()
            .unwrap()
            .parse::<rust_decimal::Decimal>()
            .unwrap(),
        spent
    );
    // Nothing went to a local izzi.db.
    assert!(!a.home.path().join("izzi.db").exists());
    assert!(!b.home.path().join("izzi.db").exists());
    let (_, stderr, code) = izzi(a.home.path(), &["keys", "revoke", "team"]);
    assert_eq!(code, 0, "{stderr}");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let response = send(&b, &team, &body("gpt-4.1", "hi", false)).await;
        if response.status() == 401 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the revoked key still works on instance b"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, stderr, code) = izzi(a.home.path(), &["keys", "create", "--name", "team"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("`team` already exists"), "{stderr}");
}

/// Median of `n` sequential plain requests' latency.
async fn median_latency(gw: &Gateway, n: usize) -> Duration {
    let body = body("gpt-4.1", "hi", false);
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        let response = gw
            .post("/v1/chat/completions", "izzi-bench-0000000000", &body)
            .await;
        assert_eq!(response.status(), 200);
        let _ = response.bytes().await.expect("a body");
        times.push(start.elapsed());
    }
    times.sort();
    times[n / 2]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_state_adds_little_latency_per_request() {
    let redis = Redis::start();
    let mock = Mock::start();
    let extra = key(
        "bench",
        "izzi-bench-0000000000",
        "rpm = 100000\ndaily = 100000",
    );
    let embedded = Gateway::start(&mock_config(&mock, &extra));
    let shared = Gateway::start(&config(&mock, &extra, &state(Some(&redis), None, "closed")));
    // Warm both (connections, the script cache, the seeded counters).
    median_latency(&embedded, 20).await;
    median_latency(&shared, 20).await;
    let local = median_latency(&embedded, 300).await;
    let with_redis = median_latency(&shared, 300).await;
    eprintln!(
        "median latency per request: embedded {local:?}, Redis {with_redis:?}, added {:?}",
        with_redis.saturating_sub(local)
    );
    assert!(
        with_redis < local + Duration::from_millis(20),
        "Redis adds too much: {local:?} → {with_redis:?}"
    );
}
