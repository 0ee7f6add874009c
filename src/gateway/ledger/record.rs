//! What a request hands the ledger when it ends, and the row made from it: reported usage, or
//! izzi's own count where the upstream reported none.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::Settle;
use crate::attribution::Attribution;
use crate::catalog::Model;
use crate::protocol::Usage;
use crate::store::{Outcome, Row, UsageSource};

/// An admitted request that has ended, as the gateway saw it.
#[derive(Debug)]
pub(crate) struct Finished {
    pub(crate) admission: Box<dyn Settle>,
    pub(crate) attribution: Attribution,
    /// The model as the client named it.
    pub(crate) requested_model: String,
    /// The model that served the request (after routing rules and fallbacks).
    pub(crate) model: Arc<Model>,
    pub(crate) provider: String,
    /// The `[[routes]]` rule that picked the model, if one did.
    pub(crate) route: Option<Arc<str>>,
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
pub(super) struct Ended {
    pub(super) admission: Box<dyn Settle>,
    pub(super) row: Row,
    /// The model is in the catalog or config (else metrics label it `other`).
    pub(super) catalogued: bool,
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

    /// Whether [`Finished::into_ended`] has to tokenize (an output of relayed events is counted as
    /// they are).
    pub(super) fn needs_count(&self) -> bool {
        let (input, output) = self.unreported();
        input
            || output
                && self
                    .answered
                    .as_ref()
                    .is_some_and(|a| matches!(a.output, Some(Output::Body(_))))
    }

    /// The ended request as the ledger thread takes it. Its row holds the reported usage, or a
    /// local count where the upstream reported none (nothing at all, or a stream that ended
    /// before its final usage), priced at the model's prices; the request's names move into it.
    pub(super) fn into_ended(self) -> Ended {
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
        let row = Row {
            request_id: self.admission.id().to_owned(),
            started_at: self.admission.started(),
            key_name: self.admission.key().to_owned(),
            attribution: self.attribution,
            requested_model: self.requested_model,
            model: self.model.id.clone(),
            route: self.route.as_deref().map(str::to_owned),
            provider: self.provider,
            status: self.status,
            outcome: self.outcome,
            stream: self.stream,
            usage,
            usage_source,
            pricing: self.model.pricing,
            cost_usd: self.model.cost(&usage),
            latency_ms: millis(self.latency),
            ttft_ms: self.ttft.map(millis),
        };
        Ended {
            admission: self.admission,
            row,
            catalogued: self.model.catalogued,
        }
    }
}

fn count_json(model: &Model, body: &[u8]) -> u64 {
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(value) => crate::tokens::count_request(model, &value).tokens,
        Err(_) => (body.len() as u64).div_ceil(4),
    }
}
