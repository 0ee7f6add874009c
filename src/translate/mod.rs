//! Translation between the client's format and the provider's kind: requests, whole responses
//! and streams (state machines fed one SSE event at a time). Pure: no I/O, async or clock.
//!
//! The gateway calls only the four functions here. When the client's format is the provider's
//! native one the body is forwarded with only `model` rewritten (`Body::with_model`), and streams
//! are relayed byte for byte while an observer reads their usage.

use std::borrow::Cow;

use bytes::BytesMut;

use crate::protocol::json::Body;
use crate::protocol::{Format, Kind, Usage, sse};

/// What the translation needs to know about the routed model.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Target<'a> {
    /// The id to send upstream.
    pub(crate) upstream_model: &'a str,
    /// The id the client asked for (echoed in translated responses).
    pub(crate) client_model: &'a str,
    /// The model's largest output, the default `max_tokens` where Anthropic requires one.
    pub(crate) max_output: u32,
    /// Whether the model reasons (takes `reasoning_effort` / thinking).
    pub(crate) reasoning: bool,
}

/// A request that cannot be carried to the target: a 400 `invalid_request_error` naming the field.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct TranslateError(pub(crate) String);

/// The upstream body for a client request.
#[derive(Debug)]
pub(crate) struct Prepared<'a> {
    pub(crate) body: Cow<'a, [u8]>,
    /// The body was translated rather than forwarded.
    pub(crate) translated: bool,
}

/// Builds the upstream body: the client's own bytes with `model` rewritten when the formats
/// match, a translation otherwise.
pub(crate) fn request<'a>(
    format: Format,
    kind: Kind,
    body: &Body<'a>,
    target: &Target<'_>,
) -> Result<Prepared<'a>, TranslateError> {
    if format.native_kind() == Some(kind) {
        return Ok(Prepared {
            body: body.with_model(target.upstream_model),
            translated: false,
        });
    }
    Err(unsupported(format, kind))
}

/// Turns a whole (non-streamed) upstream response into the client's format, with its usage.
pub(crate) fn response<'a>(
    format: Format,
    kind: Kind,
    body: &'a [u8],
    _target: &Target<'_>,
) -> Result<(Cow<'a, [u8]>, Usage), TranslateError> {
    if format.native_kind() == Some(kind) {
        return Ok((Cow::Borrowed(body), Usage::default()));
    }
    Err(unsupported(format, kind))
}

/// A stream in flight: fed each upstream event, it appends the client's events to `out`.
pub(crate) trait Stream: Send {
    /// One upstream event. Pass-through streams only observe (the raw bytes are relayed).
    fn event(&mut self, event: &sse::Event, out: &mut BytesMut);
    /// The upstream ended: closes the client's stream, with an error event when `error` is
    /// given (`(type, message)`) or the upstream stopped before its final event.
    fn end(&mut self, out: &mut BytesMut, error: Option<(&str, &str)>);
    /// Usage seen so far.
    fn usage(&self) -> Usage;
    /// Whether the upstream's final event has been seen.
    fn completed(&self) -> bool;
}

/// The stream state machine for this pair.
pub(crate) fn stream(format: Format, _kind: Kind, _target: &Target<'_>) -> Box<dyn Stream> {
    Box::new(Observer {
        format,
        done: false,
    })
}

fn unsupported(format: Format, kind: Kind) -> TranslateError {
    TranslateError(format!(
        "translating {format:?} requests for a {kind:?}-kind provider is not supported yet"
    ))
}

struct Observer {
    format: Format,
    done: bool,
}

impl Stream for Observer {
    fn event(&mut self, event: &sse::Event, _out: &mut BytesMut) {
        if event.event.as_deref() == Some("message_stop") || event.data == "[DONE]" {
            self.done = true;
        }
    }

    fn end(&mut self, out: &mut BytesMut, error: Option<(&str, &str)>) {
        match error {
            Some((kind, message)) => {
                crate::protocol::write_stream_error(out, self.format, kind, message)
            }
            None if !self.done => crate::protocol::write_stream_error(
                out,
                self.format,
                "upstream_error",
                "the upstream stream ended before its final event",
            ),
            None => {}
        }
    }

    fn usage(&self) -> Usage {
        Usage::default()
    }

    fn completed(&self) -> bool {
        self.done
    }
}
