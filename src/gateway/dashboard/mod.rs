//! The dashboard: its page (static files embedded from `ui/`) at `/` and `/izzi/ui/`, and the
//! one access rule for the page and its JSON API under `/izzi/api/` ([`access`]). The files hold
//! no data: every number comes from the API. `HEAD /` stays outside the rule: it is Claude
//! Code's unauthenticated preconnect.

mod access;

use std::sync::Arc;

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use super::AppState;
use super::errors::ApiError;
pub(crate) use access::access;

/// Where the page's files are served.
pub(crate) const UI_PREFIX: &str = "/izzi/ui/";

/// One embedded file: its name under [`UI_PREFIX`], content type and bytes.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

const INDEX: &str = include_str!("../../../ui/index.html");

const ASSETS: &[Asset] = &[
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../../../ui/app.js"),
    },
    Asset {
        name: "app.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("../../../ui/app.css"),
    },
    Asset {
        name: "icon.svg",
        content_type: "image/svg+xml",
        body: include_str!("../../../ui/icon.svg"),
    },
];

/// The page's routes: `GET /` and the files behind [`access`], the admin-key form's post, and
/// `HEAD /` outside the rule.
pub(crate) fn routes(state: &Arc<AppState>) -> Router<Arc<AppState>> {
    let access = || axum::middleware::from_fn_with_state(Arc::clone(state), access);
    Router::new()
        .route("/", get(index).route_layer(access()).head(preconnect))
        .route("/izzi/ui/{file}", get(asset).route_layer(access()))
        .route("/izzi/login", post(access::login))
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
}

/// `HEAD /` is Claude Code's preconnect before every turn: any answer will do, no key needed,
/// and it never counts as a failed authentication.
async fn preconnect() {}

async fn index() -> Response {
    with_headers("text/html; charset=utf-8", INDEX)
}

async fn asset(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|a| a.name == file) {
        Some(asset) => with_headers(asset.content_type, asset.body),
        None => ApiError::not_found(format!("No such dashboard file: {UI_PREFIX}{file}"))
            .into_response(),
    }
}

/// A file with headers that keep the page to this origin: the content security policy lets
/// it load and fetch from the gateway only (no CDN, no third party, no inline script).
fn with_headers(content_type: &'static str, body: &'static str) -> Response {
    const CSP: HeaderName = HeaderName::from_static("content-security-policy");
    const NOSNIFF: HeaderName = HeaderName::from_static("x-content-type-options");
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        CSP,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        ),
    );
    headers.insert(NOSNIFF, HeaderValue::from_static("nosniff"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}
