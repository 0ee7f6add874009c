//! A ledger row and what `izzi usage` sums from rows: the domain types both backends store.
//! How a request ended, where its usage came from and how it was priced are enums here; they
//! become strings only in SQL (`as_str` / `parse`) and in JSON (serde, the same names).

use std::collections::BTreeMap;

use jiff::Timestamp;
use rust_decimal::Decimal;

use crate::attribution::Attribution;
pub(crate) use crate::catalog::Pricing;
use crate::protocol::Usage;
use crate::wire::wire_enum;

wire_enum! {
    stored
    /// How a request ended.
    Outcome {
        /// The upstream answered in full.
        Completed = "completed",
        /// The client left before the answer was done (before its first byte, or mid-stream).
        ClientGone = "client_gone",
        /// The upstream's stream stopped before its final event: the connection was cut or the
        /// body ended early.
        UpstreamCut = "upstream_cut",
        /// The upstream could not be connected to.
        ConnectError = "connect_error",
        /// The TLS handshake with the upstream failed.
        TlsError = "tls_error",
        /// The upstream did not answer, or stayed silent mid-stream, past the timeout.
        Timeout = "timeout",
        /// The upstream answered a 4xx status (429 included).
        Upstream4xx = "upstream_4xx",
        /// The upstream answered a 5xx status (or 401/403-like refusals of its own key).
        Upstream5xx = "upstream_5xx",
        /// The upstream's answer could not be read, or was larger than the configured caps.
        UpstreamInvalid = "upstream_invalid",
        /// Written by izzi before the failure kinds above existed.
        UpstreamFailed = "upstream_failed",
    }
}

wire_enum! {
    stored
    /// Where a row's token counts came from.
    UsageSource {
        /// The provider reported them.
        Upstream = "upstream",
        /// izzi counted them (the provider reported none, or the request ended early).
        Estimate = "estimate",
    }
}

/// One ledger row: an admitted request, written when it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Row {
    /// Random and unique: the request's id (and its concurrency lease's).
    pub(crate) request_id: String,
    pub(crate) started_at: Timestamp,
    pub(crate) key_name: String,
    /// Who sent it, as its headers tell (tool, session, project).
    pub(crate) attribution: Attribution,
    /// The model as the client named it (an alias included).
    pub(crate) requested_model: String,
    /// The model served (after aliases and fallbacks).
    pub(crate) model: String,
    /// The routing rule that chose the provider, when one did.
    pub(crate) route: Option<String>,
    pub(crate) provider: String,
    /// The status the client got (499 when it left before any answer).
    pub(crate) status: u16,
    pub(crate) outcome: Outcome,
    pub(crate) stream: bool,
    pub(crate) usage: Usage,
    pub(crate) usage_source: UsageSource,
    pub(crate) pricing: Pricing,
    pub(crate) cost_usd: Decimal,
    pub(crate) latency_ms: u64,
    /// Time to the first byte of a stream.
    pub(crate) ttft_ms: Option<u64>,
}

/// Requests, tokens and cost, summed.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub(crate) struct Counts {
    pub(crate) requests: u64,
    pub(crate) input_tokens: u64,
    pub(crate) output_tokens: u64,
    pub(crate) cache_read_tokens: u64,
    pub(crate) cache_write_tokens: u64,
    #[serde(with = "rust_decimal::serde::str")]
    pub(crate) cost_usd: Decimal,
    /// Requests of a model without a price: their cost is not in `cost_usd`.
    pub(crate) unpriced_requests: u64,
    /// Requests by how they ended (only the outcomes that occurred).
    pub(crate) outcomes: BTreeMap<Outcome, u64>,
}

impl Counts {
    /// The counts of `requests` rows that ended with `outcome` and were priced by `pricing`.
    pub(crate) fn of(requests: u64, outcome: Outcome, pricing: Pricing) -> Self {
        Self {
            requests,
            unpriced_requests: if pricing == Pricing::Unpriced {
                requests
            } else {
                0
            },
            outcomes: BTreeMap::from([(outcome, requests)]),
            ..Self::default()
        }
    }

    /// Adds `other` to these.
    pub(crate) fn add(&mut self, other: &Counts) {
        self.requests += other.requests;
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
        self.cache_read_tokens += other.cache_read_tokens;
        self.cache_write_tokens += other.cache_write_tokens;
        self.cost_usd += other.cost_usd;
        self.unpriced_requests += other.unpriced_requests;
        for (outcome, n) in &other.outcomes {
            *self.outcomes.entry(*outcome).or_default() += n;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_round_trip_and_match_serde() {
        for outcome in Outcome::ALL {
            assert_eq!(Outcome::parse(outcome.as_str()).unwrap(), *outcome);
            assert_eq!(
                serde_json::to_value(outcome).unwrap(),
                serde_json::Value::from(outcome.as_str())
            );
        }
        for pricing in Pricing::ALL {
            assert_eq!(Pricing::parse(pricing.as_str()).unwrap(), *pricing);
        }
        for source in UsageSource::ALL {
            assert_eq!(UsageSource::parse(source.as_str()).unwrap(), *source);
        }
        assert!(Outcome::parse("exploded").is_err());
    }
}
