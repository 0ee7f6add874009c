//! Each provider's traffic since this process started, for `GET /izzi/api/upstreams`: requests,
//! failures, latency percentiles over the latest requests, the last failure. The ledger thread
//! adds each row; a reader takes a copy under a short lock.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Mutex, PoisonError};

use serde::Serialize;

use crate::store::{Outcome, Row, stamp};

/// Latencies kept per provider for the percentiles.
const WINDOW: usize = 1000;

#[derive(Debug, Default)]
pub(crate) struct UpstreamStats {
    by_provider: Mutex<BTreeMap<String, Stat>>,
}

#[derive(Debug, Default)]
struct Stat {
    requests: u64,
    errors: u64,
    latencies: VecDeque<u64>,
    last_error: Option<LastError>,
}

/// The latest failure of a provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct LastError {
    pub(crate) at: String,
    pub(crate) status: u16,
    pub(crate) outcome: Outcome,
}

/// One provider's line.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Upstream {
    pub(crate) provider: String,
    pub(crate) requests: u64,
    pub(crate) errors: u64,
    pub(crate) error_rate: f64,
    pub(crate) latency_p50_ms: Option<u64>,
    pub(crate) latency_p95_ms: Option<u64>,
    pub(crate) last_error: Option<LastError>,
}

/// Whether a request failed on the upstream's side (a client that left is not the upstream's
/// failure).
fn failed(outcome: Outcome) -> bool {
    !matches!(outcome, Outcome::Completed | Outcome::ClientGone)
}

impl UpstreamStats {
    /// Counts one ended request.
    pub(crate) fn finished(&self, row: &Row) {
        let mut stats = self
            .by_provider
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if !stats.contains_key(&row.provider) {
            stats.insert(row.provider.clone(), Stat::default());
        }
        let Some(stat) = stats.get_mut(&row.provider) else {
            return;
        };
        stat.requests += 1;
        if stat.latencies.len() == WINDOW {
            stat.latencies.pop_front();
        }
        stat.latencies.push_back(row.latency_ms);
        if failed(row.outcome) {
            stat.errors += 1;
            stat.last_error = Some(LastError {
                at: stamp(row.started_at),
                status: row.status,
                outcome: row.outcome,
            });
        }
    }

    /// Each of `configured` (those without traffic too), then any other provider that served a
    /// request (one a reload removed), by name.
    pub(crate) fn report<'p>(&self, configured: impl Iterator<Item = &'p str>) -> Vec<Upstream> {
        let stats = self
            .by_provider
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let idle = Stat::default();
        let mut names: Vec<&str> = configured.collect();
        names.extend(stats.keys().map(String::as_str));
        names.sort_unstable();
        names.dedup();
        names
            .into_iter()
            .map(|provider| {
                let stat = stats.get(provider).unwrap_or(&idle);
                let mut sorted: Vec<u64> = stat.latencies.iter().copied().collect();
                sorted.sort_unstable();
                let percentile = |p: usize| {
                    let last = sorted.len().checked_sub(1)?;
                    sorted.get((last * p).div_ceil(100)).copied()
                };
                #[expect(clippy::cast_precision_loss, reason = "counts far below 2^52")]
                let error_rate = stat.errors as f64 / stat.requests.max(1) as f64;
                Upstream {
                    provider: provider.to_owned(),
                    requests: stat.requests,
                    errors: stat.errors,
                    error_rate,
                    latency_p50_ms: percentile(50),
                    latency_p95_ms: percentile(95),
                    last_error: stat.last_error.clone(),
                }
            })
            .collect()
    }
}
