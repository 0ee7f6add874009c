//! The upstream side: one pooled HTTP client, sending a prepared body to a provider, and mapping
//! the provider's failures to SPEC's errors. Knows no client formats.

use std::time::Duration;

use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use bytes::Bytes;
use http_body_util::BodyExt as _;
use reqwest::Url;

use super::errors::{ApiError, ErrorKind};
use super::routing::Provider;
use crate::config::Server;
use crate::protocol::Kind;
use crate::store::Outcome;

/// The Anthropic API version sent when the client names none.
const DEFAULT_ANTHROPIC_VERSION: &str = "2023-06-01";

/// Builds the shared client: keep-alive pool, HTTP/2 where the upstream offers it, a connect
/// timeout, and an idle-read timeout instead of a total one (long generations must not be cut).
pub(crate) fn client(server: &Server) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(server.connect_timeout_s))
        .read_timeout(Duration::from_secs(server.upstream_idle_timeout_s))
        .pool_idle_timeout(Duration::from_secs(90))
        // Idle upstream connections kept after a burst: enough for steady load, bounded memory.
        .pool_max_idle_per_host(64)
        // A redirect would re-send the body and the provider's key elsewhere: never follow.
        .redirect(reqwest::redirect::Policy::none())
        .tcp_nodelay(true)
        .user_agent(concat!("izzi/", env!("CARGO_PKG_VERSION")))
        .build()?)
}

/// Headers of the client's request that travel upstream.
#[derive(Debug, Default, Clone)]
pub(crate) struct Forwarded {
    pub(crate) anthropic_version: Option<HeaderValue>,
    pub(crate) anthropic_beta: Option<HeaderValue>,
}

const ANTHROPIC_VERSION: HeaderName = HeaderName::from_static("anthropic-version");
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
    pub(crate) fn transport(provider: &str, err: &reqwest::Error) -> Self {
        Self {
            error: connection_error(provider, err),
            retryable: true,
            retry_after: None,
            outcome: transport_outcome(err),
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
pub(crate) fn transport_outcome(err: &reqwest::Error) -> Outcome {
    if err.is_timeout() {
        Outcome::Timeout
    } else if is_tls(err) {
        Outcome::TlsError
    } else if err.is_connect() {
        Outcome::ConnectError
    } else {
        Outcome::UpstreamCut
    }
}

/// Whether a rustls error is in `err`'s chain. TLS errors travel inside `io::Error`s, nested
/// ones too, whose `source` skips the error they wrap: those are walked through `get_ref`.
fn is_tls(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(err);
    while let Some(e) = next {
        if e.is::<rustls::Error>() {
            return true;
        }
        next = match e.downcast_ref::<std::io::Error>() {
            Some(io) => io
                .get_ref()
                .map(|inner| inner as &(dyn std::error::Error + 'static)),
            None => e.source(),
        };
    }
    false
}

/// Reads a whole upstream body, at most `cap` bytes (`server.max_upstream_body_bytes`): a
/// larger one is an invalid answer, never unbounded memory.
pub(crate) async fn read_capped(
    response: reqwest::Response,
    cap: usize,
    provider: &str,
) -> Result<Bytes, Failure> {
    let too_large = || {
        Failure::invalid(format!(
            "The upstream provider `{provider}` answered with more than {cap} bytes (`server.max_upstream_body_bytes`)."
        ))
    };
    if response
        .content_length()
        .is_some_and(|len| len > cap as u64)
    {
        return Err(too_large());
    }
    let body = axum::http::Response::<reqwest::Body>::from(response).into_body();
    match http_body_util::Limited::new(body, cap).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(err) if err.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Err(err) => match err.downcast_ref::<reqwest::Error>() {
            Some(err) => Err(Failure::transport(provider, err)),
            None => Err(Failure {
                outcome: Outcome::UpstreamCut,
                ..Failure::invalid(format!(
                    "The upstream provider `{provider}` failed mid-answer: {err}"
                ))
            }),
        },
    }
}

/// Most of an error answer read for its message.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// Upstream response headers the client may see.
pub(crate) fn passed_headers(upstream: &reqwest::header::HeaderMap) -> HeaderMap {
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

/// Sends `body` to `url` with the provider's own key. A connection failure or timeout is a 502
/// `connection_error`; an error status is mapped by [`error_from_status`].
pub(crate) async fn send(
    client: &reqwest::Client,
    provider: &Provider,
    url: &Url,
    body: Bytes,
    forwarded: &Forwarded,
) -> Result<reqwest::Response, Failure> {
    let mut request = client
        .post(url.clone())
        .header(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )
        .body(body);
    if provider.kind == Kind::Anthropic {
        request = request.header(
            ANTHROPIC_VERSION,
            forwarded
                .anthropic_version
                .clone()
                .unwrap_or(HeaderValue::from_static(DEFAULT_ANTHROPIC_VERSION)),
        );
        if let Some(beta) = &forwarded.anthropic_beta {
            request = request.header(ANTHROPIC_BETA, beta.clone());
        }
    }
    if let Some((name, value)) = &provider.auth {
        request = request.header(name, value);
    }
    let response = request
        .send()
        .await
        .map_err(|err| Failure::transport(&provider.name, &err))?;
    if response.status().is_success() {
        return Ok(response);
    }
    let status = response.status();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let body = read_capped(response, MAX_ERROR_BODY, &provider.name)
        .await
        .unwrap_or_default();
    Err(Failure {
        error: error_from_status(&provider.name, status, &body, retry_after),
        retryable: status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error(),
        retry_after,
        outcome: if status.is_client_error() {
            Outcome::Upstream4xx
        } else {
            Outcome::Upstream5xx
        },
    })
}

/// A transport failure talking to `provider`, as a 502 `connection_error`.
pub(crate) fn connection_error(provider: &str, err: &reqwest::Error) -> ApiError {
    let what = if err.is_timeout() {
        "did not answer in time"
    } else if err.is_connect() {
        "could not be reached"
    } else {
        "failed mid-request"
    };
    // reqwest's Display can include the URL; it never includes headers, so no key leaks.
    ApiError::connection(format!(
        "The upstream provider `{provider}` {what}: {}",
        error_chain(err)
    ))
}

fn error_chain(err: &dyn std::error::Error) -> String {
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
