//! OpenAI Codex CLI: `~/.codex/config.toml` (`CODEX_HOME` moves it), edited with `toml_edit` so
//! comments and layout stay. izzi becomes a model provider speaking the Responses API (Codex
//! dropped Chat Completions), and `model_provider` selects it. The key comes from
//! `izzi key print` through `[model_providers.izzi.auth]`, which works for IDE-launched Codex
//! too; only when izzi runs from a temporary place does Codex read `IZZI_API_KEY` instead.

use std::path::PathBuf;

use crate::env;
use crate::setup::edit::Format;
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
        if ctx.target.izzi.is_some() {
            plan.patch(ctx, &config, Format::Toml, Template::Codex, false);
        } else {
            plan.patch(ctx, &config, Format::Toml, Template::CodexEnvKey, false);
            plan.manual.push(templates::text(
                Template::CodexEnvKeyText,
                &ctx.target.vars(),
            ));
        }
        plan
    }
}
