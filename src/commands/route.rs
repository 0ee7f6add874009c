//! `izzi route explain [--tool T] [--key K] FILE|-`: evaluates the config's `[[routes]]` for a
//! request body as the gateway would, prints each rule's conditions beside the request's values,
//! the model that would serve it, and its cost there (count-tokens' count and prices). Offline.

use anyhow::{Context as _, Result, anyhow};
use serde::Serialize;

use super::count_tokens::{Input, Row};
use crate::attribution::Tool;
use crate::cli::{RouteCommand, RouteExplainArgs};
use crate::config::{Config, SETUP_KEY_NAME};
use crate::gateway::{Router, RuleCheck, RuleRequest};
use crate::output::{self, UsageError};
use crate::protocol::json::Body;
use crate::tokens::{self, Prompt};

pub(crate) fn run(command: &RouteCommand) -> Result<()> {
    match command {
        RouteCommand::Explain(args) => explain(args),
    }
}

/// `--json` output; see docs/cli-json.md.
#[derive(Serialize)]
struct Report<'a> {
    source: &'a str,
    /// The model the body asks for.
    model: &'a str,
    tool: &'static str,
    key: &'a str,
    /// Every rule up to the one that matched (all of them when none did).
    rules: Vec<RuleReport<'a>>,
    /// The rule that matched.
    route: Option<&'a str>,
    /// The models tried, in order: the first serves unless its provider fails.
    models: Vec<&'a str>,
    provider: &'a str,
    cost: Row<'a>,
}

#[derive(Serialize)]
struct RuleReport<'a> {
    name: &'a str,
    matched: bool,
    to: &'a [String],
    conditions: Vec<RuleCheck>,
}

fn explain(args: &RouteExplainArgs) -> Result<()> {
    let tool = match &args.tool {
        Some(name) => Tool::parse(name).map_err(|_| {
            UsageError(format!(
                "`--tool {name}` is not a tool izzi knows; use claude-code, codex, cline, cursor, opencode, zed, openai-sdk, anthropic-sdk or other"
            ))
        })?,
        None => Tool::Other,
    };
    let key = args.key.as_deref().unwrap_or(SETUP_KEY_NAME);
    let (config, path) = Config::load(args.config.as_deref())?;
    let router = Router::new(&config, None).with_context(|| Config::invalid(path.as_deref()))?;
    let input = Input::read(Some(&args.file))?;
    let shown = if input.source == "-" {
        "stdin"
    } else {
        &input.source
    };
    let value = input.json()?.filter(|v| tokens::Shape::detect(v).is_some()).ok_or_else(|| {
        anyhow!("`{shown}` is not a request body (JSON with `messages` or `input`); give the body a client would send")
    })?;
    let body = Body::parse(input.text.as_bytes()).map_err(|e| anyhow!("`{shown}`: {}", e.0))?;
    let model: String = body
        .field("model", "a string")
        .map_err(|e| anyhow!("`{shown}`: {}", e.0))?
        .ok_or_else(|| anyhow!("`{shown}` names no `model`; routing starts from it"))?;
    let request = RuleRequest::new(&model, tool, key, &body, input.text.as_bytes());
    let mut rules = Vec::new();
    let mut picked = None;
    for rule in router.rules().all() {
        let conditions = rule.explain(&request);
        let matched = conditions.iter().all(|c| c.holds);
        rules.push(RuleReport {
            name: &rule.name,
            matched,
            to: &rule.to,
            conditions,
        });
        if matched {
            picked = Some(rule);
            break;
        }
    }
    let wanted = picked.map_or(model.as_str(), |rule| &rule.to[0]);
    let route = router.route(wanted).ok_or_else(|| {
        anyhow!(
            "the model `{wanted}` does not exist; `izzi models` lists the models and their aliases"
        )
    })?;
    let mut models: Vec<&str> = match picked {
        Some(rule) => rule.to.iter().map(String::as_str).collect(),
        None => vec![wanted],
    };
    if models.len() == 1 {
        models.extend(route.model.fallbacks.iter().map(String::as_str));
    }
    let cost = Row::new(
        &route.model,
        &Prompt::request(&value),
        tokens::max_output_of(&value),
    );
    let report = Report {
        source: &input.source,
        model: &model,
        tool: tool.as_str(),
        key,
        route: picked.map(|rule| &*rule.name),
        rules,
        models,
        provider: &route.provider.name,
        cost,
    };
    if args.json {
        output::json(&report);
    } else {
        report.print();
    }
    Ok(())
}

impl Report<'_> {
    fn print(&self) {
        output::line(format_args!(
            "request for `{}` from {} with key `{}`",
            self.model, self.tool, self.key
        ));
        if self.rules.is_empty() {
            output::line("no [[routes]] in the config");
        }
        for rule in &self.rules {
            let verdict = if rule.matched {
                "matches"
            } else {
                "does not match"
            };
            output::line(format_args!(
                "route `{}` → {}: {verdict}",
                rule.name,
                rule.to.join(", ")
            ));
            if rule.conditions.is_empty() {
                output::line("  (no conditions: every request)");
            }
            for c in &rule.conditions {
                let mark = if c.holds { "yes" } else { "no " };
                output::line(format_args!(
                    "  {mark} {} = {} (request: {})",
                    c.condition, c.wanted, c.actual
                ));
            }
        }
        match self.route {
            Some(name) => output::line(format_args!("routed by `{name}`")),
            None => output::line("no rule matches: the model asked for serves it"),
        }
        output::line(format_args!(
            "served by    {} ({}){}",
            self.models[0],
            self.provider,
            if self.models.len() > 1 {
                format!(", then {}", self.models[1..].join(", "))
            } else {
                String::new()
            }
        ));
        output::line(format_args!(
            "input        {} tokens, {}",
            self.cost.tokens(),
            output::usd(self.cost.input_cost_usd)
        ));
        output::line(format_args!(
            "output       up to {} tokens, up to {}",
            output::thousands(self.cost.max_output_tokens),
            output::usd(self.cost.output_cost_usd_max)
        ));
        output::line(format_args!(
            "total        {} – {}",
            output::usd(self.cost.input_cost_usd),
            output::usd(self.cost.total_cost_usd_max)
        ));
    }
}
