//! Getting an answer from upstream before anything reaches the client: retries with backoff and
//! jitter for connection errors, 429 and 5xx, then the model's configured fallbacks in order.
//!
//! An attempt ends at the first byte of a stream or the whole of a plain answer, so a failure
//! there can still be retried; once bytes go to the client nothing is ever retried.

use std::borrow::Cow;
use std::time::Duration;

use axum::http::HeaderMap;
use bytes::Bytes;
use futures_util::StreamExt as _;
use http_body_util::BodyDataStream;

use super::AppState;
use super::errors::ApiError;
use super::routing::{Provider, Route};
use super::upstream::{self, Failure, Forwarded};
use crate::catalog::Pricing;
use crate::protocol::Format;
use crate::protocol::json::{Body, without_values};
use crate::translate::{self, Caching, Prepared, Target};

/// The upstream's body after the first chunk.
pub(crate) type ByteStream = BodyDataStream<upstream::Body>;

/// What came back.
pub(crate) enum Answer {
    /// A plain answer, read whole.
    Whole(Bytes),
    /// A stream: its first chunk (none if it was empty) and the rest.
    Stream {
        first: Option<Bytes>,
        rest: ByteStream,
    },
}

/// A successful exchange: who answered and what.
pub(crate) struct Sent {
    pub(crate) route: Route,
    /// Upstream response headers the client may see.
    pub(crate) headers: HeaderMap,
    pub(crate) answer: Answer,
}

/// The request as the client sent it.
pub(crate) struct Outgoing<'a> {
    pub(crate) format: Format,
    pub(crate) body: &'a Body<'a>,
    pub(crate) raw: &'a Bytes,
    pub(crate) client_model: &'a str,
    pub(crate) stream: bool,
    pub(crate) forwarded: &'a Forwarded,
    /// The key has credits or a budget: a fallback without a price is never tried.
    pub(crate) priced_only: bool,
    /// The models tried after the first, in order: a route's other targets, or the model's
    /// `fallbacks`.
    pub(crate) fallbacks: &'a [String],
    /// The agent session, kept on the model that last served it and sent as OpenAI's
    /// `prompt_cache_key` (`attribution`).
    pub(crate) session: Option<&'a str>,
}

/// The translation target for a route.
pub(crate) fn target<'a>(state: &AppState, route: &'a Route, out: &Outgoing<'a>) -> Target<'a> {
    let caching = if state.config.server.prompt_caching && route.model.prompt_caching {
        Caching::Auto
    } else {
        Caching::Off
    };
    Target {
        upstream_model: route.model.upstream_id(),
        client_model: out.client_model,
        max_output: route.model.max_output,
        reasoning: route.model.reasoning,
        web_search: route.model.web_search,
        request: out.body,
        created: jiff::Timestamp::now().as_second().try_into().unwrap_or(0),
        caching,
        session: out.session,
    }
}

/// The upstream body for `route`: a request it cannot carry is a 400 that names the field.
pub(crate) fn prepare<'a>(
    state: &AppState,
    out: &Outgoing<'a>,
    route: &Route,
) -> Result<Prepared<'a>, ApiError> {
    translate::request(
        out.format,
        route.provider.kind,
        out.body,
        &target(state, route, out),
    )
    .map_err(|err| ApiError::invalid(err.0))
}

/// Sends to `primary` (whose body is already `prepared`), retrying it, then to each of its
/// fallbacks that routes and can carry the request, until one answers. A session goes first to
/// the model that last served it, while that model's provider is healthy; a provider whose
/// circuit is open is skipped at once.
pub(crate) async fn send(
    state: &AppState,
    out: &Outgoing<'_>,
    primary: Route,
    prepared: Prepared<'_>,
) -> Result<Sent, Failure> {
    // One candidate: nothing to order or fall back to.
    if out.fallbacks.is_empty() {
        let sent = attempt(state, out, primary, prepared, true).await?;
        return Ok(remembered(state, out, sent));
    }
    let fallbacks = out
        .fallbacks
        .iter()
        .filter_map(|m| state.router.route(m))
        .filter(|route| {
            let free = out.priced_only && route.model.pricing == Pricing::Unpriced;
            if free {
                tracing::debug!(model = %route.model.id, "fallback has no price; not tried for a key with money limits");
            }
            !free
        });
    let mut chain: Vec<(Route, Option<Prepared<'_>>)> = std::iter::once((primary, Some(prepared)))
        .chain(fallbacks.map(|route| (route, None)))
        .collect();
    let last = out
        .session
        .and_then(|session| state.affinity.get(session, &state.config.affinity));
    if let Some(last) = last
        && let Some(at) = chain.iter().position(|(route, _)| route.model.id == last)
        && state.breakers.healthy(&chain[at].0.provider.name)
    {
        let kept = chain.remove(at);
        chain.insert(0, kept);
    }
    let mut failure: Option<Failure> = None;
    let count = chain.len();
    for (i, (route, prepared)) in chain.into_iter().enumerate() {
        if failure.as_ref().is_some_and(|f| !f.retryable) {
            break;
        }
        let prepared = match prepared.map_or_else(|| prepare(state, out, &route), Ok) {
            Ok(prepared) => prepared,
            Err(err) => {
                tracing::debug!(model = %route.model.id, error = %without_values(&err.message), "fallback cannot carry this request");
                continue;
            }
        };
        if let Some(failure) = &failure {
            tracing::warn!(fallback = %route.model.id, provider = %route.provider.name, error = %failure.error.message, "upstream failed; trying a fallback");
        }
        match attempt(state, out, route, prepared, i + 1 == count).await {
            Ok(sent) => return Ok(remembered(state, out, sent)),
            Err(failed) => failure = Some(failed),
        }
    }
    // The primary is always in the chain and always prepared, so a failure was recorded.
    Err(failure.unwrap_or_else(|| Failure::invalid("No upstream could carry this request.")))
}

/// `sent`, its model kept as the one that last served the request's session.
fn remembered(state: &AppState, out: &Outgoing<'_>, sent: Sent) -> Sent {
    if let Some(session) = out.session {
        state
            .affinity
            .remember(session, &sent.route.model.id, &state.config.affinity);
    }
    sent
}

/// One route, with its retries; `last`: no other model is left to try.
async fn attempt(
    state: &AppState,
    out: &Outgoing<'_>,
    route: Route,
    prepared: Prepared<'_>,
    last: bool,
) -> Result<Sent, Failure> {
    let body = match prepared.body {
        Cow::Borrowed(_) => out.raw.clone(),
        Cow::Owned(owned) => Bytes::from(owned),
    };
    // `anthropic-beta` goes to Anthropic-kind providers as the client sent it, translated or
    // not (`upstream::send` gives it to no other kind).
    let (headers, answer) = with_retries(
        state,
        &route.provider,
        body,
        out.forwarded,
        out.stream,
        last,
    )
    .await?;
    Ok(Sent {
        route,
        headers,
        answer,
    })
}

/// Longest `Retry-After` worth waiting for inside one request; a longer one goes to the client.
const MAX_RETRY_WAIT: Duration = Duration::from_secs(5);

async fn with_retries(
    state: &AppState,
    provider: &Provider,
    body: Bytes,
    forwarded: &Forwarded,
    stream: bool,
    last: bool,
) -> Result<(HeaderMap, Answer), Failure> {
    let mut attempt = 0;
    loop {
        let breaker = &state.config.breaker;
        // A provider whose circuit is open is skipped while another model is left to try;
        // with none left it gets one try, never a retry.
        let ticket = state.breakers.pass(&provider.name, breaker, last)?;
        let retries = if ticket.forced() {
            0
        } else {
            provider.max_retries
        };
        let result = once(state, provider, body.clone(), forwarded, stream).await;
        ticket.settle(result.as_ref().err(), MAX_RETRY_WAIT, breaker);
        match result {
            Err(failure) if failure.retryable && attempt < retries => {
                let wait = match failure.retry_after.map(Duration::from_secs) {
                    Some(wait) if wait > MAX_RETRY_WAIT => return Err(failure),
                    Some(wait) => wait,
                    None => backoff(attempt),
                };
                tracing::debug!(provider = %provider.name, attempt, wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX), error = %failure.error.message, "retrying upstream");
                tokio::time::sleep(wait).await;
                attempt += 1;
            }
            result => return result,
        }
    }
}

/// Exponential backoff from 200 ms, capped at 5 s, with jitter (half to all of it), so
/// clients retrying together do not hit the upstream together.
fn backoff(attempt: u32) -> Duration {
    let full = Duration::from_millis(200)
        .saturating_mul(1 << attempt.min(5))
        .min(Duration::from_secs(5));
    full.mul_f64(0.5 + rand::random::<f64>() / 2.0)
}

async fn once(
    state: &AppState,
    provider: &Provider,
    body: Bytes,
    forwarded: &Forwarded,
    stream: bool,
) -> Result<(HeaderMap, Answer), Failure> {
    let response = upstream::send(
        &state.client,
        &provider.name,
        &provider.endpoint,
        &provider.endpoint.messages,
        body,
        forwarded,
    )
    .await?;
    let headers = upstream::passed_headers(response.headers());
    let answer = if stream {
        let mut rest = BodyDataStream::new(response.into_body());
        let first = match rest.next().await {
            Some(Ok(chunk)) => Some(chunk),
            Some(Err(err)) => return Err(Failure::transport(&provider.name, &*err)),
            None => None,
        };
        Answer::Stream { first, rest }
    } else {
        Answer::Whole(
            upstream::read_capped(
                response,
                state.config.server.max_upstream_body_bytes,
                &provider.name,
            )
            .await?,
        )
    };
    Ok((headers, answer))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_and_caps() {
        for attempt in 0..10 {
            let full = Duration::from_millis(200)
                .saturating_mul(1 << attempt.min(5))
                .min(Duration::from_secs(5));
            let wait = backoff(attempt);
            assert!(wait >= full / 2 && wait <= full, "{attempt}: {wait:?}");
        }
    }
}
