//! OpenAI Codex CLI: `~/.codex/config.toml` (`CODEX_HOME` moves it), edited with `toml_edit` so
//! comments and layout stay. izzi becomes a model provider speaking the Responses API (Codex
//! dropped Chat Completions), and `model_provider` selects it. The key comes from
//! `izzi key print` through `[model_providers.izzi.auth]`, which works for IDE-launched Codex
//! too; only when izzi runs from a temporary place does Codex read `IZZI_API_KEY` instead.
//!
//! Codex knows the context window of OpenAI's models only; for another `model` (a Claude
//! model, an alias) it assumes a window of its own and compacts too late or too early. When the
//! file names a `model` izzi's catalog knows, setup writes its window as `model_context_window`
//! (Codex derives its auto-compaction threshold from it), unless the user set one.

use std::path::PathBuf;

use crate::catalog::Catalog;
use crate::env;
use crate::setup::edit::{self, Format};
use crate::setup::layout::Layout;
use crate::setup::templates::{self, Template};
use crate::setup::{Ctx, Detection, Tool, ToolPlan};

pub(super) struct Codex;

fn home(layout: &Layout) -> PathBuf {
    layout.dir_from(env::CODEX_HOME, |l| l.home.join(".codex"))
}

impl Tool for Codex {
    fn id(&self) -> &'static str {
        "codex"
    }

    fn name(&self) -> &'static str {
        "OpenAI Codex CLI"
    }

    fn detect(&self, layout: &Layout) -> Detection {
        let mut found = Detection::default();
        found
            .binaries(layout, &["codex"])
            .paths(layout, [home(layout).as_path()]);
        found
    }

    fn plan(&self, ctx: &Ctx<'_>) -> ToolPlan {
        let mut plan = ToolPlan::default();
        let config = home(ctx.layout).join("config.toml");
        let problems = plan.problems.len();
        if ctx.target.izzi.is_some() {
            plan.patch(ctx, &config, Format::Toml, Template::Codex, false);
        } else {
            plan.patch(ctx, &config, Format::Toml, Template::CodexEnvKey, false);
            plan.manual.push(templates::text(
                Template::CodexEnvKeyText,
                &ctx.target.vars(),
            ));
        }
        // A file izzi cannot read is reported once.
        if plan.problems.len() > problems {
            return plan;
        }
        plan.edit(ctx, &config, false, |before, shown| {
            edit::toml_with(before, |doc| {
                context_window(doc);
                Ok(())
            })
            .map_err(|e| crate::setup::describe(shown, &e))
        });
        plan
    }
}

/// Sets `model_context_window` to the catalog's window of the file's `model`, when the
/// catalog knows it and the file has no window of its own.
fn context_window(doc: &mut toml_edit::DocumentMut) {
    if doc.contains_key("model_context_window") {
        return;
    }
    let Some(model) = doc.get("model").and_then(toml_edit::Item::as_str) else {
        return;
    };
    let Some(window) = Catalog::load(&[])
        .ok()
        .and_then(|catalog| catalog.get(model).map(|m| m.context_window))
        .and_then(|window| i64::try_from(window).ok())
    else {
        return;
    };
    doc.insert("model_context_window", toml_edit::value(window));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn after(text: &str) -> String {
        String::from_utf8(
            edit::toml_with(Some(text.as_bytes()), |doc| {
                context_window(doc);
                Ok(())
            })
            .unwrap(),
        )
        .unwrap()
    }

    /// The catalog's window for a model it knows (by alias too); nothing for one it does not,
    /// for no model, or over the user's own window.
    #[test]
    fn the_window_comes_from_the_catalog_and_never_overrides_the_user() {
        assert_eq!(
            after("model = \"sonnet\"\n"),
            "model = \"sonnet\"\nmodel_context_window = 200000\n"
        );
        for unchanged in [
            "model = \"not-a-model\"\n",
            "approval_policy = \"never\"\n",
            "model = \"sonnet\"\nmodel_context_window = 100000\n",
        ] {
            assert_eq!(after(unchanged), unchanged);
        }
    }
}
