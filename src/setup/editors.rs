//! VS Code and its forks (Insiders, VSCodium, Cursor, Windsurf): where each keeps its user
//! `settings.json` and which extensions it has installed. Extensions configure AI tools inside
//! editors (Claude Code, Cline, Roo Code, …), so tools ask here. Reads only.

use std::collections::BTreeSet;
use std::path::PathBuf;

use super::layout::Layout;

pub(crate) const CLAUDE_CODE: &str = "anthropic.claude-code";
pub(crate) const CLINE: &str = "saoudrizwan.claude-dev";
pub(crate) const ROO_CODE: &str = "rooveterinaryinc.roo-cline";
pub(crate) const KILO_CODE: &str = "kilocode.kilo-code";
pub(crate) const CONTINUE: &str = "continue.continue";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Editor {
    VsCode,
    VsCodeInsiders,
    VsCodium,
    Cursor,
    Windsurf,
}

impl Editor {
    pub(crate) const ALL: [Self; 5] = [
        Self::VsCode,
        Self::VsCodeInsiders,
        Self::VsCodium,
        Self::Cursor,
        Self::Windsurf,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::VsCode => "VS Code",
            Self::VsCodeInsiders => "VS Code Insiders",
            Self::VsCodium => "VSCodium",
            Self::Cursor => "Cursor",
            Self::Windsurf => "Windsurf",
        }
    }

    /// The folder under the platform's app config dir.
    fn app_dir_name(self) -> &'static str {
        match self {
            Self::VsCode => "Code",
            Self::VsCodeInsiders => "Code - Insiders",
            Self::VsCodium => "VSCodium",
            Self::Cursor => "Cursor",
            Self::Windsurf => "Windsurf",
        }
    }

    fn dot_dir_name(self) -> &'static str {
        match self {
            Self::VsCode => ".vscode",
            Self::VsCodeInsiders => ".vscode-insiders",
            Self::VsCodium => ".vscode-oss",
            Self::Cursor => ".cursor",
            Self::Windsurf => ".windsurf",
        }
    }

    /// `<app config>/<Editor>/User`.
    pub(crate) fn user_dir(self, layout: &Layout) -> PathBuf {
        layout.app_config.join(self.app_dir_name()).join("User")
    }

    /// The user `settings.json` (JSON with comments).
    pub(crate) fn settings(self, layout: &Layout) -> PathBuf {
        self.user_dir(layout).join("settings.json")
    }

    pub(crate) fn extensions_dir(self, layout: &Layout) -> PathBuf {
        layout.home.join(self.dot_dir_name()).join("extensions")
    }

    /// Ids (lower case) of the installed extensions: `extensions.json` when it exists, since
    /// removed versions linger as folders until a restart; else the folder names, minus those
    /// listed in `.obsolete`.
    pub(crate) fn extensions(self, layout: &Layout) -> BTreeSet<String> {
        let dir = self.extensions_dir(layout);
        if let Some(listed) = read_json(&dir.join("extensions.json")).and_then(|v| {
            v.as_array().map(|entries| {
                entries
                    .iter()
                    .filter_map(|e| e.pointer("/identifier/id")?.as_str())
                    .map(str::to_ascii_lowercase)
                    .collect::<BTreeSet<_>>()
            })
        }) {
            return listed;
        }
        let obsolete = read_json(&dir.join(".obsolete"));
        let Ok(entries) = fs_err::read_dir(&dir) else {
            return BTreeSet::new();
        };
        entries
            .filter_map(Result::ok)
            .filter(|e| e.path().is_dir())
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|folder| obsolete.as_ref().and_then(|o| o.get(folder)).is_none())
            .filter_map(|folder| extension_id(&folder))
            .collect()
    }

    pub(crate) fn has_extension(self, layout: &Layout, id: &str) -> bool {
        self.extensions(layout).contains(id)
    }
}

fn read_json(path: &std::path::Path) -> Option<serde_json::Value> {
    let text = fs_err::read_to_string(path).ok()?;
    serde_json::from_str(&text).ok()
}

/// `publisher.name-1.2.3[-platform]` → `publisher.name`.
fn extension_id(folder: &str) -> Option<String> {
    let bytes = folder.as_bytes();
    let cut = (1..bytes.len())
        .find(|&i| bytes[i - 1] == b'-' && bytes[i].is_ascii_digit())
        .map(|i| i - 1)?;
    let id = &folder[..cut];
    id.contains('.').then(|| id.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_names_give_ids() {
        assert_eq!(
            extension_id("anthropic.claude-code-2.0.14-linux-x64").as_deref(),
            Some("anthropic.claude-code")
        );
        assert_eq!(
            extension_id("RooVeterinaryInc.roo-cline-3.28.0").as_deref(),
            Some("rooveterinaryinc.roo-cline")
        );
        assert_eq!(extension_id("notanextension"), None);
    }
}
