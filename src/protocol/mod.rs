//! Wire formats: which API a client speaks, usage as every format reports it, SSE framing and
//! the one error shape. No routing or business rules here.

pub(crate) mod anthropic;
pub(crate) mod json;
pub(crate) mod openai;
pub(crate) mod responses;
pub(crate) mod sse;
pub(crate) mod text;

use bytes::BytesMut;
use serde::Serialize;

/// The API a client speaks, fixed by the path it called.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Format {
    /// OpenAI Chat Completions (`/chat/completions`).
    Chat,
    /// Anthropic Messages (`/messages`).
    Messages,
    /// OpenAI Responses (`/responses`).
    Responses,
}

/// The API an upstream provider speaks (`kind` in config).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize, Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Kind {
    /// OpenAI Chat Completions at `{base_url}/chat/completions`.
    Openai,
    /// Anthropic Messages at `{base_url}/v1/messages`.
    Anthropic,
}

impl Format {
    /// The provider kind that speaks this format natively, if any: the body can be forwarded
    /// with only `model` rewritten.
    pub(crate) fn native_kind(self) -> Option<Kind> {
        match self {
            Format::Chat => Some(Kind::Openai),
            Format::Messages => Some(Kind::Anthropic),
            Format::Responses => None,
        }
    }
}

/// Tokens one request used, in Anthropic's convention: `input_tokens` excludes cached input.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub(crate) struct Usage {
    /// Input tokens read fresh (not from the cache).
    pub(crate) input_tokens: u64,
    pub(crate) output_tokens: u64,
    /// Input tokens read from the prompt cache.
    pub(crate) cache_read_tokens: u64,
    /// Input tokens written to the prompt cache.
    pub(crate) cache_write_tokens: u64,
    /// Of `cache_write_tokens`, those written to a one-hour cache (Anthropic's
    /// `cache_creation.ephemeral_1h_input_tokens`), which cost more.
    #[serde(skip_serializing_if = "is_zero")]
    pub(crate) cache_write_1h_tokens: u64,
}

#[expect(
    clippy::trivially_copy_pass_by_ref,
    reason = "serde's `skip_serializing_if` passes a reference"
)]
fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Usage {
    /// Every input token, cached or not (OpenAI's `prompt_tokens`).
    pub(crate) fn total_input(&self) -> u64 {
        self.input_tokens + self.cache_read_tokens + self.cache_write_tokens
    }
}

/// The error body every izzi error uses; both official SDKs parse it.
#[derive(Debug, Serialize)]
pub(crate) struct ErrorBody<'a> {
    #[serde(rename = "type")]
    pub(crate) kind: &'static str,
    pub(crate) error: ErrorDetail<'a>,
}

/// `error` inside [`ErrorBody`].
#[derive(Debug, Serialize)]
pub(crate) struct ErrorDetail<'a> {
    #[serde(rename = "type")]
    pub(crate) kind: &'a str,
    pub(crate) message: &'a str,
}

/// `{"type":"error","error":{"type":…,"message":…}}` as bytes.
pub(crate) fn error_json(kind: &str, message: &str) -> Vec<u8> {
    let body = ErrorBody {
        kind: "error",
        error: ErrorDetail { kind, message },
    };
    serde_json::to_vec(&body).unwrap_or_else(|_| b"{\"type\":\"error\"}".to_vec())
}

/// Appends an error event that ends a stream, in the client's own stream format: Anthropic's
/// `event: error`, Chat's unnamed `data: {"error":…}` (the same body serves both SDKs), or a
/// Responses `error` event.
pub(crate) fn write_stream_error(out: &mut BytesMut, format: Format, kind: &str, message: &str) {
    match format {
        Format::Messages => sse::write_event(out, Some("error"), &error_json(kind, message)),
        Format::Chat => sse::write_event(out, None, &error_json(kind, message)),
        Format::Responses => {
            #[derive(Serialize)]
            struct ResponsesError<'a> {
                #[serde(rename = "type")]
                kind: &'static str,
                code: &'a str,
                message: &'a str,
                param: Option<()>,
            }
            let body = ResponsesError {
                kind: "error",
                code: kind,
                message,
                param: None,
            };
            let data = serde_json::to_vec(&body).unwrap_or_default();
            sse::write_event(out, Some("error"), &data);
        }
    }
}
