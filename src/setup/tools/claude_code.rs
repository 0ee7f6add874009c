//! Claude Code: `~/.claude/settings.json` (strict JSON; `CLAUDE_CONFIG_DIR` moves it) gets
//! `env.ANTHROPIC_BASE_URL` and `apiKeyHelper` = `izzi key print`, so the key stays in the
//! keyring (`env.ANTHROPIC_AUTH_TOKEN` only when izzi runs from a temporary place). Its editor
//! extension checks for credentials before starting the CLI, so VS Code-family editors that have
//! it get `claudeCode.environmentVariables` too (Windsurf's settings belong to `windsurf`).

use std::path::{Path, PathBuf};

use crate::env;
use crate::setup::edit::Format;
use crate::setup::editors::{self, Editor};
use crate::setup::layout::{Layout, Os};
use crate::setup::templates::Template;
use crate::setup::{Ctx, Detection, Tool, ToolPlan};

pub(super) struct ClaudeCode;

/// Editors whose settings this tool edits.
const EDITORS: [Editor; 4] = [
    Editor::VsCode,
    Editor::VsCodeInsiders,
    Editor::VsCodium,
    Editor::Cursor,
];

fn config_dir(layout: &Layout) -> PathBuf {
    layout.dir_from(env::CLAUDE_CONFIG_DIR, |l| l.home.join(".claude"))
}

impl Tool for ClaudeCode {
    fn id(&self) -> &'static str {
        "claude-code"
    }

    fn name(&self) -> &'static str {
        "Claude Code"
    }

    fn detect(&self, layout: &Layout) -> Detection {
        let mut found = Detection::default();
        found.binaries(layout, &["claude"]).paths(
            layout,
            [
                config_dir(layout).as_path(),
                layout.home.join(".claude.json").as_path(),
            ],
        );
        for editor in EDITORS {
            if editor.has_extension(layout, editors::CLAUDE_CODE) {
                found.places.push(format!("extension in {}", editor.name()));
            }
        }
        found
    }

    fn plan(&self, ctx: &Ctx<'_>) -> ToolPlan {
        let mut plan = ToolPlan::default();
        let settings = config_dir(ctx.layout).join("settings.json");
        if ctx.target.izzi.is_some() {
            plan.patch(ctx, &settings, Format::Json, Template::ClaudeCode, false);
        } else {
            plan.notes.push(format!(
                "izzi runs from a temporary place, so Claude Code gets the key in `{}` instead of running `izzi key print`",
                ctx.layout.show(&settings)
            ));
            plan.patch(
                ctx,
                &settings,
                Format::Json,
                Template::ClaudeCodeToken,
                true,
            );
        }
        for editor in EDITORS {
            if editor.has_extension(ctx.layout, editors::CLAUDE_CODE) {
                plan.patch(
                    ctx,
                    &editor.settings(ctx.layout),
                    Format::Jsonc,
                    Template::EditorClaudeCode,
                    false,
                );
            }
        }
        for name in [env::ANTHROPIC_API_KEY, "ANTHROPIC_AUTH_TOKEN"] {
            if env::is_set(name) {
                plan.notes.push(format!(
                    "`{name}` is exported in this shell and Claude Code prefers it to izzi's key: remove it from your shell profile"
                ));
            }
        }
        if let Some(managed) = managed_settings(ctx.layout.os)
            .filter(|_| ctx.layout.is_real())
            .filter(|p| overrides_endpoint(p))
        {
            plan.notes.push(format!(
                "`{}` (managed by your organisation) sets the endpoint or login method and wins over your settings",
                managed.display()
            ));
        }
        if !ctx.layout.home.join(".claude.json").exists() {
            plan.notes.push(
                "Claude Code has not run yet: if its first start offers a login, pick the API key option".to_owned(),
            );
        }
        plan
    }
}

/// The managed settings file, which beats every user setting.
fn managed_settings(os: Os) -> Option<PathBuf> {
    let path = match os {
        Os::Linux => Path::new("/etc/claude-code/managed-settings.json").to_path_buf(),
        Os::Macos => {
            Path::new("/Library/Application Support/ClaudeCode/managed-settings.json").to_path_buf()
        }
        Os::Windows => {
            Path::new(r"C:\Program Files\ClaudeCode\managed-settings.json").to_path_buf()
        }
    };
    path.exists().then_some(path)
}

fn overrides_endpoint(path: &Path) -> bool {
    fs_err::read_to_string(path).is_ok_and(|text| {
        ["ANTHROPIC_BASE_URL", "forceLoginMethod", "apiKeyHelper"]
            .iter()
            .any(|k| text.contains(k))
    })
}
