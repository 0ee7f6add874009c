//! The usage ledger: the one thread that owns the gateway's SQLite connection.
//!
//! Requests hand their [`Finished`] record to a channel when they end (never waiting on the
//! database); the thread writes whatever has queued up as one transaction (rows plus the
//! accounts' running spend), then settles each request's [`Admission`]: the real cost replaces
//! the hold and the concurrency slot is freed only now, after the row is committed, so every
//! request a slot was freed for is in `izzi.db` even if the process is killed next.
//!
//! A database that cannot be written (locked by another process, disk full) must not stop the
//! gateway: when a commit fails the ledger is degraded. Its rows then wait in a bounded backlog,
//! in order, and their requests are settled at once so slots and balances keep moving; the
//! backlog is retried with backoff and written when the database clears. Past [`MAX_BACKLOG`]
//! rows the oldest are logged in full and dropped. `/health` reports the state ([`Health`]).
//! Between batches the thread re-reads the stored client keys (revocation applies within a
//! second) and does the metrics upkeep.
//!
//! The database is `izzi.db` or, with `[state].postgres_url`, PostgreSQL; then rows that
//! PostgreSQL cannot take are committed to a local spill file instead (so slots still free) and
//! copied on at the first tick that reaches it again. The thread also answers the shared limits'
//! requests for the recorded counts of a key (to seed counters Redis lost).
//!
//! Knows nothing of HTTP; the gateway's shutdown awaits [`Ledger::flush`], and the last handle to
//! go joins the thread after it has written everything queued.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use metrics_exporter_prometheus::PrometheusHandle;

mod priority;
mod record;

use super::identity::Keys;
use super::upstream_stats::UpstreamStats;
use crate::store::{Database, Row, Seed};
use record::Ended;
pub(crate) use record::{Answered, Finished, Output};

/// How often the thread re-reads the stored keys.
const TICK: Duration = Duration::from_millis(500);
/// Ticks between two metrics upkeeps.
const UPKEEP_TICKS: u32 = 10;
/// How long the first row of a batch waits for others before the commit. A concurrency slot
/// frees this much later; a request that wants it waits for it (`limits::SLOT_COMMIT_WAIT`).
const LINGER: Duration = Duration::from_millis(2);
/// Most rows in one transaction.
const MAX_BATCH: usize = 1024;
/// Commit attempts on a failing database once the gateway is shutting down, before the rows
/// are given up (and logged in full).
const ATTEMPTS_WHEN_CLOSING: u32 = 5;
/// Most rows waiting for a database that cannot be written (a few hundred bytes each).
const MAX_BACKLOG: usize = 100_000;
/// How long one commit waits for another process's write lock before the rows go to the
/// backlog (the CLI's writes take milliseconds).
const BUSY_TIMEOUT: Duration = Duration::from_secs(1);
/// The wait between two attempts on a failing database: doubling from the first, capped.
const RETRY_FIRST: Duration = Duration::from_millis(250);
const RETRY_MAX: Duration = Duration::from_secs(5);

/// The ledger's state, for `/health`: degraded while rows cannot be written.
#[derive(Debug, Default)]
pub(crate) struct Health {
    /// Rows of ended requests waiting for the database.
    backlog: AtomicUsize,
    /// Rows dropped because the backlog was full.
    dropped: AtomicU64,
    /// Why the last commit failed; cleared when the backlog is written.
    error: Mutex<Option<String>>,
}

/// A snapshot of [`Health`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub(crate) struct HealthReport {
    pub(crate) backlog_rows: usize,
    pub(crate) dropped_rows: u64,
    /// The database's own words (`database is locked`, `database or disk is full`); no path.
    pub(crate) error: Option<String>,
}

impl HealthReport {
    /// Whether rows are waiting or were lost.
    pub(crate) fn degraded(&self) -> bool {
        self.error.is_some() || self.backlog_rows > 0
    }
}

impl Health {
    fn set_error(&self, error: Option<String>) {
        *self.error.lock().unwrap_or_else(PoisonError::into_inner) = error;
    }

    fn report(&self) -> HealthReport {
        HealthReport {
            backlog_rows: self.backlog.load(Ordering::Relaxed),
            dropped_rows: self.dropped.load(Ordering::Relaxed),
            error: self
                .error
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        }
    }
}

/// An admitted request's reservation (the limits' `Admission`), as the ledger sees it: named by
/// its request, and settled once the request's row is committed.
pub(crate) trait Settle: Send + std::fmt::Debug {
    /// The request's id: its row's.
    fn id(&self) -> &str;
    /// The key name it was admitted for.
    fn key(&self) -> &str;
    /// When it was admitted.
    fn started(&self) -> jiff::Timestamp;
    /// The request has ended and its row is queued: its slot frees at the commit.
    fn ended(&mut self);
    /// The row is committed (or parked): the hold becomes `cost` and the slot frees.
    fn settle(self: Box<Self>, cost: rust_decimal::Decimal);
}

/// Where the shared limits read a key's recorded counts after Redis lost them: the ledger.
pub(crate) trait SeedSource: Send + Sync {
    /// `key`'s counts as recorded, or `None` when they cannot be read in time.
    fn seed<'a>(
        &'a self,
        key: &'a str,
        now: jiff::Timestamp,
    ) -> std::pin::Pin<Box<dyn Future<Output = Option<Seed>> + Send + 'a>>;
}

enum Message {
    Finished(Box<Ended>),
    Flush(tokio::sync::oneshot::Sender<()>),
    Seed {
        key: String,
        now: jiff::Timestamp,
        reply: tokio::sync::oneshot::Sender<Seed>,
    },
}

/// How long the shared limits wait for the recorded counts of a key.
const SEED_WAIT: Duration = Duration::from_secs(3);

/// A handle to the ledger thread. Cheap to clone; the last one dropped waits for the thread to
/// write everything queued.
#[derive(Clone)]
pub(crate) struct Ledger {
    tx: Sender<Message>,
    health: Arc<Health>,
    /// Each provider's traffic since start (`/izzi/api/upstreams`).
    upstreams: Arc<UpstreamStats>,
    /// Rows of requests that ended on the runtime, waiting for the task that hands them over.
    queue: Arc<Queue>,
    #[expect(
        dead_code,
        reason = "held for its `Drop`: the last handle joins the thread"
    )]
    thread: Arc<Thread>,
}

/// Rows waiting for their hand-off, oldest first.
type Queue = Mutex<Vec<Handoff>>;

/// Hands over every row queued when it is dropped: by its task, after the tasks ready before
/// it have run, or by a runtime that shuts down before the task ran.
struct Drain(Arc<Queue>);

impl Drop for Drain {
    fn drop(&mut self) {
        drop(take_queued(&self.0));
    }
}

/// The rows queued so far, taken out of `queue` (each is sent when dropped).
fn take_queued(queue: &Queue) -> Vec<Handoff> {
    std::mem::take(&mut *queue.lock().unwrap_or_else(PoisonError::into_inner))
}

struct Thread {
    handle: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Thread {
    fn drop(&mut self) {
        // Every sender is gone by now (each `Ledger` drops its sender before this), so the
        // thread drains the channel, makes its last attempts at any backlog, and returns.
        let handle = self
            .handle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let Some(handle) = handle else {
            return;
        };
        // The last handle can go on the thread itself (a settled admission held the shared
        // limits, which hold a handle to ask for seeds); it then finishes its loop on its own.
        if handle.thread().id() == std::thread::current().id() {
            return;
        }
        if handle.join().is_err() {
            tracing::error!("the ledger thread panicked");
        }
    }
}

impl Ledger {
    /// Starts the thread that owns `store`.
    pub(crate) fn start(
        mut store: Database,
        keys: Arc<Keys>,
        metrics: Option<PrometheusHandle>,
    ) -> anyhow::Result<Self> {
        store.set_busy_timeout(BUSY_TIMEOUT)?;
        let (tx, rx) = mpsc::channel();
        let health = Arc::new(Health::default());
        let upstreams = Arc::new(UpstreamStats::default());
        let writer = Writer {
            upstreams: Arc::clone(&upstreams),
            store,
            keys,
            metrics,
            rx,
            health: Arc::clone(&health),
            backlog: VecDeque::new(),
            backlog_cap: MAX_BACKLOG,
            failures: 0,
            next_retry: Instant::now(),
            recorder: super::metrics::Recorder::default(),
        };
        let handle = std::thread::Builder::new()
            .name("izzi-ledger".to_owned())
            .spawn(move || writer.run())?;
        Ok(Self {
            tx,
            health,
            upstreams,
            queue: Arc::default(),
            thread: Arc::new(Thread {
                handle: Mutex::new(Some(handle)),
            }),
        })
    }

    /// Queues an ended request's row. Never blocks. On the runtime the rows are made and handed
    /// over by a task that first lets the tasks ready before it run, so the answers that ended
    /// them reach their clients before the ledger thread is woken, and the rows of requests
    /// ending about then go with them: one task per batch, not one per request. A row that needs
    /// its tokens counted is made on a blocking thread (the first count loads the tokenizer), so
    /// the ledger thread only ever writes.
    pub(crate) fn finish(&self, mut finished: Finished) {
        finished.admission.ended();
        super::metrics::ledger_pending(1, 0);
        let counts = finished.needs_count();
        let handoff = Handoff(Some((self.tx.clone(), finished)));
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if counts {
            drop(runtime.spawn_blocking(move || drop(handoff)));
            return;
        }
        let first = {
            let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
            queue.push(handoff);
            queue.len() == 1
        };
        if first {
            let drain = Drain(Arc::clone(&self.queue));
            drop(runtime.spawn(async move {
                tokio::task::yield_now().await;
                drop(drain);
            }));
        }
    }

    /// Waits until every row queued before this call is committed, or, when the database cannot
    /// be written, parked in the backlog after one more attempt.
    pub(crate) async fn flush(&self) {
        drop(take_queued(&self.queue));
        let (tx, rx) = tokio::sync::oneshot::channel();
        if self.tx.send(Message::Flush(tx)).is_ok() {
            let _ = rx.await;
        }
    }

    /// `key`'s recorded requests today and this minute, and its spend; `None` when the database
    /// cannot say in time.
    async fn seed_of(&self, key: &str, now: jiff::Timestamp) -> Option<Seed> {
        let (reply, rx) = tokio::sync::oneshot::channel();
        let message = Message::Seed {
            key: key.to_owned(),
            now,
            reply,
        };
        self.tx.send(message).ok()?;
        tokio::time::timeout(SEED_WAIT, rx).await.ok()?.ok()
    }

    /// The ledger's state for `/health`.
    pub(crate) fn health(&self) -> HealthReport {
        self.health.report()
    }

    /// Each provider's traffic since start.
    pub(crate) fn upstreams(&self) -> &UpstreamStats {
        &self.upstreams
    }
}

impl SeedSource for Ledger {
    fn seed<'a>(
        &'a self,
        key: &'a str,
        now: jiff::Timestamp,
    ) -> std::pin::Pin<Box<dyn Future<Output = Option<Seed>> + Send + 'a>> {
        Box::pin(self.seed_of(key, now))
    }
}

/// A row on its way to the ledger thread, sent when dropped: by its task, by a runtime that shuts
/// down before the task ran, by [`Ledger::flush`], or at once off the runtime.
struct Handoff(Option<(Sender<Message>, Finished)>);

impl Drop for Handoff {
    fn drop(&mut self) {
        let Some((tx, finished)) = self.0.take() else {
            return;
        };
        let ended = finished.into_ended();
        if let Err(mpsc::SendError(message)) = tx.send(Message::Finished(Box::new(ended))) {
            // Only possible if the thread died; the admission is dropped, freeing its slot.
            super::metrics::ledger_pending(0, 1);
            if let Message::Finished(ended) = message {
                tracing::error!(row = ?ended.row, "the ledger thread is gone; this row is lost");
            }
        }
    }
}

struct Writer {
    store: Database,
    keys: Arc<Keys>,
    metrics: Option<PrometheusHandle>,
    rx: Receiver<Message>,
    health: Arc<Health>,
    /// Rows of settled requests the database would not take yet, oldest first.
    backlog: VecDeque<Row>,
    /// Most rows the backlog holds ([`MAX_BACKLOG`]).
    backlog_cap: usize,
    /// Failed commits in a row.
    failures: u32,
    /// When to try the backlog again.
    next_retry: Instant,
    recorder: super::metrics::Recorder,
    upstreams: Arc<UpstreamStats>,
}

impl Writer {
    fn run(mut self) {
        priority::lower();
        let mut next_tick = Instant::now() + TICK;
        let mut ticks = 0_u32;
        loop {
            let wake = if self.backlog.is_empty() {
                next_tick
            } else {
                next_tick.min(self.next_retry)
            };
            match self
                .rx
                .recv_timeout(wake.saturating_duration_since(Instant::now()))
            {
                Ok(first) => {
                    // Let the rows of requests ending about now join this one: one commit and
                    // one wake-up for all of them, not one each.
                    if matches!(first, Message::Finished(_)) {
                        std::thread::sleep(LINGER);
                    }
                    let mut batch = vec![first];
                    while batch.len() < MAX_BATCH {
                        match self.rx.try_recv() {
                            Ok(message) => batch.push(message),
                            Err(_) => break,
                        }
                    }
                    self.write(batch);
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            if !self.backlog.is_empty() && Instant::now() >= self.next_retry {
                self.retry_backlog();
            }
            if Instant::now() >= next_tick {
                self.reload_keys();
                self.drain();
                ticks += 1;
                if ticks.is_multiple_of(UPKEEP_TICKS)
                    && let Some(metrics) = &self.metrics
                {
                    metrics.run_upkeep();
                }
                next_tick = Instant::now() + TICK;
            }
        }
        self.close();
        tracing::debug!("ledger closed");
    }

    /// The gateway is gone: a few last attempts at the backlog, then its rows are logged in
    /// full, the only place left for them.
    fn close(&mut self) {
        for _ in 0..ATTEMPTS_WHEN_CLOSING {
            if self.backlog.is_empty() {
                return;
            }
            std::thread::sleep(RETRY_FIRST);
            self.retry_backlog();
        }
        for row in self.backlog.drain(..) {
            tracing::error!(?row, "shutting down with an unwritable ledger; row lost");
        }
    }

    fn reload_keys(&self) {
        match self.store.keys() {
            Ok(stored) => self.keys.reload(&stored),
            Err(err) => tracing::debug!(
                error = format!("{err:#}"),
                db = self.store.describe(),
                "cannot re-read the client keys; keeping the ones loaded"
            ),
        }
    }

    /// Copies rows spilled while PostgreSQL was away, now that it may be back.
    fn drain(&self) {
        if self
            .store
            .available()
            .is_some_and(|up| up.load(std::sync::atomic::Ordering::Relaxed))
        {
            match self.store.drain() {
                Ok(waiting) => super::metrics::ledger_spilled(waiting),
                Err(err) => tracing::debug!(
                    error = format!("{err:#}"),
                    "cannot copy spilled rows to PostgreSQL yet"
                ),
            }
        }
    }

    fn write(&mut self, batch: Vec<Message>) {
        let mut ended = Vec::with_capacity(batch.len());
        let mut flushes = Vec::new();
        for message in batch {
            match message {
                Message::Finished(e) => ended.push(*e),
                Message::Flush(ack) => flushes.push(ack),
                Message::Seed { key, now, reply } => match self.store.seed(&key, now) {
                    Ok(seed) => {
                        let _ = reply.send(seed);
                    }
                    Err(err) => tracing::warn!(
                        error = format!("{err:#}"),
                        key,
                        "cannot read a key's recorded counts to seed the shared limits"
                    ),
                },
            }
        }
        let (settled, rows): (Vec<_>, Vec<Row>) = ended
            .into_iter()
            .map(|e| ((e.admission, e.catalogued), e.row))
            .unzip();
        if !rows.is_empty() {
            // Behind a backlog, new rows queue after it so the ledger keeps its order.
            if self.backlog.is_empty() && self.commit(&rows) {
                super::metrics::ledger_pending(0, rows.len());
            } else {
                self.park(rows.iter().cloned());
            }
        }
        // Committed, or parked because the database cannot be written: either way the requests
        // are settled, so a stuck database never holds slots or balances.
        for ((admission, catalogued), row) in settled.into_iter().zip(&rows) {
            admission.settle(row.cost_usd);
            self.recorder.finished(row, catalogued);
            self.upstreams.finished(row);
            super::telemetry::finished(row);
        }
        if !flushes.is_empty() && !self.backlog.is_empty() {
            self.retry_backlog();
        }
        for ack in flushes {
            let _ = ack.send(());
        }
    }

    /// One attempt at committing `rows`; a failure degrades the ledger.
    fn commit(&mut self, rows: &[Row]) -> bool {
        let Err(err) = self.store.record(rows) else {
            return true;
        };
        self.failures += 1;
        super::metrics::ledger_write_failed();
        let reason = err.root_cause().to_string();
        tracing::error!(
            error = format!("{err:#}"),
            db = self.store.describe(),
            rows = rows.len(),
            attempt = self.failures,
            "cannot write usage to the ledger; keeping the rows in memory and retrying"
        );
        self.health.set_error(Some(reason));
        let wait = RETRY_FIRST
            .saturating_mul(1 << (self.failures - 1).min(5))
            .min(RETRY_MAX);
        self.next_retry = Instant::now() + wait;
        false
    }

    /// Queues rows the database would not take, dropping the oldest past the cap.
    fn park(&mut self, rows: impl Iterator<Item = Row>) {
        self.backlog.extend(rows);
        while self.backlog.len() > self.backlog_cap {
            if let Some(row) = self.backlog.pop_front() {
                tracing::error!(?row, "the ledger backlog is full; row lost");
                super::metrics::ledger_pending(0, 1);
                self.health.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.health
            .backlog
            .store(self.backlog.len(), Ordering::Relaxed);
    }

    /// Writes the backlog in batches, oldest first, until it is empty or the database fails
    /// again; an empty backlog ends the degraded state.
    fn retry_backlog(&mut self) {
        let mut written = 0;
        while !self.backlog.is_empty() {
            let n = self.backlog.len().min(MAX_BATCH);
            let batch: Vec<Row> = self.backlog.range(..n).cloned().collect();
            if !self.commit(&batch) {
                break;
            }
            self.backlog.drain(..n);
            super::metrics::ledger_pending(0, n);
            written += n;
        }
        self.health
            .backlog
            .store(self.backlog.len(), Ordering::Relaxed);
        if self.backlog.is_empty() {
            self.failures = 0;
            self.health.set_error(None);
            if written > 0 {
                tracing::warn!(
                    rows = written,
                    "the ledger is writable again; backlog written"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests;
