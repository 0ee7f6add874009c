//! Provider-run web search across formats. Chat carries it as `web_search_options` (OpenAI's
//! search models), Anthropic as the `web_search_20250305` server tool, Responses as the
//! `web_search` tool; the Chat pivot holds it as `web_search_options`, which each direction
//! makes or reads here. A target without web search gets no declaration (a debug log), never
//! a 400: the model simply does not search. Pure.

use serde_json::{Map, Value, json};

use crate::protocol::anthropic as an;

/// Chat's `web_search_options` for a flat location (Anthropic's and Responses'
/// `user_location`: `type`, `city`, `region`, `country`, `timezone`).
pub(crate) fn chat_options(location: Option<&Value>) -> Value {
    let mut options = Map::new();
    if let Some(Value::Object(flat)) = location {
        let approximate: Map<String, Value> = flat
            .iter()
            .filter(|(k, v)| *k != "type" && !v.is_null())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if !approximate.is_empty() {
            options.insert(
                "user_location".to_owned(),
                json!({"type": "approximate", "approximate": approximate}),
            );
        }
    }
    Value::Object(options)
}

/// Anthropic's web search server tool for Chat's `web_search_options`.
pub(crate) fn anthropic_tool(options: &Value) -> an::Tool {
    let mut extra = Map::new();
    if let Some(Value::Object(approximate)) = options.pointer("/user_location/approximate") {
        let mut flat = approximate.clone();
        flat.insert("type".to_owned(), Value::from("approximate"));
        extra.insert("user_location".to_owned(), Value::Object(flat));
    }
    an::Tool {
        kind: Some("web_search_20250305".to_owned()),
        name: "web_search".to_owned(),
        extra,
        ..an::Tool::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_location_survives_both_ways() {
        let flat = json!({"type": "approximate", "city": "Paris", "country": "FR", "region": null});
        let options = chat_options(Some(&flat));
        assert_eq!(
            options,
            json!({"user_location": {"type": "approximate", "approximate": {"city": "Paris", "country": "FR"}}})
        );
        let tool = serde_json::to_value(anthropic_tool(&options)).unwrap();
        assert_eq!(
            tool,
            json!({"type": "web_search_20250305", "name": "web_search",
                   "user_location": {"type": "approximate", "city": "Paris", "country": "FR"}})
        );
        assert_eq!(chat_options(None), json!({}));
    }
}
