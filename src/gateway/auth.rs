//! Client authentication: the IP block, then the key from `Authorization: Bearer` or
//! `x-api-key`, found among the accepted keys (`identity::Keys`: the config's `[[keys]]`, the
//! keys in `izzi.db`, re-read by the ledger thread every half second so a revocation applies
//! within a second, and from loopback clients the key `izzi setup` stored).
//!
//! [`guard`] runs in front of every `/v1` route: it refuses blocked addresses and bad keys, hands
//! the handler its [`Client`], and writes the rate-limit headers on whatever the handler answers,
//! success or error. Every local tool shares the loopback address, so a blocked loopback address
//! still lets a valid key through (a wrong one is still counted and refused). Never reads bodies;
//! never logs, stores or echoes a key.

mod ip_block;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{Extensions, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::errors::{ApiError, ErrorKind};
use super::identity::{Client, Keys, Peer, presented_key};
use super::limits::RateHeaders;
pub(crate) use ip_block::IpBlock;

/// The 403 for a blocked address, `left` before the block lapses.
pub(crate) fn ip_blocked(left: Duration) -> ApiError {
    super::metrics::refused(super::metrics::Reason::IpBlocked);
    let seconds = left.as_secs() + u64::from(left.subsec_nanos() > 0);
    ApiError::with_status(
        StatusCode::FORBIDDEN,
        ErrorKind::IpBlocked,
        format!(
            "This address is blocked after too many failed authentications. Try again in {seconds} seconds."
        ),
    )
    .retry_after(Some(seconds))
}

/// The client `key` belongs to, for a request from `ip` at `now`, or the refusal. A blocked
/// remote address is refused before its key is looked at. From loopback, where every local
/// tool shares the address, a valid key passes even while the address is blocked: one tool
/// left with an old key must not lock out the rest. Only a wrong key counts against the
/// address (a missing one never does: Claude Code probes without one).
pub(crate) fn authenticate(
    keys: &Keys,
    block: &IpBlock,
    ip: Option<IpAddr>,
    key: Option<&str>,
    now: Instant,
) -> Result<Arc<Client>, ApiError> {
    let ip = ip.map(|ip| ip.to_canonical());
    let peer = Peer::of(ip);
    let blocked = ip.and_then(|ip| block.blocked(ip, now));
    if let Some(left) = blocked
        && peer == Peer::Remote
    {
        return Err(ip_blocked(left));
    }
    let found = match key {
        None => Err(ApiError::unauthenticated(
            "No API key was given: send it as `Authorization: Bearer KEY` or `x-api-key: KEY`.",
        )),
        Some(key) => keys.find(key, peer).ok_or_else(|| {
            if let Some(ip) = ip {
                block.failed(ip, now);
            }
            ApiError::unauthenticated("The API key is not valid.")
        }),
    };
    match (found, blocked) {
        (Err(_), Some(left)) => Err(ip_blocked(left)),
        (Err(err), None) => {
            super::metrics::refused(super::metrics::Reason::Authentication);
            Err(err)
        }
        (Ok(client), _) => Ok(client),
    }
}

/// The client the auth layer found for this request.
pub(crate) fn client(extensions: &Extensions) -> Result<Arc<Client>, ApiError> {
    extensions
        .get::<Arc<Client>>()
        .cloned()
        .ok_or_else(|| ApiError::internal("The request reached a handler without authentication."))
}

/// The middleware in front of every authenticated route: [`guard`] around the router's next
/// service.
pub(crate) async fn layer(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    guard(&state, request, |request| next.run(request)).await
}

/// [`authenticate`] (403 or 401), then `handler` with the [`Client`] in the request's
/// extensions, then the rate-limit headers on its answer, success or error. The router's layer
/// and the inference paths the server matches itself (`server::serve`) both go through it.
pub(crate) async fn guard<F>(
    state: &Arc<AppState>,
    mut request: Request,
    handler: impl FnOnce(Request) -> F,
) -> Response
where
    F: Future<Output = Response>,
{
    let ip = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let key = presented_key(request.headers());
    let client = match authenticate(&state.keys, &state.ip_block, ip, key, Instant::now()) {
        Ok(client) => client,
        Err(err) => return err.into_response(),
    };
    request.extensions_mut().insert(Arc::clone(&client));
    let mut response = handler(request).await;
    let headers = match response.extensions_mut().remove::<RateHeaders>() {
        Some(headers) => headers,
        None => state.limits.peek(&client).await,
    };
    headers.apply(response.headers_mut());
    super::alerts::annotate(state, &client, response.headers_mut());
    response
}

#[cfg(test)]
mod tests {
    use super::ip_block::tests::security;
    use super::*;
    use crate::config::SETUP_KEY_NAME;
    use crate::gateway::identity::tests::config_key;

    /// Ten wrong keys block the address. From a remote address every request is then refused
    /// before its key is looked at; from loopback a valid key still passes (another local tool
    /// kept an old key), while a wrong or missing one is refused by the block, and a wrong one
    /// still counts.
    #[test]
    fn a_block_refuses_everything_remote_and_only_wrong_keys_from_loopback() {
        let keys = Keys::new(
            &[config_key("ci", "izzi-ci-0000000000")],
            Some("izzi-setup-key-0"),
            &[],
        );
        let block = IpBlock::new(&security(10));
        let now = Instant::now();
        let status = |ip: &str, key: Option<&str>| {
            authenticate(&keys, &block, Some(ip.parse().unwrap()), key, now)
                .map(|c| c.name.clone())
                .map_err(|e| e.into_response().status().as_u16())
        };
        for ip in ["10.1.2.3", "127.0.0.1"] {
            for _ in 0..9 {
                assert_eq!(status(ip, Some("izzi-wrong-000000")), Err(401), "{ip}");
            }
            assert_eq!(
                status(ip, None),
                Err(401),
                "{ip}: a missing key does not count"
            );
            assert_eq!(status(ip, Some("izzi-wrong-000000")), Err(401), "{ip}");
            assert_eq!(status(ip, Some("izzi-wrong-000000")), Err(403), "{ip}");
        }
        assert_eq!(status("10.1.2.3", Some("izzi-ci-0000000000")), Err(403));
        assert_eq!(status("10.1.2.3", None), Err(403));
        assert_eq!(
            status("127.0.0.1", Some("izzi-ci-0000000000")),
            Ok("ci".to_owned())
        );
        assert_eq!(
            status("127.0.0.1", Some("izzi-setup-key-0")),
            Ok(SETUP_KEY_NAME.to_owned())
        );
        assert_eq!(status("127.0.0.1", None), Err(403));
        // The setup key is a wrong key from anywhere else, and counts as one.
        let block = IpBlock::new(&security(1));
        let keys = &keys;
        let remote = authenticate(
            keys,
            &block,
            Some("10.9.9.9".parse().unwrap()),
            Some("izzi-setup-key-0"),
            now,
        );
        assert_eq!(
            remote.unwrap_err().into_response().status(),
            StatusCode::UNAUTHORIZED
        );
        assert!(block.blocked("10.9.9.9".parse().unwrap(), now).is_some());
        // Other loopback addresses and the IPv4-mapped form are loopback too.
        let block = IpBlock::new(&security(1));
        for ip in ["127.0.0.2", "::ffff:127.0.0.1"] {
            let wrong = authenticate(keys, &block, Some(ip.parse().unwrap()), Some("x"), now);
            assert_eq!(
                wrong.unwrap_err().into_response().status(),
                StatusCode::UNAUTHORIZED
            );
            let valid = authenticate(
                keys,
                &block,
                Some(ip.parse().unwrap()),
                Some("izzi-ci-0000000000"),
                now,
            );
            assert_eq!(valid.unwrap().name, "ci", "{ip}");
        }
    }
}
