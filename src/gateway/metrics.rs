//! `GET /metrics`: Prometheus text for requests by model, status and outcome, latency and
//! time-to-first-byte histograms, tokens, cost, limit refusals, and the ledger's backlog.
//!
//! Served without a key, like `/health`, so a scraper needs no client key: it carries counts per
//! model and status only, never a key, a key name or a prompt. Recording is done through the
//! `metrics` macros, which are no-ops until [`install`] has run, so unit tests record nothing.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use metrics::{Counter, Gauge, Histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use super::{AppState, NamedMap};
use crate::store::{Outcome, Pricing, Row};
use crate::wire::wire_enum;

const SECONDS_BUCKETS: &[f64] = &[
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

/// Installs the process-wide recorder. `izzi serve` calls it once.
pub(crate) fn install() -> anyhow::Result<PrometheusHandle> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), SECONDS_BUCKETS)?
        .install_recorder()?;
    metrics::describe_counter!(
        "izzi_requests_total",
        "Admitted inference requests, by model, status and how they ended."
    );
    metrics::describe_histogram!(
        "izzi_request_duration_seconds",
        "Time from a request's arrival to its end, by model."
    );
    metrics::describe_histogram!(
        "izzi_time_to_first_byte_seconds",
        "Time from a streamed request's arrival to its first byte to the client, by model."
    );
    metrics::describe_counter!(
        "izzi_tokens_total",
        "Tokens of admitted requests, by model and kind (input, output, cache_read, cache_write)."
    );
    metrics::describe_counter!(
        "izzi_cost_nanodollars_total",
        "Cost of admitted requests in billionths of a US dollar, by model."
    );
    metrics::describe_counter!(
        "izzi_unpriced_requests_total",
        "Admitted requests of a model without a price (recorded at cost 0), by model."
    );
    metrics::describe_counter!(
        "izzi_refusals_total",
        "Requests refused by the IP block, authentication or a limit, by reason."
    );
    metrics::describe_gauge!(
        "izzi_ledger_pending_rows",
        "Ledger rows waiting to be committed to izzi.db."
    );
    metrics::describe_counter!(
        "izzi_ledger_write_failures_total",
        "Failed attempts to commit ledger rows (they are retried)."
    );
    metrics::describe_gauge!(
        "izzi_ledger_spilled_rows",
        "Ledger rows kept in the local spill file until PostgreSQL can take them."
    );
    metrics::describe_counter!(
        "izzi_state_unavailable_total",
        "Calls to the shared state (Redis) that failed or timed out."
    );
    metrics::describe_gauge!(
        "izzi_circuit_open",
        "1 while a provider's circuit breaker is open (the provider is skipped), else 0."
    );
    metrics::describe_counter!(
        "izzi_circuit_opened_total",
        "Times a provider's circuit breaker opened."
    );
    Ok(handle)
}

/// A provider's circuit opened (`open`) or closed.
pub(crate) fn circuit(provider: &str, open: bool) {
    let label = provider.to_owned();
    metrics::gauge!("izzi_circuit_open", "provider" => label.clone())
        .set(f64::from(u8::from(open)));
    if open {
        metrics::counter!("izzi_circuit_opened_total", "provider" => label).increment(1);
    }
}

/// `GET /metrics`.
pub(crate) async fn render(State(state): State<Arc<AppState>>) -> Response {
    let mut response = state.metrics.render().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

wire_enum! {
    /// Why a request was refused: the `reason` label of `izzi_refusals_total`.
    Reason {
        IpBlocked = "ip_blocked",
        Authentication = "authentication",
        /// A key with money limits asked for a model without a price.
        UnpricedModel = "unpriced_model",
        InsufficientBalance = "insufficient_balance",
        BudgetExceeded = "budget_exceeded",
        QuotaExceeded = "quota_exceeded",
        Rpm = "rpm",
        Concurrency = "concurrency",
        /// Redis or PostgreSQL could not be reached (fail closed).
        StateUnavailable = "state_unavailable",
    }
}

/// Counts a refusal.
pub(crate) fn refused(reason: Reason) {
    metrics::counter!("izzi_refusals_total", "reason" => reason.as_str()).increment(1);
}

/// Records ended requests, once their ledger rows are committed. Owned by the ledger thread; it
/// keeps each model's handles, so a row costs no registry lookup or label allocation. Models
/// label the series only when the catalog or config knows them: any other name a client
/// invents (served by a provider's glob) is `other`, so clients cannot grow the series.
#[derive(Default)]
pub(crate) struct Recorder {
    models: NamedMap<ModelHandles>,
}

/// One model's handles.
struct ModelHandles {
    /// `izzi_requests_total` by status and outcome.
    requests: HashMap<(u16, Outcome), Counter>,
    duration: Histogram,
    /// Registered at the model's first stream, so a model never streamed shows no histogram.
    ttft: Option<Histogram>,
    /// `izzi_tokens_total` by kind, in [`TOKEN_KINDS`]' order.
    tokens: [Counter; 4],
    cost: Counter,
    /// `izzi_unpriced_requests_total`, registered at the model's first unpriced request.
    unpriced: Option<Counter>,
}

/// The model label of the names only a provider's glob knows.
const OTHER: &str = "other";

const TOKEN_KINDS: [&str; 4] = ["input", "output", "cache_read", "cache_write"];

impl ModelHandles {
    fn new(model: &str) -> Self {
        let label = || model.to_owned();
        Self {
            requests: HashMap::new(),
            duration: metrics::histogram!("izzi_request_duration_seconds", "model" => label()),
            ttft: None,
            tokens: TOKEN_KINDS.map(
                |kind| metrics::counter!("izzi_tokens_total", "model" => label(), "kind" => kind),
            ),
            cost: metrics::counter!("izzi_cost_nanodollars_total", "model" => label()),
            unpriced: None,
        }
    }
}

impl Recorder {
    /// Records one ended request; `catalogued`: its model is in the catalog or config.
    pub(crate) fn finished(&mut self, row: &Row, catalogued: bool) {
        let label = if catalogued {
            row.model.as_str()
        } else {
            OTHER
        };
        let model = match self.models.get_mut(label) {
            Some(handles) => handles,
            None => self
                .models
                .entry(label.to_owned())
                .or_insert_with(|| ModelHandles::new(label)),
        };
        model
            .requests
            .entry((row.status, row.outcome))
            .or_insert_with(|| {
                metrics::counter!(
                    "izzi_requests_total",
                    "model" => label.to_owned(),
                    "status" => row.status.to_string(),
                    "outcome" => row.outcome.as_str(),
                )
            })
            .increment(1);
        #[expect(
            clippy::cast_precision_loss,
            reason = "milliseconds of a request fit an f64 exactly"
        )]
        let seconds = |ms: u64| ms as f64 / 1000.0;
        model.duration.record(seconds(row.latency_ms));
        if let Some(ttft) = row.ttft_ms {
            model
                .ttft
                .get_or_insert_with(|| {
                    metrics::histogram!("izzi_time_to_first_byte_seconds", "model" => label.to_owned())
                })
                .record(seconds(ttft));
        }
        let usage = &row.usage;
        let tokens = [
            usage.input_tokens,
            usage.output_tokens,
            usage.cache_read_tokens,
            usage.cache_write_tokens,
        ];
        for (counter, tokens) in model.tokens.iter().zip(tokens) {
            counter.increment(tokens);
        }
        let nanodollars = (row.cost_usd * rust_decimal::Decimal::from(1_000_000_000))
            .round()
            .try_into()
            .unwrap_or(0_u64);
        model.cost.increment(nanodollars);
        if row.pricing == Pricing::Unpriced {
            model
                .unpriced
                .get_or_insert_with(|| {
                    metrics::counter!("izzi_unpriced_requests_total", "model" => label.to_owned())
                })
                .increment(1);
        }
    }
}

/// Rows handed to the ledger and not yet committed: up by `added`, down by `committed`.
pub(crate) fn ledger_pending(added: usize, committed: usize) {
    // Resolved at the first row, after `install`: the request path then skips the registry.
    static PENDING: LazyLock<Gauge> = LazyLock::new(|| metrics::gauge!("izzi_ledger_pending_rows"));
    #[expect(clippy::cast_precision_loss, reason = "row counts are far below 2^52")]
    let delta = added as f64 - committed as f64;
    PENDING.increment(delta);
}

/// Counts a failed ledger commit.
pub(crate) fn ledger_write_failed() {
    metrics::counter!("izzi_ledger_write_failures_total").increment(1);
}

/// Rows waiting in the spill file for PostgreSQL.
pub(crate) fn ledger_spilled(rows: usize) {
    #[expect(clippy::cast_precision_loss, reason = "row counts are far below 2^52")]
    metrics::gauge!("izzi_ledger_spilled_rows").set(rows as f64);
}

/// Counts a failed call to the shared state (`redis`).
pub(crate) fn state_unavailable(store: &'static str) {
    metrics::counter!("izzi_state_unavailable_total", "store" => store).increment(1);
}
