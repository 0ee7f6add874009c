//! Windsurf: its own assistant (Cascade) talks only to Codeium, with no custom endpoint, so
//! setup configures the AI extensions installed in Windsurf instead, and says so. Claude Code and
//! Roo Code are set through Windsurf's `settings.json` (Roo imports a settings file izzi writes in
//! `IZZI_HOME`); Cline shares `~/.cline/data` with every host (the `cline` tool); Kilo Code and
//! Continue get instructions.

use crate::setup::edit::Format;
use crate::setup::editors::{self, Editor};
use crate::setup::layout::Layout;
use crate::setup::templates::{self, Template};
use crate::setup::{Ctx, Detection, Tool, ToolPlan};

pub(super) struct Windsurf;

impl Tool for Windsurf {
    fn id(&self) -> &'static str {
        "windsurf"
    }

    fn name(&self) -> &'static str {
        "Windsurf"
    }

    fn detect(&self, layout: &Layout) -> Detection {
        let mut found = Detection::default();
        let app_paths = layout.app_paths("Windsurf.app", "Windsurf");
        found
            .binaries(layout, &["windsurf"])
            .paths(
                layout,
                [
                    layout.home.join(".codeium").join("windsurf").as_path(),
                    Editor::Windsurf.user_dir(layout).as_path(),
                    layout.home.join(".windsurf").as_path(),
                ],
            )
            .paths(layout, app_paths.iter().map(std::path::PathBuf::as_path));
        found
    }

    fn plan(&self, ctx: &Ctx<'_>) -> ToolPlan {
        let mut plan = ToolPlan::default();
        let installed = Editor::Windsurf.extensions(ctx.layout);
        let has = |id: &str| installed.contains(id);
        let vars = ctx.target.vars().with("editor", Editor::Windsurf.name());
        let settings = Editor::Windsurf.settings(ctx.layout);
        let known = [
            editors::CLAUDE_CODE,
            editors::ROO_CODE,
            editors::CLINE,
            editors::KILO_CODE,
            editors::CONTINUE,
        ];
        if !known.iter().any(|id| has(id)) {
            plan.manual
                .push(templates::text(Template::WindsurfText, &vars));
            return plan;
        }
        plan.notes.push(
            "Windsurf's own assistant (Cascade) has no custom endpoint, so izzi configures the AI extensions installed in Windsurf".to_owned(),
        );
        if has(editors::CLAUDE_CODE) {
            plan.patch(
                ctx,
                &settings,
                Format::Jsonc,
                Template::EditorClaudeCode,
                false,
            );
        }
        if has(editors::ROO_CODE) {
            let import = ctx.target.izzi_home.join("roo-code-settings.json");
            plan.patch(ctx, &import, Format::Json, Template::RooCodeImport, true);
            plan.patch(
                ctx,
                &settings,
                Format::Jsonc,
                Template::EditorRooCode,
                false,
            );
            plan.notes
                .push("Roo Code imports izzi's settings the next time Windsurf starts".to_owned());
        }
        if has(editors::CLINE) {
            plan.notes.push(
                "Cline in Windsurf reads `~/.cline/data`, which the `cline` tool configures"
                    .to_owned(),
            );
        }
        if has(editors::KILO_CODE) {
            plan.manual
                .push(templates::text(Template::KiloCodeText, &vars));
        }
        if has(editors::CONTINUE) {
            plan.manual
                .push(templates::text(Template::ContinueText, &vars));
        }
        plan
    }
}
