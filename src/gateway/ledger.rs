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

use bytes::Bytes;
use metrics_exporter_prometheus::PrometheusHandle;

use super::identity::Keys;
use crate::catalog::Model;
use crate::protocol::Usage;
use crate::store::{Database, Outcome, Row, Seed, UsageSource};

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

/// An admitted request that has ended, as the gateway saw it.
#[derive(Debug)]
pub(crate) struct Finished {
    pub(crate) admission: Box<dyn Settle>,
    pub(crate) model: Arc<Model>,
    pub(crate) provider: String,
    /// The status the client got (499 when it left before any answer).
    pub(crate) status: u16,
    pub(crate) outcome: Outcome,
    pub(crate) stream: bool,
    /// Usage the upstream reported (zeros when it reported none).
    pub(crate) usage: Usage,
    pub(crate) latency: Duration,
    pub(crate) ttft: Option<Duration>,
    /// Set when the provider may bill the request (it answered, or the client left while it
    /// worked) and izzi may have to count what it did not report.
    pub(crate) answered: Option<Answered>,
}

/// What izzi saw of a request the provider may bill, to count the tokens it did not report.
#[derive(Debug)]
pub(crate) struct Answered {
    /// The client's request body.
    pub(crate) request: Bytes,
    /// `None`: the client left before any answer; the provider still read the prompt.
    pub(crate) output: Option<Output>,
}

/// The output an upstream produced, as seen by the gateway.
#[derive(Debug)]
pub(crate) enum Output {
    /// Stream events relayed; upstreams send about one token per content event.
    Events(u64),
    /// A whole response body.
    Body(Bytes),
}

/// An ended request with its row, as the ledger thread receives it.
struct Ended {
    admission: Box<dyn Settle>,
    row: Row,
    /// The model is in the catalog or config (else metrics label it `other`).
    catalogued: bool,
}

impl Finished {
    /// What the upstream left unreported and izzi must estimate: the input (it reported
    /// nothing) and the output (none reported, or a stream that did not complete).
    fn unreported(&self) -> (bool, bool) {
        let Some(answered) = &self.answered else {
            return (false, false);
        };
        let nothing = self.usage == Usage::default();
        let output = answered.output.is_some()
            && self.usage.output_tokens == 0
            && (nothing || self.outcome != Outcome::Completed);
        (nothing, output)
    }

    /// Whether [`Finished::row`] has to tokenize (an output of relayed events is counted as
    /// they are).
    fn needs_count(&self) -> bool {
        let (input, output) = self.unreported();
        input
            || output
                && self
                    .answered
                    .as_ref()
                    .is_some_and(|a| matches!(a.output, Some(Output::Body(_))))
    }

    /// The ledger row: the reported usage, or a local count where the upstream reported none
    /// (nothing at all, or a stream that ended before its final usage), priced at the model's
    /// prices.
    fn row(&self) -> Row {
        let mut usage = self.usage;
        let mut usage_source = UsageSource::Upstream;
        let (input, output) = self.unreported();
        if let Some(answered) = &self.answered {
            if input {
                usage.input_tokens = count_json(&self.model, &answered.request);
                usage_source = UsageSource::Estimate;
            }
            if output {
                usage.output_tokens = match &answered.output {
                    Some(Output::Events(events)) => *events,
                    Some(Output::Body(body)) => count_json(&self.model, body),
                    None => 0,
                };
                usage_source = UsageSource::Estimate;
            }
        }
        let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        Row {
            request_id: self.admission.id().to_owned(),
            started_at: self.admission.started(),
            key_name: self.admission.key().to_owned(),
            model: self.model.id.clone(),
            provider: self.provider.clone(),
            status: self.status,
            outcome: self.outcome,
            stream: self.stream,
            usage,
            usage_source,
            pricing: self.model.pricing,
            cost_usd: self.model.cost(&usage),
            latency_ms: millis(self.latency),
            ttft_ms: self.ttft.map(millis),
        }
    }
}

fn count_json(model: &Model, body: &[u8]) -> u64 {
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(value) => crate::tokens::count_request(model, &value).tokens,
        Err(_) => (body.len() as u64).div_ceil(4),
    }
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
    #[expect(
        dead_code,
        reason = "held for its `Drop`: the last handle joins the thread"
    )]
    thread: Arc<Thread>,
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
        let writer = Writer {
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
            thread: Arc::new(Thread {
                handle: Mutex::new(Some(handle)),
            }),
        })
    }

    /// Queues an ended request's row. Never blocks. On the runtime the row is made and handed
    /// over by a task of its own, which runs once the current task yields, so the answer that
    /// ended the request reaches its client before the ledger thread is woken; a row that needs
    /// its tokens counted is made on a blocking thread (the first count loads the tokenizer),
    /// so the ledger thread only ever writes.
    pub(crate) fn finish(&self, mut finished: Finished) {
        finished.admission.ended();
        super::metrics::ledger_pending(1, 0);
        let counts = finished.needs_count();
        let handoff = Handoff(Some((self.tx.clone(), finished)));
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            if counts {
                drop(runtime.spawn_blocking(move || drop(handoff)));
            } else {
                drop(runtime.spawn(async move { drop(handoff) }));
            }
        }
    }

    /// Waits until every row queued before this call is committed, or, when the database cannot
    /// be written, parked in the backlog after one more attempt.
    pub(crate) async fn flush(&self) {
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
/// down before the task ran, or at once off the runtime.
struct Handoff(Option<(Sender<Message>, Finished)>);

impl Drop for Handoff {
    fn drop(&mut self) {
        let Some((tx, finished)) = self.0.take() else {
            return;
        };
        let ended = Ended {
            row: finished.row(),
            catalogued: finished.model.catalogued,
            admission: finished.admission,
        };
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
}

impl Writer {
    fn run(mut self) {
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
mod tests {
    use std::collections::HashMap;

    use rust_decimal::Decimal;

    use super::*;
    use crate::config::{Limits, Plan};
    use crate::gateway::identity::Client;
    use crate::gateway::limits::Limiter;
    use crate::store::{Backend as _, Store};

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
            model: model(),
            provider: "p".into(),
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
            request: Bytes::from_static(
                br#"{"messages":[{"role":"user","content":"hello there"}]}"#,
            ),
            output: Some(Output::Events(7)),
        };
        let f = finished(&limiter, usage, Some(answered()));
        let row = f.row();
        assert_eq!(
            (row.usage_source, row.cost_usd.to_string()),
            (UsageSource::Upstream, "0.003".into())
        );
        assert_eq!((row.latency_ms, row.ttft_ms), (1500, Some(200)));
        assert!(!f.needs_count());
        drop(f);
        let f = finished(&limiter, Usage::default(), Some(answered()));
        assert!(f.needs_count(), "the input is tokenized");
        let row = f.row();
        assert_eq!(row.usage_source, UsageSource::Estimate);
        assert!(row.usage.input_tokens > 0);
        assert_eq!(row.usage.output_tokens, 7);
        drop(f);
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
        assert!(!f.needs_count(), "the output is the events relayed");
        assert_eq!(
            (f.row().usage.input_tokens, f.row().usage.output_tokens),
            (50, 7)
        );
        f.answered = Some(Answered {
            output: Some(Output::Body(Bytes::from_static(b"{}"))),
            ..answered()
        });
        assert!(f.needs_count(), "the output body is tokenized");
        drop(f);
        // An upstream that failed before answering generated nothing to charge.
        let f = finished(&limiter, Usage::default(), None);
        assert!(!f.needs_count());
        assert_eq!(f.row().cost_usd, Decimal::ZERO);
        drop(f);
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
        let row = f.row();
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
        assert_eq!(reader.usage(Some("k"), None).unwrap()[0].counts.requests, 1);
        assert_eq!(
            reader.accounts().unwrap()["k"].spent_usd,
            Decimal::new(2, 1)
        );
        ledger.finish(finished(&limiter, usage, None));
        // Dropping the last handle writes what is queued before the thread ends.
        drop(ledger);
        let counts: HashMap<String, u32> =
            reader.requests_since(jiff::Timestamp::UNIX_EPOCH).unwrap();
        assert_eq!(counts["k"], 2);
    }

    #[test]
    fn a_locked_database_parks_rows_settles_requests_and_writes_them_when_it_clears() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("izzi.db");
        let limiter = Arc::new(Limiter::default());
        let keys = Arc::new(Keys::new(&[], None, &[]));
        let ledger =
            Ledger::start(Database::from(Store::open(&path).unwrap()), keys, None).unwrap();
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
        };
        let limiter = Arc::new(Limiter::default());
        let row = finished(&limiter, Usage::default(), None).row();
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
}
