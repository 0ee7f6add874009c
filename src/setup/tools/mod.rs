//! One module per tool, each a [`Tool`]: how to find it, and the plan that points it at izzi.
//! The registry order is the order tools are shown and configured in.

mod claude_code;
mod cline;
mod codex;
mod cursor;
mod opencode;
mod windsurf;
mod zed;

use std::path::Path;

use super::layout::Layout;
use super::{Detection, Tool};

/// Every tool izzi knows.
pub(crate) fn all() -> Vec<&'static dyn Tool> {
    vec![
        &claude_code::ClaudeCode,
        &cursor::Cursor,
        &cline::Cline,
        &windsurf::Windsurf,
        &codex::Codex,
        &opencode::Opencode,
        &zed::Zed,
    ]
}

impl Detection {
    /// Notes each binary found on `PATH`.
    fn binaries(&mut self, layout: &Layout, names: &[&str]) -> &mut Self {
        for name in names {
            if let Some(path) = layout.which(name) {
                self.places.push(layout.show(&path));
            }
        }
        self
    }

    /// Notes each path that exists.
    fn paths<'p>(&mut self, layout: &Layout, paths: impl IntoIterator<Item = &'p Path>) -> &mut Self {
        for path in paths {
            if path.exists() {
                self.places.push(layout.show(path));
            }
        }
        self
    }
}
