//! `GET /models` and `GET /models/{id}`: the catalog with prices, in OpenAI's list shape, or
//! Anthropic's model shape when the request carries `anthropic-version`. The auth layer in front
//! of these routes has checked the key; they count toward no limit.
//!
//! Codex asks its provider for its own model catalog, `GET /models?client_version=…`, and reads
//! the answer as its `ModelsResponse` (`{"models": [ModelInfo…]}`). Each `ModelInfo` carries the
//! system prompt Codex then sends for that model (`base_instructions`, required), and Codex's own
//! prompt is used only for a model it has no entry for. So that query gets an empty catalog:
//! Codex's refresh succeeds, it keeps its bundled entries, and every model keeps Codex's
//! own prompt (docs/setup.md).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use rust_decimal::prelude::ToPrimitive as _;
use serde_json::{Value, json};

use super::AppState;
use super::errors::ApiError;
use crate::catalog::Model;

pub(crate) async fn list(
    State(state): State<Arc<AppState>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    if codex(query.as_deref()) {
        return Json(json!({"models": []})).into_response();
    }
    let models = state.router.catalog().models();
    let data: Vec<Value> = models.iter().map(|m| shape(m, &headers)).collect();
    if anthropic(&headers) {
        Json(json!({
            "data": data,
            "has_more": false,
            "first_id": models.first().map(|m| m.id.as_str()),
            "last_id": models.last().map(|m| m.id.as_str()),
        }))
        .into_response()
    } else {
        Json(json!({"object": "list", "data": data})).into_response()
    }
}

pub(crate) async fn one(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    match state.router.catalog().get(&id) {
        Some(model) => Json(shape(model, &headers)).into_response(),
        None => ApiError::not_found(format!(
            "The model `{id}` does not exist. `GET /v1/models` lists the models."
        ))
        .into_response(),
    }
}

/// Codex's catalog query: a `client_version` parameter, which no other client sends.
fn codex(query: Option<&str>) -> bool {
    query.is_some_and(|query| {
        query
            .split('&')
            .any(|pair| pair.split('=').next() == Some("client_version"))
    })
}

fn anthropic(headers: &HeaderMap) -> bool {
    headers.contains_key("anthropic-version")
}

/// One model in the caller's preferred shape, always with its prices and limits.
fn shape(model: &Model, headers: &HeaderMap) -> Value {
    let price = |d: rust_decimal::Decimal| d.to_f64();
    let mut value = json!({
        "id": model.id,
        "display_name": model.display_name,
        "aliases": model.aliases,
        "provider": model.provider,
        "context_window": model.context_window,
        "max_output_tokens": model.max_output,
        "pricing": {
            "input_per_mtok": price(model.input_per_mtok),
            "output_per_mtok": price(model.output_per_mtok),
            "cache_read_per_mtok": model.cache_read_per_mtok.and_then(price),
            "cache_write_per_mtok": model.cache_write_per_mtok.and_then(price),
        },
    });
    let created = created(&model.created);
    if let Some(map) = value.as_object_mut() {
        if anthropic(headers) {
            map.insert("type".into(), json!("model"));
            map.insert("created_at".into(), json!(created.map(|t| t.to_string())));
        } else {
            map.insert("object".into(), json!("model"));
            map.insert(
                "created".into(),
                json!(created.map_or(0, jiff::Timestamp::as_second)),
            );
            map.insert("owned_by".into(), json!(model.provider));
        }
    }
    value
}

fn created(date: &str) -> Option<jiff::Timestamp> {
    let date: jiff::civil::Date = date.parse().ok()?;
    date.to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .ok()
        .map(|z| z.timestamp())
}
