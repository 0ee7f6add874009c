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
            Condition::MinInputTokens(least) => r.input_tokens() >= least,
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
mod tests {
    use super::*;

    fn rules(text: &str) -> Rules {
        Rules::new(&Config::parse(text).unwrap().routes).unwrap()
    }

    /// Rules as Claude Code Router users write them: background, think, long context, web
    /// search, images, then a per-key and per-tool default.
    const RULES: &str = r#"
[[routes]]
name = "background"
model = "claude-*haiku*"
to = "gpt-4.1-mini"
[[routes]]
name = "think"
thinking = true
to = "o3"
[[routes]]
name = "long"
min_input_tokens = 2000
to = "gemini-2.5-pro"
[[routes]]
name = "search"
has_tools = ["web_search"]
to = "sonnet"
[[routes]]
name = "vision"
has_images = true
to = "gpt-4.1"
[[routes]]
name = "ci"
key = ["ci", "nightly"]
tool = "codex"
to = ["gpt-4.1-mini", "gpt-4.1"]
[[routes]]
name = "cline"
tool = ["cline", "cursor"]
to = "sonnet"
"#;

    #[test]
    fn the_first_rule_whose_conditions_all_hold_decides() {
        let rules = rules(RULES);
        let long = format!(
            r#"{{"model":"sonnet","messages":[{{"role":"user","content":"{}"}}]}}"#,
            "word ".repeat(2000)
        );
        let table: &[(&str, Tool, &str, &str, Option<&str>)] = &[
            // (model, tool, key, body members, expected rule)
            (
                "claude-3-5-haiku-20241022",
                Tool::ClaudeCode,
                "k",
                "",
                Some("background"),
            ),
            (
                "claude-haiku-4-5",
                Tool::Other,
                "k",
                r#","thinking":{"type":"enabled","budget_tokens":1024}"#,
                Some("background"),
            ),
            ("claude-sonnet-4-5", Tool::ClaudeCode, "k", "", None),
            (
                "sonnet",
                Tool::ClaudeCode,
                "k",
                r#","thinking":{"type":"enabled","budget_tokens":1024}"#,
                Some("think"),
            ),
            (
                "sonnet",
                Tool::ClaudeCode,
                "k",
                r#","thinking":{"type":"disabled"}"#,
                None,
            ),
            (
                "gpt-5",
                Tool::Codex,
                "k",
                r#","reasoning":{"effort":"high"}"#,
                Some("think"),
            ),
            (
                "gpt-5",
                Tool::Codex,
                "k",
                r#","reasoning":{"effort":"none"}"#,
                None,
            ),
            (
                "gpt-5",
                Tool::OpenaiSdk,
                "k",
                r#","reasoning_effort":"low""#,
                Some("think"),
            ),
            (
                "sonnet",
                Tool::ClaudeCode,
                "k",
                r#","tools":[{"type":"web_search_20250305","name":"web_search"}]"#,
                Some("search"),
            ),
            (
                "gpt-5",
                Tool::Codex,
                "k",
                r#","tools":[{"type":"web_search_preview"}]"#,
                Some("search"),
            ),
            (
                "gpt-5",
                Tool::Codex,
                "k",
                r#","tools":[{"type":"function","function":{"name":"web_search"}}]"#,
                Some("search"),
            ),
            (
                "gpt-5",
                Tool::Codex,
                "k",
                r#","tools":[{"type":"function","function":{"name":"web_searcher"}}]"#,
                None,
            ),
            ("gpt-5", Tool::Codex, "ci", "", Some("ci")),
            ("gpt-5", Tool::ClaudeCode, "ci", "", None),
            ("gpt-5", Tool::Codex, "other", "", None),
            ("gpt-5", Tool::Cursor, "k", "", Some("cline")),
            ("gpt-5", Tool::Cline, "nightly", "", Some("cline")),
        ];
        for &(model, tool, key, members, expected) in table {
            let raw = format!(
                r#"{{"model":"{model}","messages":[{{"role":"user","content":"hi"}}]{members}}}"#
            );
            let body = Body::parse(raw.as_bytes()).unwrap();
            let picked = rules.pick(&Request::new(model, tool, key, &body, raw.as_bytes()));
            assert_eq!(
                picked.map(|r| &*r.name),
                expected,
                "{model} {tool:?} {key} {members}"
            );
        }
        let body = Body::parse(long.as_bytes()).unwrap();
        let picked = rules.pick(&Request::new(
            "sonnet",
            Tool::Zed,
            "k",
            &body,
            long.as_bytes(),
        ));
        assert_eq!(picked.map(|r| &*r.name), Some("long"));
        let image = r#"{"model":"sonnet","messages":[{"role":"user","content":[{"type":"image","source":{"type":"url","url":"https://x/a.png"}}]}]}"#;
        let body = Body::parse(image.as_bytes()).unwrap();
        let picked = rules.pick(&Request::new(
            "sonnet",
            Tool::Zed,
            "k",
            &body,
            image.as_bytes(),
        ));
        assert_eq!(picked.map(|r| &*r.name), Some("vision"));
    }

    #[test]
    fn explain_shows_each_conditions_value() {
        let rules = rules(RULES);
        let raw = r#"{"model":"gpt-5","messages":[],"tools":[{"type":"function","function":{"name":"read"}}]}"#;
        let body = Body::parse(raw.as_bytes()).unwrap();
        let request = Request::new("gpt-5", Tool::Codex, "ci", &body, raw.as_bytes());
        let ci = &rules.all()[5];
        assert_eq!(ci.to, ["gpt-4.1-mini", "gpt-4.1"]);
        let checks = ci.explain(&request);
        let shown: Vec<(&str, &str, &str, bool)> = checks
            .iter()
            .map(|c| (c.condition, c.wanted.as_str(), c.actual.as_str(), c.holds))
            .collect();
        assert_eq!(
            shown,
            [
                ("tool", "codex", "codex", true),
                ("key", "ci, nightly", "ci", true)
            ]
        );
        let search = rules.all()[3].explain(&request);
        assert_eq!(
            (search[0].actual.as_str(), search[0].holds),
            ("function, read", false)
        );
        assert_eq!(rules.all()[0].header, "background");
    }

    #[test]
    fn routes_to_unknown_models_and_fallback_cycles_are_refused_at_start() {
        let err = |text: &str| {
            let config = Config::parse(text).unwrap();
            format!(
                "{:#}",
                crate::gateway::Router::new(&config, None).unwrap_err()
            )
        };
        let provider = "[[providers]]\nname = \"a\"\nkind = \"anthropic\"\nbase_url = \"http://127.0.0.1:1\"\nmodels = [\"claude-*\"]\n";
        let unknown = err(&format!(
            "{provider}[[routes]]\nmodel = \"x\"\nto = [\"sonnet\", \"gpt-9\"]\n"
        ));
        assert!(
            unknown.contains("line 8, `routes[0].to`: the model `gpt-9` is neither in the catalog nor matched by a provider's `models`"),
            "{unknown}"
        );
        let model = |id: &str, fallbacks: &str| {
            format!("[[models]]\nid = \"{id}\"\nprovider = \"a\"\nfallbacks = [{fallbacks}]\n")
        };
        let cycle = err(&format!(
            "{provider}{}{}{}",
            model("m1", "\"m2\""),
            model("m2", "\"sonnet\", \"m3\""),
            model("m3", "\"m1\"")
        ));
        assert!(
            cycle.contains(
                "line 9, `models[0].fallbacks`: the fallbacks form a cycle: m1 → m2 → m3 → m1"
            ),
            "{cycle}"
        );
        let own = err(&format!("{provider}{}", model("m1", "\"m1\"")));
        assert!(own.contains("m1 → m1"), "{own}");
        // A chain that ends is fine, and so is a route to a model only a glob knows.
        let config = Config::parse(&format!(
            "{provider}{}{}[[routes]]\nto = \"claude-new-9\"\n",
            model("m1", "\"m2\""),
            model("m2", "\"sonnet\"")
        ))
        .unwrap();
        crate::gateway::Router::new(&config, None).unwrap();
    }

    #[test]
    fn unnamed_rules_are_named_by_their_place() {
        let rules =
            rules("[[routes]]\nmodel = \"a*\"\nto = \"sonnet\"\n[[routes]]\nto = \"opus\"\n");
        let names: Vec<&str> = rules.all().iter().map(|r| &*r.name).collect();
        assert_eq!(names, ["routes[0]", "routes[1]"]);
    }

    #[test]
    fn config_checks_name_the_line_and_field() {
        let cases: &[(&str, &str)] = &[
            (
                "[[routes]]\nname = \"a\"\nto = \"sonnet\"\n\n[[routes]]\nname = \"b\"\nmodel = \"x*\"\nto = \"opus\"\n",
                "line 8, `routes[1].to`: the route `b` can never match: every request it matches is taken by the earlier route `a` (line 3, `routes[0].to`)",
            ),
            (
                "[[routes]]\nmodel = \"claude-*\"\nto = \"sonnet\"\n[[routes]]\nmodel = \"claude-haiku-4-5\"\nthinking = true\nto = \"opus\"\n",
                "line 7, `routes[1].to`: the route `routes[1]` can never match",
            ),
            (
                "[[routes]]\nkey = [\"a\", \"b\"]\nmin_input_tokens = 10\nto = \"sonnet\"\n[[routes]]\nkey = \"a\"\nmin_input_tokens = 50\nhas_images = true\nto = \"opus\"\n",
                "line 9, `routes[1].to`: the route `routes[1]` can never match",
            ),
            (
                "[[routes]]\nhas_tools = [\"web_search\", \"fetch\"]\nto = \"sonnet\"\n[[routes]]\nhas_tools = [\"fetch\"]\ntool = \"zed\"\nto = \"opus\"\n",
                "can never match",
            ),
            (
                "[[routes]]\ntool = \"vim\"\nto = \"sonnet\"\n",
                "line 2, `routes[0].tool`: `vim` is not a tool izzi knows",
            ),
            (
                "[[routes]]\nmodel = \"[a\"\nto = \"sonnet\"\n",
                "line 2, `routes[0].model`: `[a` is not a valid glob",
            ),
            (
                "[[routes]]\nto = []\n",
                "line 2, `routes[0].to`: name the model",
            ),
            (
                "[[routes]]\nname = \"a b\"\nto = \"x\"\n",
                "line 2, `routes[0].name`: `a b` is not a valid route name",
            ),
            (
                "[[routes]]\nname = \"a\"\nmodel = \"x\"\nto = \"x\"\n[[routes]]\nname = \"a\"\nto = \"y\"\n",
                "line 6, `routes[1].name`: the route name `a` is used twice",
            ),
            ("[breaker]\nwindow_s = 0\n", "`breaker.window_s`"),
        ];
        for (text, expected) in cases {
            let err = format!("{:#}", Config::parse(text).unwrap_err());
            assert!(err.contains(expected), "{text}\n{err}");
        }
        // Narrower earlier rules leave later ones reachable.
        for text in [
            "[[routes]]\nmodel = \"claude-haiku-4-5\"\nto = \"sonnet\"\n[[routes]]\nmodel = \"claude-*\"\nto = \"opus\"\n",
            "[[routes]]\nthinking = true\nto = \"o3\"\n[[routes]]\nthinking = false\nto = \"opus\"\n",
            "[[routes]]\nmin_input_tokens = 100\nto = \"o3\"\n[[routes]]\nmin_input_tokens = 50\nto = \"opus\"\n",
            "[[routes]]\ntool = \"codex\"\nto = \"o3\"\n[[routes]]\ntool = [\"codex\", \"zed\"]\nto = \"opus\"\n",
        ] {
            Config::parse(text).unwrap();
        }
    }
}
