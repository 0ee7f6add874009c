//! `config.toml`: the schema, its defaults, and loading with errors that name the file, line and
//! field. Every field is optional. No runtime state lives here.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use rust_decimal::Decimal;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

mod dashboard;
mod masked;
mod responses;
mod routes;

pub(crate) use dashboard::{Alerts, Dashboard};
pub(crate) use routes::{Affinity, Breaker, Lines, Names, RouteRule};

use crate::catalog::{DefaultPrice, ModelOverride};
use crate::protocol::Kind;
pub(crate) use responses::Responses;

/// The whole configuration.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "izzi config.toml")]
pub(crate) struct Config {
    #[serde(default)]
    pub(crate) server: Server,
    #[serde(default)]
    pub(crate) security: Security,
    #[serde(default)]
    pub(crate) providers: Vec<Provider>,
    #[serde(default)]
    pub(crate) models: Vec<ModelOverride>,
    /// Prices for models that have none (absent: such models cost nothing, and keys with
    /// credits or a budget are refused them).
    #[serde(default)]
    pub(crate) default_price: Option<DefaultPrice>,
    #[serde(default)]
    pub(crate) keys: Vec<ClientKey>,
    #[serde(default)]
    pub(crate) state: State,
    #[serde(default)]
    pub(crate) telemetry: Telemetry,
    #[serde(default)]
    pub(crate) responses: Responses,
    #[serde(default)]
    pub(crate) dashboard: Dashboard,
    #[serde(default)]
    pub(crate) alerts: Alerts,
    /// Routing rules, tried in order: the first whose conditions all hold picks the model.
    #[serde(default)]
    pub(crate) routes: Vec<RouteRule>,
    #[serde(default)]
    pub(crate) breaker: Breaker,
    #[serde(default)]
    pub(crate) affinity: Affinity,
    /// Where `[[routes]]` and `[[models]]` fields are, for errors found after parsing.
    #[serde(skip)]
    #[schemars(skip)]
    pub(crate) lines: Lines,
}

/// `[telemetry]`: OpenTelemetry export, off unless an endpoint is set.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Telemetry {
    /// The collector's OTLP/HTTP base URL (`http://HOST:4318`): one span per request goes to
    /// `{otlp_endpoint}/v1/traces` as OTLP JSON [default: `$OTEL_EXPORTER_OTLP_ENDPOINT`, else
    /// no export].
    pub(crate) otlp_endpoint: Option<String>,
}

/// `[state]`: where limits and the ledger live. With neither URL, limits are kept in this
/// process and the ledger in `izzi.db`; several instances share them through Redis and
/// PostgreSQL.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct State {
    /// `redis://HOST:PORT[/DB]`, or `rediss://` for TLS: RPM, daily quota, concurrency, holds
    /// and spend, shared.
    pub(crate) redis_url: Option<String>,
    /// PEM file of the CA(s) that a `rediss://` server's certificate must chain to, instead of
    /// the system's roots.
    pub(crate) redis_ca_file: Option<PathBuf>,
    /// `postgres://USER@HOST:PORT/DB[?sslmode=MODE]`: client keys and the ledger, shared.
    /// `sslmode` is `disable`, `prefer`, `require`, `verify-ca` or `verify-full`; without it,
    /// `prefer` for loopback hosts and `require` for any other.
    pub(crate) postgres_url: Option<String>,
    /// PEM file of the CA(s) that PostgreSQL's certificate must chain to, instead of the
    /// system's roots (`sslmode` `verify-ca` and `verify-full`; `require` then checks the
    /// chain too).
    pub(crate) postgres_ca_file: Option<PathBuf>,
    /// What to do with a request while Redis or PostgreSQL cannot be reached.
    pub(crate) on_unavailable: OnUnavailable,
    /// Seconds a concurrency slot outlives an instance that stopped renewing it (was killed).
    pub(crate) lease_s: u64,
    /// How `izzi.db` commits ledger rows.
    pub(crate) sync: Synchronous,
}

impl Default for State {
    fn default() -> Self {
        Self {
            redis_url: None,
            redis_ca_file: None,
            postgres_url: None,
            postgres_ca_file: None,
            on_unavailable: OnUnavailable::Closed,
            lease_s: 15,
            sync: Synchronous::Normal,
        }
    }
}

/// `[state].sync`: SQLite's `synchronous` for `izzi.db` (write-ahead log either way).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Synchronous {
    /// Committed rows survive a killed process and a restart; an OS crash or power loss can
    /// lose the last second of them. No `fsync` per commit.
    Normal,
    /// Committed rows survive power loss too: one `fsync` per commit (batch of rows).
    Full,
}

/// `[state].on_unavailable`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum OnUnavailable {
    /// Refuse with 503 `server_error`: limits and money are never unenforced.
    Closed,
    /// Admit against this instance's own in-memory limits; rows wait for PostgreSQL.
    Open,
}

/// `[server]`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Server {
    pub(crate) host: IpAddr,
    pub(crate) port: u16,
    /// Largest request body accepted; larger ones get 413.
    pub(crate) max_body_bytes: usize,
    /// Seconds to wait for an upstream TCP/TLS connection.
    pub(crate) connect_timeout_s: u64,
    /// Seconds an upstream may stay silent (before its first byte, or between stream chunks).
    pub(crate) upstream_idle_timeout_s: u64,
    /// Seconds in-flight requests get to finish after SIGINT or SIGTERM.
    pub(crate) shutdown_grace_s: u64,
    /// Seconds a client gets to send its request headers (slow senders are cut off).
    pub(crate) header_read_timeout_s: u64,
    /// Seconds a client gets to send its request body.
    pub(crate) body_read_timeout_s: u64,
    /// Open client connections at most; beyond it new ones wait to be accepted.
    pub(crate) max_connections: usize,
    /// Seconds a translated stream may stay silent upstream (a model reasoning) before the
    /// client gets a keep-alive (`ping`, or an SSE comment).
    pub(crate) keepalive_s: u64,
    /// Largest whole (non-streamed) upstream answer read; a larger one is a 502.
    pub(crate) max_upstream_body_bytes: usize,
    /// Largest single event of an upstream stream; a larger one ends the stream with an error.
    pub(crate) max_upstream_event_bytes: usize,
    /// Prompt caching for requests izzi translates: up to four cache breakpoints toward
    /// Anthropic-kind providers (tools, system, the last two user turns) unless the client
    /// placed its own, and `prompt_cache_key` from the agent session toward OpenAI-kind ones.
    /// `false` turns it off for every model; `[[models]] prompt_caching = false` for one.
    pub(crate) prompt_caching: bool,
}

impl Default for Server {
    fn default() -> Self {
        Self {
            host: IpAddr::from([127, 0, 0, 1]),
            port: 8745,
            max_body_bytes: 32 * 1024 * 1024,
            connect_timeout_s: 10,
            upstream_idle_timeout_s: 300,
            shutdown_grace_s: 30,
            header_read_timeout_s: 30,
            body_read_timeout_s: 60,
            max_connections: 4096,
            keepalive_s: 10,
            max_upstream_body_bytes: 64 * 1024 * 1024,
            max_upstream_event_bytes: 16 * 1024 * 1024,
            prompt_caching: true,
        }
    }
}

/// `[security]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Security {
    /// Failed authentications from one IP inside the window that block it.
    pub(crate) ip_block_after_failures: u32,
    pub(crate) ip_block_window_s: u64,
    /// How long a blocked IP stays blocked.
    pub(crate) ip_block_duration_s: u64,
    /// Whether the key `izzi setup` stored is accepted from loopback clients, beside any
    /// client keys.
    pub(crate) accept_stored_key: bool,
}

impl Default for Security {
    fn default() -> Self {
        Self {
            ip_block_after_failures: 10,
            ip_block_window_s: 60,
            ip_block_duration_s: 900,
            accept_stored_key: true,
        }
    }
}

/// One `[[providers]]` entry: an upstream API and the models it serves.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Provider {
    pub(crate) name: String,
    pub(crate) kind: Kind,
    pub(crate) base_url: String,
    /// Name of the environment variable holding the upstream key.
    pub(crate) api_key_env: Option<String>,
    /// The upstream key itself (prefer `api_key_env`).
    pub(crate) api_key: Option<String>,
    /// Globs of model ids routed here when the catalog does not name this provider.
    #[serde(default)]
    pub(crate) models: Vec<String>,
    /// Retries after a connection error, 429 or 5xx, before the first byte reaches the client
    /// [default: 2].
    pub(crate) max_retries: Option<u32>,
}

/// Retries per provider when config does not say.
pub(crate) const DEFAULT_MAX_RETRIES: u32 = 2;

/// Plans, with the seed's limits.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Plan {
    Free,
    Starter,
    #[default]
    Pro,
    Max,
    Ultra,
}

/// Requests per minute, concurrent requests and requests per day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) struct Limits {
    pub(crate) rpm: u32,
    pub(crate) concurrent: u32,
    pub(crate) daily: u32,
}

impl Plan {
    /// The plan's limits, from the seed's table.
    pub(crate) fn limits(self) -> Limits {
        let (rpm, concurrent, daily) = match self {
            Plan::Free => (10, 1, 100),
            Plan::Starter => (30, 2, 1_000),
            Plan::Pro => (60, 3, 2_000),
            Plan::Max => (90, 6, 5_000),
            Plan::Ultra => (120, 8, 10_000),
        };
        Limits {
            rpm,
            concurrent,
            daily,
        }
    }

    /// The lowercase name, as in `x-ratelimit-tier`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Plan::Free => "free",
            Plan::Starter => "starter",
            Plan::Pro => "pro",
            Plan::Max => "max",
            Plan::Ultra => "ultra",
        }
    }
}

/// Where a client key comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum KeySource {
    /// A `[[keys]]` entry of the config.
    Config,
    /// A key `izzi keys create` stored (hashed) in the database.
    Created,
    /// The key `izzi setup` stored, accepted from loopback clients only.
    Setup,
}

/// The name the key `izzi setup` stored goes by in limits, usage and `izzi keys list`. No
/// other key can take it ([`valid_key_name`] refuses `@`), so its account is its own.
pub(crate) const SETUP_KEY_NAME: &str = "@setup";

/// The plan of the key `izzi setup` stored (the user's own tools; no money limits).
pub(crate) const SETUP_KEY_PLAN: Plan = Plan::Ultra;

/// Whether `name` may name a client key: 1 to 64 letters, digits, `.`, `_` or `-`.
pub(crate) fn valid_key_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// What [`valid_key_name`] asks, for error messages.
pub(crate) const KEY_NAME_RULE: &str = "use 1 to 64 letters, digits, `.`, `_` or `-`";

/// One static `[[keys]]` entry.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ClientKey {
    /// The key's name in limits, usage and `izzi keys list`: 1 to 64 letters, digits, `.`, `_`
    /// or `-`.
    #[schemars(regex(pattern = r"^[A-Za-z0-9._-]{1,64}$"))]
    pub(crate) name: String,
    pub(crate) key: String,
    #[serde(default)]
    pub(crate) plan: Plan,
    #[serde(default, with = "rust_decimal::serde::float_option")]
    #[schemars(with = "Option<f64>")]
    pub(crate) monthly_budget_usd: Option<Decimal>,
    #[serde(default, with = "rust_decimal::serde::float_option")]
    #[schemars(with = "Option<f64>")]
    pub(crate) credits_usd: Option<Decimal>,
    pub(crate) rpm: Option<u32>,
    pub(crate) concurrent: Option<u32>,
    pub(crate) daily: Option<u32>,
}

impl Config {
    /// Loads `path`, or `$IZZI_HOME/config.toml` when it exists, or the embedded defaults.
    /// Returns the config and the file it came from.
    pub(crate) fn load(path: Option<&Path>) -> Result<(Self, Option<PathBuf>)> {
        let path = match path {
            Some(path) => path.to_owned(),
            None => {
                let default = crate::env::izzi_home()?.join("config.toml");
                if !default.exists() {
                    return Ok((Self::default(), None));
                }
                default
            }
        };
        let text = fs_err::read_to_string(&path)
            .with_context(|| format!("cannot read the config file `{}`", path.display()))?;
        let config = Self::parse(&text)
            .with_context(|| format!("the config file `{}` is invalid", path.display()))?;
        Ok((config, Some(path)))
    }

    /// The JSON Schema of `config.toml` (docs/config.schema.json), in draft 7, which Taplo and
    /// VS Code read.
    pub(crate) fn schema() -> schemars::Schema {
        schemars::generate::SchemaSettings::draft07()
            .into_generator()
            .into_root_schema_for::<Config>()
    }

    /// Parses and checks config text.
    pub(crate) fn parse(text: &str) -> Result<Self> {
        // toml's message names the line, column and field, and shows the offending line, whose
        // value may be a key: masked, since the message reaches logs and journals.
        let mut config: Config = toml::from_str(text).map_err(|e| {
            anyhow::anyhow!("{}", crate::secrets::mask_secrets(e.to_string().trim_end()))
        })?;
        config.lines = Lines::scan(text);
        config.check()?;
        Ok(config)
    }

    /// Where a field of the `index`th `[[routes]]` or `[[models]]` entry is (line and field),
    /// for errors found once the catalog and providers are known.
    pub(crate) fn locate(&self, table: &str, index: usize, field: &str) -> String {
        self.lines.at(table, index, field)
    }

    /// The context of an error in the config loaded from `path`.
    pub(crate) fn invalid(path: Option<&Path>) -> String {
        match path {
            Some(path) => format!("the config file `{}` is invalid", path.display()),
            None => "the embedded defaults are invalid".to_owned(),
        }
    }

    fn check(&self) -> Result<()> {
        if self.server.max_body_bytes == 0 {
            bail!("`server.max_body_bytes` must be above 0");
        }
        if self.server.max_upstream_body_bytes == 0 || self.server.max_upstream_event_bytes == 0 {
            bail!(
                "`server.max_upstream_body_bytes` and `server.max_upstream_event_bytes` must be above 0"
            );
        }
        if self.server.keepalive_s == 0 {
            bail!("`server.keepalive_s` must be above 0");
        }
        if self.server.max_connections == 0 {
            bail!("`server.max_connections` must be above 0");
        }
        if self.responses.max_age_s == 0 || self.responses.max_bytes == 0 {
            bail!("`responses.max_age_s` and `responses.max_bytes` must be above 0");
        }
        for (i, p) in self.providers.iter().enumerate() {
            if self.providers[..i].iter().any(|q| q.name == p.name) {
                bail!(
                    "`providers[{i}].name`: the provider name `{}` is used twice",
                    p.name
                );
            }
            if !(p.base_url.starts_with("http://") || p.base_url.starts_with("https://")) {
                bail!(
                    "`providers[{i}].base_url` must start with http:// or https://, not `{}`",
                    p.base_url
                );
            }
            for glob in &p.models {
                globset::Glob::new(glob).with_context(|| {
                    format!("`providers[{i}].models`: `{glob}` is not a valid glob")
                })?;
            }
        }
        if let Some(url) = &self.state.redis_url
            && !["redis://", "rediss://", "unix://"]
                .iter()
                .any(|scheme| url.starts_with(scheme))
        {
            bail!("`state.redis_url` must start with redis://, rediss:// or unix://, not `{url}`");
        }
        if self.state.redis_ca_file.is_some()
            && !self
                .state
                .redis_url
                .as_ref()
                .is_some_and(|url| url.starts_with("rediss://"))
        {
            bail!("`state.redis_ca_file` needs a TLS `state.redis_url` (rediss://HOST:PORT)");
        }
        if self.state.postgres_ca_file.is_some() && self.state.postgres_url.is_none() {
            bail!("`state.postgres_ca_file` needs `state.postgres_url`");
        }
        if let Some(url) = &self.state.postgres_url
            && !(url.starts_with("postgres://") || url.starts_with("postgresql://"))
        {
            bail!("`state.postgres_url` must start with postgres:// or postgresql://");
        }
        if let Some(url) = &self.telemetry.otlp_endpoint
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            bail!("`telemetry.otlp_endpoint` must start with http:// or https://, not `{url}`");
        }
        self.dashboard.check(&self.keys)?;
        self.alerts.check()?;
        if self.state.lease_s < 3 {
            bail!("`state.lease_s` must be at least 3 (slots are renewed every third of it)");
        }
        routes::check(&self.routes, &self.breaker, &self.affinity, &self.lines)?;
        for (i, k) in self.keys.iter().enumerate() {
            if !valid_key_name(&k.name) {
                bail!(
                    "`keys[{i}].name`: `{}` is not a valid key name: {KEY_NAME_RULE}",
                    k.name
                );
            }
            if self.keys[..i].iter().any(|q| q.name == k.name) {
                bail!("`keys[{i}].name`: the key name `{}` is used twice", k.name);
            }
            if k.key.len() < 8 {
                bail!("`keys[{i}].key` is shorter than 8 characters; use a long random key");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
