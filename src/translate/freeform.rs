//! Tools whose calls are not JSON arguments, toward providers that only take functions: freeform
//! (`custom`) tools, whose input is raw text (Codex's `apply_patch`), become a function of one
//! string parameter whose description carries the tool's grammar; Codex's legacy `local_shell`
//! becomes a function of its `exec` action. Each comes with the way back from the function's
//! arguments. Responses and Chat clients' custom tools both go through here. Pure.

use serde_json::{Value, json};

/// The one parameter of the function a freeform tool becomes.
pub(crate) const INPUT: &str = "input";

/// The function's parameters for a freeform tool with `format` (Responses' `{type: grammar,
/// syntax, definition}` or Chat's `{type: grammar, grammar: {syntax, definition}}`).
pub(crate) fn parameters(format: Option<&Value>) -> Value {
    let mut description = "The tool's whole input, as raw text.".to_owned();
    let grammar = format.map(|f| f.get("grammar").unwrap_or(f));
    if let Some(grammar) = grammar
        && let Some(definition) = grammar.get("definition").and_then(Value::as_str)
    {
        let syntax = grammar
            .get("syntax")
            .and_then(Value::as_str)
            .unwrap_or("grammar");
        description = format!("{description} It must follow this {syntax} grammar:\n{definition}");
    }
    json!({"type": "object", "properties": {INPUT: {"type": "string", "description": description}},
           "required": [INPUT], "additionalProperties": false})
}

/// The function's arguments for a freeform call's raw input.
pub(crate) fn arguments(input: &str) -> String {
    json!({INPUT: input}).to_string()
}

/// A freeform call's raw input from the arguments of the function it went upstream as
/// (arguments that are not that object are taken as the input itself).
pub(crate) fn input(arguments: &str) -> String {
    match serde_json::from_str::<Value>(arguments) {
        Ok(Value::Object(mut map)) => match map.remove(INPUT) {
            Some(Value::String(input)) => input,
            _ => arguments.to_owned(),
        },
        _ => arguments.to_owned(),
    }
}

/// The function Codex's `local_shell` tool becomes.
pub(crate) const LOCAL_SHELL: &str = "local_shell";

/// `local_shell` as a function of its `exec` action.
pub(crate) fn local_shell_parameters() -> Value {
    json!({"type": "object", "properties": {
        "command": {"type": "array", "items": {"type": "string"},
                    "description": "The program and its arguments, e.g. [\"bash\", \"-lc\", \"ls\"]."},
        "working_directory": {"type": "string"},
        "timeout_ms": {"type": "integer"}},
        "required": ["command"]})
}

/// A `local_shell_call`'s action as the function's arguments.
pub(crate) fn local_shell_arguments(action: &Value) -> String {
    let mut action = action.clone();
    if let Some(map) = action.as_object_mut() {
        map.remove("type");
    }
    action.to_string()
}

/// The `exec` action of the function's arguments (a command that is not a list of strings is
/// run as one shell line).
pub(crate) fn local_shell_action(arguments: &str) -> Value {
    let mut action = match serde_json::from_str::<Value>(arguments) {
        Ok(Value::Object(map)) => map,
        _ => serde_json::Map::new(),
    };
    let command = match action.remove("command") {
        Some(Value::Array(parts)) if parts.iter().all(Value::is_string) => Value::Array(parts),
        Some(Value::String(line)) => json!(["bash", "-lc", line]),
        _ => json!([]),
    };
    action.insert("type".to_owned(), Value::from("exec"));
    action.insert("command".to_owned(), command);
    Value::Object(action)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_local_shell_action_survives_the_function_both_ways() {
        let action = json!({"type": "exec", "command": ["ls", "-a"], "working_directory": "/w"});
        assert_eq!(local_shell_action(&local_shell_arguments(&action)), action);
        assert_eq!(
            local_shell_action(r#"{"command":"ls | wc"}"#),
            json!({"type": "exec", "command": ["bash", "-lc", "ls | wc"]})
        );
    }

    #[test]
    fn raw_input_survives_the_function_both_ways_and_grammars_are_told() {
        let patch = "*** Begin Patch\n+\"quoted\"\n*** End Patch\n";
        assert_eq!(input(&arguments(patch)), patch);
        assert_eq!(input("not json"), "not json");
        let responses = json!({"type": "grammar", "syntax": "lark", "definition": "start: /x/"});
        let chat =
            json!({"type": "grammar", "grammar": {"syntax": "lark", "definition": "start: /x/"}});
        assert_eq!(parameters(Some(&responses)), parameters(Some(&chat)));
        let described = parameters(Some(&chat));
        assert!(
            described["properties"]["input"]["description"]
                .as_str()
                .unwrap()
                .ends_with("lark grammar:\nstart: /x/")
        );
    }
}
