//! Anthropic Messages shapes to OpenAI Chat shapes: a Messages request for an OpenAI-kind
//! provider (`request`), and an Anthropic response (`response`) or stream (`stream`) for a Chat
//! client (or, composed, for a Responses client). Pure; knows nothing of the reverse direction.
//!
//! This module owns only what more than one of the three needs.

mod request;
mod response;
mod stream;

use serde_json::Value;

pub(crate) use request::request;
pub(crate) use response::response;
pub(crate) use stream::{Stream, merge_usage};

/// Tool input as Chat's JSON string (`{}` when absent).
fn arguments(input: &Value) -> String {
    match input {
        Value::Null => "{}".to_owned(),
        other => other.to_string(),
    }
}
