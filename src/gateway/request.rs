//! What the gateway reads of a client's request before anything else: the body, within its size
//! and time limits; the members it needs (`model`, `stream`, the format's required array), with
//! errors that name the field; and the route of the model asked for.

use std::time::Duration;

use axum::body::Body as HttpBody;
use axum::http::{HeaderMap, StatusCode, header};
use bytes::{Buf as _, Bytes};
use http_body_util::BodyExt as _;

use super::AppState;
use super::errors::{ApiError, ErrorKind};
use super::routing::Route;
use crate::config::Server;
use crate::protocol::Format;
use crate::protocol::json::Body;

/// Reads the whole request body, refusing with 413 anything over `max_body_bytes` (before
/// reading it when `Content-Length` already says so) and with 408 a body that does not arrive
/// within `body_read_timeout_s`.
pub(super) async fn read_body(
    body: HttpBody,
    headers: &HeaderMap,
    server: &Server,
) -> Result<Bytes, ApiError> {
    let limit = server.max_body_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(ApiError::too_large(limit));
    }
    let timeout = Duration::from_secs(server.body_read_timeout_s);
    let Ok(collected) =
        tokio::time::timeout(timeout, http_body_util::Limited::new(body, limit).collect()).await
    else {
        return Err(ApiError::with_status(
            StatusCode::REQUEST_TIMEOUT,
            ErrorKind::InvalidRequest,
            format!(
                "The request body did not arrive within {} seconds.",
                timeout.as_secs()
            ),
        ));
    };
    match collected {
        Ok(collected) => {
            // Always a copy of exactly the body's size. A body that came in one read would
            // otherwise be a slice of the connection's read buffer and keep all of it (8 KiB or
            // more) alive as long as the request lives, a stream's whole length, while hyper
            // allocates another for the connection; several reads are joined by a copy anyway.
            let mut whole = collected.aggregate();
            let len = whole.remaining();
            Ok(if whole.chunk().len() == len {
                Bytes::copy_from_slice(whole.chunk())
            } else {
                whole.copy_to_bytes(len)
            })
        }
        Err(err)
            if err
                .downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(ApiError::too_large(limit))
        }
        Err(err) => Err(ApiError::invalid(format!(
            "The request body could not be read: {err}."
        ))),
    }
}

/// What the gateway itself needs from a body, checked with errors that name the field.
pub(crate) struct Shape {
    pub(super) model: String,
    pub(super) stream: bool,
}

pub(crate) fn check_shape(format: Format, body: &Body<'_>) -> Result<Shape, ApiError> {
    let invalid = |e: crate::protocol::json::BodyError| ApiError::invalid(e.0);
    let model: String = body
        .field("model", "a string")
        .map_err(invalid)?
        .ok_or_else(|| ApiError::invalid("`model` is required."))?;
    let stream = body
        .field::<bool>("stream", "a boolean")
        .map_err(invalid)?
        .unwrap_or(false);
    match format {
        Format::Messages if !body.is_array("messages") => {
            return Err(ApiError::invalid(
                "`messages` is required and must be an array.",
            ));
        }
        // Cursor's agent mode sends a Responses-shaped body (`input`) to /chat/completions.
        Format::Chat if !body.is_array("messages") && body.get("input").is_none() => {
            return Err(ApiError::invalid(
                "`messages` is required and must be an array.",
            ));
        }
        Format::Responses if body.get("input").is_none() => {
            return Err(ApiError::invalid(
                "`input` is required: a string or an array of messages.",
            ));
        }
        _ => {}
    }
    Ok(Shape { model, stream })
}

pub(super) fn route(state: &AppState, model: &str) -> Result<Route, ApiError> {
    state.router.route(model).ok_or_else(|| {
        ApiError::not_found(format!(
            "The model `{model}` does not exist. `GET /v1/models` lists the models."
        ))
    })
}
