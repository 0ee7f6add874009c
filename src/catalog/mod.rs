//! The model catalog: every model izzi knows, its provider family, prices, limits and aliases.
//!
//! The built-in entries are data (`models.toml`, compiled in); config `[[models]]` entries add or
//! override them. Pure: no I/O beyond parsing the embedded file. Money is `Decimal`, never `f64`.

use std::collections::HashMap;

use anyhow::{Context as _, Result, bail};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::protocol::Usage;

const BUILTIN: &str = include_str!("models.toml");

/// One model: what it costs, how big it is, and where it goes.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct Model {
    /// The canonical id clients see.
    pub(crate) id: String,
    #[serde(default)]
    pub(crate) display_name: String,
    /// Provider family (`anthropic`, `openai`, `google`, …) or a configured provider's name.
    pub(crate) provider: String,
    /// The id sent upstream, when it differs from `id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) upstream_id: Option<String>,
    #[serde(default)]
    pub(crate) aliases: Vec<String>,
    /// USD per million input tokens.
    #[serde(with = "rust_decimal::serde::float")]
    pub(crate) input_per_mtok: Decimal,
    /// USD per million output tokens.
    #[serde(with = "rust_decimal::serde::float")]
    pub(crate) output_per_mtok: Decimal,
    /// USD per million cached input tokens read, where the provider prices them.
    #[serde(
        default,
        with = "rust_decimal::serde::float_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub(crate) cache_read_per_mtok: Option<Decimal>,
    /// USD per million input tokens written to the cache, where the provider prices them.
    #[serde(
        default,
        with = "rust_decimal::serde::float_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub(crate) cache_write_per_mtok: Option<Decimal>,
    pub(crate) context_window: u64,
    pub(crate) max_output: u32,
    /// `o200k_base`, `cl100k_base`, or the family name of an estimated tokenizer.
    #[serde(default = "default_tokenizer")]
    pub(crate) tokenizer: String,
    /// Whether the model reasons (takes `reasoning_effort` / thinking).
    #[serde(default)]
    pub(crate) reasoning: bool,
    /// Release date, `YYYY-MM-DD`.
    #[serde(default)]
    pub(crate) created: String,
    /// Models to try, in order, when this one's provider fails before answering.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) fallbacks: Vec<String>,
}

fn default_tokenizer() -> String {
    "estimate".to_owned()
}

/// A config `[[models]]` entry: `id` plus whichever fields it sets.
#[derive(Debug, Clone, Default, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ModelOverride {
    pub(crate) id: String,
    pub(crate) display_name: Option<String>,
    pub(crate) provider: Option<String>,
    pub(crate) upstream_id: Option<String>,
    pub(crate) aliases: Option<Vec<String>>,
    #[serde(default, with = "rust_decimal::serde::float_option")]
    #[schemars(with = "Option<f64>")]
    pub(crate) input_per_mtok: Option<Decimal>,
    #[serde(default, with = "rust_decimal::serde::float_option")]
    #[schemars(with = "Option<f64>")]
    pub(crate) output_per_mtok: Option<Decimal>,
    #[serde(default, with = "rust_decimal::serde::float_option")]
    #[schemars(with = "Option<f64>")]
    pub(crate) cache_read_per_mtok: Option<Decimal>,
    #[serde(default, with = "rust_decimal::serde::float_option")]
    #[schemars(with = "Option<f64>")]
    pub(crate) cache_write_per_mtok: Option<Decimal>,
    pub(crate) context_window: Option<u64>,
    pub(crate) max_output: Option<u32>,
    pub(crate) tokenizer: Option<String>,
    pub(crate) reasoning: Option<bool>,
    pub(crate) fallbacks: Option<Vec<String>>,
}

impl Model {
    /// The model id to send upstream.
    pub(crate) fn upstream_id(&self) -> &str {
        self.upstream_id.as_deref().unwrap_or(&self.id)
    }

    /// The cost in USD of `usage` at this model's prices. Cache reads and writes without a
    /// price of their own are charged as input.
    pub(crate) fn cost(&self, usage: &Usage) -> Decimal {
        let per_token = |tokens: u64, per_mtok: Decimal| Decimal::from(tokens) * per_mtok;
        let total = per_token(usage.input_tokens, self.input_per_mtok)
            + per_token(usage.output_tokens, self.output_per_mtok)
            + per_token(
                usage.cache_read_tokens,
                self.cache_read_per_mtok.unwrap_or(self.input_per_mtok),
            )
            + per_token(
                usage.cache_write_tokens,
                self.cache_write_per_mtok.unwrap_or(self.input_per_mtok),
            );
        total / Decimal::from(1_000_000)
    }

    fn apply(&mut self, o: &ModelOverride) {
        macro_rules! set {
            ($($field:ident),*) => { $( if let Some(v) = &o.$field { self.$field = v.clone(); } )* };
        }
        set!(
            display_name,
            provider,
            aliases,
            input_per_mtok,
            output_per_mtok,
            context_window
        );
        set!(max_output, tokenizer, reasoning, fallbacks);
        if o.upstream_id.is_some() {
            self.upstream_id.clone_from(&o.upstream_id);
        }
        if o.cache_read_per_mtok.is_some() {
            self.cache_read_per_mtok = o.cache_read_per_mtok;
        }
        if o.cache_write_per_mtok.is_some() {
            self.cache_write_per_mtok = o.cache_write_per_mtok;
        }
    }

    fn from_override(o: &ModelOverride) -> Result<Self> {
        let Some(provider) = o.provider.clone() else {
            bail!(
                "model `{}` is not in the built-in catalog, so it needs `provider`",
                o.id
            )
        };
        let mut model = Model {
            id: o.id.clone(),
            display_name: o.id.clone(),
            provider,
            upstream_id: None,
            aliases: Vec::new(),
            input_per_mtok: Decimal::ZERO,
            output_per_mtok: Decimal::ZERO,
            cache_read_per_mtok: None,
            cache_write_per_mtok: None,
            context_window: 128_000,
            max_output: 8192,
            tokenizer: default_tokenizer(),
            reasoning: false,
            created: String::new(),
            fallbacks: Vec::new(),
        };
        model.apply(o);
        Ok(model)
    }
}

/// The models izzi knows, looked up by id or alias.
#[derive(Debug, Clone)]
pub(crate) struct Catalog {
    models: Vec<Model>,
    by_name: HashMap<String, usize>,
}

#[derive(Deserialize)]
struct CatalogFile {
    models: Vec<Model>,
}

impl Catalog {
    /// The built-in catalog with config overrides applied.
    pub(crate) fn load(overrides: &[ModelOverride]) -> Result<Self> {
        let file: CatalogFile =
            toml::from_str(BUILTIN).context("the built-in model catalog does not parse")?;
        let mut models = file.models;
        for o in overrides {
            match models.iter_mut().find(|m| m.id == o.id) {
                Some(model) => model.apply(o),
                None => models.push(Model::from_override(o)?),
            }
        }
        let mut by_name = HashMap::new();
        for (i, model) in models.iter().enumerate() {
            for name in std::iter::once(&model.id).chain(&model.aliases) {
                if let Some(prev) = by_name.insert(name.clone(), i)
                    && prev != i
                {
                    bail!(
                        "model name `{name}` is used by both `{}` and `{}`",
                        models[prev].id,
                        model.id
                    );
                }
            }
        }
        Ok(Self { models, by_name })
    }

    /// A model by id or alias.
    pub(crate) fn get(&self, name: &str) -> Option<&Model> {
        self.by_name.get(name).map(|&i| &self.models[i])
    }

    /// Every model, in catalog order.
    pub(crate) fn models(&self) -> &[Model] {
        &self.models
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_has_every_seed_model_and_aliases_resolve() {
        let catalog = Catalog::load(&[]).unwrap();
        for id in [
            "claude-opus-4-20250514",
            "claude-sonnet-4-20250514",
            "claude-3-5-haiku-20241022",
            "gpt-5",
            "gpt-4.1",
            "gpt-4.1-mini",
            "gemini-2.5-pro",
            "gemini-2.5-flash",
            "grok-3",
            "step-3.5-flash",
            "glm-4.5-air",
        ] {
            assert_eq!(catalog.get(id).unwrap().id, id);
        }
        assert_eq!(
            catalog.get("sonnet").unwrap().id,
            "claude-sonnet-4-20250514"
        );
        assert_eq!(
            catalog.get("claude-sonnet-4-0").unwrap().id,
            "claude-sonnet-4-20250514"
        );
        assert_eq!(catalog.get("opus").unwrap().id, "claude-opus-4-20250514");
        assert_eq!(
            catalog.get("haiku").unwrap().id,
            "claude-3-5-haiku-20241022"
        );
        assert!(catalog.get("gpt-6").is_none());
    }

    #[test]
    fn prices_are_exact_decimals_and_cost_uses_cache_prices() {
        let catalog = Catalog::load(&[]).unwrap();
        let sonnet = catalog.get("sonnet").unwrap();
        assert_eq!(sonnet.cache_read_per_mtok.unwrap().to_string(), "0.3");
        let usage = Usage {
            input_tokens: 1_000_000,
            output_tokens: 100_000,
            cache_read_tokens: 1_000_000,
            cache_write_tokens: 0,
        };
        // 3.00 input + 1.50 output + 0.30 cache read
        assert_eq!(sonnet.cost(&usage).normalize().to_string(), "4.8");
    }

    #[test]
    fn overrides_change_fields_and_add_models() {
        let overrides = [
            ModelOverride {
                id: "gpt-4.1".into(),
                input_per_mtok: Some(Decimal::ONE),
                ..Default::default()
            },
            ModelOverride {
                id: "my-model".into(),
                provider: Some("openai".into()),
                upstream_id: Some("gpt-4.1-mini".into()),
                aliases: Some(vec!["mm".into()]),
                ..Default::default()
            },
        ];
        let catalog = Catalog::load(&overrides).unwrap();
        assert_eq!(catalog.get("gpt-4.1").unwrap().input_per_mtok, Decimal::ONE);
        assert_eq!(
            catalog.get("gpt-4.1").unwrap().output_per_mtok,
            Decimal::from(8)
        );
        assert_eq!(catalog.get("mm").unwrap().upstream_id(), "gpt-4.1-mini");
        let clash = [ModelOverride {
            id: "x".into(),
            provider: Some("openai".into()),
            aliases: Some(vec!["sonnet".into()]),
            ..Default::default()
        }];
        assert!(Catalog::load(&clash).is_err());
    }
}
