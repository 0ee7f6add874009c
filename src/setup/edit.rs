//! Format-preserving edits: the smallest change that merges a template into a JSON, JSONC or
//! TOML file. Comments, key order, trailing commas, unrelated settings, line endings and a BOM
//! all survive; a value already equal to the template's is not touched, so a second run changes
//! nothing. Pure: text in, text out. A file that does not parse is an error, never a fresh `{}`.
//! A key written twice in one object is read by the tools as its last occurrence (JSON.parse
//! and VS Code's JSONC reader both keep the last), so that is the one edited, and a key to
//! remove goes in every occurrence.

use jsonc_parser::ParseOptions;
use jsonc_parser::cst::{CstArray, CstInputValue, CstNode, CstObject, CstObjectProp, CstRootNode};
use serde_json::Value;

/// How a file is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// Strict JSON: the tool rejects comments (Claude Code's `settings.json`, Cline's stores).
    Json,
    /// JSON with comments and trailing commas (VS Code-family settings, opencode, Zed).
    Jsonc,
    Toml,
}

/// A JSON change, from a template: values to set, values to add only where absent, and paths to
/// remove (keys that would override the endpoint or key izzi sets).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct JsonPatch {
    pub(crate) set: Vec<(String, Node)>,
    pub(crate) default: Vec<(String, Node)>,
    pub(crate) remove: Vec<Vec<String>>,
}

/// A JSON value whose objects keep their keys in the order the template wrote them, so new
/// settings read the way the template does rather than sorted.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node {
    Object(Vec<(String, Node)>),
    Array(Vec<Node>),
    Scalar(Value),
}

impl Node {
    /// The node of a parsed JSON value.
    pub(crate) fn from_cst(node: &CstNode) -> Option<Self> {
        if let Some(object) = node.as_object() {
            let props = object
                .properties()
                .into_iter()
                .filter_map(|p| Some((p.decoded_name()?, Self::from_cst(&p.value()?)?)))
                .collect();
            return Some(Self::Object(props));
        }
        if let Some(array) = node.as_array() {
            return Some(Self::Array(
                array.elements().iter().filter_map(Self::from_cst).collect(),
            ));
        }
        node.to_serde_value().map(Self::Scalar)
    }

    /// Rewrites every string in place.
    pub(crate) fn map_strings(&mut self, f: &impl Fn(&str) -> String) {
        match self {
            Self::Object(props) => props.iter_mut().for_each(|(_, v)| v.map_strings(f)),
            Self::Array(items) => items.iter_mut().for_each(|v| v.map_strings(f)),
            Self::Scalar(Value::String(s)) => *s = f(s),
            Self::Scalar(_) => {}
        }
    }

    fn to_value(&self) -> Value {
        match self {
            Self::Object(props) => Value::Object(
                props
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_value()))
                    .collect(),
            ),
            Self::Array(items) => Value::Array(items.iter().map(Self::to_value).collect()),
            Self::Scalar(value) => value.clone(),
        }
    }

    fn get(&self, key: &str) -> Option<&Node> {
        match self {
            Self::Object(props) => props.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }
}

/// Why a file was left as it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum EditError {
    /// The file is not valid in its format.
    #[error("is not valid {0}")]
    Parse(String),
    /// The file parses, but a key izzi must set holds something it cannot merge into.
    #[error("{0}")]
    Shape(String),
}

/// Merges `patch` into JSON text (`original` is `None` for a file that does not exist yet).
pub(crate) fn json(
    original: Option<&[u8]>,
    format: Format,
    patch: &JsonPatch,
) -> Result<Vec<u8>, EditError> {
    with_text(original, |text| {
        let kind = if format == Format::Json {
            "JSON"
        } else {
            "JSON with comments"
        };
        let invalid =
            |err: jsonc_parser::errors::ParseError| EditError::Parse(format!("{kind} ({err})"));
        // The CST keeps comments whatever the options say, so strictness is checked first.
        if format == Format::Json {
            jsonc_parser::parse_to_value(text, &strict_json()).map_err(invalid)?;
        }
        let root = CstRootNode::parse(text, &ParseOptions::default()).map_err(invalid)?;
        let object = match root.value() {
            None => root.object_value_or_set(),
            Some(value) => value
                .as_object()
                .ok_or_else(|| EditError::Shape("its top level is not an object".to_owned()))?,
        };
        merge_object(&object, &patch.set, false, &mut Vec::new())?;
        merge_object(&object, &patch.default, true, &mut Vec::new())?;
        for path in &patch.remove {
            remove_path(&object, path);
        }
        let mut out = root.to_string();
        if original.is_none_or(<[u8]>::is_empty) && !out.ends_with('\n') {
            out.push('\n');
        }
        Ok(out)
    })
}

/// Merges the tables and values of `patch` into TOML text.
pub(crate) fn toml(
    original: Option<&[u8]>,
    patch: &toml_edit::DocumentMut,
) -> Result<Vec<u8>, EditError> {
    toml_with(original, |doc| {
        merge_table(doc.as_table_mut(), patch.as_table(), &mut Vec::new())
    })
}

/// A TOML file (absent: empty) changed by `change`, its comments and layout kept.
pub(crate) fn toml_with(
    original: Option<&[u8]>,
    change: impl FnOnce(&mut toml_edit::DocumentMut) -> Result<(), EditError>,
) -> Result<Vec<u8>, EditError> {
    with_text(original, |text| {
        let mut doc: toml_edit::DocumentMut =
            text.parse().map_err(|err: toml_edit::TomlError| {
                EditError::Parse(format!("TOML ({})", err.message().trim_end()))
            })?;
        change(&mut doc)?;
        Ok(doc.to_string())
    })
}

fn strict_json() -> ParseOptions {
    ParseOptions {
        allow_comments: false,
        allow_loose_object_property_names: false,
        allow_trailing_commas: false,
        allow_missing_commas: false,
        allow_single_quoted_strings: false,
        allow_hexadecimal_numbers: false,
        allow_unary_plus_numbers: false,
        allow_bare_decimal_point_numbers: false,
        allow_non_finite_numbers: false,
        allow_extended_string_escapes: false,
    }
}

/// Runs `edit` on the file's text with `\n` line endings and no BOM, then puts back the CRLF
/// endings and the BOM the file had, so a Windows file stays a Windows file.
fn with_text(
    original: Option<&[u8]>,
    edit: impl FnOnce(&str) -> Result<String, EditError>,
) -> Result<Vec<u8>, EditError> {
    let bytes = original.unwrap_or_default();
    let text = std::str::from_utf8(bytes).map_err(|_| EditError::Parse("UTF-8 text".to_owned()))?;
    let (bom, text) = match text.strip_prefix('\u{feff}') {
        Some(rest) => ("\u{feff}", rest),
        None => ("", text),
    };
    let crlf = text.contains("\r\n") && !text.replace("\r\n", "").contains('\n');
    let edited = if crlf {
        edit(&text.replace("\r\n", "\n"))?.replace('\n', "\r\n")
    } else {
        edit(text)?
    };
    Ok(format!("{bom}{edited}").into_bytes())
}

fn dotted(path: &[String]) -> String {
    path.join(".")
}

fn merge_object(
    object: &CstObject,
    patch: &[(String, Node)],
    only_if_absent: bool,
    path: &mut Vec<String>,
) -> Result<(), EditError> {
    for (key, want) in patch {
        path.push(key.clone());
        match effective(object, key) {
            None => {
                object.append(key, input(want));
            }
            Some(prop) if only_if_absent => {
                // Defaults fill the gaps of nested objects too, never replacing a value.
                if let (Node::Object(want), Some(inner)) = (want, prop.object_value()) {
                    merge_object(&inner, want, true, path)?;
                }
            }
            Some(prop) => {
                let have = prop.value().and_then(|v| v.to_serde_value());
                match (want, have) {
                    (_, Some(Value::Null)) => prop.set_value(input(want)),
                    (Node::Object(want), _) => {
                        let inner = prop
                            .object_value()
                            .ok_or_else(|| not_a(path, "an object"))?;
                        merge_object(&inner, want, false, path)?;
                    }
                    (Node::Array(want), _) if named(want) => {
                        let inner = prop.array_value().ok_or_else(|| not_a(path, "a list"))?;
                        merge_named(&inner, want, path)?;
                    }
                    (want, have) => {
                        if have != Some(want.to_value()) {
                            prop.set_value(input(want));
                        }
                    }
                }
            }
        }
        path.pop();
    }
    Ok(())
}

fn not_a(path: &[String], what: &str) -> EditError {
    EditError::Shape(format!("`{}` is not {what}", dotted(path)))
}

/// A list of objects that each have a `name`, like `claudeCode.environmentVariables`: merged by
/// name, so other entries stay.
fn named(items: &[Node]) -> bool {
    !items.is_empty()
        && items
            .iter()
            .all(|i| matches!(i.get("name"), Some(Node::Scalar(Value::String(_)))))
}

fn merge_named(array: &CstArray, want: &[Node], path: &mut Vec<String>) -> Result<(), EditError> {
    for item in want {
        let name = item.get("name").map(Node::to_value);
        let existing = array.elements().into_iter().find_map(|element| {
            let object = element.as_object()?;
            let value = effective(&object, "name")?.value()?.to_serde_value()?;
            (Some(&value) == name.as_ref()).then_some(object)
        });
        match (existing, item) {
            (Some(object), Node::Object(fields)) => merge_object(&object, fields, false, path)?,
            _ => {
                array.append(input(item));
            }
        }
    }
    Ok(())
}

fn remove_path(object: &CstObject, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut current = object.clone();
    for key in parents {
        match effective(&current, key).and_then(|p| p.object_value()) {
            Some(inner) => current = inner,
            None => return,
        }
    }
    // Every occurrence: removing only the last would bring an earlier one into force.
    for prop in current.properties() {
        if prop.decoded_name().as_deref() == Some(last.as_str()) {
            prop.remove();
        }
    }
}

/// The property a tool reads for `key`: the last of its occurrences.
fn effective(object: &CstObject, key: &str) -> Option<CstObjectProp> {
    object
        .properties()
        .into_iter()
        .rfind(|p| p.decoded_name().as_deref() == Some(key))
}

fn input(node: &Node) -> CstInputValue {
    match node {
        Node::Object(props) => {
            CstInputValue::Object(props.iter().map(|(k, v)| (k.clone(), input(v))).collect())
        }
        Node::Array(items) => CstInputValue::Array(items.iter().map(input).collect()),
        Node::Scalar(value) => scalar(value),
    }
}

fn scalar(value: &Value) -> CstInputValue {
    match value {
        Value::Null => CstInputValue::Null,
        Value::Bool(b) => CstInputValue::Bool(*b),
        Value::Number(n) => CstInputValue::Number(n.to_string()),
        Value::String(s) => CstInputValue::String(s.clone()),
        Value::Array(items) => CstInputValue::Array(items.iter().map(scalar).collect()),
        Value::Object(map) => {
            CstInputValue::Object(map.iter().map(|(k, v)| (k.clone(), scalar(v))).collect())
        }
    }
}

fn merge_table(
    table: &mut dyn toml_edit::TableLike,
    patch: &toml_edit::Table,
    path: &mut Vec<String>,
) -> Result<(), EditError> {
    for (key, want) in patch {
        path.push(key.to_owned());
        if want.is_table()
            && let Some(mut name) = table.key_mut(key)
        {
            // A header such as `[a.b   .c]` leaves spacing on `b` that only shows while `[a.b]`
            // has no header of its own; the merge may give it one, so the spacing goes, and
            // merging the file again leaves it as it is.
            name.dotted_decor_mut().clear();
        }
        match (want, table.get_mut(key)) {
            (toml_edit::Item::Table(want), None) => {
                let mut fresh = toml_edit::Table::new();
                // `[a.b]` alone, without an empty `[a]` header above it.
                fresh.set_implicit(want.iter().all(|(_, item)| item.is_table()));
                merge_table(&mut fresh, want, path)?;
                table.insert(key, toml_edit::Item::Table(fresh));
            }
            (toml_edit::Item::Table(want), Some(have)) => {
                let inner = have
                    .as_table_like_mut()
                    .ok_or_else(|| not_a(path, "a table"))?;
                merge_table(inner, want, path)?;
            }
            (toml_edit::Item::Value(want), None) => {
                table.insert(key, toml_edit::Item::Value(want.clone()));
            }
            (toml_edit::Item::Value(want), Some(have)) => match have.as_value_mut() {
                Some(current) if same(current, want) => {}
                Some(current) => {
                    // Keep the comment that followed the old value on its line.
                    let decor = current.decor().clone();
                    *current = want.clone();
                    *current.decor_mut() = decor;
                }
                None => return Err(not_a(path, "a plain value")),
            },
            _ => {}
        }
        path.pop();
    }
    Ok(())
}

/// Equal TOML values, whatever their spacing.
fn same(a: &toml_edit::Value, b: &toml_edit::Value) -> bool {
    use toml_edit::Value as V;
    match (a, b) {
        (V::String(a), V::String(b)) => a.value() == b.value(),
        (V::Integer(a), V::Integer(b)) => a.value() == b.value(),
        (V::Boolean(a), V::Boolean(b)) => a.value() == b.value(),
        (V::Float(a), V::Float(b)) => a.value().to_bits() == b.value().to_bits(),
        (V::Datetime(a), V::Datetime(b)) => a.value() == b.value(),
        (V::Array(a), V::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b.iter()).all(|(a, b)| same(a, b))
        }
        (V::InlineTable(a), V::InlineTable(b)) => {
            a.len() == b.len() && a.iter().all(|(k, v)| b.get(k).is_some_and(|w| same(v, w)))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(text: &str) -> Vec<(String, Node)> {
        let root = CstRootNode::parse(text, &ParseOptions::default()).unwrap();
        match Node::from_cst(&root.value().unwrap()).unwrap() {
            Node::Object(props) => props,
            _ => panic!("not an object"),
        }
    }

    fn patch(set: &str) -> JsonPatch {
        JsonPatch {
            set: node(set),
            ..JsonPatch::default()
        }
    }

    fn run(original: &str, format: Format, p: &JsonPatch) -> String {
        String::from_utf8(json(Some(original.as_bytes()), format, p).unwrap()).unwrap()
    }

    #[test]
    fn jsonc_keeps_comments_order_and_trailing_commas() {
        let original =
            "{\n  // mine\n  \"z\": 1,\n  \"env\": {\n    \"A\": \"x\", // keep\n  },\n}\n";
        let p = patch(r#"{"env": {"B": "y"}}"#);
        let out = run(original, Format::Jsonc, &p);
        assert_eq!(
            out,
            "{\n  // mine\n  \"z\": 1,\n  \"env\": {\n    \"A\": \"x\", // keep\n    \"B\": \"y\",\n  },\n}\n"
        );
        assert_eq!(
            run(&out, Format::Jsonc, &p),
            out,
            "a second merge changes nothing"
        );
    }

    #[test]
    fn strict_json_rejects_comments() {
        let err = json(Some(b"{ // no\n}"), Format::Json, &JsonPatch::default()).unwrap_err();
        assert!(
            matches!(err, EditError::Parse(ref m) if m.contains("line 1")),
            "{err}"
        );
    }

    #[test]
    fn crlf_and_bom_survive() {
        let original = "\u{feff}{\r\n  \"a\": 1\r\n}\r\n";
        let out = run(original, Format::Json, &patch(r#"{"b": true}"#));
        assert_eq!(out, "\u{feff}{\r\n  \"a\": 1,\r\n  \"b\": true\r\n}\r\n");
    }

    #[test]
    fn new_and_empty_files_become_objects() {
        let p = patch(r#"{"env": {"A": "x"}}"#);
        let fresh = String::from_utf8(json(None, Format::Json, &p).unwrap()).unwrap();
        assert_eq!(fresh, "{\n  \"env\": {\n    \"A\": \"x\"\n  }\n}\n");
        assert_eq!(run("", Format::Json, &p), fresh);
    }

    #[test]
    fn shapes_that_cannot_merge_are_errors() {
        let p = patch(r#"{"env": {"A": "x"}}"#);
        let err = json(Some(b"{\"env\": 3}"), Format::Json, &p).unwrap_err();
        assert_eq!(err, EditError::Shape("`env` is not an object".to_owned()));
        let err = json(Some(b"[]"), Format::Json, &p).unwrap_err();
        assert!(matches!(err, EditError::Shape(_)));
    }

    #[test]
    fn named_lists_merge_by_name_and_defaults_stay() {
        let original = r#"{"vars": [{"name": "OTHER", "value": "1"}, {"name": "URL", "value": "old"}], "model": "mine"}"#;
        let p = JsonPatch {
            set: node(
                r#"{"vars": [{"name": "URL", "value": "new"}, {"name": "NEW", "value": "2"}]}"#,
            ),
            default: node(r#"{"model": "izzi", "small": "s"}"#),
            remove: vec![vec!["gone".to_owned()]],
        };
        let out = run(original, Format::Json, &p);
        let value: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            value,
            serde_json::json!({"vars": [{"name": "OTHER", "value": "1"}, {"name": "URL", "value": "new"}, {"name": "NEW", "value": "2"}], "model": "mine", "small": "s"})
        );
    }

    #[test]
    fn new_keys_keep_the_template_order() {
        let out = run(
            "{}",
            Format::Json,
            &patch(r#"{"z": 1, "a": {"y": 2, "b": 3}}"#),
        );
        assert_eq!(
            out,
            "{\n  \"z\": 1,\n  \"a\": {\n    \"y\": 2,\n    \"b\": 3\n  }\n}"
        );
    }

    #[test]
    fn removes_paths() {
        let p = JsonPatch {
            remove: vec![vec!["env".to_owned(), "TOKEN".to_owned()]],
            ..JsonPatch::default()
        };
        let out = run(
            "{\n  \"env\": {\n    \"TOKEN\": \"t\",\n    \"KEEP\": 1\n  }\n}\n",
            Format::Json,
            &p,
        );
        assert_eq!(out, "{\n  \"env\": {\n    \"KEEP\": 1\n  }\n}\n");
    }

    #[test]
    fn duplicate_keys_edit_the_occurrence_tools_read() {
        // Found by fuzzing (`setup_json`): the first `env` was edited and the first
        // `apiKeyHelper` removed, while tools read the last of each, so the file kept its old
        // endpoint and a second run changed it again.
        let original = "{\n  \"env\": {\"A\": \"old\"}\n  \"env\": {\"A\": \"old\"},\n  \"apiKeyHelper\": \"a\",\n  \"apiKeyHelper\": \"b\"\n}\n";
        let p = JsonPatch {
            remove: vec![vec!["apiKeyHelper".to_owned()]],
            ..patch(r#"{"env": {"A": "new"}}"#)
        };
        let out = run(original, Format::Jsonc, &p);
        assert_eq!(
            run(&out, Format::Jsonc, &p),
            out,
            "a second merge changes nothing"
        );
        assert!(!out.contains("apiKeyHelper"), "{out}");
        let last_env = out.rfind("\"env\"").unwrap();
        assert!(out[last_env..].contains("\"new\""), "{out}");
        // What a JSON reader sees: the last `env`, with the new value.
        let read: Value =
            jsonc_parser::parse_to_serde_value::<Value>(&out, &ParseOptions::default()).unwrap();
        assert_eq!(read["env"]["A"], "new");
    }

    fn toml_patch(text: &str) -> toml_edit::DocumentMut {
        text.parse().unwrap()
    }

    #[test]
    fn toml_keeps_comments_and_adds_tables() {
        let original =
            "# top\nmodel = \"o3\" # mine\n\n[model_providers.other]\nname = \"Other\"\n";
        let p = toml_patch(
            "model_provider = \"izzi\"\n[model_providers.izzi]\nname = \"Izzi\"\nargs = [\"key\", \"print\"]\n[model_providers.izzi.auth]\ncommand = \"izzi\"\n",
        );
        let out = String::from_utf8(toml(Some(original.as_bytes()), &p).unwrap()).unwrap();
        assert_eq!(
            out,
            "# top\nmodel = \"o3\" # mine\nmodel_provider = \"izzi\"\n\n[model_providers.other]\nname = \"Other\"\n\n[model_providers.izzi]\nname = \"Izzi\"\nargs = [\"key\", \"print\"]\n\n[model_providers.izzi.auth]\ncommand = \"izzi\"\n"
        );
        let again = String::from_utf8(toml(Some(out.as_bytes()), &p).unwrap()).unwrap();
        assert_eq!(again, out);
    }

    #[test]
    fn toml_merges_into_a_table_named_only_by_a_spaced_header_once() {
        // `[a.b   .c]` names `a.b` implicitly; once the merge gives `a.b` values of its own, a
        // second merge must leave the file as the first left it.
        let original = "[model_providers.izzi    .auth]\ncommand = \"old\"\n";
        let p = toml_patch(
            "[model_providers.izzi]\nname = \"Izzi\"\n[model_providers.izzi.auth]\ncommand = \"izzi\"\n",
        );
        let out = String::from_utf8(toml(Some(original.as_bytes()), &p).unwrap()).unwrap();
        let again = String::from_utf8(toml(Some(out.as_bytes()), &p).unwrap()).unwrap();
        assert_eq!(again, out);
        assert!(
            out.contains("[model_providers.izzi]\nname = \"Izzi\"\n"),
            "{out}"
        );
    }

    #[test]
    fn toml_replaces_values_keeping_their_comment() {
        let original = "model_provider = \"openai\" # was\n";
        let out = String::from_utf8(
            toml(
                Some(original.as_bytes()),
                &toml_patch("model_provider = \"izzi\"\n"),
            )
            .unwrap(),
        )
        .unwrap();
        assert_eq!(out, "model_provider = \"izzi\" # was\n");
    }

    #[test]
    fn toml_errors() {
        let err = toml(Some(b"[broken"), &toml_patch("a = 1")).unwrap_err();
        assert!(matches!(err, EditError::Parse(_)));
        let err = toml(
            Some(b"model_providers = 3\n"),
            &toml_patch("[model_providers.izzi]\na = 1\n"),
        )
        .unwrap_err();
        assert_eq!(
            err,
            EditError::Shape("`model_providers` is not a table".to_owned())
        );
    }
}
