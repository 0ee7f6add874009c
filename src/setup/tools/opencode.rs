//! opencode: `~/.config/opencode/opencode.json[c]` (JSON with comments) gets an `izzi` provider
//! through `@ai-sdk/openai-compatible`, and the default model when none is chosen. The key goes
//! where opencode's `/connect` keeps keys, `~/.local/share/opencode/auth.json` (0600), so the
//! config file itself never holds it.

use std::path::PathBuf;

use crate::setup::edit::Format;
use crate::setup::layout::Layout;
use crate::setup::templates::Template;
use crate::setup::{Ctx, Detection, Tool, ToolPlan};

pub(super) struct Opencode;

fn config_dir(layout: &Layout) -> PathBuf {
    layout.xdg_config.join("opencode")
}

impl Tool for Opencode {
    fn id(&self) -> &'static str {
        "opencode"
    }

    fn name(&self) -> &'static str {
        "opencode"
    }

    fn detect(&self, layout: &Layout) -> Detection {
        let mut found = Detection::default();
        found
            .binaries(layout, &["opencode"])
            .paths(layout, [config_dir(layout).as_path()]);
        found
    }

    fn plan(&self, ctx: &Ctx<'_>) -> ToolPlan {
        let mut plan = ToolPlan::default();
        let dir = config_dir(ctx.layout);
        let jsonc = dir.join("opencode.jsonc");
        let config = if jsonc.exists() {
            jsonc
        } else {
            dir.join("opencode.json")
        };
        plan.patch(ctx, &config, Format::Jsonc, Template::Opencode, false);
        let auth = ctx.layout.xdg_data.join("opencode").join("auth.json");
        plan.patch(ctx, &auth, Format::Json, Template::OpencodeAuth, true);
        plan
    }
}
