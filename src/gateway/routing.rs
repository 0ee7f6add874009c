//! Routing: a model name or alias to its catalog entry and the provider that serves it. Pure.
//!
//! A model goes to the configured provider named as its catalog `provider`, else to the first
//! provider whose `models` globs match its id (then the name the client sent). With no
//! `[[providers]]` the hosted Izzi API serves everything: Claude models over Anthropic Messages,
//! all others over Chat Completions.

use std::sync::Arc;

use anyhow::{Context as _, Result};
use globset::{Glob, GlobSet, GlobSetBuilder};

use crate::catalog::{Catalog, Model};
use crate::config::{self, Config};
use crate::protocol::Kind;

/// The hosted Izzi API, the upstream when config names no providers.
pub(crate) const HOSTED_BASE: &str = "https://api.izziapi.com";

/// A provider ready to receive requests.
#[derive(Debug)]
pub(crate) struct Provider {
    pub(crate) name: String,
    pub(crate) kind: Kind,
    /// Base URL without a trailing slash.
    pub(crate) base_url: String,
    /// The upstream key, if one is configured.
    pub(crate) api_key: Option<String>,
    /// Retries after a connection error, 429 or 5xx, before the first byte reaches the client.
    pub(crate) max_retries: u32,
    globs: GlobSet,
}

impl Provider {
    /// The URL a request of this kind goes to.
    pub(crate) fn messages_url(&self) -> String {
        match self.kind {
            Kind::Anthropic => format!("{}/v1/messages", self.base_url),
            Kind::Openai => format!("{}/chat/completions", self.base_url),
        }
    }

    /// Anthropic's native token counting endpoint.
    pub(crate) fn count_tokens_url(&self) -> String {
        format!("{}/v1/messages/count_tokens", self.base_url)
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
}

impl Router {
    /// Builds the table from config. `stored_key` is the key `izzi setup` stored, used for the
    /// hosted API.
    pub(crate) fn new(config: &Config, stored_key: Option<&str>) -> Result<Self> {
        let catalog = Catalog::load(&config.models)?;
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
        Ok(Self {
            catalog,
            models,
            providers: providers.into_iter().map(Arc::new).collect(),
        })
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
            model: Arc::new(uncatalogued(name, &provider.name)),
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
    Ok(Provider {
        name: name.to_owned(),
        kind,
        base_url: base.to_owned(),
        api_key: key.map(str::to_owned),
        max_retries: config::DEFAULT_MAX_RETRIES,
        globs: glob_set(globs.iter().copied())?,
    })
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
    Ok(Provider {
        name: p.name.clone(),
        kind: p.kind,
        base_url: p.base_url.trim_end_matches('/').to_owned(),
        api_key,
        max_retries: p.max_retries.unwrap_or(config::DEFAULT_MAX_RETRIES),
        globs: glob_set(p.models.iter().map(String::as_str))?,
    })
}

fn glob_set<'a>(globs: impl Iterator<Item = &'a str>) -> Result<GlobSet> {
    let mut builder = GlobSetBuilder::new();
    for glob in globs {
        builder
            .add(Glob::new(glob).with_context(|| format!("`{glob}` is not a valid model glob"))?);
    }
    Ok(builder.build()?)
}

/// A model no catalog entry describes, served by a provider's glob: no prices are known.
fn uncatalogued(name: &str, provider: &str) -> Model {
    Model {
        id: name.to_owned(),
        display_name: name.to_owned(),
        provider: provider.to_owned(),
        upstream_id: None,
        aliases: Vec::new(),
        input_per_mtok: rust_decimal::Decimal::ZERO,
        output_per_mtok: rust_decimal::Decimal::ZERO,
        cache_read_per_mtok: None,
        cache_write_per_mtok: None,
        context_window: 128_000,
        max_output: 8192,
        tokenizer: "estimate".to_owned(),
        reasoning: false,
        created: String::new(),
        fallbacks: Vec::new(),
    }
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
        assert_eq!(
            claude.provider.messages_url(),
            "https://api.izziapi.com/v1/messages"
        );
        assert_eq!(claude.provider.api_key.as_deref(), Some("izzi-stored"));
        let gpt = r.route("gpt-5").unwrap();
        assert_eq!(
            gpt.provider.messages_url(),
            "https://api.izziapi.com/v1/chat/completions"
        );
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
            route.provider.messages_url(),
            "http://127.0.0.1:1/v1/messages"
        );
        assert_eq!(r.route("gpt-4.1").unwrap().provider.name, "local");
        let llama = r.route("llama3").unwrap();
        assert_eq!(llama.provider.name, "local");
        assert_eq!(llama.model.upstream_id(), "llama3");
        assert!(r.route("gemini-2.5-pro").is_none());
        assert!(r.route("nothing").is_none());
    }
}
