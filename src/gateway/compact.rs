//! `POST /responses/compact` (Codex's remote compaction) on any provider: the conversation in
//! `input` (or continued from `previous_response_id`) is summarised by the requested model
//! through the ordinary Responses path (`proxy`: routed, translated, limited, recorded), and
//! the answer takes OpenAI's shape, `{"object": "response.compaction", "output": [...]}`: the
//! conversation's user messages, then one `compaction` item holding the summary. Codex replaces
//! its history with that output and sends it back at the head of its next turn, where
//! `responses` turns the compaction item into the summary as text for whatever provider serves
//! that turn.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::AppState;
use super::errors::ApiError;
use super::request::read_body;
use super::{proxy, responses};
use crate::protocol::Format;

/// What the model is asked once the conversation has been replayed to it.
const PROMPT: &str = "Your context is about to be compacted. Write a summary that lets you continue this work without the conversation: the user's goals, requests and constraints; decisions made and why; the current state (files changed, commands run and their results, errors met); and what remains to be done next. Be concise but leave out nothing needed to continue. Answer with the summary only.";

/// `POST /responses/compact`.
pub(crate) async fn compact(State(state): State<Arc<AppState>>, request: Request) -> Response {
    match summarise(state, request).await {
        Ok(response) | Err(response) => response,
    }
}

async fn summarise(state: Arc<AppState>, request: Request) -> Result<Response, Response> {
    let (mut parts, body) = request.into_parts();
    let bytes = read_body(body, &parts.headers, &state.config.server)
        .await
        .map_err(IntoResponse::into_response)?;
    let mut object: Map<String, Value> = serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::invalid(format!("The body is not a JSON object: {e}.")).into_response()
    })?;
    let input = match object.remove("input") {
        Some(Value::Array(items)) => items,
        Some(Value::String(text)) => vec![responses::user_message(text)],
        None if object.contains_key("previous_response_id") => Vec::new(),
        _ => {
            return Err(ApiError::invalid(
                "`input` is required: a string or an array of items to compact.",
            )
            .into_response());
        }
    };
    // The user's messages are kept, as OpenAI's compaction keeps them; an earlier compaction is
    // covered by the new summary.
    let kept: Vec<Value> = input
        .iter()
        .filter(|item| is_user_message(item))
        .cloned()
        .collect();
    let mut asked = input;
    asked.push(responses::user_message(PROMPT));
    object.insert("input".to_owned(), Value::Array(asked));
    object.insert("store".to_owned(), Value::Bool(false));
    object.insert("stream".to_owned(), Value::Bool(false));
    // The tools stay declared (a history with tool calls needs them), but none is called.
    if object
        .get("tools")
        .is_some_and(|t| t.as_array().is_some_and(|t| !t.is_empty()))
    {
        object.insert("tool_choice".to_owned(), json!("none"));
    } else {
        object.remove("tools");
        object.remove("tool_choice");
    }
    object.remove("parallel_tool_calls");
    let body = serde_json::to_vec(&object).map_err(|e| {
        ApiError::internal(format!("The body cannot be written: {e}.")).into_response()
    })?;
    parts.headers.remove(header::CONTENT_LENGTH);
    let inner = Request::from_parts(parts, axum::body::Body::from(body));
    let answer = proxy::inference(State(state), Format::Responses, inner).await;
    if answer.status() != StatusCode::OK {
        return Err(answer);
    }
    let (mut parts, body) = answer.into_parts();
    let whole = axum::body::to_bytes(body, usize::MAX).await.map_err(|e| {
        ApiError::upstream(format!("The summary could not be read: {e}.")).into_response()
    })?;
    let summary: Value = serde_json::from_slice(&whole).map_err(|e| {
        ApiError::upstream(format!("The summary could not be read: {e}.")).into_response()
    })?;
    let text = output_text(&summary);
    if text.trim().is_empty() {
        return Err(
            ApiError::upstream("The model answered the compaction with no summary.")
                .into_response(),
        );
    }
    let id = summary
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or("resp_compaction");
    let base = id.strip_prefix("resp_").unwrap_or(id);
    let mut output: Vec<Value> = kept
        .into_iter()
        .enumerate()
        .map(|(i, item)| output_message(item, &format!("msg_{base}_{i}")))
        .collect();
    output.push(responses::compaction_item(&format!("cmp_{base}"), &text));
    let compacted = json!({
        "id": id,
        "object": "response.compaction",
        "created_at": summary.get("created_at").cloned().unwrap_or(Value::Null),
        "output": output,
        "usage": summary.get("usage").cloned().unwrap_or(Value::Null),
    });
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(Response::from_parts(
        parts,
        axum::body::Body::from(compacted.to_string()),
    ))
}

/// A user message item (`type` `message`, or none).
fn is_user_message(item: &Value) -> bool {
    item.get("role").and_then(Value::as_str) == Some("user")
        && item
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("message")
            == "message"
}

/// A user message as an output item, in the shape OpenAI's compaction gives it: typed, with an
/// id and a status, its text content as an `input_text` part.
fn output_message(mut item: Value, id: &str) -> Value {
    if let Some(fields) = item.as_object_mut() {
        fields.insert("type".to_owned(), json!("message"));
        fields.entry("id").or_insert_with(|| json!(id));
        fields.entry("status").or_insert_with(|| json!("completed"));
        if let Some(Value::String(text)) = fields.get("content") {
            let parts = json!([{"type": "input_text", "text": text}]);
            fields.insert("content".to_owned(), parts);
        }
    }
    item
}

/// The text of a Responses answer's message items.
fn output_text(response: &Value) -> String {
    let Some(Value::Array(items)) = response.get("output") else {
        return String::new();
    };
    items
        .iter()
        .filter(|item| item.get("type").and_then(Value::as_str) == Some("message"))
        .filter_map(|item| item.get("content").and_then(Value::as_array))
        .flatten()
        .filter_map(|part| part.get("text").and_then(Value::as_str))
        .collect::<Vec<_>>()
        .join("\n")
}
