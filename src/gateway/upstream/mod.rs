//! The upstream side: the pooled client (`client`), sending a prepared body to a provider, and
//! mapping the provider's failures to SPEC's errors. Knows no client formats.

mod client;
mod pool;

use std::error::Error as StdError;

use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri};
use bytes::Bytes;
use http_body_util::BodyExt as _;
use hyper::body::Body as _;

use self::client::{ANTHROPIC_VERSION, ConnectFailed, TimedOut};
pub(crate) use self::client::{Body, Client, Endpoint, Silence};
use super::errors::{ApiError, ErrorKind};
use crate::store::Outcome;

/// Headers of the client's request that travel upstream.
#[derive(Debug, Default, Clone)]
pub(crate) struct Forwarded {
    pub(crate) anthropic_version: Option<HeaderValue>,
    pub(crate) anthropic_beta: Option<HeaderValue>,
}

const ANTHROPIC_BETA: HeaderName = HeaderName::from_static("anthropic-beta");

impl Forwarded {
    /// Picks the forwardable headers out of the client's request (values are shared, not
    /// copied; names are matched without parsing).
    pub(crate) fn from_headers(headers: &HeaderMap) -> Self {
        let get = |name: &HeaderName| headers.get(name).filter(|v| v.to_str().is_ok()).cloned();
        Self {
            anthropic_version: get(&ANTHROPIC_VERSION),
            anthropic_beta: get(&ANTHROPIC_BETA),
        }
    }
}

/// A failed upstream exchange: the client's error, whether trying again may help, and how it
/// ended for the ledger.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) error: ApiError,
    /// Connection errors, 429 and 5xx: worth a retry or a fallback.
    pub(crate) retryable: bool,
    /// The upstream's `Retry-After`, in seconds.
    pub(crate) retry_after: Option<u64>,
    pub(crate) outcome: Outcome,
}

impl Failure {
    /// A transport failure (connect, TLS, timeout, cut connection): retryable.
    pub(crate) fn transport(provider: &str, err: &(dyn StdError + 'static)) -> Self {
        let outcome = transport_outcome(err);
        Self {
            error: connection_error(provider, outcome, err),
            retryable: true,
            retry_after: None,
            outcome,
        }
    }

    /// An answer izzi cannot use (unreadable, or over a cap): trying again would not help.
    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self {
            error: ApiError::upstream(message),
            retryable: false,
            retry_after: None,
            outcome: Outcome::UpstreamInvalid,
        }
    }
}

/// How a transport failure ended: timed out, TLS, no connection, or cut once connected.
fn transport_outcome(err: &(dyn StdError + 'static)) -> Outcome {
    let mut causes = chain(err);
    // izzi's own timers, reqwest's, and the TCP connect's (an `io::Error` that timed out).
    if causes.clone().any(|e| {
        e.is::<TimedOut>()
            || e.downcast_ref::<reqwest::Error>()
                .is_some_and(reqwest::Error::is_timeout)
            || e.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
    }) {
        Outcome::Timeout
    } else if causes.clone().any(<dyn StdError>::is::<rustls::Error>) {
        Outcome::TlsError
    } else if causes.any(|e| {
        e.is::<ConnectFailed>()
            || e.downcast_ref::<reqwest::Error>()
                .is_some_and(reqwest::Error::is_connect)
    }) {
        Outcome::ConnectError
    } else {
        Outcome::UpstreamCut
    }
}

/// `err` and its causes. TLS errors travel inside `io::Error`s, nested ones too, whose `source`
/// skips the error they wrap: those are walked through `get_ref`.
fn chain<'a>(
    err: &'a (dyn StdError + 'static),
) -> impl Iterator<Item = &'a (dyn StdError + 'static)> + Clone {
    std::iter::successors(Some(err), |&e| match e.downcast_ref::<std::io::Error>() {
        Some(io) => io.get_ref().map(|inner| inner as &(dyn StdError + 'static)),
        None => e.source(),
    })
}

/// Reads a whole upstream body, at most `cap` bytes (`server.max_upstream_body_bytes`): a
/// larger one is an invalid answer, never unbounded memory.
pub(crate) async fn read_capped(
    response: axum::http::Response<Body>,
    cap: usize,
    provider: &str,
) -> Result<Bytes, Failure> {
    let too_large = || {
        Failure::invalid(format!(
            "The upstream provider `{provider}` answered with more than {cap} bytes (`server.max_upstream_body_bytes`)."
        ))
    };
    let body = response.into_body();
    if body.size_hint().lower() > cap as u64 {
        return Err(too_large());
    }
    match http_body_util::Limited::new(body, cap).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(err) if err.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Err(err) => Err(Failure::transport(provider, &*err)),
    }
}

/// Most of an error answer read for its message.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// Upstream response headers the client may see.
pub(crate) fn passed_headers(upstream: &HeaderMap) -> HeaderMap {
    const PASSED: [HeaderName; 2] = [
        HeaderName::from_static("request-id"),
        HeaderName::from_static("x-request-id"),
    ];
    let mut out = HeaderMap::new();
    for name in PASSED {
        if let Some(value) = upstream.get(&name) {
            out.insert(name, value.clone());
        }
    }
    out
}

/// Sends `body` to `uri` (one of `endpoint`'s) with the provider's own key. A connection
/// failure or timeout is a 502 `connection_error`; an error status is mapped by
/// [`error_from_status`].
pub(crate) async fn send(
    client: &Client,
    provider: &str,
    endpoint: &Endpoint,
    uri: &Uri,
    body: Bytes,
    forwarded: &Forwarded,
) -> Result<axum::http::Response<Body>, Failure> {
    let mut headers = endpoint.headers.clone();
    // Only Anthropic-kind endpoints carry a default version; theirs alone may be replaced.
    if headers.contains_key(ANTHROPIC_VERSION) {
        if let Some(version) = &forwarded.anthropic_version {
            headers.insert(ANTHROPIC_VERSION, version.clone());
        }
        if let Some(beta) = &forwarded.anthropic_beta {
            headers.insert(ANTHROPIC_BETA, beta.clone());
        }
    }
    let response = client
        .post(endpoint, uri, headers, body)
        .await
        .map_err(|err| Failure::transport(provider, &*err))?;
    if response.status().is_success() {
        return Ok(response);
    }
    let status = response.status();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let body = read_capped(response, MAX_ERROR_BODY, provider)
        .await
        .unwrap_or_default();
    Err(Failure {
        error: error_from_status(provider, status, &body, retry_after),
        retryable: status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error(),
        retry_after,
        outcome: if status.is_client_error() {
            Outcome::Upstream4xx
        } else {
            Outcome::Upstream5xx
        },
    })
}

/// A transport failure talking to `provider` that ended as `outcome`, as a 502
/// `connection_error`.
fn connection_error(provider: &str, outcome: Outcome, err: &dyn StdError) -> ApiError {
    let what = match outcome {
        Outcome::Timeout => "did not answer in time",
        Outcome::ConnectError | Outcome::TlsError => "could not be reached",
        _ => "failed mid-request",
    };
    // Errors here may name the host; they never include headers, so no key leaks.
    ApiError::connection(format!(
        "The upstream provider `{provider}` {what}: {}",
        error_chain(err)
    ))
}

fn error_chain(err: &dyn StdError) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Maps an upstream error status as SPEC says: 429 stays 429 with its Retry-After; 400, 404,
/// 413 and 422 keep their status and the upstream's message; everything else (401, 403, 5xx)
/// is a 502 `upstream_error`.
pub(crate) fn error_from_status(
    provider: &str,
    status: StatusCode,
    body: &[u8],
    retry_after: Option<u64>,
) -> ApiError {
    let message = upstream_message(body);
    match status.as_u16() {
        429 => ApiError::with_status(
            StatusCode::TOO_MANY_REQUESTS,
            ErrorKind::RateLimit,
            format!("The upstream provider `{provider}` is rate limiting: {message}"),
        )
        .retry_after(retry_after),
        400 | 413 | 422 => ApiError::with_status(status, ErrorKind::InvalidRequest, message),
        404 => ApiError::with_status(status, ErrorKind::NotFound, message),
        code => ApiError::upstream(format!(
            "The upstream provider `{provider}` answered {code}: {message}"
        )),
    }
}

/// The human message inside an upstream error body: `error.message` (both formats), `message`,
/// or the start of the text itself.
fn upstream_message(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Outer {
        error: Option<Inner>,
        message: Option<String>,
    }
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Inner {
        Object { message: Option<String> },
        Text(String),
    }
    if let Ok(outer) = serde_json::from_slice::<Outer>(body) {
        let inner = match outer.error {
            Some(Inner::Object { message }) => message,
            Some(Inner::Text(text)) => Some(text),
            None => None,
        };
        if let Some(message) = inner.or(outer.message) {
            return message;
        }
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return "no error message was given".to_owned();
    }
    text.chars().take(500).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_as_spec_says() {
        let e = error_from_status("p", StatusCode::TOO_MANY_REQUESTS, b"{}", Some(7));
        assert_eq!(
            (e.status.as_u16(), e.kind.as_str(), e.retry_after),
            (429, "rate_limit_error", Some(7))
        );
        let e = error_from_status("p", StatusCode::BAD_REQUEST, br#"{"type":"error","error":{"type":"invalid_request_error","message":"bad max_tokens"}}"#, None);
        assert_eq!(
            (e.status.as_u16(), e.message.as_str()),
            (400, "bad max_tokens")
        );
        let e = error_from_status(
            "p",
            StatusCode::UNPROCESSABLE_ENTITY,
            br#"{"error":{"message":"m","type":"x"}}"#,
            None,
        );
        assert_eq!(
            (e.status.as_u16(), e.kind.as_str()),
            (422, "invalid_request_error")
        );
        for code in [401, 403, 500, 503, 529] {
            let e = error_from_status(
                "p",
                StatusCode::from_u16(code).unwrap(),
                b"<html>oops</html>",
                None,
            );
            assert_eq!(
                (e.status.as_u16(), e.kind.as_str()),
                (502, "upstream_error")
            );
            assert!(e.message.contains("<html>oops</html>"));
        }
    }
}
