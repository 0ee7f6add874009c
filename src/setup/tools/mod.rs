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
    fn paths<'p>(
        &mut self,
        layout: &Layout,
        paths: impl IntoIterator<Item = &'p Path>,
    ) -> &mut Self {
        for path in paths {
            if path.exists() {
                self.places.push(layout.show(path));
            }
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::path::PathBuf;

    use super::*;
    use crate::secrets::Secret;
    use crate::setup::layout::Os;
    use crate::setup::{Ctx, Files, Target};

    fn target(izzi: Option<&str>, base: &str) -> Target {
        Target {
            base: base.to_owned(),
            key: Secret::new("sk-izzi-unit-0123456789"),
            izzi: izzi.map(PathBuf::from),
            izzi_home: PathBuf::from("/izzi"),
        }
    }

    fn tool(id: &str) -> &'static dyn Tool {
        all().into_iter().find(|t| t.id() == id).unwrap()
    }

    /// Plans read only the files they are given: nothing here exists on disk.
    #[test]
    fn plans_are_pure_and_put_the_key_in_files_only_when_they_must() {
        let layout = Layout::new(Os::Linux, PathBuf::from("/nowhere-home"), true, None);
        let settings = PathBuf::from("/nowhere-home/.claude/settings.json");
        let files = Files::memory(HashMap::from([(
            settings.clone(),
            b"{\"model\": \"opus\"}\n".to_vec(),
        )]));

        let with_helper = target(Some("/opt/izzi/bin/izzi"), "https://api.izziapi.com");
        let plan = tool("claude-code").plan(&Ctx::new(&layout, &with_helper, &files));
        assert_eq!(plan.edits.len(), 1);
        let after = String::from_utf8(plan.edits[0].after.clone()).unwrap();
        assert!(
            after.contains("\"apiKeyHelper\": \"/opt/izzi/bin/izzi key print\""),
            "{after}"
        );
        assert!(!after.contains("sk-izzi-unit"), "{after}");
        assert!(!plan.edits[0].secret);

        // From an npx cache izzi cannot be called later: the key goes into the file, privately.
        let no_helper = target(None, "https://api.izziapi.com");
        let plan = tool("claude-code").plan(&Ctx::new(&layout, &no_helper, &files));
        let after = String::from_utf8(plan.edits[0].after.clone()).unwrap();
        assert!(
            after.contains("\"ANTHROPIC_AUTH_TOKEN\": \"sk-izzi-unit-0123456789\""),
            "{after}"
        );
        assert!(!after.contains("apiKeyHelper"), "{after}");
        assert!(plan.edits[0].secret);
        let plan = tool("codex").plan(&Ctx::new(&layout, &no_helper, &files));
        let after = String::from_utf8(plan.edits[0].after.clone()).unwrap();
        assert!(after.contains("env_key = \"IZZI_API_KEY\""), "{after}");
        assert_eq!(plan.manual.len(), 1);
    }

    #[test]
    fn claude_code_gets_izzis_status_line_only_where_it_has_none() {
        let layout = Layout::new(Os::Linux, PathBuf::from("/nowhere-home"), true, None);
        let settings = PathBuf::from("/nowhere-home/.claude/settings.json");
        let plan_for = |text: &str, izzi: Option<&str>| {
            let files = Files::memory(HashMap::from([(
                settings.clone(),
                text.as_bytes().to_vec(),
            )]));
            let target = target(izzi, "http://127.0.0.1:8745");
            let plan = tool("claude-code").plan(&Ctx::new(&layout, &target, &files));
            let after = String::from_utf8(plan.edits[0].after.clone()).unwrap();
            serde_json::from_str::<serde_json::Value>(&after).unwrap()
        };
        let fresh = plan_for("{}", Some("/opt/izzi/bin/izzi"));
        assert_eq!(
            fresh["statusLine"],
            serde_json::json!({"type": "command", "command": "/opt/izzi/bin/izzi statusline"})
        );
        let mine = r#"{"statusLine": {"type": "command", "command": "~/.claude/statusline.sh"}}"#;
        let kept = plan_for(mine, Some("/opt/izzi/bin/izzi"));
        assert_eq!(
            kept["statusLine"],
            serde_json::json!({"type": "command", "command": "~/.claude/statusline.sh"})
        );
        // From a temporary place izzi cannot be run later: no status line then.
        let temporary = plan_for("{}", None);
        assert!(temporary.get("statusLine").is_none(), "{temporary}");
        let spaced = plan_for("{}", Some("/Users/a b/izzi"));
        assert_eq!(
            spaced["statusLine"]["command"],
            "'/Users/a b/izzi' statusline"
        );
    }

    #[test]
    fn cursor_never_gets_a_private_url() {
        let layout = Layout::new(Os::Macos, PathBuf::from("/nowhere-home"), true, None);
        let files = Files::memory(HashMap::new());
        for base in [
            "http://127.0.0.1:8745",
            "http://192.168.1.20:8745",
            "http://localhost:8745",
        ] {
            let local = target(Some("/opt/izzi"), base);
            let plan = tool("cursor").plan(&Ctx::new(&layout, &local, &files));
            assert!(
                plan.manual[0].contains("https://api.izziapi.com/v1"),
                "{base}"
            );
            assert!(plan.notes[0].contains("cannot reach"), "{base}");
            assert!(plan.edits.is_empty());
        }
        let public = target(Some("/opt/izzi"), "https://gw.example.com");
        let plan = tool("cursor").plan(&Ctx::new(&layout, &public, &files));
        assert!(plan.manual[0].contains("https://gw.example.com/v1"));
        assert!(plan.notes.is_empty());
    }

    #[test]
    fn ids_are_unique_and_selectable() {
        let ids: Vec<_> = all().iter().map(|t| t.id()).collect();
        let mut unique = ids.clone();
        unique.dedup();
        assert_eq!(ids, unique);
        assert_eq!(
            crate::setup::select(&["codex".to_owned(), "claude-code".to_owned()])
                .unwrap()
                .iter()
                .map(|t| t.id())
                .collect::<Vec<_>>(),
            vec!["claude-code", "codex"]
        );
        assert!(crate::setup::select(&["vim".to_owned()]).is_err());
    }
}
