//! Zed: `settings.json` (JSON with comments; `~/.config/zed`, `%APPDATA%\Zed` on Windows) gets an
//! OpenAI-compatible provider `Izzi`. Zed reads provider keys only from the OS keychain or the
//! `IZZI_API_KEY` variable, never from settings, so the key is a manual step.

use std::path::PathBuf;

use crate::setup::edit::Format;
use crate::setup::layout::{Layout, Os};
use crate::setup::templates::{self, Template};
use crate::setup::{Ctx, Detection, Tool, ToolPlan};

pub(super) struct Zed;

fn config_dir(layout: &Layout) -> PathBuf {
    match layout.os {
        Os::Windows => layout.app_config.join("Zed"),
        Os::Linux | Os::Macos => layout.xdg_config.join("zed"),
    }
}

impl Tool for Zed {
    fn id(&self) -> &'static str {
        "zed"
    }

    fn name(&self) -> &'static str {
        "Zed"
    }

    fn detect(&self, layout: &Layout) -> Detection {
        let mut found = Detection::default();
        let app_paths = layout.app_paths("Zed.app", "Zed");
        found
            .binaries(layout, &["zed", "zeditor"])
            .paths(layout, [config_dir(layout).as_path()])
            .paths(layout, app_paths.iter().map(PathBuf::as_path));
        found
    }

    fn plan(&self, ctx: &Ctx<'_>) -> ToolPlan {
        let mut plan = ToolPlan::default();
        let settings = config_dir(ctx.layout).join("settings.json");
        plan.patch(ctx, &settings, Format::Jsonc, Template::Zed, false);
        plan.manual
            .push(templates::text(Template::ZedKeyText, &ctx.target.vars()));
        plan
    }
}
