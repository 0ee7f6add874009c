use std::collections::HashMap;

use bytes::Bytes;
use rust_decimal::Decimal;

use super::*;
use crate::catalog::Model;
use crate::config::{Limits, Plan};
use crate::gateway::identity::Client;
use crate::gateway::limits::Limiter;
use crate::protocol::Usage;
use crate::store::{Backend as _, Outcome, Store, UsageSource};

fn model() -> Arc<Model> {
    let catalog = crate::catalog::Catalog::load(&[]).unwrap();
    let mut model = catalog.models()[0].clone();
    model.input_per_mtok = Decimal::from(2);
    model.output_per_mtok = Decimal::from(10);
    Arc::new(model)
}

fn client() -> Client {
    Client {
        name: "k".into(),
        source: crate::config::KeySource::Config,
        plan: Plan::Pro,
        limits: Limits {
            rpm: 100,
            concurrent: 1,
            daily: 100,
        },
        credits: Some(Decimal::from(1)),
        budget: None,
    }
}

fn finished(limiter: &Arc<Limiter>, usage: Usage, answered: Option<Answered>) -> Finished {
    Finished {
        admission: Box::new(
            limiter
                .admit(&client(), Decimal::new(5, 1), jiff::Timestamp::now(), false)
                .unwrap(),
        ),
        attribution: crate::attribution::Attribution::default(),
        requested_model: "m".into(),
        model: model(),
        provider: "p".into(),
        route: None,
        status: 200,
        outcome: Outcome::Completed,
        stream: true,
        usage,
        latency: Duration::from_millis(1500),
        ttft: Some(Duration::from_millis(200)),
        answered,
    }
}

#[test]
fn reported_usage_is_priced_and_missing_usage_is_counted() {
    let limiter = Arc::new(Limiter::default());
    let usage = Usage {
        input_tokens: 1000,
        output_tokens: 100,
        ..Usage::default()
    };
    let answered = || Answered {
        request: Bytes::from_static(br#"{"messages":[{"role":"user","content":"hello there"}]}"#),
        output: Some(Output::Events(7)),
    };
    let f = finished(&limiter, usage, Some(answered()));
    assert!(!f.needs_count());
    let row = f.into_ended().row;
    assert_eq!(
        (row.usage_source, row.cost_usd.to_string()),
        (UsageSource::Upstream, "0.003".into())
    );
    assert_eq!((row.latency_ms, row.ttft_ms), (1500, Some(200)));
    let f = finished(&limiter, Usage::default(), Some(answered()));
    assert!(f.needs_count(), "the input is tokenized");
    let row = f.into_ended().row;
    assert_eq!(row.usage_source, UsageSource::Estimate);
    assert!(row.usage.input_tokens > 0);
    assert_eq!(row.usage.output_tokens, 7);
    // A stream the client left after the upstream reported its input only.
    let mut f = finished(
        &limiter,
        Usage {
            input_tokens: 50,
            ..Usage::default()
        },
        Some(answered()),
    );
    f.outcome = Outcome::ClientGone;
    f.answered = Some(Answered {
        output: Some(Output::Body(Bytes::from_static(b"{}"))),
        ..answered()
    });
    assert!(f.needs_count(), "the output body is tokenized");
    f.answered = Some(answered());
    assert!(!f.needs_count(), "the output is the events relayed");
    let row = f.into_ended().row;
    assert_eq!((row.usage.input_tokens, row.usage.output_tokens), (50, 7));
    // An upstream that failed before answering generated nothing to charge.
    let f = finished(&limiter, Usage::default(), None);
    assert!(!f.needs_count());
    assert_eq!(f.into_ended().row.cost_usd, Decimal::ZERO);
    // A client that left while the provider read its prompt: the prompt is billed.
    let mut f = finished(
        &limiter,
        Usage::default(),
        Some(Answered {
            output: None,
            ..answered()
        }),
    );
    f.outcome = Outcome::ClientGone;
    assert!(f.needs_count(), "the input is tokenized");
    let row = f.into_ended().row;
    assert_eq!(row.usage_source, UsageSource::Estimate);
    assert!(row.usage.input_tokens > 0 && row.usage.output_tokens == 0);
    assert!(row.cost_usd > Decimal::ZERO);
}

#[test]
fn rows_are_committed_before_slots_free_and_flush_waits() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("izzi.db");
    let store = Database::from(Store::open(&path).unwrap());
    let limiter = Arc::new(Limiter::default());
    let keys = Arc::new(Keys::new(&[], None, &[]));
    let ledger = Ledger::start(store, keys, None).unwrap();
    let usage = Usage {
        input_tokens: 100_000,
        ..Usage::default()
    };
    ledger.finish(finished(&limiter, usage, None));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(ledger.flush());
    // The slot is free and the balance debited by the real cost (0.2), not the hold (0.5).
    let next = limiter
        .admit(&client(), Decimal::new(8, 1), jiff::Timestamp::now(), false)
        .unwrap();
    drop(next);
    assert!(
        !limiter
            .admit(
                &client(),
                Decimal::new(81, 2),
                jiff::Timestamp::now(),
                false
            )
            .is_admitted()
    );
    let reader = Store::open(&path).unwrap();
    let filter = crate::store::query::Filter {
        key: Some("k".into()),
        ..Default::default()
    };
    assert_eq!(
        crate::store::query::total(&reader, &filter)
            .unwrap()
            .requests,
        1
    );
    assert_eq!(
        reader.accounts().unwrap()["k"].spent_usd,
        Decimal::new(2, 1)
    );
    ledger.finish(finished(&limiter, usage, None));
    // Dropping the last handle writes what is queued before the thread ends.
    drop(ledger);
    let counts: HashMap<String, u32> = reader.requests_since(jiff::Timestamp::UNIX_EPOCH).unwrap();
    assert_eq!(counts["k"], 2);
}

#[test]
fn rows_ended_on_the_runtime_wait_for_one_hand_off_and_flush_takes_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("izzi.db");
    let keys = Arc::new(Keys::new(&[], None, &[]));
    let ledger = Ledger::start(Database::from(Store::open(&path).unwrap()), keys, None).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let reader = Store::open(&path).unwrap();
    let count = || reader.requests_since(jiff::Timestamp::UNIX_EPOCH).unwrap()["k"];
    let end = || ledger.finish(finished(&Arc::default(), Usage::default(), None));
    let queued = || ledger.queue.lock().unwrap().len();
    runtime.block_on(async {
        // Requests ending before the task yields: their rows wait together for one task.
        for _ in 0..50 {
            end();
        }
        assert_eq!(queued(), 50);
        // `flush` hands over what waits before it asks: all 50 are committed when it returns.
        ledger.flush().await;
        assert_eq!(count(), 50);
        // Without a flush, the hand-off task takes them once the tasks before it ran.
        for _ in 0..5 {
            end();
        }
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert_eq!(queued(), 0);
        ledger.flush().await;
        assert_eq!(count(), 55);
    });
}

#[test]
fn a_locked_database_parks_rows_settles_requests_and_writes_them_when_it_clears() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("izzi.db");
    let limiter = Arc::new(Limiter::default());
    let keys = Arc::new(Keys::new(&[], None, &[]));
    let ledger = Ledger::start(Database::from(Store::open(&path).unwrap()), keys, None).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    // Another process holds the write lock.
    let locker = rusqlite::Connection::open(&path).unwrap();
    locker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    for _ in 0..3 {
        ledger.finish(finished(&limiter, Usage::default(), None));
        runtime.block_on(ledger.flush());
        // The key's one slot is free again although nothing was committed.
        drop(
            limiter
                .admit(&client(), Decimal::ZERO, jiff::Timestamp::now(), false)
                .unwrap(),
        );
    }
    let health = ledger.health();
    assert!(health.degraded());
    assert_eq!(health.backlog_rows, 3);
    let error = health.error.unwrap_or_default();
    assert!(error.contains("database is locked"), "{error}");
    let count = |conn: &rusqlite::Connection| -> u32 {
        conn.query_row("SELECT COUNT(*) FROM ledger", [], |r| r.get(0))
            .unwrap()
    };
    assert_eq!(count(&locker), 0);
    locker.execute_batch("COMMIT").unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while ledger.health().degraded() {
        assert!(Instant::now() < deadline, "{:?}", ledger.health());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(count(&locker), 3);
    assert_eq!(ledger.health().dropped_rows, 0);
}

#[test]
fn the_backlog_is_bounded_and_keeps_the_newest_rows() {
    let dir = tempfile::tempdir().unwrap();
    let (_tx, rx) = mpsc::channel();
    let mut writer = Writer {
        store: Database::from(Store::open(&dir.path().join("izzi.db")).unwrap()),
        keys: Arc::new(Keys::new(&[], None, &[])),
        metrics: None,
        rx,
        health: Arc::new(Health::default()),
        backlog: VecDeque::new(),
        backlog_cap: 2 * MAX_BATCH + 5,
        failures: 0,
        next_retry: Instant::now(),
        recorder: crate::gateway::metrics::Recorder::default(),
        upstreams: Arc::default(),
    };
    let limiter = Arc::new(Limiter::default());
    let row = finished(&limiter, Usage::default(), None).into_ended().row;
    let cap = writer.backlog_cap;
    let rows = (0..cap + 2).map(|i| Row {
        latency_ms: i as u64,
        ..row.clone()
    });
    writer.park(rows);
    assert_eq!(writer.backlog.len(), cap);
    assert_eq!(writer.backlog.front().map(|r| r.latency_ms), Some(2));
    let health = writer.health.report();
    assert_eq!((health.backlog_rows, health.dropped_rows), (cap, 2));
    assert!(health.degraded());
    // A writable database takes it all, in batches, and the degraded state ends.
    writer.retry_backlog();
    assert!(writer.backlog.is_empty());
    assert!(!writer.health.report().degraded());
    let counts = writer
        .store
        .requests_since(jiff::Timestamp::UNIX_EPOCH)
        .unwrap();
    assert_eq!(counts["k"] as usize, cap);
}
