//! Tool names and call ids across formats: what a name becomes upstream (namespaces flattened,
//! names over 64 characters shortened) and the map back, and ids made safe for Anthropic.
//! Pure functions of their input, so a request and its answer agree without shared state.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use serde_json::Value;
use sha2::{Digest as _, Sha256};

use crate::protocol::Format;
use crate::protocol::json::Body;

/// The longest tool name OpenAI (and Anthropic) accept.
const MAX_NAME: usize = 64;

/// A tool name as the upstream sees it: names over 64 characters become their first 55, `_`
/// and 8 hex digits of their SHA-256, so distinct long names stay distinct.
pub(crate) fn upstream(name: &str) -> Cow<'_, str> {
    if name.len() <= MAX_NAME {
        return Cow::Borrowed(name);
    }
    let mut cut = 55;
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    let digest = Sha256::digest(name.as_bytes());
    let hex: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
    Cow::Owned(format!("{}_{hex}", &name[..cut]))
}

/// A Responses namespace tool's name as one flat function name.
pub(crate) fn flatten(namespace: &str, name: &str) -> String {
    if namespace.ends_with('_') {
        format!("{namespace}{name}")
    } else {
        format!("{namespace}__{name}")
    }
}

/// A tool call id Anthropic accepts (`^[a-zA-Z0-9_-]+$`): other characters become `_`. The
/// same id always maps the same way, so `tool_use` and `tool_result` still match.
pub(crate) fn sanitize_id(id: &str) -> Cow<'_, str> {
    let ok = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    if !id.is_empty() && id.chars().all(ok) {
        return Cow::Borrowed(id);
    }
    if id.is_empty() {
        return Cow::Borrowed("toolu_empty");
    }
    Cow::Owned(id.chars().map(|c| if ok(c) { c } else { '_' }).collect())
}

/// The way back from upstream tool names to the client's: name and, for Responses clients,
/// namespace. Names that did not change are not stored.
#[derive(Debug, Clone, Default)]
pub(crate) struct ToolNames {
    map: HashMap<String, (String, Option<String>)>,
    /// Upstream names of the client's freeform (`custom`) tools, which went upstream as a
    /// function of one string and come back as `custom_tool_call`s.
    custom: HashSet<String>,
    /// The client declared Codex's `local_shell`, so a `local_shell` call is its.
    local_shell: bool,
}

impl ToolNames {
    /// The map for the tools of a client request in `format`.
    pub(crate) fn of(format: Format, body: &Body<'_>) -> Self {
        let mut names = Self::default();
        let Ok(Some(tools)) = body.field::<Vec<Value>>("tools", "an array") else {
            return names;
        };
        let responses_shaped = format == Format::Responses || body.get("messages").is_none();
        for tool in &tools {
            if format == Format::Messages {
                names.add_str(tool.get("name"), None);
            } else if let Some(function) = tool.get("function") {
                names.add_str(function.get("name"), None);
            } else if let Some(Value::String(name)) = tool.pointer("/custom/name") {
                names.add_custom(name);
            } else if responses_shaped {
                match (tool.get("type").and_then(Value::as_str), tool.get("name")) {
                    (Some("namespace"), Some(Value::String(namespace))) => {
                        for inner in tool
                            .get("tools")
                            .and_then(Value::as_array)
                            .into_iter()
                            .flatten()
                        {
                            names.add_str(inner.get("name"), Some(namespace));
                        }
                    }
                    (Some("custom"), Some(Value::String(name))) => names.add_custom(name),
                    (Some("local_shell"), _) => names.local_shell = true,
                    (_, name) => names.add_str(name, None),
                }
            }
        }
        names
    }

    fn add_str(&mut self, name: Option<&Value>, namespace: Option<&str>) {
        if let Some(Value::String(name)) = name {
            self.add(name, namespace);
        }
    }

    /// Records a client tool `name` (in `namespace`, for Responses).
    pub(crate) fn add(&mut self, name: &str, namespace: Option<&str>) {
        let flat = match namespace {
            Some(namespace) => Cow::Owned(flatten(namespace, name)),
            None => Cow::Borrowed(name),
        };
        let up = upstream(&flat);
        if up != name || namespace.is_some() {
            self.map.insert(
                up.into_owned(),
                (name.to_owned(), namespace.map(str::to_owned)),
            );
        }
    }

    /// Records a client freeform tool.
    fn add_custom(&mut self, name: &str) {
        self.add(name, None);
        self.custom.insert(upstream(name).into_owned());
    }

    /// Whether an upstream tool name is the client's `local_shell`.
    pub(crate) fn is_local_shell(&self, upstream: &str) -> bool {
        self.local_shell && upstream == crate::translate::freeform::LOCAL_SHELL
    }

    /// Whether an upstream tool name is one of the client's freeform tools.
    pub(crate) fn is_custom(&self, upstream: &str) -> bool {
        self.custom.contains(upstream)
    }

    /// The client's name and namespace for an upstream tool name.
    pub(crate) fn client<'a>(&'a self, upstream: &'a str) -> (&'a str, Option<&'a str>) {
        match self.map.get(upstream) {
            Some((name, namespace)) => (name, namespace.as_deref()),
            None => (upstream, None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_names_are_shortened_and_mapped_back() {
        let long = format!("mcp__{}", "very_long_server_name_".repeat(4));
        let other = format!("{long}x");
        let up = upstream(&long);
        assert_eq!(up.len(), 64);
        assert_ne!(up, upstream(&other));
        assert_eq!(upstream("Bash"), "Bash");
        let mut names = ToolNames::default();
        names.add(&long, None);
        assert_eq!(names.client(&up), (long.as_str(), None));
        assert_eq!(names.client("Bash"), ("Bash", None));
    }

    #[test]
    fn ids_are_sanitized_the_same_way_every_time() {
        assert_eq!(sanitize_id("functions.Bash:0"), "functions_Bash_0");
        assert_eq!(sanitize_id("call_abc-1"), "call_abc-1");
        assert_eq!(
            sanitize_id("functions.Bash:0"),
            sanitize_id("functions.Bash:0")
        );
    }

    #[test]
    fn namespaces_flatten_and_map_back() {
        let body = Body::parse(
            br#"{"tools":[{"type":"namespace","name":"crm","tools":[{"type":"function","name":"find"}]},{"type":"function","name":"shell"}]}"#,
        )
        .unwrap();
        let names = ToolNames::of(Format::Responses, &body);
        assert_eq!(names.client("crm__find"), ("find", Some("crm")));
        assert_eq!(names.client("shell"), ("shell", None));
    }
}
