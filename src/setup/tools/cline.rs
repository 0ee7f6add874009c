//! Cline: since 3.65 its settings live in `~/.cline/data` (`globalState.json`, `secrets.json`,
//! and in 4.x `settings/providers.json`), shared by its VS Code, JetBrains and CLI hosts. A
//! running host rewrites those files whole from memory, so setup writes them only while none
//! runs, and otherwise prints the settings to enter. Older Cline keeps them in the editor's secret
//! storage, which no other program can write: manual too.

use std::path::PathBuf;

use crate::env;
use crate::setup::edit::Format;
use crate::setup::editors::{self, Editor};
use crate::setup::layout::Layout;
use crate::setup::processes::{self, Process};
use crate::setup::templates::{self, Template};
use crate::setup::{Ctx, Detection, Tool, ToolPlan};

pub(super) struct Cline;

fn data_dir(layout: &Layout) -> PathBuf {
    let cline = layout.dir_from(env::CLINE_DIR, |l| l.home.join(".cline"));
    layout.dir_from(env::CLINE_DATA_DIR, |_| cline.join("data"))
}

/// Programs that host Cline: VS Code and its forks, JetBrains IDEs, the `cline` CLI.
fn is_host(process: &Process) -> bool {
    const NAMES: [&str; 16] = [
        "code",
        "code-insiders",
        "codium",
        "vscodium",
        "cursor",
        "windsurf",
        "cline",
        "idea",
        "idea64",
        "pycharm",
        "webstorm",
        "goland",
        "clion",
        "rider",
        "phpstorm",
        "rubymine",
    ];
    const MAC_APPS: [&str; 5] = [
        "Visual Studio Code",
        "VSCodium.app",
        "Cursor.app",
        "Windsurf.app",
        "JetBrains",
    ];
    NAMES.contains(&processes::base_name(process).as_str())
        || MAC_APPS.iter().any(|app| process.name.contains(app))
}

impl Tool for Cline {
    fn id(&self) -> &'static str {
        "cline"
    }

    fn name(&self) -> &'static str {
        "Cline"
    }

    fn detect(&self, layout: &Layout) -> Detection {
        let mut found = Detection::default();
        for editor in Editor::ALL {
            if editor.has_extension(layout, editors::CLINE) {
                found.places.push(format!("extension in {}", editor.name()));
            }
        }
        let cline_dir = layout.dir_from(env::CLINE_DIR, |l| l.home.join(".cline"));
        found
            .binaries(layout, &["cline"])
            .paths(layout, [cline_dir.as_path()]);
        found
    }

    fn plan(&self, ctx: &Ctx<'_>) -> ToolPlan {
        let mut plan = ToolPlan::default();
        let data = data_dir(ctx.layout);
        let shown = ctx.layout.show(&data);
        let manual = templates::text(Template::ClineText, &ctx.target.vars());
        if !data.is_dir() {
            plan.notes.push(format!(
                "this Cline keeps its settings in the editor's secret storage (no `{shown}`: Cline before 3.65), which izzi cannot write"
            ));
            plan.manual.push(manual);
            return plan;
        }
        let hosts = ctx.processes().map(|all| {
            all.into_iter()
                .filter(is_host)
                .map(|p| format!("`{}` (pid {})", processes::base_name(&p), p.pid))
                .collect::<Vec<_>>()
        });
        match hosts {
            Some(hosts) if hosts.is_empty() => {}
            Some(hosts) => {
                plan.notes.push(format!(
                    "a Cline host is running ({}); it rewrites `{shown}` from memory, so izzi leaves it alone: close it and run `izzi setup --tools cline` again, or enter the settings below",
                    hosts.join(", ")
                ));
                plan.manual.push(manual);
                return plan;
            }
            None => {
                plan.notes.push(format!(
                    "izzi cannot list running programs, so it cannot tell whether Cline is running and leaves `{shown}` alone"
                ));
                plan.manual.push(manual);
                return plan;
            }
        }
        plan.patch(
            ctx,
            &data.join("globalState.json"),
            Format::Json,
            Template::ClineGlobalState,
            false,
        );
        plan.patch(
            ctx,
            &data.join("secrets.json"),
            Format::Json,
            Template::ClineSecrets,
            true,
        );
        let providers = data.join("settings").join("providers.json");
        if providers.exists() {
            plan.patch(
                ctx,
                &providers,
                Format::Json,
                Template::ClineProviders,
                true,
            );
        }
        plan
    }
}
