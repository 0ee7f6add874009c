//! `[[routes]]`, `[breaker]` and `[affinity]`: which model serves a request, when a failing
//! provider is skipped, and how long a session keeps its provider. The checks that need only the
//! config itself live here; those that need the catalog and providers (a route to an unknown
//! model, a cycle in fallbacks) run when the gateway's router is built.

use anyhow::{Result, bail};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::attribution::Tool;

/// One `[[routes]]` rule: its conditions (all optional, all must hold) and where it sends the
/// request. Rules are tried in order; the first whose conditions all hold decides.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RouteRule {
    /// Sent back in `x-izzi-route` and recorded with the request [default: `routes[N]`, N from
    /// 0]. Letters, digits, `.`, `_` and `-`.
    #[schemars(regex(pattern = r"^[A-Za-z0-9._-]{1,64}$"))]
    pub(crate) name: Option<String>,
    /// A glob on the model (or alias) the client asked for, as it sent it: `claude-*haiku*` is
    /// Claude Code's background work.
    pub(crate) model: Option<String>,
    /// The client tool, or any of several: claude-code, codex, cline, cursor, opencode, zed,
    /// openai-sdk, anthropic-sdk, other.
    pub(crate) tool: Option<Names>,
    /// The client key's name, or any of several (`@setup`: the key `izzi setup` stored).
    pub(crate) key: Option<Names>,
    /// Whether the request asks the model to reason: Anthropic `thinking` (not `disabled`),
    /// OpenAI `reasoning_effort` or `reasoning.effort` (not `none`).
    pub(crate) thinking: Option<bool>,
    /// The request's input is at least this many tokens, estimated before sending: a quarter of
    /// its bytes, plus each image at its largest.
    pub(crate) min_input_tokens: Option<u64>,
    /// Whether any message holds an image.
    pub(crate) has_images: Option<bool>,
    /// The request offers any of these tools, by name or type (`web_search` matches Anthropic's
    /// `web_search_20250305` and OpenAI's `web_search_preview`).
    pub(crate) has_tools: Option<Vec<String>>,
    /// The model or alias that serves the request, or a list tried in order (then it replaces
    /// the first model's `fallbacks`).
    pub(crate) to: Names,
}

/// One name, or a list of them.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub(crate) enum Names {
    One(String),
    Many(Vec<String>),
}

impl Names {
    pub(crate) fn as_slice(&self) -> &[String] {
        match self {
            Names::One(name) => std::slice::from_ref(name),
            Names::Many(names) => names,
        }
    }
}

impl RouteRule {
    /// The rule's name, or `routes[index]`.
    pub(crate) fn name_at(&self, index: usize) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| format!("routes[{index}]"))
    }
}

/// `[breaker]`: the circuit breaker each provider has.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Breaker {
    /// Failed upstream attempts (connection error, timeout, 5xx, a 429 whose `Retry-After` is
    /// longer than izzi waits) within `window_s` that open the circuit; 0 turns breakers off.
    pub(crate) failures: u32,
    pub(crate) window_s: u64,
    /// Seconds an open circuit skips its provider; then one request probes it, and its outcome
    /// closes the circuit or opens it again.
    pub(crate) cooldown_s: u64,
}

impl Default for Breaker {
    fn default() -> Self {
        Self {
            failures: 5,
            window_s: 60,
            cooldown_s: 30,
        }
    }
}

/// `[affinity]`: a session (`x-izzi-session`, or Claude Code's and Codex's session header)
/// stays on the model and provider that last served it, while that provider is healthy, so its
/// prompt cache stays warm.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Affinity {
    /// Sessions remembered at most; 0 turns affinity off.
    pub(crate) max_sessions: usize,
    /// Seconds a session is remembered after its last request.
    pub(crate) ttl_s: u64,
}

impl Default for Affinity {
    fn default() -> Self {
        Self {
            max_sessions: 10_000,
            ttl_s: 3600,
        }
    }
}

/// Lines of the fields of `[[routes]]` and `[[models]]` entries, for errors found after parsing.
#[derive(Debug, Clone, Default)]
pub(crate) struct Lines(Vec<(&'static str, usize, String, usize)>);

impl Lines {
    /// Finds, line by line, each `key = ` inside the `[[routes]]` and `[[models]]` entries.
    pub(crate) fn scan(text: &str) -> Self {
        let mut found = Vec::new();
        let mut table: Option<&'static str> = None;
        let mut counts = [0_usize; 2];
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.starts_with('[') {
                table = match line.split('#').next().unwrap_or_default().trim() {
                    "[[routes]]" => Some("routes"),
                    "[[models]]" => Some("models"),
                    _ => None,
                };
                if let Some(table) = table {
                    counts[usize::from(table == "models")] += 1;
                }
                continue;
            }
            let (Some(table), Some((key, _))) = (table, line.split_once('=')) else {
                continue;
            };
            let index = counts[usize::from(table == "models")] - 1;
            found.push((table, index, key.trim().to_owned(), number + 1));
        }
        Self(found)
    }

    /// "line N, `table[i].field`" (the line of the entry's first field when `field` is absent).
    pub(crate) fn at(&self, table: &str, index: usize, field: &str) -> String {
        let entry = || {
            self.0
                .iter()
                .filter(|(t, i, ..)| *t == table && *i == index)
        };
        let line = entry()
            .find(|(_, _, key, _)| key == field)
            .or_else(|| entry().next())
            .map(|(.., line)| *line);
        match line {
            Some(line) => format!("line {line}, `{table}[{index}].{field}`"),
            None => format!("`{table}[{index}].{field}`"),
        }
    }
}

/// The checks of `[[routes]]`, `[breaker]` and `[affinity]` that need nothing but the config.
pub(crate) fn check(
    routes: &[RouteRule],
    breaker: &Breaker,
    affinity: &Affinity,
    lines: &Lines,
) -> Result<()> {
    if breaker.failures > 0 && (breaker.window_s == 0 || breaker.cooldown_s == 0) {
        bail!("`breaker.window_s` and `breaker.cooldown_s` must be above 0");
    }
    if affinity.max_sessions > 0 && affinity.ttl_s == 0 {
        bail!("`affinity.ttl_s` must be above 0");
    }
    for (i, rule) in routes.iter().enumerate() {
        let at = |field: &str| lines.at("routes", i, field);
        if let Some(name) = &rule.name {
            if !super::valid_key_name(name) {
                bail!(
                    "{}: `{name}` is not a valid route name: {}",
                    at("name"),
                    super::KEY_NAME_RULE
                );
            }
            if routes[..i].iter().any(|r| r.name.as_ref() == Some(name)) {
                bail!("{}: the route name `{name}` is used twice", at("name"));
            }
        }
        if rule.to.as_slice().is_empty() || rule.to.as_slice().iter().any(String::is_empty) {
            bail!(
                "{}: name the model (or models) the route sends to",
                at("to")
            );
        }
        if let Some(glob) = &rule.model
            && let Err(err) = globset::Glob::new(glob)
        {
            bail!("{}: `{glob}` is not a valid glob: {err}", at("model"));
        }
        if let Some(tools) = &rule.tool
            && let Some(bad) = tools.as_slice().iter().find(|t| Tool::parse(t).is_err())
        {
            bail!(
                "{}: `{bad}` is not a tool izzi knows (docs/config.md lists them under `[[routes]]`)",
                at("tool")
            );
        }
        if let Some(earlier) = routes[..i].iter().position(|e| covers(e, rule)) {
            bail!(
                "{}: the route `{}` can never match: every request it matches is taken by the earlier route `{}` ({})",
                at("to"),
                rule.name_at(i),
                routes[earlier].name_at(earlier),
                lines.at("routes", earlier, "to"),
            );
        }
    }
    Ok(())
}

/// Whether every request `later` matches is matched by `earlier` too: each of `earlier`'s
/// conditions is implied by one of `later`'s.
fn covers(earlier: &RouteRule, later: &RouteRule) -> bool {
    fn subset(narrow: Option<&Names>, wide: Option<&Names>) -> bool {
        match (wide, narrow) {
            (None, _) => true,
            (Some(wide), Some(narrow)) => narrow
                .as_slice()
                .iter()
                .all(|n| wide.as_slice().contains(n)),
            (Some(_), None) => false,
        }
    }
    fn same<T: PartialEq>(wide: Option<&T>, narrow: Option<&T>) -> bool {
        wide.is_none() || wide == narrow
    }
    let model = match (&earlier.model, &later.model) {
        (None, _) => true,
        (Some(wide), Some(narrow)) => {
            wide == narrow
                || wide == "*"
                || (!narrow.contains(['*', '?', '[', '{'])
                    && globset::Glob::new(wide).is_ok_and(|g| g.compile_matcher().is_match(narrow)))
        }
        (Some(_), None) => false,
    };
    let tokens = match (earlier.min_input_tokens, later.min_input_tokens) {
        (None, _) => true,
        (Some(wide), Some(narrow)) => wide <= narrow,
        (Some(_), None) => false,
    };
    let tools = match (&earlier.has_tools, &later.has_tools) {
        (None, _) => true,
        (Some(wide), Some(narrow)) => narrow.iter().all(|n| wide.contains(n)),
        (Some(_), None) => false,
    };
    model
        && tokens
        && tools
        && subset(later.tool.as_ref(), earlier.tool.as_ref())
        && subset(later.key.as_ref(), earlier.key.as_ref())
        && same(earlier.thinking.as_ref(), later.thinking.as_ref())
        && same(earlier.has_images.as_ref(), later.has_images.as_ref())
}
