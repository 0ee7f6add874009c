//! The gateway's one error type: a status, the seed's error `type`, a message for the client,
//! and how loudly to log it. Every error the gateway returns goes through here.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::protocol::error_json;
use crate::protocol::json::without_values;
use crate::wire::wire_enum;

wire_enum! {
    /// The seed's error `type`s.
    ErrorKind {
        InvalidRequest = "invalid_request_error",
        Authentication = "authentication_error",
        NotFound = "not_found",
        InsufficientBalance = "insufficient_balance",
        BudgetExceeded = "budget_exceeded",
        QuotaExceeded = "quota_exceeded",
        RateLimit = "rate_limit_error",
        IpBlocked = "ip_blocked",
        Permission = "permission_error",
        Upstream = "upstream_error",
        Connection = "connection_error",
        Server = "server_error",
    }
}

/// An error answered to a client in the seed's JSON shape.
#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    /// The seed's error type (`invalid_request_error`, `rate_limit_error`, …).
    pub(crate) kind: ErrorKind,
    pub(crate) message: String,
    /// Seconds for `Retry-After` (429s and some 402s).
    pub(crate) retry_after: Option<u64>,
}

impl ApiError {
    fn new(status: StatusCode, kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            status,
            kind,
            message: message.into(),
            retry_after: None,
        }
    }

    /// 400 `invalid_request_error`.
    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, ErrorKind::InvalidRequest, message)
    }

    /// 401 `authentication_error`.
    pub(crate) fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, ErrorKind::Authentication, message)
    }

    /// 403 `permission_error`.
    pub(crate) fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, ErrorKind::Permission, message)
    }

    /// 404 `not_found`.
    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, ErrorKind::NotFound, message)
    }

    /// 413 `invalid_request_error`: the body is over `max_body_bytes`.
    pub(crate) fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::InvalidRequest,
            format!(
                "The request body is larger than the gateway's limit of {limit} bytes (`server.max_body_bytes`)."
            ),
        )
    }

    /// 405 `invalid_request_error`.
    pub(crate) fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            ErrorKind::InvalidRequest,
            "This method is not allowed on this path.",
        )
    }

    /// 502 `upstream_error`: the provider answered with an error we do not pass on as is.
    pub(crate) fn upstream(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_GATEWAY, ErrorKind::Upstream, message)
    }

    /// 502 `connection_error`: the provider could not be reached, or did not answer in time.
    pub(crate) fn connection(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_GATEWAY, ErrorKind::Connection, message)
    }

    /// 500 `server_error`.
    pub(crate) fn internal(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorKind::Server,
            message,
        )
    }

    /// Any status and type (upstream statuses passed on).
    pub(crate) fn with_status(
        status: StatusCode,
        kind: ErrorKind,
        message: impl Into<String>,
    ) -> Self {
        Self::new(status, kind, message)
    }

    /// Sets `Retry-After`.
    pub(crate) fn retry_after(mut self, seconds: Option<u64>) -> Self {
        self.retry_after = seconds;
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // The client sees the whole message; the log never holds the text of a prompt or an
        // answer that a JSON error quoted.
        let logged = without_values(&self.message);
        if self.status.is_server_error() {
            tracing::warn!(status = self.status.as_u16(), kind = self.kind.as_str(), message = %logged, "request failed");
        } else {
            tracing::debug!(status = self.status.as_u16(), kind = self.kind.as_str(), message = %logged, "request refused");
        }
        let mut response =
            (self.status, error_json(self.kind.as_str(), &self.message)).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}
