//! An admitted request's settlement guard: what the request did, kept as it goes, and handed to
//! the ledger exactly once, when the guard is dropped (completed, failed, cut, or abandoned).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use bytes::Bytes;

use super::AppState;
use super::ledger::{Answered, Finished, Ledger, Output};
use super::limits::Admission;
use super::routing::Route;
use crate::attribution::Attribution;
use crate::catalog::Model;
use crate::protocol::Usage;
use crate::store::Outcome;

/// What a client gets recorded as when it left before any answer was sent (nginx's "client
/// closed request").
const CLIENT_GONE: StatusCode = match StatusCode::from_u16(499) {
    Ok(status) => status,
    Err(_) => StatusCode::BAD_REQUEST,
};

/// What the client asked for, as the ledger records it.
pub(super) struct Asked {
    pub(super) attribution: Attribution,
    /// The model as the client named it (an alias included).
    pub(super) model: String,
    /// The `[[routes]]` rule that picked the model, if one did.
    pub(super) route: Option<Arc<str>>,
    pub(super) stream: bool,
}

/// An admitted request's record, settled exactly once when it is dropped: after the response
/// body is finished, failed, or abandoned by the client (the handler's future dropped while it
/// waited on the upstream, or the stream dropped mid-way). Dropping it hands the ledger its row,
/// which frees the concurrency slot once committed.
pub(super) struct Life {
    pub(super) started: Instant,
    pub(super) ledger: Ledger,
    /// Taken by `drop`.
    pub(super) admission: Option<Admission>,
    /// Who sent it, from its headers.
    pub(super) attribution: Attribution,
    /// The model as the client named it.
    pub(super) requested_model: String,
    pub(super) model: Arc<Model>,
    pub(super) provider: String,
    /// The `[[routes]]` rule that picked the model, if one did.
    pub(super) route: Option<Arc<str>>,
    pub(super) stream: bool,
    /// The status the client got; 499 until an answer goes out.
    pub(super) status: StatusCode,
    pub(super) outcome: Outcome,
    /// What the upstream reported.
    pub(super) usage: Usage,
    pub(super) ttft: Option<Duration>,
    /// The client's body, to count its tokens if the upstream reports none (a stream's is
    /// dropped once the upstream reports usage).
    pub(super) request: Bytes,
    /// What the upstream answered, once it did.
    pub(super) output: Option<Output>,
}

impl Life {
    pub(super) fn new(
        state: &AppState,
        admission: Admission,
        asked: Asked,
        route: &Route,
        started: Instant,
        request: Bytes,
    ) -> Self {
        Self {
            started,
            ledger: state.ledger.clone(),
            admission: Some(admission),
            attribution: asked.attribution,
            requested_model: asked.model,
            model: Arc::clone(&route.model),
            provider: route.provider.name.clone(),
            route: asked.route,
            stream: asked.stream,
            status: CLIENT_GONE,
            outcome: Outcome::ClientGone,
            usage: Usage::default(),
            ttft: None,
            request,
            output: None,
        }
    }

    /// The request failed with `status` (the upstream's error, mapped, or an unreadable answer).
    pub(super) fn failed(&mut self, status: StatusCode, outcome: Outcome) {
        self.status = status;
        self.outcome = outcome;
    }

    /// What a stream's upstream has reported so far. Once it reported anything, the request
    /// body, kept only to count its tokens had it reported nothing, is let go: a stream can
    /// last minutes, and a coding agent's request is often hundreds of KB.
    pub(super) fn reported(&mut self, usage: Usage) {
        self.usage = usage;
        if usage != Usage::default() && !self.request.is_empty() {
            self.request = Bytes::new();
        }
    }

    /// A byte is going to the client; the first one sets the time to first byte.
    pub(super) fn first_byte(&mut self) {
        if self.ttft.is_none() {
            self.ttft = Some(self.started.elapsed());
        }
    }
}

impl Drop for Life {
    fn drop(&mut self) {
        let latency = self.started.elapsed();
        // Debug, not info: the ledger already records every request, and a log line per
        // request is a blocking write on the runtime. The field names are stable (README,
        // "Logs"): machines read them with `--log-format json`.
        tracing::debug!(
            request_id = self.admission.as_ref().map(Admission::id),
            key_name = self.admission.as_ref().map(Admission::key),
            model = %self.model.id,
            provider = %self.provider,
            route = self.route.as_deref(),
            stream = self.stream,
            status = self.status.as_u16(),
            outcome = self.outcome.as_str(),
            input_tokens = self.usage.total_input(),
            output_tokens = self.usage.output_tokens,
            duration_ms = u64::try_from(latency.as_millis()).unwrap_or(u64::MAX),
            "request finished"
        );
        let Some(admission) = self.admission.take() else {
            return;
        };
        self.ledger.finish(Finished {
            admission: Box::new(admission),
            attribution: std::mem::take(&mut self.attribution),
            requested_model: std::mem::take(&mut self.requested_model),
            model: Arc::clone(&self.model),
            provider: std::mem::take(&mut self.provider),
            route: self.route.take(),
            status: self.status.as_u16(),
            outcome: self.outcome,
            stream: self.stream,
            usage: self.usage,
            latency,
            ttft: self.ttft,
            // The provider bills what it read: an answer's request, and the prompt of a client
            // that left while the provider worked on it.
            answered: match (self.output.take(), self.outcome) {
                (None, Outcome::ClientGone) => Some(None),
                (None, _) => None,
                (output, _) => Some(output),
            }
            .map(|output| Answered {
                request: std::mem::take(&mut self.request),
                output,
            }),
        });
    }
}
