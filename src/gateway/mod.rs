//! `izzi serve`: the local gateway. `server` wires HTTP; `proxy` carries one request through
//! auth, routing, translation and the upstream; the other modules each own one concern.

mod affinity;
mod alerts;
mod api;
mod auth;
mod breaker;
mod compact;
mod count;
mod dashboard;
mod dispatch;
mod errors;
mod identity;
mod ledger;
mod life;
mod limits;
mod metrics;
mod models;
mod proxy;
mod relay;
mod reload;
mod request;
mod responses;
mod routing;
mod rules;
mod server;
mod telemetry;
#[cfg(test)]
mod tests;
mod upstream;
mod upstream_stats;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context as _, Result, bail};

use crate::config::Config;

pub(crate) use identity::hash as hash_key;
#[cfg(feature = "fuzzing")]
pub(crate) use request::check_shape;
/// The hosted Izzi API: the gateway's default upstream and `izzi setup`'s default endpoint.
pub(crate) use routing::HOSTED_BASE;
/// `izzi config check` builds one to check the catalog and providers as `serve` would.
pub(crate) use routing::Router;
/// `izzi route explain` evaluates the rules as `serve` would.
pub(crate) use rules::{Check as RuleCheck, Request as RuleRequest};

/// A map keyed by names the config gives (client keys, providers, models): hashed with
/// foldhash instead of SipHash, several times per request. Never for keys a client chooses.
type NamedMap<V> = std::collections::HashMap<String, V, foldhash::fast::RandomState>;

/// Shared state of a running gateway. A request sees one `AppState` from start to end: a config
/// reload makes a new one (its own `config`, `router` and `client`) around the same keys, limits,
/// ledger and counters, so requests in flight finish on the config they started with.
pub(crate) struct AppState {
    pub(crate) config: Config,
    pub(crate) router: routing::Router,
    pub(crate) keys: Arc<identity::Keys>,
    pub(crate) ip_block: Arc<auth::IpBlock>,
    pub(crate) limits: Arc<limits::Limits>,
    pub(crate) ledger: ledger::Ledger,
    /// Stored Responses state (`store: true`), on its own connection.
    pub(crate) responses: Arc<crate::store::ResponseStore>,
    pub(crate) metrics: metrics_exporter_prometheus::PrometheusHandle,
    pub(crate) client: upstream::Client,
    /// Where the config came from, when it started, how its reloads went: for `/health`.
    pub(crate) process: Arc<reload::Process>,
    /// The budget and balance alerts fired this month.
    pub(crate) alerts: Arc<alerts::Alerts>,
    /// The JSON API's own connection to the ledger.
    pub(crate) reader: Arc<api::Reader>,
    /// Each provider's circuit breaker (kept across reloads).
    pub(crate) breakers: Arc<breaker::Breakers>,
    /// The model that last served each session (kept across reloads).
    pub(crate) affinity: Arc<affinity::Affinity>,
}

/// Where to listen and which config to use, from the command line.
#[derive(Debug, Default)]
pub(crate) struct ServeOptions {
    pub(crate) config: Option<PathBuf>,
    pub(crate) host: Option<std::net::IpAddr>,
    pub(crate) port: Option<u16>,
    /// Whether the log is JSON lines: then the "listening" banner is one of them.
    pub(crate) json_log: bool,
}

/// Loads config, binds, and serves until SIGINT or SIGTERM; SIGHUP reloads the config.
pub(crate) async fn serve(options: ServeOptions) -> Result<()> {
    let (config, path) = Config::load(options.config.as_deref())?;
    let stored_key = crate::secrets::stored_key().context("cannot read the stored key")?;
    let router = routing::Router::new(&config, stored_key.as_deref())
        .with_context(|| Config::invalid(path.as_deref()))?;
    // Opening the database may mean connecting to PostgreSQL, through blocking calls.
    let state_config = config.state.clone();
    let (store, stored_keys, limiter, responses) = tokio::task::spawn_blocking(move || {
        let store = crate::store::Database::open_for_gateway(&state_config)?;
        // Opened after the ledger's database, which migrated the schema.
        let responses = crate::store::ResponseStore::open(&state_config)?;
        let stored_keys = match store.keys() {
            Ok(keys) => keys,
            // PostgreSQL away at start: the config's keys serve until the ledger reaches it.
            Err(err) if store.available().is_some() => {
                tracing::debug!(error = format!("{err:#}"), "no stored keys yet");
                Vec::new()
            }
            Err(err) => return Err(err),
        };
        let limiter = match limits::Limiter::load(&store, jiff::Timestamp::now()) {
            Ok(limiter) => limiter,
            Err(err) if store.available().is_some() => {
                tracing::debug!(error = format!("{err:#}"), "no recorded counts yet");
                limits::Limiter::default()
            }
            Err(err) => return Err(err),
        };
        anyhow::Ok((store, stored_keys, limiter, responses))
    })
    .await??;
    let setup_key = stored_key
        .as_deref()
        .filter(|_| config.security.accept_stored_key);
    let keys = Arc::new(identity::Keys::new(&config.keys, setup_key, &stored_keys));
    let host = options.host.unwrap_or(config.server.host);
    let port = options.port.unwrap_or(config.server.port);
    if !host.is_loopback() && !keys.has_client_keys() {
        bail!(
            "refusing to listen on {host}: no client keys exist, so anyone who can reach it could spend your key; run `izzi keys create --name NAME`, add `[[keys]]` to the config, or listen on 127.0.0.1"
        );
    }
    if keys.is_empty() {
        tracing::warn!(
            "no client keys and no stored key accepted (`accept_stored_key`): every request will get 401; run `izzi setup --key KEY` or `izzi keys create --name NAME`"
        );
    }
    let client = upstream::Client::new(&config.server)?;
    let grace = std::time::Duration::from_secs(config.server.shutdown_grace_s);
    let metrics = metrics::install()?;
    if let Some(endpoint) = config
        .telemetry
        .otlp_endpoint
        .clone()
        .or_else(crate::env::otlp_endpoint)
    {
        telemetry::start(&endpoint)?;
        tracing::info!(endpoint = %endpoint, "sending one span per request to the OTLP endpoint");
    }
    let postgres = store.available();
    let ledger = ledger::Ledger::start(store, Arc::clone(&keys), Some(metrics.clone()))?;
    let limits = limits::Limits::new(&config.state, limiter, Arc::new(ledger.clone()), postgres)?;
    let state = Arc::new(AppState {
        ip_block: Arc::new(auth::IpBlock::new(&config.security)),
        process: Arc::new(reload::Process::new(path.clone())),
        alerts: Arc::new(alerts::Alerts::new()),
        reader: Arc::new(api::Reader::new(&config.state)),
        breakers: Arc::default(),
        affinity: Arc::default(),
        config,
        router,
        keys,
        limits: Arc::new(limits),
        ledger,
        responses: Arc::new(responses),
        metrics,
        client,
    });
    let listener = match tokio::net::TcpListener::bind(SocketAddr::new(host, port)).await {
        Ok(listener) => listener,
        Err(err) if err.kind() == std::io::ErrorKind::AddrInUse => {
            bail!(
                "{}",
                crate::service::probe::holder(SocketAddr::new(host, port)).await
            )
        }
        Err(err) => return Err(err).with_context(|| format!("cannot listen on {host}:{port}")),
    };
    let local = listener.local_addr()?;
    let hangups = reload::Hangups::watch();
    match &path {
        Some(path) => tracing::info!(config = %path.display(), "config loaded"),
        None => tracing::info!("no config file: using the embedded defaults"),
    }
    // Tests and scripts read this line to learn the port when `--port 0` is given.
    if options.json_log {
        tracing::info!(url = %format_args!("http://{local}"), "izzi gateway listening");
    } else {
        crate::output::notice(format_args!("izzi gateway listening on http://{local}"));
    }
    let source = reload::Source {
        path: options.config,
        host,
        stored_key,
    };
    let served = server::run(listener, state, grace, source, hangups).await;
    // The ledger is flushed: its last rows' spans are queued.
    telemetry::flush().await;
    served
}

/// The benchmark's way in (`benches/routing.rs`): a router from config text. Not an API.
#[doc(hidden)]
pub struct BenchRouter(routing::Router);

impl BenchRouter {
    /// The router `izzi serve` would build from `config`.
    ///
    /// # Errors
    ///
    /// When `config` does not load, as `izzi serve` would refuse it.
    pub fn new(config: &str) -> anyhow::Result<Self> {
        Ok(Self(routing::Router::new(&Config::parse(config)?, None)?))
    }

    /// What the gateway does to route a request: parses `body`'s top level, picks a rule and
    /// routes its model (or the body's). Returns how many models would be tried.
    pub fn route(&self, body: &[u8], user_agent: &str, key: &str) -> Option<usize> {
        let parsed = crate::protocol::json::Body::parse(body).ok()?;
        let model: String = parsed.field("model", "").ok()??;
        let tool = crate::attribution::Tool::from_user_agent(user_agent);
        let rule = self
            .0
            .rules()
            .pick(&rules::Request::new(&model, tool, key, &parsed, body));
        let route = self.0.route(rule.map_or(model.as_str(), |r| &r.to[0]))?;
        Some(1 + rule.map_or(route.model.fallbacks.len(), |r| r.to.len() - 1))
    }

    /// What the gateway does without rules (parse, route the body's model), to subtract from
    /// [`BenchRouter::route`].
    pub fn baseline(&self, body: &[u8]) -> Option<usize> {
        let parsed = crate::protocol::json::Body::parse(body).ok()?;
        let model: String = parsed.field("model", "").ok()??;
        let route = self.0.route(&model)?;
        Some(1 + route.model.fallbacks.len())
    }
}
