//! The model catalog: every model izzi knows, its provider family, prices, limits and aliases.
//!
//! The built-in entries are data (`models.toml`, compiled in); config `[[models]]` entries add or
//! override them. Pure: no I/O beyond parsing the embedded file. Money is `Decimal`, never `f64`.

use std::collections::HashMap;

use anyhow::{Context as _, Result, bail};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::protocol::Usage;
use crate::wire::wire_enum;

const BUILTIN: &str = include_str!("models.toml");

wire_enum! {
    stored
    /// Where a model's prices come from.
    #[derive(Default)]
    Pricing {
        /// The model's own prices: the built-in catalog or a `[[models]]` entry.
        #[default]
        Listed = "listed",
        /// `[default_price]` from config: the model has no prices of its own.
        Default = "default",
        /// No price is known: it costs nothing, so keys with money limits are refused it.
        Unpriced = "unpriced",
    }
}

/// `[default_price]`: what a model without prices of its own costs (one the catalog does not
/// know, served by a provider's glob, or a `[[models]]` entry that sets no price).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DefaultPrice {
    /// USD per million input tokens.
    #[serde(with = "rust_decimal::serde::float")]
    #[schemars(with = "f64")]
    pub(crate) input_per_mtok: Decimal,
    /// USD per million output tokens.
    #[serde(with = "rust_decimal::serde::float")]
    #[schemars(with = "f64")]
    pub(crate) output_per_mtok: Decimal,
}

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
    /// Where the prices above come from.
    #[serde(skip)]
    pub(crate) pricing: Pricing,
    /// In the catalog or config, rather than only matched by a provider's `models` glob.
    #[serde(skip, default = "listed")]
    pub(crate) catalogued: bool,
    /// Whether izzi adds prompt caching to requests it translates for this model (cache
    /// breakpoints toward Anthropic, `prompt_cache_key` toward OpenAI); `[server]
    /// prompt_caching = false` turns it off for every model.
    #[serde(default = "listed", skip_serializing)]
    pub(crate) prompt_caching: bool,
    /// Whether the model searches the web through Chat's `web_search_options` (OpenAI's search
    /// models), so Anthropic's and Responses' web search tools can become it.
    #[serde(default, skip_serializing)]
    pub(crate) web_search: bool,
}

fn listed() -> bool {
    true
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
    /// `false`: izzi adds no prompt caching to requests it translates for this model (no
    /// cache breakpoints toward Anthropic, no `prompt_cache_key` toward OpenAI) [default: true].
    pub(crate) prompt_caching: Option<bool>,
    /// `true`: the model (on an OpenAI-kind provider) searches the web through Chat's
    /// `web_search_options`, as OpenAI's search models do; Anthropic's and Responses' web
    /// search tools then become it instead of being dropped [default: false].
    pub(crate) web_search: Option<bool>,
}

impl Model {
    /// The model id to send upstream.
    pub(crate) fn upstream_id(&self) -> &str {
        self.upstream_id.as_deref().unwrap_or(&self.id)
    }

    /// The cost in USD of `usage` at this model's prices. Cache reads and writes without a
    /// price of their own are charged as input. Writes to a one-hour cache cost twice the input
    /// price (Anthropic's rate; the listed cache-write price is the five-minute one).
    pub(crate) fn cost(&self, usage: &Usage) -> Decimal {
        let per_token = |tokens: u64, per_mtok: Decimal| Decimal::from(tokens) * per_mtok;
        let hour_writes = usage.cache_write_1h_tokens.min(usage.cache_write_tokens);
        let total = per_token(usage.input_tokens, self.input_per_mtok)
            + per_token(usage.output_tokens, self.output_per_mtok)
            + per_token(
                usage.cache_read_tokens,
                self.cache_read_per_mtok.unwrap_or(self.input_per_mtok),
            )
            + per_token(
                usage.cache_write_tokens - hour_writes,
                self.cache_write_per_mtok.unwrap_or(self.input_per_mtok),
            )
            + per_token(hour_writes, self.input_per_mtok * Decimal::TWO);
        total / Decimal::from(1_000_000)
    }

    /// The most `input` tokens and `output` tokens can cost: every input token at the dearest
    /// price an input token can have (a cache write; a one-hour one when `hour_cache`).
    pub(crate) fn worst_cost(&self, input: u64, output: u64, hour_cache: bool) -> Decimal {
        let hour = hour_cache.then_some(self.input_per_mtok * Decimal::TWO);
        let dearest = [self.cache_write_per_mtok, self.cache_read_per_mtok, hour]
            .into_iter()
            .flatten()
            .fold(self.input_per_mtok, Decimal::max);
        (Decimal::from(input) * dearest + Decimal::from(output) * self.output_per_mtok)
            / Decimal::from(1_000_000)
    }

    /// Gives a model without prices `default`'s.
    fn price_by_default(&mut self, default: DefaultPrice) {
        if self.pricing == Pricing::Unpriced {
            self.input_per_mtok = default.input_per_mtok;
            self.output_per_mtok = default.output_per_mtok;
            self.pricing = Pricing::Default;
        }
    }

    /// A model no catalog entry describes, served by a provider's glob: no prices are known
    /// but `default`'s.
    pub(crate) fn uncatalogued(name: &str, provider: &str, default: Option<DefaultPrice>) -> Self {
        let mut model = Self::bare(name, provider);
        model.catalogued = false;
        if let Some(default) = default {
            model.price_by_default(default);
        }
        model
    }

    /// A model with nothing known but its name and provider.
    fn bare(id: &str, provider: &str) -> Self {
        Model {
            id: id.to_owned(),
            display_name: id.to_owned(),
            provider: provider.to_owned(),
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
            pricing: Pricing::Unpriced,
            catalogued: true,
            prompt_caching: true,
            web_search: false,
        }
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
        set!(
            max_output,
            tokenizer,
            reasoning,
            fallbacks,
            prompt_caching,
            web_search
        );
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
        let mut model = Self::bare(&o.id, &provider);
        if o.input_per_mtok.is_some() || o.output_per_mtok.is_some() {
            model.pricing = Pricing::Listed;
        }
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

    /// Gives every model without prices of its own `default`'s (`[default_price]`).
    pub(crate) fn with_default_price(mut self, default: Option<DefaultPrice>) -> Self {
        if let Some(default) = default {
            for model in &mut self.models {
                model.price_by_default(default);
            }
        }
        self
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
            cache_write_1h_tokens: 0,
        };
        // 3.00 input + 1.50 output + 0.30 cache read
        assert_eq!(sonnet.cost(&usage).normalize().to_string(), "4.8");
    }

    #[test]
    fn one_hour_cache_writes_cost_twice_the_input_and_holds_take_the_dearest_input() {
        let catalog = Catalog::load(&[]).unwrap();
        let sonnet = catalog.get("sonnet").unwrap();
        let usage = Usage {
            cache_write_tokens: 1_000_000,
            cache_write_1h_tokens: 400_000,
            ..Usage::default()
        };
        // 600k five-minute writes at $3.75/M, 400k one-hour writes at $6/M.
        assert_eq!(sonnet.cost(&usage).normalize().to_string(), "4.65");
        // A hold prices input as a cache write; at the one-hour rate only when asked.
        assert_eq!(
            sonnet
                .worst_cost(1_000_000, 0, false)
                .normalize()
                .to_string(),
            "3.75"
        );
        assert_eq!(
            sonnet
                .worst_cost(1_000_000, 0, true)
                .normalize()
                .to_string(),
            "6"
        );
        let gpt = catalog.get("gpt-4.1").unwrap();
        assert_eq!(
            gpt.worst_cost(1_000_000, 1_000_000, false)
                .normalize()
                .to_string(),
            "10"
        );
    }

    #[test]
    fn models_without_prices_are_unpriced_until_a_default_prices_them() {
        let overrides = [ModelOverride {
            id: "mine".into(),
            provider: Some("openai".into()),
            ..Default::default()
        }];
        let catalog = Catalog::load(&overrides).unwrap();
        assert_eq!(catalog.get("mine").unwrap().pricing, Pricing::Unpriced);
        assert_eq!(catalog.get("sonnet").unwrap().pricing, Pricing::Listed);
        let default = DefaultPrice {
            input_per_mtok: Decimal::ONE,
            output_per_mtok: Decimal::TWO,
        };
        let catalog = catalog.with_default_price(Some(default));
        let mine = catalog.get("mine").unwrap();
        assert_eq!(
            (mine.pricing, mine.input_per_mtok, mine.output_per_mtok),
            (Pricing::Default, Decimal::ONE, Decimal::TWO)
        );
        assert_eq!(
            catalog.get("sonnet").unwrap().input_per_mtok,
            Decimal::from(3)
        );
        let glob = Model::uncatalogued("x-1", "openai", None);
        assert_eq!((glob.pricing, glob.catalogued), (Pricing::Unpriced, false));
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
