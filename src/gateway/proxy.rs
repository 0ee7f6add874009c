//! One request through the gateway: authenticate, read and check the body, route, translate,
//! send upstream, and relay the answer (streams event by event, never buffered to the end).

use std::borrow::Cow;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body as HttpBody;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::{Buf as _, Bytes, BytesMut};
use futures_util::StreamExt as _;
use http_body_util::BodyExt as _;
use rust_decimal::Decimal;

use super::AppState;
use super::auth::{self, Client};
use super::dispatch::{self, Answer, ByteStream, Outgoing};
use super::errors::ApiError;
use super::ledger::{Answered, Finished, Ledger, Output};
use super::limits::{Admission, Refusal};
use super::routing::Route;
use super::upstream::{self, Forwarded};
use crate::catalog::Model;
use crate::config::Server;
use crate::protocol::json::Body;
use crate::protocol::{Format, Kind, Usage, sse};
use crate::tokens::Count;
use crate::translate::{self, Target};

/// `POST /chat/completions`, `/messages`, `/responses`.
pub(crate) async fn inference(
    State(state): State<Arc<AppState>>,
    format: Format,
    request: Request,
) -> Response {
    match handle(state, format, request).await {
        Ok(response) => response,
        Err(err) => err.into_response(),
    }
}

async fn handle(
    state: Arc<AppState>,
    format: Format,
    request: Request,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let (parts, body) = request.into_parts();
    let client = auth::client(&parts.extensions)?;
    let bytes = read_body(body, &parts.headers, &state.config.server).await?;
    let body = Body::parse(&bytes).map_err(|e| ApiError::invalid(e.0))?;
    let shape = check_shape(format, &body)?;
    let route = route(&state, &shape.model)?;
    let forwarded = Forwarded::from_headers(&parts.headers);
    let outgoing = Outgoing {
        format,
        body: &body,
        raw: &bytes,
        client_model: &shape.model,
        stream: shape.stream,
        forwarded: &forwarded,
    };
    // A request the provider cannot carry is a shape error: refused before it counts.
    let prepared = dispatch::prepare(&outgoing, &route)?;
    let admission = match admit(&state, &client, &route, &body, &bytes).await {
        Ok(admission) => admission,
        Err(refusal) => return Ok(refusal.into_response()),
    };
    let rate = admission.headers();
    let mut life = Life::new(
        &state,
        admission,
        &route,
        shape.stream,
        started,
        bytes.clone(),
    );
    let sent = match dispatch::send(&state, &outgoing, route, prepared).await {
        Ok(sent) => sent,
        Err(err) => {
            life.failed(err.status);
            return Ok(rate.attach(err.into_response()));
        }
    };
    life.model = Arc::clone(&sent.route.model);
    life.provider.clone_from(&sent.route.provider.name);
    let target = dispatch::target(&sent.route, &shape.model, &body);
    let kind = sent.route.provider.kind;
    let mut response = match sent.answer {
        Answer::Whole(answer) => match whole(format, kind, &target, answer, life) {
            Ok(response) => response,
            Err(err) => return Ok(rate.attach(err.into_response())),
        },
        Answer::Stream { first, rest } => {
            let keepalive_s = state.config.server.keepalive_s;
            relay_stream(format, kind, &target, first, rest, life, keepalive_s)
        }
    };
    response.headers_mut().extend(sent.headers);
    Ok(rate.attach(response))
}

/// The limits step. A key with a balance or a budget holds the request's worst-case cost: its
/// input plus the most output it asks for, at the model's prices. The input is first bounded by
/// the body's length (a prompt has no more tokens than bytes), which costs nothing; only when
/// that bound is refused for money is the prompt tokenized for a tighter hold.
async fn admit(
    state: &AppState,
    client: &Client,
    route: &Route,
    body: &Body<'_>,
    bytes: &Bytes,
) -> Result<Admission, Refusal> {
    if client.credits.is_none() && client.budget.is_none() {
        return state.limits.admit(client, Decimal::ZERO).await;
    }
    let model = &route.model;
    let most = u64::from(model.max_output);
    let output = match max_output(body) {
        Some(asked) if most > 0 => asked.min(most),
        Some(asked) => asked,
        None => most,
    };
    let hold = |input_tokens: u64| {
        model.cost(&Usage {
            input_tokens,
            output_tokens: output,
            ..Usage::default()
        })
    };
    match state.limits.admit(client, hold(bytes.len() as u64)).await {
        Err(refusal) if refusal.is_money() => match count_locally(model, bytes).await {
            Some(counted) => state.limits.admit(client, hold(counted.tokens)).await,
            None => Err(refusal),
        },
        decided => decided,
    }
}

/// The most output tokens a body asks for ([`crate::tokens::max_output`], on the raw members).
fn max_output(body: &Body<'_>) -> Option<u64> {
    crate::tokens::MAX_OUTPUT_FIELDS
        .into_iter()
        .find_map(|name| body.field::<u64>(name, "").ok().flatten())
}

/// Reads the whole request body, refusing with 413 anything over `max_body_bytes` (before
/// reading it when `Content-Length` already says so) and with 408 a body that does not arrive
/// within `body_read_timeout_s`.
async fn read_body(
    body: HttpBody,
    headers: &HeaderMap,
    server: &Server,
) -> Result<Bytes, ApiError> {
    let limit = server.max_body_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(ApiError::too_large(limit));
    }
    let timeout = Duration::from_secs(server.body_read_timeout_s);
    let Ok(collected) =
        tokio::time::timeout(timeout, http_body_util::Limited::new(body, limit).collect()).await
    else {
        return Err(ApiError::with_status(
            StatusCode::REQUEST_TIMEOUT,
            "invalid_request_error",
            format!(
                "The request body did not arrive within {} seconds.",
                timeout.as_secs()
            ),
        ));
    };
    match collected {
        Ok(collected) => {
            // Always a copy of exactly the body's size. A body that came in one read would
            // otherwise be a slice of the connection's read buffer and keep all of it (8 KiB or
            // more) alive as long as the request lives, a stream's whole length, while hyper
            // allocates another for the connection; several reads are joined by a copy anyway.
            let mut whole = collected.aggregate();
            let len = whole.remaining();
            Ok(if whole.chunk().len() == len {
                Bytes::copy_from_slice(whole.chunk())
            } else {
                whole.copy_to_bytes(len)
            })
        }
        Err(err)
            if err
                .downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(ApiError::too_large(limit))
        }
        Err(err) => Err(ApiError::invalid(format!(
            "The request body could not be read: {err}."
        ))),
    }
}

/// What the gateway itself needs from a body, checked with errors that name the field.
pub(crate) struct Shape {
    model: String,
    stream: bool,
}

pub(crate) fn check_shape(format: Format, body: &Body<'_>) -> Result<Shape, ApiError> {
    let invalid = |e: crate::protocol::json::BodyError| ApiError::invalid(e.0);
    let model: String = body
        .field("model", "a string")
        .map_err(invalid)?
        .ok_or_else(|| ApiError::invalid("`model` is required."))?;
    let stream = body
        .field::<bool>("stream", "a boolean")
        .map_err(invalid)?
        .unwrap_or(false);
    match format {
        Format::Messages if !body.is_array("messages") => {
            return Err(ApiError::invalid(
                "`messages` is required and must be an array.",
            ));
        }
        // Cursor's agent mode sends a Responses-shaped body (`input`) to /chat/completions.
        Format::Chat if !body.is_array("messages") && body.get("input").is_none() => {
            return Err(ApiError::invalid(
                "`messages` is required and must be an array.",
            ));
        }
        Format::Responses if body.get("input").is_none() => {
            return Err(ApiError::invalid(
                "`input` is required: a string or an array of messages.",
            ));
        }
        _ => {}
    }
    Ok(Shape { model, stream })
}

fn route(state: &AppState, model: &str) -> Result<Route, ApiError> {
    state.router.route(model).ok_or_else(|| {
        ApiError::not_found(format!(
            "The model `{model}` does not exist. `GET /v1/models` lists the models."
        ))
    })
}

/// A non-streamed answer, translated if the formats differ.
fn whole(
    format: Format,
    kind: Kind,
    target: &Target<'_>,
    answer: Bytes,
    mut life: Life,
) -> Result<Response, ApiError> {
    life.output = Some(Output::Body(answer.clone()));
    let (out, usage) = translate::response(format, kind, &answer, target).map_err(|e| {
        let err = ApiError::upstream(format!("The upstream answer could not be read: {e}"));
        life.failed(err.status);
        err
    })?;
    life.usage = usage;
    life.status = StatusCode::OK;
    life.outcome = Outcome::Completed;
    let out = match out {
        Cow::Borrowed(_) => answer.clone(),
        Cow::Owned(owned) => Bytes::from(owned),
    };
    let mut response = (StatusCode::OK, out).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

/// A streamed answer whose first chunk has arrived: from here on, events flow to the client as
/// they arrive, translated one at a time.
fn relay_stream(
    format: Format,
    kind: Kind,
    target: &Target<'_>,
    first: Option<Bytes>,
    upstream: ByteStream,
    mut life: Life,
    keepalive_s: u64,
) -> Response {
    life.status = StatusCode::OK;
    life.outcome = Outcome::Completed;
    life.output = Some(Output::Events(0));
    let relay = Relay {
        upstream,
        first,
        parser: sse::Parser::default(),
        translator: translate::stream(format, kind, target),
        passthrough: format.native_kind() == Some(kind),
        relayed: 0,
        held: BytesMut::new(),
        keepalive: keepalive(format),
        keepalive_after: Duration::from_secs(keepalive_s),
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
    /// What to send while a translated upstream is silent (a reasoning model thinking): the
    /// client's own keep-alive, so it does not give up on the stream.
    keepalive: &'static [u8],
    /// How long a translated stream may stay silent before a keep-alive goes out.
    keepalive_after: Duration,
    ended: bool,
    life: Life,
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
            let chunk = match self.first.take() {
                Some(first) => Some(Ok(first)),
                // Passthrough streams carry the upstream's own pings.
                None if self.passthrough => self.upstream.next().await,
                None => {
                    match tokio::time::timeout(self.keepalive_after, self.upstream.next()).await {
                        Ok(chunk) => chunk,
                        Err(_) => return Some((Ok(Bytes::from_static(self.keepalive)), self)),
                    }
                }
            };
            let mut out = BytesMut::new();
            match chunk {
                Some(Ok(bytes)) => {
                    self.parser.push(&bytes);
                    if let Err(err) = self.feed(&mut out) {
                        self.fail(&mut out, "upstream_error", &err.to_string());
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
                    let message = upstream::connection_error(&self.life.provider, &err).message;
                    self.fail(&mut out, "connection_error", &message);
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

    fn feed(&mut self, out: &mut BytesMut) -> Result<(), sse::LineTooLong> {
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

    fn fail(&mut self, out: &mut BytesMut, kind: &str, message: &str) {
        // What is held is part of an event: the client's stream ends at the last whole one.
        self.held = BytesMut::new();
        self.translator.end(out, Some((kind, message)));
        self.life.outcome = Outcome::UpstreamFailed;
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

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Completed,
    /// The upstream stream stopped before its final event.
    UpstreamCut,
    /// The upstream failed (error status, transport error, unreadable answer).
    UpstreamFailed,
    /// The client disconnected mid-stream.
    ClientGone,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Completed => "completed",
            Outcome::UpstreamCut => "upstream_cut",
            Outcome::UpstreamFailed => "upstream_failed",
            Outcome::ClientGone => "client_gone",
        }
    }
}

/// What a client gets recorded as when it left before any answer was sent (nginx's "client
/// closed request").
const CLIENT_GONE: StatusCode = match StatusCode::from_u16(499) {
    Ok(status) => status,
    Err(_) => StatusCode::BAD_REQUEST,
};

/// An admitted request's record, settled exactly once when it is dropped: after the response
/// body is finished, failed, or abandoned by the client (the handler's future dropped while it
/// waited on the upstream, or the stream dropped mid-way). Dropping it hands the ledger its row,
/// which frees the concurrency slot once committed.
struct Life {
    started: Instant,
    ledger: Ledger,
    /// Taken by `drop`.
    admission: Option<Admission>,
    model: Arc<Model>,
    provider: String,
    stream: bool,
    /// The status the client got; 499 until an answer goes out.
    status: StatusCode,
    outcome: Outcome,
    /// What the upstream reported.
    usage: Usage,
    ttft: Option<Duration>,
    /// The client's body, to count its tokens if the upstream reports none (a stream's is
    /// dropped once the upstream reports usage).
    request: Bytes,
    /// What the upstream answered, once it did.
    output: Option<Output>,
}

impl Life {
    fn new(
        state: &AppState,
        admission: Admission,
        route: &Route,
        stream: bool,
        started: Instant,
        request: Bytes,
    ) -> Self {
        Self {
            started,
            ledger: state.ledger.clone(),
            admission: Some(admission),
            model: Arc::clone(&route.model),
            provider: route.provider.name.clone(),
            stream,
            status: CLIENT_GONE,
            outcome: Outcome::ClientGone,
            usage: Usage::default(),
            ttft: None,
            request,
            output: None,
        }
    }

    /// The request failed with `status` (the upstream's error, mapped, or an unreadable answer).
    fn failed(&mut self, status: StatusCode) {
        self.status = status;
        self.outcome = Outcome::UpstreamFailed;
    }

    /// What a stream's upstream has reported so far. Once it reported anything, the request
    /// body, kept only to count its tokens had it reported nothing, is let go: a stream can
    /// last minutes, and a coding agent's request is often hundreds of KB.
    fn reported(&mut self, usage: Usage) {
        self.usage = usage;
        if usage != Usage::default() && !self.request.is_empty() {
            self.request = Bytes::new();
        }
    }

    /// A byte is going to the client; the first one sets the time to first byte.
    fn first_byte(&mut self) {
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
            admission,
            model: Arc::clone(&self.model),
            provider: std::mem::take(&mut self.provider),
            status: self.status.as_u16(),
            outcome: self.outcome.as_str(),
            stream: self.stream,
            usage: self.usage,
            latency,
            ttft: self.ttft,
            answered: self.output.take().map(|output| Answered {
                request: self.request.clone(),
                output,
            }),
        });
    }
}

/// `POST /messages/count_tokens`: native counting at an Anthropic-kind provider, else (or when
/// it cannot answer) a local count. `x-izzi-token-count` says which: `upstream`, `exact` or
/// `estimate`.
pub(crate) async fn count_tokens(State(state): State<Arc<AppState>>, request: Request) -> Response {
    match count(state, request).await {
        Ok(response) => response,
        Err(err) => err.into_response(),
    }
}

async fn count(state: Arc<AppState>, request: Request) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    let bytes = read_body(body, &parts.headers, &state.config.server).await?;
    let body = Body::parse(&bytes).map_err(|e| ApiError::invalid(e.0))?;
    // Anthropic and OpenAI bodies are both counted: Chat's check takes `messages` or `input`.
    let shape = check_shape(Format::Chat, &body)?;
    let route = route(&state, &shape.model)?;
    if route.provider.kind == Kind::Anthropic {
        let upstream_body = match body.with_model(route.model.upstream_id()) {
            Cow::Borrowed(_) => bytes.clone(),
            Cow::Owned(owned) => Bytes::from(owned),
        };
        let forwarded = Forwarded::from_headers(&parts.headers);
        match upstream::send(
            &state.client,
            &route.provider,
            &route.provider.count_tokens_url,
            upstream_body,
            &forwarded,
        )
        .await
        {
            Ok(response) => match response.bytes().await {
                Ok(answer) if serde_json::from_slice::<InputTokens>(&answer).is_ok() => {
                    return Ok(count_response(answer, "upstream"));
                }
                _ => {
                    tracing::debug!(provider = %route.provider.name, "count_tokens answer unreadable; counting locally")
                }
            },
            Err(failure) => {
                tracing::debug!(provider = %route.provider.name, error = %failure.error.message, "count_tokens upstream failed; counting locally");
            }
        }
    }
    let counted = count_locally(&route.model, &bytes)
        .await
        .ok_or_else(|| ApiError::invalid("The request body is not valid JSON."))?;
    let answer = serde_json::to_vec(&InputTokens {
        input_tokens: counted.tokens,
    })
    .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(count_response(
        Bytes::from(answer),
        if counted.exact { "exact" } else { "estimate" },
    ))
}

/// A body's input tokens counted locally, off the async runtime: tokenizing takes about 100 ms
/// per MiB.
async fn count_locally(model: &Arc<Model>, bytes: &Bytes) -> Option<Count> {
    let (model, bytes) = (Arc::clone(model), bytes.clone());
    tokio::task::spawn_blocking(move || {
        let value: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
        Some(crate::tokens::count_request(&model, &value))
    })
    .await
    .ok()
    .flatten()
}

#[derive(serde::Serialize, serde::Deserialize)]
struct InputTokens {
    input_tokens: u64,
}

fn count_response(body: Bytes, how: &'static str) -> Response {
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert("x-izzi-token-count", HeaderValue::from_static(how));
    response
}
