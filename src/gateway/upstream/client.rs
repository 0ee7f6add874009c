//! The pooled client that carries requests to providers: hyper's own client over rustls, with
//! the connect and idle-read timeouts izzi promises; for a plain-HTTP provider hyper's HTTP/1
//! connections in a pool of the endpoint's own (`pool`); reqwest only for a provider a proxy
//! from the environment intercepts (`HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`, `NO_PROXY`).
//!
//! Why not reqwest everywhere: on the request path its layers (redirect and retry services that
//! parse the URL again, request building, a timer reset on every chunk) cost more CPU than
//! hyper's client itself (docs/bench.md). Here the URI and constant headers are built once per
//! provider ([`Endpoint`]), and the idle timer is re-armed only when it fires ([`Silence`]).

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Uri, header};
use bytes::Bytes;
use http_body_util::{Either, Full};
use hyper::body::{Body as _, Frame, Incoming, SizeHint};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::time::{Instant, Sleep};

use super::pool::{Checkin, Pool};
use crate::config::Server;
use crate::protocol::Kind;

/// Any error on the way to a provider or back.
pub(crate) type BoxError = Box<dyn StdError + Send + Sync>;

/// An upstream answer's body: from hyper's client (behind the idle timeout) or from reqwest
/// (through a proxy).
pub(crate) type Body = Either<Idle<Incoming>, reqwest::Body>;

/// The client every request of one config uses; cheap to clone (both pools are shared).
#[derive(Clone)]
pub(crate) struct Client {
    direct: legacy::Client<Connector<HttpsConnector<HttpConnector>>, Full<Bytes>>,
    /// TCP alone under the same deadline, for plain-HTTP endpoints' own pools: their
    /// connections hold no TLS state.
    tcp: Connector<HttpConnector>,
    /// For providers behind a proxy: reqwest speaks to proxies (CONNECT, forwarding, their
    /// credentials), with the same timeouts.
    proxied: reqwest::Client,
    /// `server.upstream_idle_timeout_s`: longest silence waiting for the answer's head or
    /// between two of its chunks. Not a total: long generations must not be cut.
    idle: Duration,
}

impl Client {
    /// Keep-alive pool, HTTP/2 where a TLS upstream offers it (ALPN), a connect timeout over
    /// TCP and TLS together, and the idle-read timeout.
    pub(crate) fn new(server: &Server) -> anyhow::Result<Self> {
        let connect_timeout = Duration::from_secs(server.connect_timeout_s);
        let idle = Duration::from_secs(server.upstream_idle_timeout_s);
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(connect_timeout));
        http.set_keepalive(Some(Duration::from_secs(15)));
        http.set_keepalive_interval(Some(Duration::from_secs(15)));
        http.set_keepalive_retries(Some(3));
        let tcp = Connector {
            inner: http.clone(),
            timeout: connect_timeout,
        };
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls_config()?)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        let direct = legacy::Client::builder(TokioExecutor::new())
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(POOL_IDLE)
            .pool_max_idle_per_host(POOL_MAX_IDLE)
            .build(Connector {
                inner: https,
                timeout: connect_timeout,
            });
        let proxied = reqwest::Client::builder()
            .connect_timeout(connect_timeout)
            .read_timeout(idle)
            .pool_idle_timeout(POOL_IDLE)
            .pool_max_idle_per_host(POOL_MAX_IDLE)
            // A redirect would re-send the body and the provider's key elsewhere: never follow.
            .redirect(reqwest::redirect::Policy::none())
            .tcp_nodelay(true)
            .build()?;
        Ok(Self {
            direct,
            tcp,
            proxied,
            idle,
        })
    }

    /// Posts `body` to `uri` with `headers`; the answer's head within the idle timeout.
    pub(crate) async fn post(
        &self,
        endpoint: &Endpoint,
        uri: &Uri,
        headers: HeaderMap,
        body: Bytes,
    ) -> Result<axum::http::Response<Body>, BoxError> {
        if endpoint.proxied {
            let response = self
                .proxied
                .post(uri.to_string())
                .headers(headers)
                .body(body)
                .send()
                .await?;
            return Ok(axum::http::Response::from(response).map(Either::Right));
        }
        let mut request = Request::new(Full::new(body));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = uri.clone();
        *request.headers_mut() = headers;
        // One timer per request: it bounds the wait for the head, then the body's silences.
        let mut silence = Silence::new(self.idle);
        let exchange = async {
            match &endpoint.pool {
                // Boxed, as hyper-util boxes its own: this future is held only until the head, but
                // a stream's handler would hold its size inline to the end.
                Some(pool) => Box::pin(pool.send(&self.tcp, uri, request))
                    .await
                    .map(|(response, checkin)| (response, Some(checkin))),
                None => Ok((self.direct.request(request).await?, None)),
            }
        };
        let (response, mut checkin) = tokio::select! {
            biased;
            exchange = exchange => exchange?,
            () = std::future::poll_fn(|cx| silence.poll_silent(cx)) => {
                return Err(TimedOut::IDLE.into());
            }
        };
        silence.heard();
        if response.body().is_end_stream()
            && let Some(checkin) = checkin.take()
        {
            checkin.give_back();
        }
        Ok(response.map(|body| {
            Either::Left(Idle {
                inner: body,
                silence,
                checkin,
            })
        }))
    }
}

/// Idle upstream connections are closed after this long.
pub(super) const POOL_IDLE: Duration = Duration::from_secs(90);
/// Idle upstream connections kept per host after a burst: enough for steady load, bounded
/// memory.
pub(super) const POOL_MAX_IDLE: usize = 64;

/// rustls with the process's crypto provider (ring) and the system's roots through the
/// platform verifier, as reqwest builds it.
fn tls_config() -> anyhow::Result<rustls::ClientConfig> {
    let provider = rustls::crypto::CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()));
    let verifier = rustls_platform_verifier::Verifier::new(Arc::clone(&provider))?;
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth())
}

/// Where one provider's requests go and the headers every one of them carries, built once
/// when the config loads.
#[derive(Debug)]
pub(crate) struct Endpoint {
    /// `{base_url}/v1/messages` or `{base_url}/chat/completions`.
    pub(crate) messages: Uri,
    /// Anthropic's native token counting endpoint.
    pub(crate) count_tokens: Uri,
    /// Content type, user agent, the provider's key (marked sensitive) and, toward Anthropic,
    /// the default `anthropic-version`.
    pub(crate) headers: HeaderMap,
    /// A proxy from the environment intercepts this provider: it goes through reqwest.
    pub(crate) proxied: bool,
    /// A plain-HTTP provider's own connections; `https` ones share hyper-util's pool.
    pool: Option<Pool>,
}

/// The Anthropic API version sent when the client names none.
const DEFAULT_ANTHROPIC_VERSION: &str = "2023-06-01";

impl Endpoint {
    /// The endpoint of a `kind` provider at `base_url`; errors say what is wrong, never the key.
    pub(crate) fn new(kind: Kind, base_url: &str, api_key: Option<&str>) -> anyhow::Result<Self> {
        let base = base_url.trim_end_matches('/');
        let uri = |path: &str| -> anyhow::Result<Uri> {
            let uri = Uri::try_from(format!("{base}{path}"))
                .map_err(|_| anyhow::anyhow!("`base_url` `{base_url}` is not a valid URL"))?;
            match (uri.scheme_str(), uri.host()) {
                (Some("http" | "https"), Some(_)) => Ok(uri),
                _ => anyhow::bail!("`base_url` `{base_url}` is not an http:// or https:// URL"),
            }
        };
        let messages = uri(match kind {
            Kind::Anthropic => "/v1/messages",
            Kind::Openai => "/chat/completions",
        })?;
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
        headers.insert(
            header::USER_AGENT,
            HeaderValue::from_static(concat!("izzi/", env!("CARGO_PKG_VERSION"))),
        );
        if kind == Kind::Anthropic {
            headers.insert(
                ANTHROPIC_VERSION,
                HeaderValue::from_static(DEFAULT_ANTHROPIC_VERSION),
            );
        }
        if let Some(key) = api_key {
            let (name, value) = match kind {
                Kind::Anthropic => (HeaderName::from_static("x-api-key"), key.to_owned()),
                Kind::Openai => (header::AUTHORIZATION, format!("Bearer {key}")),
            };
            let mut value = HeaderValue::try_from(value)
                .map_err(|_| anyhow::anyhow!("its API key holds characters a header cannot"))?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        if let Some(host) = http1_host(&messages) {
            headers.insert(header::HOST, host);
        }
        let proxied = hyper_util::client::proxy::matcher::Matcher::from_system()
            .intercept(&messages)
            .is_some();
        let pool = (messages.scheme_str() == Some("http") && !proxied).then(Pool::default);
        Ok(Self {
            count_tokens: uri("/v1/messages/count_tokens")?,
            messages,
            headers,
            proxied,
            pool,
        })
    }
}

/// The `Host` header of a plain-HTTP provider, as hyper's client would write it on every request
/// over HTTP/1 (the host, and the port unless it is 80): built once here, the client finds it set
/// and formats nothing. An `https` provider may negotiate HTTP/2, which names the host in
/// `:authority` instead, so it gets none.
fn http1_host(uri: &Uri) -> Option<HeaderValue> {
    if uri.scheme_str() != Some("http") {
        return None;
    }
    let host = uri.host()?;
    let value = match uri.port_u16() {
        Some(port) if port != 80 => format!("{host}:{port}"),
        _ => host.to_owned(),
    };
    HeaderValue::try_from(value).ok()
}

pub(super) const ANTHROPIC_VERSION: HeaderName = HeaderName::from_static("anthropic-version");

/// A connector (hyper-rustls's, or hyper-util's TCP one) with one deadline over TCP connect and
/// TLS handshake together.
#[derive(Clone)]
pub(super) struct Connector<C> {
    inner: C,
    timeout: Duration,
}

type Connecting<T> = Pin<Box<dyn Future<Output = Result<T, BoxError>> + Send>>;

impl<C> tower::Service<Uri> for Connector<C>
where
    C: tower::Service<Uri>,
    C::Error: Into<BoxError>,
    C::Future: Send + 'static,
{
    type Response = C::Response;
    type Error = BoxError;
    type Future = Connecting<C::Response>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connecting = self.inner.call(uri);
        let timeout = self.timeout;
        Box::pin(async move {
            match tokio::time::timeout(timeout, connecting).await {
                Ok(Ok(io)) => Ok(io),
                Ok(Err(err)) => Err(ConnectFailed(err.into()).into()),
                Err(_) => Err(ConnectFailed(TimedOut::CONNECT.into()).into()),
            }
        })
    }
}

/// No connection to the provider: TCP connect, TLS handshake or their deadline failed. Marks the
/// failure the same way on hyper-util's client and on the plain-HTTP pool.
#[derive(Debug)]
pub(crate) struct ConnectFailed(BoxError);

impl fmt::Display for ConnectFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("cannot connect")
    }
}

impl StdError for ConnectFailed {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&*self.0)
    }
}

/// An upstream that took longer than its timeout.
#[derive(Debug)]
pub(crate) struct TimedOut(&'static str);

impl TimedOut {
    const CONNECT: Self = Self("connecting took longer than `server.connect_timeout_s`");
    const IDLE: Self = Self("silent for longer than `server.upstream_idle_timeout_s`");
}

impl fmt::Display for TimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl StdError for TimedOut {}

/// Notices when nothing happened for `after`. Each event only notes the time; the timer is moved
/// on only when it fires (to the last event's time plus `after`), so a busy stream costs no timer
/// work per event.
pub(crate) struct Silence {
    timer: Pin<Box<Sleep>>,
    last: Instant,
    after: Duration,
}

impl Silence {
    pub(crate) fn new(after: Duration) -> Self {
        Self {
            timer: Box::pin(tokio::time::sleep(after)),
            last: Instant::now(),
            after,
        }
    }

    /// Something happened: the silence starts again from now.
    pub(crate) fn heard(&mut self) {
        self.last = Instant::now();
    }

    /// Ready once `after` has passed since the last event (or since the last time it was
    /// ready): then the silence starts again.
    pub(crate) fn poll_silent(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            ready!(self.timer.as_mut().poll(cx));
            let now = Instant::now();
            let deadline = self.last + self.after;
            if deadline <= now {
                self.last = now;
                self.timer.as_mut().reset(now + self.after);
                return Poll::Ready(());
            }
            self.timer.as_mut().reset(deadline);
        }
    }
}

/// A body that fails with [`TimedOut`] once no frame came for the idle timeout, and gives its
/// connection back to its endpoint's pool once it ends.
pub(crate) struct Idle<B> {
    inner: B,
    silence: Silence,
    checkin: Option<Checkin>,
}

impl<B> hyper::body::Body for Idle<B>
where
    B: hyper::body::Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            this.silence.heard();
            let ended = match &frame {
                None => true,
                Some(Ok(_)) => this.inner.is_end_stream(),
                // A broken answer leaves its connection unusable: it closes with the body.
                Some(Err(_)) => false,
            };
            if ended && let Some(checkin) = this.checkin.take() {
                checkin.give_back();
            }
            return Poll::Ready(frame.map(|frame| frame.map_err(Into::into)));
        }
        ready!(this.silence.poll_silent(cx));
        Poll::Ready(Some(Err(TimedOut::IDLE.into())))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt as _;
    use http_body_util::{BodyExt as _, StreamBody};

    use super::*;

    #[test]
    fn a_plain_http_provider_carries_the_host_header_hyper_would_write() {
        let host = |base: &str| {
            let endpoint = Endpoint::new(Kind::Openai, base, None).expect("a valid base URL");
            endpoint
                .headers
                .get(header::HOST)
                .map(|v| v.to_str().expect("ASCII").to_owned())
        };
        assert_eq!(
            host("http://127.0.0.1:8080/v1").as_deref(),
            Some("127.0.0.1:8080")
        );
        assert_eq!(host("http://models.lan/v1").as_deref(), Some("models.lan"));
        assert_eq!(host("http://models.lan:80").as_deref(), Some("models.lan"));
        assert_eq!(
            host("http://[::1]:11434/v1").as_deref(),
            Some("[::1]:11434")
        );
        // HTTP/2 may be negotiated: the host travels as `:authority`.
        assert_eq!(host("https://api.openai.com/v1"), None);
    }

    #[tokio::test]
    async fn the_idle_timer_counts_from_the_last_frame_not_the_first() {
        // Five frames 100 ms apart (500 ms in all, more than twice the idle timeout), then
        // a silence.
        let frames = futures_util::stream::unfold(0, |sent| async move {
            let wait = if sent < 5 { 100 } else { 60_000 };
            tokio::time::sleep(Duration::from_millis(wait)).await;
            Some((
                Ok::<_, BoxError>(Frame::data(Bytes::from_static(b"x"))),
                sent + 1,
            ))
        });
        let mut body = Idle {
            inner: StreamBody::new(frames.boxed()),
            silence: Silence::new(Duration::from_millis(200)),
            checkin: None,
        };
        let started = Instant::now();
        for _ in 0..5 {
            let frame = body.frame().await.expect("a frame").expect("not timed out");
            assert_eq!(frame.into_data().ok(), Some(Bytes::from_static(b"x")));
        }
        let err = body
            .frame()
            .await
            .expect("an error")
            .expect_err("timed out");
        assert!(err.is::<TimedOut>(), "{err}");
        // The last frame came at about 500 ms: the silence after it, not the total, timed out.
        let elapsed = started.elapsed();
        assert!(elapsed >= Duration::from_millis(700), "{elapsed:?}");
        assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    }

    #[tokio::test]
    async fn a_body_that_ends_is_not_timed_out() {
        let frames = futures_util::stream::iter([Ok::<_, BoxError>(Frame::data(
            Bytes::from_static(b"whole"),
        ))]);
        let body = Idle {
            inner: StreamBody::new(frames.boxed()),
            silence: Silence::new(Duration::from_millis(50)),
            checkin: None,
        };
        let whole = body.collect().await.expect("no timeout").to_bytes();
        assert_eq!(whole, Bytes::from_static(b"whole"));
    }
}
