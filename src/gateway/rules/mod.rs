//! Routing rules (`[[routes]]`): the first rule whose conditions all hold names the model that
//! serves a request. Pure. A request's model, tool and key are at hand; what only its body tells
//! (thinking, images, tools, size) is read when a rule first asks, and once.

use std::borrow::Cow;
use std::cell::OnceCell;
use std::sync::Arc;

use anyhow::{Context as _, Result, bail};
use axum::http::HeaderValue;
use globset::{Glob, GlobMatcher};
use serde::Deserialize;

use crate::attribution::Tool;
use crate::catalog::Catalog;
use crate::config::{Config, Names, RouteRule};
use crate::protocol::json::Body;

/// The compiled `[[routes]]`, in order.
#[derive(Debug, Default)]
pub(crate) struct Rules(Vec<Rule>);

/// One compiled rule.
#[derive(Debug)]
pub(crate) struct Rule {
    pub(crate) name: Arc<str>,
    /// The name as the `x-izzi-route` header, built once.
    pub(crate) header: HeaderValue,
    model: Option<(String, GlobMatcher)>,
    tools: Option<Vec<Tool>>,
    keys: Option<Vec<String>>,
    thinking: Option<bool>,
    min_input_tokens: Option<u64>,
    has_images: Option<bool>,
    has_tools: Option<Vec<String>>,
    /// The models tried, in order.
    pub(crate) to: Vec<String>,
}

/// What the rules see of one request.
pub(crate) struct Request<'a> {
    /// The model or alias, as the client sent it.
    pub(crate) model: &'a str,
    pub(crate) tool: Tool,
    /// The client key's name.
    pub(crate) key: &'a str,
    body: &'a Body<'a>,
    raw: &'a [u8],
    thinking: OnceCell<bool>,
    images: OnceCell<bool>,
    tokens: OnceCell<u64>,
    offered: OnceCell<Vec<String>>,
}

impl<'a> Request<'a> {
    pub(crate) fn new(
        model: &'a str,
        tool: Tool,
        key: &'a str,
        body: &'a Body<'a>,
        raw: &'a [u8],
    ) -> Self {
        Self {
            model,
            tool,
            key,
            body,
            raw,
            thinking: OnceCell::new(),
            images: OnceCell::new(),
            tokens: OnceCell::new(),
            offered: OnceCell::new(),
        }
    }

    /// Whether the request asks for reasoning: Anthropic's `thinking` (not `disabled`), Chat's
    /// `reasoning_effort` or Responses' `reasoning.effort` (not `none`).
    pub(crate) fn thinking(&self) -> bool {
        #[derive(Deserialize)]
        struct Thinking<'a> {
            #[serde(borrow, rename = "type")]
            kind: Option<Cow<'a, str>>,
        }
        #[derive(Deserialize)]
        struct Reasoning<'a> {
            #[serde(borrow)]
            effort: Option<Cow<'a, str>>,
        }
        *self.thinking.get_or_init(|| {
            let on = |effort: Option<&str>| effort != Some("none");
            if let Ok(Some(t)) = self.body.field::<Thinking<'_>>("thinking", "") {
                return t.kind.as_deref() != Some("disabled");
            }
            if let Ok(Some(effort)) = self.body.field::<Cow<'_, str>>("reasoning_effort", "") {
                return on(Some(&effort));
            }
            matches!(self.body.field::<Reasoning<'_>>("reasoning", ""), Ok(Some(r)) if on(r.effort.as_deref()))
        })
    }

    /// Whether any message holds an image.
    pub(crate) fn has_images(&self) -> bool {
        *self
            .images
            .get_or_init(|| crate::tokens::has_images(self.raw))
    }

    /// The input tokens, estimated without tokenizing.
    pub(crate) fn input_tokens(&self) -> u64 {
        *self
            .tokens
            .get_or_init(|| crate::tokens::input_estimate(self.raw))
    }

    /// Whether the estimate reaches `least`: the body's length alone often decides, without
    /// the scan for images (a long prompt is hundreds of KB).
    fn input_tokens_reach(&self, least: u64) -> bool {
        crate::tokens::text_estimate(self.raw) >= least || self.input_tokens() >= least
    }

    /// The names and types of the tools the request offers.
    pub(crate) fn offered_tools(&self) -> &[String] {
        #[derive(Deserialize)]
        struct Function<'a> {
            #[serde(borrow)]
            name: Option<Cow<'a, str>>,
        }
        #[derive(Deserialize)]
        struct Offered<'a> {
            #[serde(borrow, rename = "type")]
            kind: Option<Cow<'a, str>>,
            #[serde(borrow)]
            name: Option<Cow<'a, str>>,
            #[serde(borrow)]
            function: Option<Function<'a>>,
        }
        self.offered.get_or_init(|| {
            let tools: Vec<Offered<'_>> = self
                .body
                .field("tools", "")
                .ok()
                .flatten()
                .unwrap_or_default();
            let mut names = Vec::new();
            for tool in tools {
                let function = tool.function.and_then(|f| f.name);
                for name in [tool.kind, tool.name, function].into_iter().flatten() {
                    if !names.iter().any(|n| *n == name) {
                        names.push(name.into_owned());
                    }
                }
            }
            names
        })
    }

    fn offers(&self, wanted: &str) -> bool {
        // A name not even in the `tools` text is not offered: a scan instead of a parse of the
        // tools' schemas (a coding agent's are tens of KB).
        let named = self.body.get("tools").is_some_and(|tools| {
            memchr::memmem::find(tools.get().as_bytes(), wanted.as_bytes()).is_some()
        });
        named
            && self.offered_tools().iter().any(|have| {
                have == wanted
                    || have
                        .strip_prefix(wanted)
                        .is_some_and(|rest| rest.starts_with('_'))
            })
    }
}

/// One condition of a rule.
enum Condition<'r> {
    Model(&'r str, &'r GlobMatcher),
    Tool(&'r [Tool]),
    Key(&'r [String]),
    Thinking(bool),
    MinInputTokens(u64),
    HasImages(bool),
    HasTools(&'r [String]),
}

/// A condition evaluated for `izzi route explain`: what the rule wants, what the request has.
#[derive(Debug, serde::Serialize)]
pub(crate) struct Check {
    pub(crate) condition: &'static str,
    pub(crate) wanted: String,
    pub(crate) actual: String,
    pub(crate) holds: bool,
}

impl Condition<'_> {
    fn holds(&self, r: &Request<'_>) -> bool {
        match *self {
            Condition::Model(_, glob) => glob.is_match(r.model),
            Condition::Tool(tools) => tools.contains(&r.tool),
            Condition::Key(keys) => keys.iter().any(|k| k == r.key),
            Condition::Thinking(wanted) => r.thinking() == wanted,
            Condition::MinInputTokens(least) => r.input_tokens_reach(least),
            Condition::HasImages(wanted) => r.has_images() == wanted,
            Condition::HasTools(names) => names.iter().any(|n| r.offers(n)),
        }
    }

    fn check(&self, r: &Request<'_>) -> Check {
        let list = |names: &mut dyn Iterator<Item = &str>| names.collect::<Vec<_>>().join(", ");
        let (condition, wanted, actual) = match *self {
            Condition::Model(glob, _) => ("model", glob.to_owned(), r.model.to_owned()),
            Condition::Tool(tools) => (
                "tool",
                list(&mut tools.iter().map(|t| t.as_str())),
                r.tool.as_str().to_owned(),
            ),
            Condition::Key(keys) => (
                "key",
                list(&mut keys.iter().map(String::as_str)),
                r.key.to_owned(),
            ),
            Condition::Thinking(wanted) => {
                ("thinking", wanted.to_string(), r.thinking().to_string())
            }
            Condition::MinInputTokens(least) => (
                "min_input_tokens",
                least.to_string(),
                format!("~{}", r.input_tokens()),
            ),
            Condition::HasImages(wanted) => {
                ("has_images", wanted.to_string(), r.has_images().to_string())
            }
            Condition::HasTools(names) => (
                "has_tools",
                list(&mut names.iter().map(String::as_str)),
                list(&mut r.offered_tools().iter().map(String::as_str)),
            ),
        };
        Check {
            condition,
            wanted,
            actual,
            holds: self.holds(r),
        }
    }
}

impl Rule {
    fn new(index: usize, config: &RouteRule) -> Result<Self> {
        let name = config.name_at(index);
        let names = |names: &Option<Names>| names.as_ref().map(|n| n.as_slice().to_vec());
        Ok(Self {
            header: HeaderValue::try_from(name.as_str())
                .with_context(|| format!("route name `{name}` cannot be a header value"))?,
            model: config
                .model
                .as_ref()
                .map(|glob| {
                    Glob::new(glob)
                        .map(|g| (glob.clone(), g.compile_matcher()))
                        .with_context(|| {
                            format!("`routes[{index}].model`: `{glob}` is not a valid glob")
                        })
                })
                .transpose()?,
            tools: config
                .tool
                .as_ref()
                .map(|tools| tools.as_slice().iter().map(|t| Tool::parse(t)).collect())
                .transpose()
                .with_context(|| format!("`routes[{index}].tool`"))?,
            keys: names(&config.key),
            thinking: config.thinking,
            min_input_tokens: config.min_input_tokens,
            has_images: config.has_images,
            has_tools: config.has_tools.clone(),
            to: config.to.as_slice().to_vec(),
            name: name.into(),
        })
    }

    /// The rule's conditions, cheapest first: a compare, a glob, then what the body shows.
    fn conditions(&self) -> impl Iterator<Item = Condition<'_>> {
        [
            self.tools.as_deref().map(Condition::Tool),
            self.keys.as_deref().map(Condition::Key),
            self.model
                .as_ref()
                .map(|(glob, matcher)| Condition::Model(glob, matcher)),
            self.thinking.map(Condition::Thinking),
            self.has_images.map(Condition::HasImages),
            self.min_input_tokens.map(Condition::MinInputTokens),
            self.has_tools.as_deref().map(Condition::HasTools),
        ]
        .into_iter()
        .flatten()
    }

    fn matches(&self, r: &Request<'_>) -> bool {
        self.conditions().all(|c| c.holds(r))
    }

    /// Every condition, evaluated (none: the rule matches every request).
    pub(crate) fn explain(&self, r: &Request<'_>) -> Vec<Check> {
        self.conditions().map(|c| c.check(r)).collect()
    }
}

impl Rules {
    pub(crate) fn new(routes: &[RouteRule]) -> Result<Self> {
        routes
            .iter()
            .enumerate()
            .map(|(i, r)| Rule::new(i, r))
            .collect::<Result<_>>()
            .map(Self)
    }

    /// The first rule that matches `r`.
    pub(crate) fn pick(&self, r: &Request<'_>) -> Option<&Rule> {
        self.0.iter().find(|rule| rule.matches(r))
    }

    /// The rules, in order.
    pub(crate) fn all(&self) -> &[Rule] {
        &self.0
    }
}

/// The checks that need the catalog and providers (`routes`: whether a name routes): every
/// route's `to` names a model that exists, and no model's `fallbacks` lead back to it.
pub(crate) fn check(
    config: &Config,
    catalog: &Catalog,
    routes: impl Fn(&str) -> bool,
) -> Result<()> {
    for (i, rule) in config.routes.iter().enumerate() {
        if let Some(unknown) = rule.to.as_slice().iter().find(|name| !routes(name)) {
            bail!(
                "{}: the model `{unknown}` is neither in the catalog nor matched by a provider's `models`; `izzi models` lists the models",
                config.locate("routes", i, "to")
            );
        }
    }
    let id = |name: &str| catalog.get(name).map_or(name.to_owned(), |m| m.id.clone());
    for model in catalog.models() {
        // A walk along first-seen fallbacks; a model reached again from itself is a cycle.
        let mut path = vec![model.id.clone()];
        let mut next: Vec<(usize, String)> = model.fallbacks.iter().map(|f| (1, id(f))).collect();
        let mut seen = std::collections::HashSet::new();
        while let Some((depth, name)) = next.pop() {
            path.truncate(depth);
            if name == model.id {
                path.push(name);
                let at = config
                    .models
                    .iter()
                    .position(|o| o.id == model.id)
                    .map_or_else(
                        || format!("model `{}`", model.id),
                        |k| config.locate("models", k, "fallbacks"),
                    );
                bail!("{at}: the fallbacks form a cycle: {}", path.join(" → "));
            }
            if !seen.insert(name.clone()) {
                continue;
            }
            if let Some(fallback) = catalog.get(&name) {
                next.extend(fallback.fallbacks.iter().map(|f| (depth + 1, id(f))));
            }
            path.push(name);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
