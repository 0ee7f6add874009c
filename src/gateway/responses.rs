//! Stateful Responses on any provider: a `POST /responses` turn continues from a stored response
//! (`previous_response_id`: its input and output become the head of this turn's `input`, and the
//! request goes on as any other, translated for whatever provider the model routes to), and,
//! unless `store` is `false`, the answer is kept with its input (`store::ResponseStore`) once
//! the client's answer is whole (a stream's `response.completed`). Also `GET` and `DELETE
//! /responses/{id}` and `GET /responses/{id}/input_items`. Stored responses belong to the key
//! that made them: to any other key they do not exist.
//!
//! No provider ever sees izzi's ids: every upstream gets the whole conversation.

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::StreamExt as _;
use serde_json::{Map, Value, json};

use super::AppState;
use super::errors::ApiError;
use super::identity::{KeyHash, hash, presented_key};
use crate::protocol::json::Body;
use crate::protocol::sse;
use crate::store::Kept;

/// A turn whose answer is to be stored: who made it and its whole input.
pub(super) struct Turn {
    owner: KeyHash,
    input: Vec<Value>,
}

/// The key a request presented, as stored responses know it.
fn owner(headers: &HeaderMap) -> KeyHash {
    hash(presented_key(headers).unwrap_or_default())
}

/// A blocking store call on a blocking thread; a failure is a 500 that names no internals.
async fn blocking<T: Send + 'static>(
    state: &AppState,
    call: impl FnOnce(&crate::store::ResponseStore) -> anyhow::Result<T> + Send + 'static,
) -> Result<T, ApiError> {
    let store = Arc::clone(&state.responses);
    let done = tokio::task::spawn_blocking(move || call(&store)).await;
    match done {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(err)) => {
            tracing::error!(error = format!("{err:#}"), "stored responses unavailable");
            Err(ApiError::internal("Stored responses cannot be read now."))
        }
        Err(_) => Err(ApiError::internal("Stored responses cannot be read now.")),
    }
}

/// The stored response `id` of the key behind `headers`, or a 404.
async fn load(state: &AppState, owner: KeyHash, id: &str) -> Result<Kept, ApiError> {
    let bounds = state.config.responses.clone();
    let wanted = id.to_owned();
    blocking(state, move |store| {
        store.get(&owner, &wanted, &bounds, jiff::Timestamp::now())
    })
    .await?
    .ok_or_else(|| missing(id))
}

/// The 404 for a response this key cannot see.
fn missing(id: &str) -> ApiError {
    ApiError::not_found(format!(
        "No response with id `{id}` is stored for this key: it was made with another key, deleted, sent with `store: false`, or evicted (`[responses]` in config.toml bounds how long and how much izzi keeps)."
    ))
}

/// The JSON array a stored column holds.
fn items(text: &str) -> Vec<Value> {
    serde_json::from_str(text).unwrap_or_default()
}

/// Reads `store` and `previous_response_id` of a `POST /responses` body. With a previous
/// response, the body comes back with that response's input and output at the head of its
/// `input` and without the id; with `store` (the default) not `false`, the turn to keep.
/// A body that is not an object is left to the shape checks that follow.
pub(super) async fn begin(
    state: &AppState,
    headers: &HeaderMap,
    bytes: Bytes,
) -> Result<(Bytes, Option<Turn>), ApiError> {
    let Ok(body) = Body::parse(&bytes) else {
        return Ok((bytes, None));
    };
    let invalid = |e: crate::protocol::json::BodyError| ApiError::invalid(e.0);
    let store = body.field::<bool>("store", "a boolean").map_err(invalid)? != Some(false);
    let previous: Option<String> = body
        .field("previous_response_id", "a string")
        .map_err(invalid)?;
    let Some(input) = body.get("input") else {
        return Ok((bytes, None));
    };
    let compacted = memchr::memmem::find(input.get().as_bytes(), b"\"compaction").is_some();
    if !store && previous.is_none() && !compacted {
        return Ok((bytes, None));
    }
    let mut input: Vec<Value> = match serde_json::from_str(input.get()) {
        Ok(Value::String(text)) => {
            vec![user_message(text)]
        }
        Ok(Value::Array(items)) => items,
        _ => return Ok((bytes, None)),
    };
    let owner = owner(headers);
    if let Some(id) = &previous {
        let kept = load(state, owner, id).await?;
        let mut whole = items(&kept.input);
        let response: Value = serde_json::from_str(&kept.response).unwrap_or_default();
        if let Some(Value::Array(output)) = response.get("output") {
            whole.extend(output.iter().cloned());
        }
        whole.append(&mut input);
        input = whole;
    }
    if compacted {
        input = input.into_iter().filter_map(summary_message).collect();
    }
    let bytes = if previous.is_some() || compacted {
        let mut object: Map<String, Value> = serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::invalid(format!("The body is not valid JSON: {e}.")))?;
        object.remove("previous_response_id");
        object.insert("input".to_owned(), Value::Array(input.clone()));
        Bytes::from(
            serde_json::to_vec(&object)
                .map_err(|e| ApiError::internal(format!("The body cannot be written: {e}.")))?,
        )
    } else {
        bytes
    };
    Ok((bytes, store.then_some(Turn { owner, input })))
}

/// What marks a compaction item's `encrypted_content` as izzi's: the summary follows, base64.
const COMPACTION_PREFIX: &str = "izzi-compaction-v1:";

/// The compaction item `POST /responses/compact` answers with: the summary, opaque to the
/// client (as OpenAI's is), which sends it back as the head of its next turn.
pub(super) fn compaction_item(id: &str, summary: &str) -> Value {
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD.encode(summary);
    json!({"id": id, "type": "compaction", "encrypted_content": format!("{COMPACTION_PREFIX}{encoded}")})
}

/// An input item as a provider can read it: izzi's compaction item becomes the summary as a
/// user message; one izzi did not make (OpenAI's own, encrypted for OpenAI) cannot be read
/// anywhere else and is dropped.
fn summary_message(item: Value) -> Option<Value> {
    use base64::Engine as _;
    let kind = item.get("type").and_then(Value::as_str);
    if !matches!(kind, Some("compaction" | "compaction_summary")) {
        return Some(item);
    }
    let summary = item
        .get("encrypted_content")
        .and_then(Value::as_str)
        .and_then(|c| c.strip_prefix(COMPACTION_PREFIX))
        .and_then(|c| base64::engine::general_purpose::STANDARD.decode(c).ok())
        .and_then(|c| String::from_utf8(c).ok());
    let Some(summary) = summary else {
        tracing::debug!("a compaction item izzi did not make was dropped: only OpenAI can read it");
        return None;
    };
    Some(user_message(format!(
        "This conversation was compacted. A summary of everything before this point:\n\n{summary}"
    )))
}

/// A user message item with `text` as its content.
pub(super) fn user_message(text: impl Into<String>) -> Value {
    json!({"type": "message", "role": "user", "content": text.into()})
}

impl Turn {
    /// Keeps the answer the client gets: a whole one now, a stream's when its
    /// `response.completed` passes (before the client sees it, so its next turn finds it).
    pub(super) async fn keep(self, state: Arc<AppState>, response: Response) -> Response {
        if response.status() != StatusCode::OK {
            return response;
        }
        let streamed = response
            .headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
        let (parts, body) = response.into_parts();
        if !streamed {
            let Ok(whole) = axum::body::to_bytes(body, usize::MAX).await else {
                return (StatusCode::OK, parts.headers).into_response();
            };
            self.store(&state, &whole).await;
            return Response::from_parts(parts, axum::body::Body::from(whole));
        }
        let parser = sse::Parser::new(state.config.server.max_upstream_body_bytes);
        let watch = (body.into_data_stream(), parser, Some(self), state);
        let stream = futures_util::stream::unfold(watch, |mut w| async move {
            let chunk = w.0.next().await?;
            if let (Ok(bytes), Some(_)) = (&chunk, &w.2) {
                w.1.push(bytes);
                while let Ok(Some(event)) = w.1.next_event() {
                    if event.event.as_deref() != Some("response.completed") {
                        continue;
                    }
                    let completed: Value = serde_json::from_str(&event.data).unwrap_or_default();
                    if let (Some(turn), Some(response)) = (w.2.take(), completed.get("response")) {
                        turn.store(&w.3, response.to_string().as_bytes()).await;
                    }
                }
            }
            Some((chunk, w))
        });
        Response::from_parts(parts, axum::body::Body::from_stream(stream))
    }

    /// Stores `response` (the client's JSON) with this turn's input; items without an id get
    /// one, so `input_items` can page through them. A failure is logged: the answer still goes.
    async fn store(self, state: &AppState, response: &[u8]) {
        let Ok(parsed) = serde_json::from_slice::<Value>(response) else {
            return;
        };
        let Some(id) = parsed.get("id").and_then(Value::as_str) else {
            return;
        };
        let base = id.strip_prefix("resp_").unwrap_or(id);
        let mut input = self.input;
        for (i, item) in input.iter_mut().enumerate() {
            if let Some(item) = item.as_object_mut()
                && !item.contains_key("id")
            {
                item.insert("id".to_owned(), Value::String(format!("item_{base}_{i}")));
            }
        }
        let kept = Kept {
            id: id.to_owned(),
            owner: self.owner,
            input: Value::Array(input).to_string(),
            response: String::from_utf8_lossy(response).into_owned(),
        };
        let bounds = state.config.responses.clone();
        if let Err(err) = blocking(state, move |store| {
            store.put(&kept, &bounds, jiff::Timestamp::now())
        })
        .await
        {
            tracing::warn!(error = %err.message, "the response was not stored");
        }
    }
}

fn json_response(body: String) -> Response {
    let mut response = (StatusCode::OK, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// `GET /responses/{id}`: the response as the client got it.
pub(crate) async fn retrieve(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let kept = load(&state, owner(&headers), &id).await?;
    Ok(json_response(kept.response))
}

/// `DELETE /responses/{id}`.
pub(crate) async fn delete(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let owner = owner(&headers);
    let wanted = id.clone();
    if !blocking(&state, move |store| store.delete(&owner, &wanted)).await? {
        return Err(missing(&id));
    }
    Ok(json_response(
        json!({"id": id, "object": "response", "deleted": true}).to_string(),
    ))
}

/// Order of a listing.
#[derive(Debug, Clone, Copy, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
enum Order {
    Asc,
    #[default]
    Desc,
}

/// `GET /responses/{id}/input_items`'s query, as OpenAI pages it.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct Page {
    #[serde(default = "Page::default_limit")]
    limit: usize,
    #[serde(default)]
    order: Order,
    after: Option<String>,
}

impl Page {
    fn default_limit() -> usize {
        20
    }
}

/// `GET /responses/{id}/input_items`: the items the response answered, its continued turns'
/// included, newest first unless `order=asc`, `limit` (1 to 100, default 20) at a time after
/// the item `after`.
pub(crate) async fn input_items(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    page: Result<Query<Page>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(page) = page.map_err(|e| {
        ApiError::invalid(format!(
            "The query is not valid: {}. `limit` is 1 to 100, `order` is `asc` or `desc`, `after` an item id.",
            e.body_text()
        ))
    })?;
    if !(1..=100).contains(&page.limit) {
        return Err(ApiError::invalid(format!(
            "`limit` must be 1 to 100, not {}.",
            page.limit
        )));
    }
    let kept = load(&state, owner(&headers), &id).await?;
    let mut all = items(&kept.input);
    if matches!(page.order, Order::Desc) {
        all.reverse();
    }
    let start = match &page.after {
        None => 0,
        Some(after) => {
            let at = all
                .iter()
                .position(|item| item.get("id").and_then(Value::as_str) == Some(after.as_str()))
                .ok_or_else(|| {
                    ApiError::invalid(format!(
                        "`after`: `{after}` is not an input item of the response `{id}`."
                    ))
                })?;
            at + 1
        }
    };
    let rest = all.get(start..).unwrap_or_default();
    let data: Vec<&Value> = rest.iter().take(page.limit).collect();
    let item_id = |item: Option<&&Value>| item.and_then(|i| i.get("id")).cloned();
    Ok(json_response(
        json!({
            "object": "list",
            "data": data,
            "first_id": item_id(data.first()),
            "last_id": item_id(data.last()),
            "has_more": rest.len() > data.len(),
        })
        .to_string(),
    ))
}
