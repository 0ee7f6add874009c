//! Cursor: its endpoint and key live in an SQLite database it owns (and the key, in new builds,
//! encrypted), so setup only prints what to paste. Its requests leave from Cursor's servers, so
//! the base URL must be public: a local or private one is replaced by the hosted API, and setup
//! says why.

use crate::setup::editors::Editor;
use crate::setup::layout::Layout;
use crate::setup::templates::{self, Template};
use crate::setup::{Ctx, Detection, Tool, ToolPlan};

pub(super) struct Cursor;

impl Tool for Cursor {
    fn id(&self) -> &'static str {
        "cursor"
    }

    fn name(&self) -> &'static str {
        "Cursor"
    }

    fn detect(&self, layout: &Layout) -> Detection {
        let mut found = Detection::default();
        let app_paths = layout.app_paths("Cursor.app", "cursor");
        found
            .binaries(layout, &["cursor", "cursor-agent"])
            .paths(layout, [layout.home.join(".cursor").as_path()])
            .paths(layout, [Editor::Cursor.user_dir(layout).as_path()])
            .paths(layout, app_paths.iter().map(std::path::PathBuf::as_path));
        found
    }

    fn plan(&self, ctx: &Ctx<'_>) -> ToolPlan {
        let vars = ctx.target.vars();
        let mut plan = ToolPlan::default();
        plan.manual
            .push(templates::text(Template::CursorText, &vars));
        if ctx.target.is_private() {
            plan.notes
                .push(templates::text(Template::CursorPublicText, &vars));
        }
        plan
    }
}
