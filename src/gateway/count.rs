//! `POST /messages/count_tokens`, and counting a body's tokens locally off the runtime (also the
//! hold's tighter bound).

use std::borrow::Cow;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use super::AppState;
use super::errors::ApiError;
use super::request::{check_shape, read_body, route};
use super::upstream::{self, Forwarded};
use crate::catalog::Model;
use crate::protocol::json::Body;
use crate::protocol::{Format, Kind};
use crate::tokens::Count;

/// `POST /messages/count_tokens`: native counting at an Anthropic-kind provider, else (or when
/// it cannot answer) a local count. `x-izzi-token-count` says which: `upstream`, `exact` or
/// `estimate`.
pub(crate) async fn count_tokens(State(state): State<Arc<AppState>>, request: Request) -> Response {
    match count(state, request).await {
        Ok(response) => response,
        Err(err) => err.into_response(),
    }
}

async fn count(state: Arc<AppState>, request: Request) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    let bytes = read_body(body, &parts.headers, &state.config.server).await?;
    let body = Body::parse(&bytes).map_err(|e| ApiError::invalid(e.0))?;
    // Anthropic and OpenAI bodies are both counted: Chat's check takes `messages` or `input`.
    let shape = check_shape(Format::Chat, &body)?;
    let route = route(&state, &shape.model)?;
    if route.provider.kind == Kind::Anthropic {
        let upstream_body = match body.with_model(route.model.upstream_id()) {
            Cow::Borrowed(_) => bytes.clone(),
            Cow::Owned(owned) => Bytes::from(owned),
        };
        let forwarded = Forwarded::from_headers(&parts.headers);
        let provider = &route.provider;
        let sent = upstream::send(
            &state.client,
            &provider.name,
            &provider.endpoint,
            &provider.endpoint.count_tokens,
            upstream_body,
            &forwarded,
        )
        .await;
        match sent {
            Ok(response) => match upstream::read_capped(
                response,
                state.config.server.max_upstream_body_bytes,
                &provider.name,
            )
            .await
            {
                Ok(answer) if serde_json::from_slice::<InputTokens>(&answer).is_ok() => {
                    return Ok(count_response(answer, "upstream"));
                }
                _ => {
                    tracing::debug!(provider = %route.provider.name, "count_tokens answer unreadable; counting locally");
                }
            },
            Err(failure) => {
                tracing::debug!(provider = %route.provider.name, error = %failure.error.message, "count_tokens upstream failed; counting locally");
            }
        }
    }
    let counted = count_locally(&route.model, &bytes)
        .await
        .ok_or_else(|| ApiError::invalid("The request body is not valid JSON."))?;
    let answer = serde_json::to_vec(&InputTokens {
        input_tokens: counted.tokens,
    })
    .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(count_response(
        Bytes::from(answer),
        if counted.exact { "exact" } else { "estimate" },
    ))
}

/// A body's input tokens counted locally, off the async runtime: tokenizing takes about 100 ms
/// per MiB.
pub(super) async fn count_locally(model: &Arc<Model>, bytes: &Bytes) -> Option<Count> {
    let (model, bytes) = (Arc::clone(model), bytes.clone());
    tokio::task::spawn_blocking(move || {
        let value: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
        Some(crate::tokens::count_request(&model, &value))
    })
    .await
    .ok()
    .flatten()
}

#[derive(serde::Serialize, serde::Deserialize)]
struct InputTokens {
    input_tokens: u64,
}

fn count_response(body: Bytes, how: &'static str) -> Response {
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert("x-izzi-token-count", HeaderValue::from_static(how));
    response
}
