//! Freeform (`custom`) tools, whose input is raw text rather than JSON arguments (Codex's
//! `apply_patch`), toward providers without them: a function of one string parameter, whose
//! description carries the tool's grammar, and the way back from that function's arguments to
//! the raw input. Responses and Chat clients' custom tools both go through here. Pure.

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

#[cfg(test)]
mod tests {
    use super::*;

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
