//! The snippets tools receive, from the repo's `templates/` (embedded), with `{{name}}`
//! placeholders filled in. JSON and TOML templates are parsed first and filled value by value,
//! so a Windows path or a quote in a value can never break the file's syntax.

use anyhow::{Context as _, Result, anyhow, bail};
use jsonc_parser::ParseOptions;
use jsonc_parser::cst::CstRootNode;

use super::edit::{JsonPatch, Node};

/// Every template, so none can be misspelt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Template {
    ClaudeCode,
    ClaudeCodeToken,
    EditorClaudeCode,
    EditorRooCode,
    RooCodeImport,
    ClineGlobalState,
    ClineSecrets,
    ClineProviders,
    Codex,
    CodexEnvKey,
    Opencode,
    OpencodeAuth,
    Zed,
    CursorText,
    CursorPublicText,
    ClineText,
    ZedKeyText,
    CodexEnvKeyText,
    KiloCodeText,
    ContinueText,
    WindsurfText,
}

impl Template {
    #[cfg(test)]
    const ALL: [Self; 21] = [
        Self::ClaudeCode,
        Self::ClaudeCodeToken,
        Self::EditorClaudeCode,
        Self::EditorRooCode,
        Self::RooCodeImport,
        Self::ClineGlobalState,
        Self::ClineSecrets,
        Self::ClineProviders,
        Self::Codex,
        Self::CodexEnvKey,
        Self::Opencode,
        Self::OpencodeAuth,
        Self::Zed,
        Self::CursorText,
        Self::CursorPublicText,
        Self::ClineText,
        Self::ZedKeyText,
        Self::CodexEnvKeyText,
        Self::KiloCodeText,
        Self::ContinueText,
        Self::WindsurfText,
    ];

    fn source(self) -> (&'static str, &'static str) {
        macro_rules! t {
            ($file:literal) => {
                ($file, include_str!(concat!("../../templates/", $file)))
            };
        }
        match self {
            Self::ClaudeCode => t!("claude-code.json"),
            Self::ClaudeCodeToken => t!("claude-code-token.json"),
            Self::EditorClaudeCode => t!("editor-claude-code.json"),
            Self::EditorRooCode => t!("editor-roo-code.json"),
            Self::RooCodeImport => t!("roo-code-import.json"),
            Self::ClineGlobalState => t!("cline-global-state.json"),
            Self::ClineSecrets => t!("cline-secrets.json"),
            Self::ClineProviders => t!("cline-providers.json"),
            Self::Codex => t!("codex.toml"),
            Self::CodexEnvKey => t!("codex-env-key.toml"),
            Self::Opencode => t!("opencode.json"),
            Self::OpencodeAuth => t!("opencode-auth.json"),
            Self::Zed => t!("zed.json"),
            Self::CursorText => t!("cursor.txt"),
            Self::CursorPublicText => t!("cursor-public.txt"),
            Self::ClineText => t!("cline.txt"),
            Self::ZedKeyText => t!("zed-key.txt"),
            Self::CodexEnvKeyText => t!("codex-env-key.txt"),
            Self::KiloCodeText => t!("kilo-code.txt"),
            Self::ContinueText => t!("continue.txt"),
            Self::WindsurfText => t!("windsurf.txt"),
        }
    }
}

/// Placeholder values: `{{name}}` → value.
#[derive(Debug, Clone, Default)]
pub(crate) struct Vars(Vec<(String, String)>);

impl Vars {
    pub(crate) fn with(mut self, name: &str, value: impl Into<String>) -> Self {
        self.0.push((format!("{{{{{name}}}}}"), value.into()));
        self
    }

    fn fill(&self, text: &str) -> String {
        self.0
            .iter()
            .fold(text.to_owned(), |acc, (from, to)| acc.replace(from, to))
    }
}

/// A JSON template (`{"set": …, "default": …, "remove": [[…]]}`), filled.
pub(crate) fn json(template: Template, vars: &Vars) -> Result<JsonPatch> {
    let (file, text) = template.source();
    let root = CstRootNode::parse(text, &ParseOptions::default())
        .map_err(|err| anyhow!("template `{file}` is not JSON: {err}"))?;
    let Some(Node::Object(sections)) = root.value().as_ref().and_then(Node::from_cst) else {
        bail!("template `{file}` is not a JSON object");
    };
    let mut patch = JsonPatch::default();
    for (section, mut node) in sections {
        node.map_strings(&|s| vars.fill(s));
        match (section.as_str(), node) {
            ("set", Node::Object(props)) => patch.set = props,
            ("default", Node::Object(props)) => patch.default = props,
            ("remove", Node::Array(paths)) => {
                patch.remove = paths
                    .into_iter()
                    .map(|p| match p {
                        Node::Array(keys) => keys
                            .into_iter()
                            .filter_map(|k| match k {
                                Node::Scalar(serde_json::Value::String(k)) => Some(k),
                                _ => None,
                            })
                            .collect(),
                        _ => Vec::new(),
                    })
                    .collect();
            }
            (other, _) => bail!("template `{file}` has an unknown section `{other}`"),
        }
    }
    Ok(patch)
}

/// A TOML template, filled.
pub(crate) fn toml(template: Template, vars: &Vars) -> Result<toml_edit::DocumentMut> {
    let (file, text) = template.source();
    let mut doc: toml_edit::DocumentMut = text
        .parse()
        .with_context(|| format!("template `{file}` is not TOML"))?;
    // The template's own comments describe it; they are not for the user's file.
    doc.decor_mut().clear();
    fill_table(doc.as_table_mut(), vars);
    Ok(doc)
}

fn fill_table(table: &mut dyn toml_edit::TableLike, vars: &Vars) {
    for (_, item) in table.iter_mut() {
        match item {
            toml_edit::Item::Value(value) => fill_toml_value(value, vars),
            toml_edit::Item::Table(inner) => {
                inner.decor_mut().clear();
                fill_table(inner, vars);
            }
            _ => {}
        }
    }
    for (mut key, _) in table.iter_mut() {
        key.leaf_decor_mut().clear();
    }
}

fn fill_toml_value(value: &mut toml_edit::Value, vars: &Vars) {
    match value {
        toml_edit::Value::String(s) => {
            let filled = vars.fill(s.value());
            let decor = s.decor().clone();
            *s = toml_edit::Formatted::new(filled);
            *s.decor_mut() = decor;
        }
        toml_edit::Value::Array(items) => items.iter_mut().for_each(|v| fill_toml_value(v, vars)),
        toml_edit::Value::InlineTable(t) => fill_table(t, vars),
        _ => {}
    }
}

/// A text template (instructions to paste), filled.
pub(crate) fn text(template: Template, vars: &Vars) -> String {
    vars.fill(template.source().1.trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_parses_and_every_placeholder_is_known() {
        let vars = Vars::default()
            .with("base_url", "B")
            .with("openai_base_url", "B/v1")
            .with("public_openai_base_url", "P/v1")
            .with("key", "K")
            .with("key_command", "C")
            .with("statusline_command", "S")
            .with("izzi", "I")
            .with("roo_import", "R")
            .with("editor", "E");
        for template in Template::ALL {
            let (file, _) = template.source();
            let extension = std::path::Path::new(file).extension();
            let filled = if extension.is_some_and(|e| e == "json") {
                format!("{:?}", json(template, &vars).unwrap())
            } else if extension.is_some_and(|e| e == "toml") {
                toml(template, &vars).unwrap().to_string()
            } else {
                text(template, &vars)
            };
            assert!(
                !filled.contains("{{"),
                "{file} has an unknown placeholder: {filled}"
            );
        }
    }

    #[test]
    fn values_are_escaped_by_their_format() {
        let vars = Vars::default()
            .with("openai_base_url", "http://x/v1")
            .with("izzi", r#"C:\Program Files\izzi "beta"\izzi.exe"#);
        let doc = toml(Template::Codex, &vars).unwrap();
        let reparsed: toml_edit::DocumentMut = doc.to_string().parse().unwrap();
        assert_eq!(
            reparsed["model_providers"]["izzi"]["auth"]["command"].as_str(),
            Some(r#"C:\Program Files\izzi "beta"\izzi.exe"#)
        );
    }
}
