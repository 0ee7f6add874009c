//! Who may see the dashboard and its API: a loopback peer always; any other address only with
//! `[dashboard].admin_key`, sent as `Authorization: Bearer KEY` or as the cookie the page's key
//! form sets (`POST /izzi/login`, a digest of the key, `HttpOnly`, `SameSite=Strict`). Client
//! keys never pass. A blocked remote address is refused first; a wrong admin key counts toward
//! the IP block, a missing one does not. Never logs or echoes a key.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{ConnectInfo, Form, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::gateway::AppState;
use crate::gateway::auth::{IpBlock, ip_blocked};
use crate::gateway::errors::ApiError;
use crate::gateway::identity::{Peer, hash, presented_key};

/// The cookie the key form sets.
const COOKIE: &str = "izzi_admin";

/// The page a browser gets from another address without the admin key: a form for it.
const LOGIN: &str = include_str!("../../../ui/login.html");

/// The middleware in front of the page and the API: [`check`], then the handler.
pub(crate) async fn access(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let ip = peer_ip(&request);
    let admin_key = state.config.dashboard.admin_key.as_deref();
    match check(
        admin_key,
        &state.ip_block,
        ip,
        request.headers(),
        Instant::now(),
    ) {
        Ok(()) => next.run(request).await,
        Err(err) if request.uri().path() == "/" => login_page(err.status, &err.message),
        Err(err) => err.into_response(),
    }
}

/// `POST /izzi/login` (the key form): the cookie and back to the page, or the form again. The
/// key is checked from loopback too, so the form never sets a cookie that would not work.
pub(crate) async fn login(
    State(state): State<Arc<AppState>>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    Form(form): Form<LoginForm>,
) -> Response {
    let admin_key = state.config.dashboard.admin_key.as_deref();
    let presented = Presented::Key(digest(&form.key));
    let now = Instant::now();
    match check_key(
        admin_key,
        &state.ip_block,
        Some(remote.ip()),
        Some(&presented),
        now,
    ) {
        Ok(()) => {
            let cookie = format!(
                "{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age=2592000",
                digest(&form.key)
            );
            let mut response = (StatusCode::SEE_OTHER, [(header::LOCATION, "/")]).into_response();
            if let Ok(cookie) = HeaderValue::try_from(cookie) {
                response.headers_mut().insert(header::SET_COOKIE, cookie);
            }
            response
        }
        Err(err) => login_page(err.status, &err.message),
    }
}

/// The key form's body.
#[derive(serde::Deserialize)]
pub(crate) struct LoginForm {
    key: String,
}

fn peer_ip(request: &Request) -> Option<IpAddr> {
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
}

/// Whether a request from `ip` with `headers` may see the dashboard, or the refusal (403).
fn check(
    admin_key: Option<&str>,
    block: &IpBlock,
    ip: Option<IpAddr>,
    headers: &HeaderMap,
    now: Instant,
) -> Result<(), ApiError> {
    if Peer::of(ip) == Peer::Loopback {
        return Ok(());
    }
    let presented = presented_key(headers)
        .map(|key| Presented::Key(digest(key)))
        .or_else(|| cookie(headers).map(|c| Presented::Cookie(c.to_owned())));
    check_key(admin_key, block, ip, presented.as_ref(), now)
}

/// What a request offers for the admin key.
enum Presented {
    /// A key (header or form), as its [`digest`]: a wrong one counts toward the IP block.
    Key(String),
    /// The key form's cookie: a stale one (the admin key changed since) does not count, or the
    /// page's own polling would soon block its address.
    Cookie(String),
}

/// Whether `presented` opens the dashboard from `ip`, whatever the address: a blocked address is
/// refused first, a wrong key counts toward the block.
fn check_key(
    admin_key: Option<&str>,
    block: &IpBlock,
    ip: Option<IpAddr>,
    presented: Option<&Presented>,
    now: Instant,
) -> Result<(), ApiError> {
    let ip = ip.map(|ip| ip.to_canonical());
    if let Some(left) = ip.and_then(|ip| block.blocked(ip, now)) {
        return Err(ip_blocked(left));
    }
    let Some(admin_key) = admin_key else {
        return Err(ApiError::forbidden(
            "The dashboard answers only on this machine (loopback); set `dashboard.admin_key` in the config to open it from elsewhere.",
        ));
    };
    match presented {
        Some(Presented::Key(given) | Presented::Cookie(given)) if *given == digest(admin_key) => {
            Ok(())
        }
        Some(given) => {
            if let (Presented::Key(_), Some(ip)) = (given, ip) {
                block.failed(ip, now);
            }
            Err(ApiError::forbidden(
                "The admin key is not valid: it must be `dashboard.admin_key` of the gateway's config.",
            ))
        }
        None => Err(ApiError::forbidden(
            "The dashboard needs the admin key (`dashboard.admin_key`) from this address: send `Authorization: Bearer KEY`.",
        )),
    }
}

/// What the cookie holds for `key`: its SHA-256 in hex, so the key itself is never stored in
/// the browser.
fn digest(key: &str) -> String {
    hash(&format!("izzi-dashboard\0{key}"))
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The admin cookie's value, if the request has one.
fn cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| pair.trim().strip_prefix(COOKIE)?.strip_prefix('='))
}

fn login_page(status: StatusCode, message: &str) -> Response {
    let escaped = message
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    let mut response = (status, LOGIN.replace("{message}", &escaped)).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        axum::http::HeaderName::from_static("content-security-policy"),
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
        ),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADMIN: &str = "izzi-admin-0123456789abcdef";

    fn status(admin: Option<&str>, block: &IpBlock, ip: &str, headers: &HeaderMap) -> u16 {
        match check(
            admin,
            block,
            Some(ip.parse().unwrap()),
            headers,
            Instant::now(),
        ) {
            Ok(()) => 200,
            Err(err) => err.status.as_u16(),
        }
    }

    fn with(name: header::HeaderName, value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(name, value.parse().unwrap());
        headers
    }

    /// Loopback always passes; another address only with the admin key (header or cookie),
    /// never without one configured; a wrong key counts toward the block, a missing one not.
    #[test]
    fn loopback_or_the_admin_key() {
        let block = IpBlock::new(&crate::config::Security {
            ip_block_after_failures: 3,
            ..Default::default()
        });
        let none = HeaderMap::new();
        let bearer = with(header::AUTHORIZATION, &format!("Bearer {ADMIN}"));
        let cookie = with(header::COOKIE, &format!("a=b; {COOKIE}={}", digest(ADMIN)));
        let wrong = with(header::AUTHORIZATION, "Bearer izzi-client-key-000000");
        for ip in ["127.0.0.1", "::1", "::ffff:127.0.0.1"] {
            assert_eq!(status(None, &block, ip, &none), 200, "{ip}");
        }
        let lan = "10.1.2.3";
        assert_eq!(status(None, &block, lan, &none), 403);
        assert_eq!(status(None, &block, lan, &bearer), 403, "no admin key set");
        assert_eq!(status(Some(ADMIN), &block, lan, &bearer), 200);
        assert_eq!(status(Some(ADMIN), &block, lan, &cookie), 200);
        // The digest, not the key; a stale cookie is refused but never counts.
        let raw_cookie = with(header::COOKIE, &format!("{COOKIE}={ADMIN}"));
        for _ in 0..10 {
            assert_eq!(status(Some(ADMIN), &block, lan, &raw_cookie), 403);
        }
        for _ in 0..10 {
            assert_eq!(status(Some(ADMIN), &block, lan, &none), 403);
        }
        assert_eq!(
            status(Some(ADMIN), &block, lan, &bearer),
            200,
            "missing keys do not count"
        );
        // Three wrong keys block the address.
        for _ in 0..3 {
            assert_eq!(status(Some(ADMIN), &block, lan, &wrong), 403);
        }
        let blocked = check(
            Some(ADMIN),
            &block,
            Some(lan.parse().unwrap()),
            &bearer,
            Instant::now(),
        );
        assert_eq!(
            blocked.unwrap_err().kind,
            crate::gateway::errors::ErrorKind::IpBlocked
        );
        assert_eq!(status(Some(ADMIN), &block, "127.0.0.1", &none), 200);
    }
}
