//! Local token counting for `count_tokens` fallbacks and `izzi count-tokens`. Pure.

use crate::catalog::Model;

/// A local count of a request's input tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Count {
    pub(crate) tokens: u64,
    /// Counted with the model's real tokenizer, not estimated.
    pub(crate) exact: bool,
}

/// Counts the input tokens of a request body (any client format) for `model`.
pub(crate) fn count_request(_model: &Model, body: &serde_json::Value) -> Count {
    // About four characters per token of English text.
    let chars = body.to_string().chars().count() as u64;
    Count {
        tokens: chars.div_ceil(4).max(1),
        exact: false,
    }
}
