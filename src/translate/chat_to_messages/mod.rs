//! OpenAI Chat shapes to Anthropic Messages shapes: a Chat request (or, composed, a Responses
//! request) for an Anthropic-kind provider (`request`), and a Chat response (`response`) or
//! stream (`stream`) for a Messages client. Pure; knows nothing of the reverse direction.
//!
//! This module owns only what more than one of the three needs.

mod request;
mod response;
mod stream;

use serde_json::Value;

use crate::protocol::anthropic::{Block, Known};

pub(crate) use request::request;
pub(crate) use response::{response, usage};
pub(crate) use stream::Stream;

/// A plain text block.
fn text_block(text: String) -> Block {
    Block::Known(Known::Text {
        text,
        cache_control: None,
    })
}

/// Tool input from Chat's argument string: `""` is `{}`; text that is not a JSON object is
/// kept under `arguments` rather than lost.
fn input(arguments: &str) -> Value {
    if arguments.trim().is_empty() {
        return serde_json::json!({});
    }
    match serde_json::from_str::<Value>(arguments) {
        Ok(value @ Value::Object(_)) => value,
        _ => serde_json::json!({ "arguments": arguments }),
    }
}
