//! HTTP wiring: routes under the three prefixes, the fallbacks, graceful shutdown. No business
//! rules.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use super::AppState;
use super::errors::ApiError;
use super::{models, proxy};
use crate::protocol::Format;

/// The whole HTTP surface.
pub(crate) fn app(state: Arc<AppState>) -> Router {
    let api = Router::new()
        .route(
            "/chat/completions",
            post(|s: State<Arc<AppState>>, r: Request| proxy::inference(s, Format::Chat, r)),
        )
        .route(
            "/messages",
            post(|s: State<Arc<AppState>>, r: Request| proxy::inference(s, Format::Messages, r)),
        )
        .route(
            "/responses",
            post(|s: State<Arc<AppState>>, r: Request| proxy::inference(s, Format::Responses, r)),
        )
        .route("/messages/count_tokens", post(proxy::count_tokens))
        .route("/models", get(models::list))
        .route("/models/{id}", get(models::one))
        .method_not_allowed_fallback(method_not_allowed);
    Router::new()
        .nest("/v1", api.clone())
        .nest("/openai/v1", api.clone())
        .nest("/api/v1", api)
        .route("/health", get(health))
        .route("/", get(root).head(root))
        .fallback(not_found)
        .with_state(state)
}

/// Serves until SIGINT or SIGTERM, then lets in-flight requests finish for at most `grace`.
pub(crate) async fn run(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    grace: Duration,
) -> anyhow::Result<()> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let app = app(state).into_make_service_with_connect_info::<SocketAddr>();
    let mut stopped = stop_rx.clone();
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        let _ = stopped.wait_for(|s| *s).await;
    });
    let mut server = std::pin::pin!(server.into_future());
    tokio::select! {
        result = &mut server => return result.map_err(Into::into),
        () = shutdown_signal() => {}
    }
    tracing::info!(
        grace_s = grace.as_secs(),
        "shutting down: finishing in-flight requests"
    );
    let _ = stop_tx.send(true);
    if tokio::time::timeout(grace, server).await.is_err() {
        tracing::warn!("in-flight requests did not finish within the grace period; closing them");
    }
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

async fn health() -> Response {
    axum::Json(serde_json::json!({"status": "ok", "version": env!("CARGO_PKG_VERSION")}))
        .into_response()
}

/// `HEAD /` is Claude Code's preconnect before every turn: any answer will do, no key needed.
async fn root(method: Method) -> Response {
    if method == Method::HEAD {
        return ().into_response();
    }
    "izzi gateway: the API is under /v1 (also /openai/v1 and /api/v1)\n".into_response()
}

async fn not_found(request: Request) -> ApiError {
    ApiError::not_found(format!(
        "No such path: {} {}",
        request.method(),
        request.uri().path()
    ))
}

async fn method_not_allowed() -> ApiError {
    ApiError::method_not_allowed()
}
