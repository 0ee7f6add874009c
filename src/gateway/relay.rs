//! A streamed answer relayed to the client: upstream bytes in, client bytes out, one event at a
//! time, translated when the formats differ (never buffered to the end).

use std::convert::Infallible;
use std::task::Poll;
use std::time::Duration;

use axum::body::Body as HttpBody;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt as _;

use super::dispatch::ByteStream;
use super::ledger::Output;
use super::life::Life;
use super::upstream::{self, Silence};
use crate::config::Server;
use crate::protocol::{Format, Kind, sse};
use crate::store::Outcome;
use crate::translate::{self, Target};

/// A streamed answer whose first chunk has arrived: from here on, events flow to the client as
/// they arrive, translated one at a time.
pub(super) fn relay_stream(
    format: Format,
    kind: Kind,
    target: &Target<'_>,
    first: Option<Bytes>,
    upstream: ByteStream,
    mut life: Life,
    server: &Server,
) -> Response {
    life.status = StatusCode::OK;
    life.outcome = Outcome::Completed;
    life.output = Some(Output::Events(0));
    let passthrough = format.native_kind() == Some(kind);
    let relay = Relay {
        upstream,
        first,
        parser: sse::Parser::new(server.max_upstream_event_bytes),
        translator: translate::stream(format, kind, target),
        passthrough,
        relayed: 0,
        held: BytesMut::new(),
        // Passthrough streams carry the upstream's own pings.
        keepalive: (!passthrough).then(|| Keepalive {
            bytes: keepalive(format),
            silence: Silence::new(Duration::from_secs(server.keepalive_s)),
        }),
        ended: false,
        life,
    };
    let body = HttpBody::from_stream(futures_util::stream::unfold(relay, Relay::next));
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// A stream being relayed: upstream bytes in, client bytes out, one event at a time.
struct Relay {
    upstream: ByteStream,
    first: Option<Bytes>,
    parser: sse::Parser,
    translator: Box<dyn translate::Stream>,
    /// Same format both sides: relay the upstream's bytes as they are, only observing them.
    passthrough: bool,
    /// Passthrough: bytes of the upstream's stream relayed so far, and those received after
    /// them that do not yet end an event.
    relayed: u64,
    held: BytesMut,
    /// Translated streams only: what to send while the upstream is silent (a reasoning model
    /// thinking), so the client does not give up on the stream.
    keepalive: Option<Keepalive>,
    ended: bool,
    life: Life,
}

/// The client's own keep-alive, sent after `server.keepalive_s` without an upstream chunk.
struct Keepalive {
    bytes: &'static [u8],
    silence: Silence,
}

/// The keep-alive a client of `format` expects: Anthropic's `ping` event, an SSE comment for
/// the OpenAI formats (their SDKs skip comments).
fn keepalive(format: Format) -> &'static [u8] {
    match format {
        Format::Messages => b"event: ping\ndata: {\"type\":\"ping\"}\n\n",
        Format::Chat | Format::Responses => b": keep-alive\n\n",
    }
}

impl Relay {
    async fn next(mut self) -> Option<(Result<Bytes, Infallible>, Self)> {
        while !self.ended {
            let chunk = match (self.first.take(), &mut self.keepalive) {
                (Some(first), _) => Some(Ok(first)),
                (None, None) => self.upstream.next().await,
                (None, Some(keepalive)) => {
                    let upstream = &mut self.upstream;
                    let heard = std::future::poll_fn(|cx| match upstream.poll_next_unpin(cx) {
                        Poll::Ready(chunk) => {
                            keepalive.silence.heard();
                            Poll::Ready(Some(chunk))
                        }
                        Poll::Pending => keepalive.silence.poll_silent(cx).map(|()| None),
                    })
                    .await;
                    match heard {
                        Some(chunk) => chunk,
                        None => {
                            let bytes = Bytes::from_static(keepalive.bytes);
                            return Some((Ok(bytes), self));
                        }
                    }
                }
            };
            let mut out = BytesMut::new();
            match chunk {
                Some(Ok(bytes)) => {
                    self.parser.push(&bytes);
                    if let Err(err) = self.feed(&mut out) {
                        let message = format!("The upstream stream could not be read: {err}.");
                        self.fail(
                            &mut out,
                            "upstream_error",
                            &message,
                            Outcome::UpstreamInvalid,
                        );
                    } else if self.passthrough {
                        self.life.reported(self.translator.usage());
                        let whole = self.whole_events(bytes);
                        if whole.is_empty() {
                            continue;
                        }
                        self.life.first_byte();
                        return Some((Ok(whole), self));
                    }
                }
                Some(Err(err)) => {
                    let failure = upstream::Failure::transport(&self.life.provider, &*err);
                    self.fail(
                        &mut out,
                        "connection_error",
                        &failure.error.message,
                        failure.outcome,
                    );
                }
                None => {
                    if let Some(event) = self.parser.finish() {
                        let was_completed = self.translator.completed();
                        self.translator.event(&event, &mut out);
                        if self.passthrough && !was_completed && self.translator.completed() {
                            // The final event came whole but for its blank line.
                            out.extend_from_slice(&std::mem::take(&mut self.held));
                            out.extend_from_slice(b"\n\n");
                        }
                    }
                    self.life.outcome = if self.translator.completed() {
                        Outcome::Completed
                    } else {
                        Outcome::UpstreamCut
                    };
                    self.translator.end(&mut out, None);
                    self.ended = true;
                }
            }
            self.life.reported(self.translator.usage());
            if !out.is_empty() {
                self.life.first_byte();
                return Some((Ok(out.freeze()), self));
            }
        }
        None
    }

    fn feed(&mut self, out: &mut BytesMut) -> Result<(), sse::EventTooLarge> {
        while let Some(event) = self.parser.next_event()? {
            if let Some(Output::Events(seen)) = &mut self.life.output {
                *seen += 1;
            }
            self.translator.event(&event, out);
        }
        Ok(())
    }

    /// Of the upstream's bytes so far, those not yet relayed that end in a blank line; the rest
    /// wait in `held`. A client never sees part of an event, so a stream cut mid-event ends
    /// with our error event rather than with a broken line its SDK cannot parse. Events
    /// usually arrive whole, and then `bytes` goes on as it is.
    fn whole_events(&mut self, bytes: Bytes) -> Bytes {
        // Never more than is here: the parser has seen exactly these bytes.
        let ready = usize::try_from(self.parser.whole_events_len() - self.relayed)
            .unwrap_or(usize::MAX)
            .min(self.held.len() + bytes.len());
        self.relayed += ready as u64;
        if self.held.is_empty() && ready == bytes.len() {
            return bytes;
        }
        self.held.extend_from_slice(&bytes);
        self.held.split_to(ready).freeze()
    }

    fn fail(&mut self, out: &mut BytesMut, kind: &str, message: &str, outcome: Outcome) {
        // What is held is part of an event: the client's stream ends at the last whole one.
        self.held = BytesMut::new();
        self.translator.end(out, Some((kind, message)));
        self.life.outcome = outcome;
        self.ended = true;
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if !self.ended {
            // The client went away before the upstream finished; dropping the upstream stream
            // closes its connection, which cancels the generation.
            self.life.outcome = Outcome::ClientGone;
        }
    }
}
