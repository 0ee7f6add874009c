//! The task that owns this instance's leases in Redis.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use jiff::Timestamp;
use redis::aio::ConnectionManager;
use tokio::sync::mpsc;

use super::script::Names;
use super::{CALL_TIMEOUT, MONTH_TTL_S, Shared};

/// Work for the lease keeper, in the order it happened.
pub(super) enum Task {
    /// A lease was granted: renew it until it is released.
    Lease { id: String, key: String, hold: i64 },
    /// The request's row is committed (or was given up): end the lease, book the cost.
    Release(Release),
    /// Shutting down: send what is pending, then answer.
    Flush(tokio::sync::oneshot::Sender<()>),
}

pub(super) struct Release {
    pub(super) id: String,
    pub(super) key: String,
    pub(super) cost: i64,
    pub(super) month: String,
    /// The request had ended (its slot was counted as ending here).
    pub(super) ended: bool,
    /// This instance's waiting requests were told (once, at the first attempt).
    pub(super) told: bool,
}

/// The task that owns this instance's leases: renews them every third of the lease time and
/// releases them in the order the ledger settles them. One task for both, so a renewal can never
/// bring back a lease that was just released.
pub(super) struct Keeper {
    pub(super) shared: std::sync::Weak<Shared>,
    pub(super) conn: ConnectionManager,
    pub(super) release: redis::Script,
    pub(super) lease: Duration,
    /// Lease id → key name and hold (nanodollars).
    pub(super) live: HashMap<String, (String, i64)>,
    /// Releases Redis did not take yet (it was down); retried in order.
    pub(super) pending: VecDeque<Release>,
}

impl Keeper {
    pub(super) async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Task>) {
        let mut tick = tokio::time::interval(self.lease / 3);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                task = rx.recv() => match task {
                    Some(Task::Lease { id, key, hold }) => {
                        self.live.insert(id, (key, hold));
                    }
                    Some(Task::Release(release)) => {
                        self.live.remove(&release.id);
                        self.pending.push_back(release);
                        self.flush().await;
                    }
                    Some(Task::Flush(done)) => {
                        self.flush().await;
                        let _ = done.send(());
                    }
                    None => return,
                },
                _ = tick.tick() => {
                    self.flush().await;
                    self.renew().await;
                }
            }
        }
    }

    /// Sends the pending releases, oldest first, stopping at the first failure.
    async fn flush(&mut self) {
        while let Some(release) = self.pending.front_mut() {
            let names = Names::new(&release.key, Timestamp::now());
            let month = format!("izzi:{{{}}}:month:{}", release.key, release.month);
            let mut invocation = self.release.prepare_invoke();
            invocation
                .key(&names.leases)
                .key(&names.holds)
                .key(&names.spent)
                .key(&month)
                .arg(&release.id)
                .arg(release.cost)
                .arg(MONTH_TTL_S);
            let sent =
                tokio::time::timeout(CALL_TIMEOUT, invocation.invoke_async::<i64>(&mut self.conn))
                    .await;
            // Waiting requests are woken whether or not Redis took it: a lease Redis does not
            // hear of expires by itself.
            if !release.told {
                release.told = true;
                if let Some(shared) = self.shared.upgrade() {
                    shared.released(release);
                }
            }
            match sent {
                Ok(Ok(_)) => {
                    self.pending.pop_front();
                }
                Ok(Err(err)) => {
                    tracing::debug!(error = %err, "cannot release a lease in Redis yet; retrying");
                    return;
                }
                Err(_) => return,
            }
        }
    }

    /// Extends every live lease by the lease time (and re-creates those Redis lost).
    async fn renew(&mut self) {
        if self.live.is_empty() {
            return;
        }
        let now = Timestamp::now().as_millisecond();
        let lease_ms = i64::try_from(self.lease.as_millis()).unwrap_or(i64::MAX);
        let mut pipe = redis::pipe();
        for (id, (key, hold)) in &self.live {
            let names = Names::new(key, Timestamp::now());
            pipe.zadd(&names.leases, id, now + lease_ms)
                .ignore()
                .pexpire(&names.leases, lease_ms * 2)
                .ignore();
            if *hold > 0 {
                pipe.hset(&names.holds, id, *hold)
                    .ignore()
                    .pexpire(&names.holds, lease_ms * 2)
                    .ignore();
            }
        }
        let renewed =
            tokio::time::timeout(CALL_TIMEOUT, pipe.query_async::<()>(&mut self.conn)).await;
        if !matches!(renewed, Ok(Ok(()))) {
            tracing::debug!(
                leases = self.live.len(),
                "cannot renew leases in Redis; retrying at the next tick"
            );
        }
    }
}
