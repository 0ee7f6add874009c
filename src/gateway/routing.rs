//! Routing: a model name or alias to its catalog entry and the provider that serves it. Pure.
//!
//! A model goes to the configured provider named as its catalog `provider`, else to the first
//! provider whose `models` globs match its id (then the name the client sent). With no
//! `[[providers]]` the hosted Izzi API serves everything: Claude models over Anthropic Messages,
//! all others over Chat Completions.

use std::sync::Arc;

use anyhow::{Context as _, Result};
use globset::{Glob, GlobSet, GlobSetBuilder};

use crate::catalog::{Catalog, DefaultPrice, Model};
use crate::config::{self, Config};
use crate::protocol::Kind;

use super::rules::Rules;
use super::upstream::Endpoint;

/// The hosted Izzi API, the upstream when config names no providers.
pub(crate) const HOSTED_BASE: &str = "https://api.izziapi.com";

/// A provider ready to receive requests: its URIs and constant headers (its key's included)
/// built once, not per request.
#[derive(Debug)]
pub(crate) struct Provider {
    pub(crate) name: String,
    pub(crate) kind: Kind,
    /// Where its requests go and what headers they carry.
    pub(crate) endpoint: Endpoint,
    /// Retries after a connection error, 429 or 5xx, before the first byte reaches the client.
    pub(crate) max_retries: u32,
    globs: GlobSet,
}

impl Provider {
    fn new(
        name: &str,
        kind: Kind,
        base_url: &str,
        api_key: Option<&str>,
        max_retries: u32,
        globs: GlobSet,
    ) -> Result<Self> {
        let endpoint =
            Endpoint::new(kind, base_url, api_key).with_context(|| format!("provider `{name}`"))?;
        Ok(Self {
            name: name.to_owned(),
            kind,
            endpoint,
            max_retries,
            globs,
        })
    }
}

/// A routed request: what the client asked for and where it goes.
#[derive(Debug, Clone)]
pub(crate) struct Route {
    pub(crate) model: Arc<Model>,
    pub(crate) provider: Arc<Provider>,
}

/// The routing table.
#[derive(Debug)]
pub(crate) struct Router {
    catalog: Catalog,
    models: Vec<Arc<Model>>,
    providers: Vec<Arc<Provider>>,
    /// `[default_price]`, for models only a provider's glob knows.
    default_price: Option<DefaultPrice>,
    /// `[[routes]]`, compiled.
    rules: Rules,
}

impl Router {
    /// Builds the table from config. `stored_key` is the key `izzi setup` stored, used for the
    /// hosted API.
    pub(crate) fn new(config: &Config, stored_key: Option<&str>) -> Result<Self> {
        let catalog = Catalog::load(&config.models)?.with_default_price(config.default_price);
        let models = catalog.models().iter().cloned().map(Arc::new).collect();
        let providers = if config.providers.is_empty() {
            vec![
                hosted(
                    "izzi-anthropic",
                    Kind::Anthropic,
                    HOSTED_BASE,
                    &["claude-*"],
                    stored_key,
                )?,
                hosted(
                    "izzi-openai",
                    Kind::Openai,
                    &format!("{HOSTED_BASE}/v1"),
                    &["*"],
                    stored_key,
                )?,
            ]
        } else {
            config
                .providers
                .iter()
                .map(configured)
                .collect::<Result<_>>()?
        };
        let router = Self {
            catalog,
            models,
            providers: providers.into_iter().map(Arc::new).collect(),
            default_price: config.default_price,
            rules: Rules::new(&config.routes)?,
        };
        super::rules::check(config, &router.catalog, |name| router.route(name).is_some())?;
        Ok(router)
    }

    /// The routing rules.
    pub(crate) fn rules(&self) -> &Rules {
        &self.rules
    }

    /// Every provider, in config order.
    pub(crate) fn providers(&self) -> &[Arc<Provider>] {
        &self.providers
    }

    /// The catalog behind the table.
    pub(crate) fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// Routes a model name or alias; `None` when neither the catalog nor any provider knows it.
    pub(crate) fn route(&self, name: &str) -> Option<Route> {
        if let Some(known) = self.catalog.get(name) {
            let index = self
                .catalog
                .models()
                .iter()
                .position(|m| m.id == known.id)?;
            let model = Arc::clone(&self.models[index]);
            let provider = self
                .providers
                .iter()
                .find(|p| p.name == model.provider)
                .or_else(|| {
                    self.by_glob(model.upstream_id())
                        .or_else(|| self.by_glob(name))
                })?;
            return Some(Route {
                model,
                provider: Arc::clone(provider),
            });
        }
        let provider = self.by_glob(name)?;
        Some(Route {
            model: Arc::new(Model::uncatalogued(
                name,
                &provider.name,
                self.default_price,
            )),
            provider: Arc::clone(provider),
        })
    }

    fn by_glob(&self, name: &str) -> Option<&Arc<Provider>> {
        self.providers.iter().find(|p| p.globs.is_match(name))
    }
}

fn hosted(
    name: &str,
    kind: Kind,
    base: &str,
    globs: &[&str],
    key: Option<&str>,
) -> Result<Provider> {
    Provider::new(
        name,
        kind,
        base,
        key,
        config::DEFAULT_MAX_RETRIES,
        glob_set(globs.iter().copied())?,
    )
}

fn configured(p: &config::Provider) -> Result<Provider> {
    let api_key = p
        .api_key
        .clone()
        .or_else(|| p.api_key_env.as_deref().and_then(crate::env::var));
    if api_key.is_none()
        && let Some(var) = &p.api_key_env
    {
        tracing::warn!(provider = %p.name, "`{var}` is not set: requests to this provider go without a key");
    }
    Provider::new(
        &p.name,
        p.kind,
        &p.base_url,
        api_key.as_deref(),
        p.max_retries.unwrap_or(config::DEFAULT_MAX_RETRIES),
        glob_set(p.models.iter().map(String::as_str))?,
    )
}

fn glob_set<'a>(globs: impl Iterator<Item = &'a str>) -> Result<GlobSet> {
    let mut builder = GlobSetBuilder::new();
    for glob in globs {
        builder
            .add(Glob::new(glob).with_context(|| format!("`{glob}` is not a valid model glob"))?);
    }
    Ok(builder.build()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router(text: &str) -> Router {
        Router::new(&Config::parse(text).unwrap(), Some("izzi-stored")).unwrap()
    }

    #[test]
    fn hosted_defaults_split_claude_from_the_rest() {
        let r = router("");
        let claude = r.route("sonnet").unwrap();
        assert_eq!(claude.provider.kind, Kind::Anthropic);
        let endpoint = &claude.provider.endpoint;
        assert_eq!(
            endpoint.messages.to_string(),
            "https://api.izziapi.com/v1/messages"
        );
        let key = &endpoint.headers["x-api-key"];
        assert_eq!(key.to_str().unwrap(), "izzi-stored");
        assert!(key.is_sensitive());
        assert_eq!(endpoint.headers["anthropic-version"], "2023-06-01");
        assert!(!endpoint.headers.contains_key("authorization"));
        let gpt = r.route("gpt-5").unwrap();
        let endpoint = &gpt.provider.endpoint;
        assert_eq!(
            endpoint.messages.to_string(),
            "https://api.izziapi.com/v1/chat/completions"
        );
        let key = &endpoint.headers["authorization"];
        assert_eq!(key.to_str().unwrap(), "Bearer izzi-stored");
        assert!(key.is_sensitive());
        assert!(!endpoint.headers.contains_key("anthropic-version"));
        assert!(!endpoint.headers.contains_key("x-api-key"));
        assert_eq!(
            r.route("gemini-2.5-pro").unwrap().provider.kind,
            Kind::Openai
        );
    }

    #[test]
    fn configured_providers_by_name_then_glob() {
        let r = router(
            r#"
[[providers]]
name = "anthropic"
kind = "anthropic"
base_url = "http://127.0.0.1:1/"
api_key = "sk-a"
[[providers]]
name = "local"
kind = "openai"
base_url = "http://127.0.0.1:2/v1"
models = ["gpt-*", "llama*"]
"#,
        );
        let route = r.route("opus").unwrap();
        assert_eq!(route.provider.name, "anthropic");
        assert_eq!(
            route.provider.endpoint.messages.to_string(),
            "http://127.0.0.1:1/v1/messages"
        );
        assert_eq!(
            route.provider.endpoint.count_tokens.to_string(),
            "http://127.0.0.1:1/v1/messages/count_tokens"
        );
        assert_eq!(r.route("gpt-4.1").unwrap().provider.name, "local");
        let llama = r.route("llama3").unwrap();
        assert_eq!(llama.provider.name, "local");
        assert_eq!(llama.model.upstream_id(), "llama3");
        assert!(r.route("gemini-2.5-pro").is_none());
        assert!(r.route("nothing").is_none());
    }

    #[test]
    fn a_bad_base_url_is_refused_at_start() {
        let config = Config::parse(
            "[[providers]]\nname = \"x\"\nkind = \"openai\"\nbase_url = \"http://exa mple.com/v1\"\n",
        )
        .unwrap();
        let err = format!("{:#}", Router::new(&config, None).unwrap_err());
        assert!(
            err.contains("provider `x`") && err.contains("`http://exa mple.com/v1`"),
            "{err}"
        );
    }
}
