//! `[responses]`: how much of the Responses API's stored state (`store: true`) izzi keeps.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `[responses]`: stored responses (`store: true`, the Responses API's default) and the input
/// that led to each, kept in `izzi.db` (PostgreSQL with `[state].postgres_url`) so that
/// `previous_response_id`, `GET /v1/responses/{id}` and its `input_items` work on any provider.
/// The oldest are evicted first when either bound is passed.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Responses {
    /// Seconds a stored response is kept (30 days, as OpenAI keeps them).
    pub(crate) max_age_s: u64,
    /// Bytes of stored responses and their input kept in all, across keys.
    pub(crate) max_bytes: u64,
}

impl Default for Responses {
    fn default() -> Self {
        Self {
            max_age_s: 30 * 86_400,
            max_bytes: 256 * 1024 * 1024,
        }
    }
}
