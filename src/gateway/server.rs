//! HTTP wiring: routes under the three prefixes, the fallbacks, the accept loop with its
//! timeouts and idle cutoffs, graceful shutdown. No business rules.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use arc_swap::ArcSwap;
use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use futures_util::future::BoxFuture;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::sync::watch;
use tower::ServiceExt as _;

use super::AppState;
use super::errors::ApiError;
use super::reload::{Hangups, Source};
use super::{api, auth, compact, count, dashboard, metrics, models, proxy, responses};
use crate::protocol::Format;

/// The prefixes the API answers under.
const PREFIXES: [&str; 3] = ["/v1", "/openai/v1", "/api/v1"];

/// The inference routes (`POST`), under each prefix.
const INFERENCE: [(&str, Format); 3] = [
    ("/chat/completions", Format::Chat),
    ("/messages", Format::Messages),
    ("/responses", Format::Responses),
];

/// The format of an inference path (`/v1/messages`), if `path` is one.
fn inference(path: &str) -> Option<Format> {
    let rest = PREFIXES
        .iter()
        .find_map(|prefix| path.strip_prefix(prefix))?;
    INFERENCE
        .iter()
        .find_map(|&(route, format)| (rest == route).then_some(format))
}

/// The whole HTTP surface.
pub(crate) fn app(state: Arc<AppState>) -> Router {
    let api = INFERENCE
        .into_iter()
        .fold(Router::new(), |api, (path, format)| {
            api.route(
                path,
                post(move |s: State<Arc<AppState>>, r: Request| proxy::inference(s, format, r)),
            )
        })
        .route("/responses/compact", post(compact::compact))
        .route(
            "/responses/{id}",
            get(responses::retrieve).delete(responses::delete),
        )
        .route("/responses/{id}/input_items", get(responses::input_items))
        .route("/messages/count_tokens", post(count::count_tokens))
        .route("/models", get(models::list))
        .route("/models/{id}", get(models::one))
        .route_layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            auth::layer,
        ))
        .method_not_allowed_fallback(method_not_allowed);
    PREFIXES
        .into_iter()
        .fold(Router::new(), |app, prefix| app.nest(prefix, api.clone()))
        .nest("/izzi/api", api::routes(&state))
        .route("/health", get(health))
        .route("/metrics", get(metrics::render))
        .merge(dashboard::routes(&state))
        .fallback(not_found)
        .with_state(state)
}

/// Serves until SIGINT or SIGTERM, then lets in-flight requests finish for at most `grace` and
/// waits for the ledger to commit their rows. Each SIGHUP reloads the config (`reload`).
///
/// Connections are served by hyper directly (not `axum::serve`) for what a gateway facing
/// hostile clients needs: a header read timeout against slow senders, the same idle cutoff for
/// HTTP/1 and HTTP/2, a cap on open connections, and graceful shutdown that waits for streams.
pub(crate) async fn run(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    grace: Duration,
    source: Source,
    hangups: Hangups,
) -> anyhow::Result<()> {
    let server = state.config.server.clone();
    raise_open_file_limit(server.max_connections);
    let header_timeout = Duration::from_secs(server.header_read_timeout_s);
    let slots = Arc::new(tokio::sync::Semaphore::new(server.max_connections));
    let live = Arc::new(ArcSwap::from_pointee(Live::new(state)));
    let reloader = tokio::spawn(reload_on_hangup(Arc::clone(&live), source, hangups));
    let sweeper = {
        let state = &live.load().state;
        state.alerts.note_standing(state);
        let live = Arc::clone(&live);
        tokio::spawn(super::alerts::sweep(move || Arc::clone(&live.load().state)))
    };
    // Shutdown is sent once; every connection holds a receiver until it ends, so the sender
    // knows when the last one has.
    let (stop, _) = watch::channel(());
    let mut signal = std::pin::pin!(shutdown_signal());
    loop {
        let slot = tokio::select! {
            slot = Arc::clone(&slots).acquire_owned() => slot?,
            () = &mut signal => break,
        };
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut signal => break,
        };
        let _ = stream.set_nodelay(true);
        let live = Arc::clone(&live);
        let stopped = stop.subscribe();
        tokio::spawn(async move {
            let _slot = slot;
            // hyper's header timeout starts at the first byte: a client that connects and
            // sends nothing would hold its slot forever.
            let Ok(Some(h2)) = tokio::time::timeout(header_timeout, speaks_h2(&stream)).await
            else {
                return;
            };
            let io = TokioIo::new(stream);
            let served = if h2 {
                // hyper cuts an idle HTTP/1 connection with its header timeout, which also runs
                // between requests; HTTP/2 has no such timer, so the same cutoff is kept here.
                let in_flight = InFlight::default();
                let counted = in_flight.clone();
                let service = hyper::service::service_fn(move |request| {
                    let busy = counted.start();
                    let call = serve(&live, remote, request);
                    async move {
                        let response = call.await?;
                        Ok::<_, std::convert::Infallible>(
                            response.map(|body| Counted { body, _busy: busy }),
                        )
                    }
                });
                let connection = http2::Builder::new(TokioExecutor::new())
                    .timer(TokioTimer::new())
                    .serve_connection(io, service);
                let idle = || in_flight.idle_for(header_timeout);
                drive(
                    connection,
                    hyper::server::conn::http2::Connection::graceful_shutdown,
                    stopped,
                    idle,
                )
                .await
            } else {
                let service =
                    hyper::service::service_fn(move |request| serve(&live, remote, request));
                let connection = http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(header_timeout)
                    .serve_connection(io, service);
                // hyper ends an idle connection itself.
                let idle = std::future::pending;
                drive(
                    connection,
                    hyper::server::conn::http1::Connection::graceful_shutdown,
                    stopped,
                    idle,
                )
                .await
            };
            if let Err(err) = served {
                tracing::debug!(error = %err, %remote, "connection ended with an error");
            }
        });
    }
    drop(listener);
    reloader.abort();
    sweeper.abort();
    let state = Arc::clone(&live.load().state);
    tracing::info!(
        grace_s = grace.as_secs(),
        "shutting down: finishing in-flight requests"
    );
    let _ = stop.send(());
    if tokio::time::timeout(grace, stop.closed()).await.is_err() {
        tracing::warn!("in-flight requests did not finish within the grace period; closing them");
    }
    // Requests still running after the grace period write their rows when the runtime drops
    // them; the ledger's last handle waits for those.
    state.ledger.flush().await;
    state.limits.flush().await;
    tracing::info!("usage ledger flushed");
    Ok(())
}

/// One request, with the client's address for the auth layer, served by the state current when
/// it arrives, which it keeps to its end.
fn serve(
    live: &ArcSwap<Live>,
    remote: std::net::SocketAddr,
    mut request: hyper::Request<Incoming>,
) -> impl Future<Output = Result<Response, std::convert::Infallible>> + Send + use<> {
    request.extensions_mut().insert(ConnectInfo(remote));
    let answer = live.load().call(request.map(axum::body::Body::new));
    async move { Ok(answer.await) }
}

/// Serves `connection` until it ends. When the server shuts down, or `idle()` resolves first,
/// the connection is asked (`close`) to finish the requests it has and end. One closed for
/// being idle is dropped when `idle()` resolves again: HTTP/2 sends GOAWAY and waits for the
/// client to answer a PING, which a stuck client never does, and a request that crossed the
/// GOAWAY is still served.
async fn drive<C, E, F>(
    connection: C,
    close: impl FnOnce(Pin<&mut C>),
    mut stop: watch::Receiver<()>,
    idle: impl Fn() -> F,
) -> Result<(), E>
where
    C: Future<Output = Result<(), E>>,
    F: Future<Output = ()>,
{
    let mut connection = std::pin::pin!(connection);
    let was_idle = tokio::select! {
        served = connection.as_mut() => return served,
        _ = stop.changed() => false,
        () = idle() => true,
    };
    close(connection.as_mut());
    if was_idle {
        return tokio::select! {
            served = connection.as_mut() => served,
            () = idle() => Ok(()),
        };
    }
    // `stop` lives until the connection ends: shutdown waits for that.
    connection.await
}

/// How many requests one HTTP/2 connection has in flight, answers still streaming included.
#[derive(Clone, Default)]
struct InFlight(Arc<watch::Sender<usize>>);

impl InFlight {
    /// Counts a request until the returned guard drops.
    fn start(&self) -> Busy {
        self.0.send_modify(|n| *n += 1);
        Busy(Arc::clone(&self.0))
    }

    /// Resolves once no request has been in flight for `cutoff`.
    fn idle_for(&self, cutoff: Duration) -> impl Future<Output = ()> + use<> {
        let mut count = self.0.subscribe();
        async move {
            loop {
                // `wait_for`'s guard is dropped at once: nothing is held across an await.
                if count.wait_for(|n| *n == 0).await.is_err() {
                    return;
                }
                tokio::select! {
                    () = tokio::time::sleep(cutoff) => return,
                    // A request started (and perhaps already ended): wait again from the start.
                    _ = count.changed() => {}
                }
            }
        }
    }
}

/// One request in flight; counted down when dropped.
struct Busy(Arc<watch::Sender<usize>>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n -= 1);
    }
}

/// A response body that keeps its request in flight until hyper is done with it (sent whole,
/// or dropped when the stream is reset).
struct Counted {
    body: axum::body::Body,
    _busy: Busy,
}

impl hyper::body::Body for Counted {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// The state new requests get, and the routes built on it.
pub(super) struct Live {
    state: Arc<AppState>,
    app: Router,
}

impl Live {
    pub(super) fn new(state: Arc<AppState>) -> Self {
        Self {
            app: app(Arc::clone(&state)),
            state,
        }
    }

    /// Answers `request`. The inference routes, nearly every request a gateway serves, go
    /// straight to their handler behind the auth guard; the router ([`app`], which has them
    /// too) would add its path matching, the rewritten URI of a nested route, and a boxed
    /// middleware per request. Everything else goes through the router.
    ///
    /// Boxed: hyper keeps a request's future in its connection's task until the answer's head
    /// is out, then drops it; inline, its ~5 KB would stay in every connection's task for the
    /// connection's life, a stream's included.
    pub(super) fn call(&self, request: Request) -> BoxFuture<'static, Response> {
        let route = match (request.method(), inference(request.uri().path())) {
            (&Method::POST, Some(format)) => Route::Inference(format),
            _ => Route::Router(self.app.clone()),
        };
        let state = Arc::clone(&self.state);
        Box::pin(async move {
            match route {
                Route::Inference(format) => {
                    auth::guard(&state, request, |request| {
                        proxy::inference(State(Arc::clone(&state)), format, request)
                    })
                    .await
                }
                Route::Router(app) => match app.oneshot(request).await {
                    Ok(response) => response,
                    Err(never) => match never {},
                },
            }
        })
    }
}

/// Who answers a request: the inference handler directly, or the router.
enum Route {
    Inference(Format),
    Router(Router),
}

/// Reloads the config on every SIGHUP; a reload that fails leaves `live` as it was.
async fn reload_on_hangup(live: Arc<ArcSwap<Live>>, source: Source, mut hangups: Hangups) {
    loop {
        hangups.next().await;
        let current = live.load_full();
        if let Some(state) = super::reload::reload(&current.state, &source).await {
            live.store(Arc::new(Live::new(Arc::new(state))));
        }
    }
}

/// Raises the soft limit on open files to the hard one. A stream holds two descriptors (the
/// client's connection and the upstream's), so the common soft default of 1,024 would stop a
/// gateway near 500 concurrent streams, with accepts failing, while the system allows far more.
#[cfg(unix)]
fn raise_open_file_limit(max_connections: usize) {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    // Linux's default ceiling for one process (`fs.nr_open`) when the hard limit is unlimited.
    const UNLIMITED: u64 = 1 << 20;
    let before = getrlimit(Resource::Nofile);
    let want = before.maximum.unwrap_or(UNLIMITED);
    let soft = match before.current {
        Some(current) if current < want => {
            let raised = Rlimit {
                current: Some(want),
                maximum: before.maximum,
            };
            match setrlimit(Resource::Nofile, raised) {
                Ok(()) => {
                    tracing::debug!(from = current, to = want, "raised the open-file limit");
                    want
                }
                Err(err) => {
                    tracing::debug!(error = %err, "could not raise the open-file limit");
                    current
                }
            }
        }
        current => current.unwrap_or(want),
    };
    let streams = soft / 2;
    if streams < max_connections as u64 {
        tracing::info!(
            open_files = soft,
            "the open-file limit allows about {streams} concurrent streams, fewer than `server.max_connections`; raise `ulimit -n` for more"
        );
    }
}

#[cfg(not(unix))]
fn raise_open_file_limit(_max_connections: usize) {}

/// The first bytes of an HTTP/2 connection with prior knowledge (RFC 9113 §3.4).
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Whether a new connection speaks HTTP/2 (its first bytes are the preface) or HTTP/1; `None`
/// if it closes first. Only peeks, so hyper reads the request from the socket into its own
/// buffer: a connection sniffed by reading would hand hyper its first bytes apart, and hyper
/// would then double its read buffer, 8 KiB more for every open connection.
async fn speaks_h2(stream: &tokio::net::TcpStream) -> Option<bool> {
    let mut seen = [0u8; H2_PREFACE.len()];
    let mut wait = Duration::from_millis(1);
    loop {
        let n = stream.peek(&mut seen).await.ok()?;
        if n == 0 {
            return None;
        }
        if seen[..n] != H2_PREFACE[..n] {
            return Some(false);
        }
        if n == H2_PREFACE.len() {
            return Some(true);
        }
        // The start of the preface, the rest not yet here (an HTTP/1 method differs by its
        // second byte): a peek would return at once with the same bytes, so wait, longer each
        // time, so that clients stalling mid-preface until the header timeout cost few wake-ups.
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_millis(50));
    }
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

/// `GET /health`: `"status": "ok"`, or `"degraded"` while the ledger cannot write `izzi.db`
/// (locked, disk full) and holds rows in memory; also what `izzi service status` and a second
/// `izzi serve` on the same port show: version, pid, uptime, the config file and its reloads. Degraded is still 200: requests are being
/// served, and a supervisor that restarts on a failing check would lose the rows waiting.
async fn health(State(state): State<Arc<AppState>>) -> Response {
    let ledger = state.ledger.health();
    let status = if ledger.degraded() { "degraded" } else { "ok" };
    axum::Json(serde_json::json!({
        "status": status,
        "service": "izzi",
        "version": env!("CARGO_PKG_VERSION"),
        "pid": std::process::id(),
        "uptime_s": state.process.uptime_s(),
        "config": state.process.reloads(),
        "ledger": ledger,
        "providers": state
            .breakers
            .statuses(state.router.providers().iter().map(|p| p.name.as_str()))
            .into_iter()
            .collect::<std::collections::BTreeMap<_, _>>(),
    }))
    .into_response()
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
