//! What the limits decide for one request, and a refusal's status, type, message and headers.

use axum::http::StatusCode;
use rust_decimal::Decimal;

use super::admission::Admission;
use super::headers::RateHeaders;
use crate::gateway::errors::{ApiError, ErrorKind};
use crate::gateway::metrics::{self, Reason};

/// The limits' answer for one request.
#[derive(Debug)]
pub(crate) enum Decision {
    Admitted(Admission),
    Refused(Refusal),
    /// Refused only for concurrency slots whose requests have ended and whose rows are being
    /// committed: ask again once one is settled (within milliseconds).
    RetrySoon,
}

impl Decision {
    /// The admission, or the refusal; `RetrySoon` is the caller's to handle first.
    #[cfg(test)]
    pub(crate) fn unwrap(self) -> Admission {
        match self {
            Decision::Admitted(admission) => admission,
            other => panic!("not admitted: {other:?}"),
        }
    }

    #[cfg(test)]
    pub(crate) fn is_admitted(&self) -> bool {
        matches!(self, Decision::Admitted(_))
    }

    #[cfg(test)]
    pub(crate) fn unwrap_err(self) -> Refusal {
        match self {
            Decision::Refused(refusal) => refusal,
            other => panic!("not refused: {other:?}"),
        }
    }
}

/// A limit that refuses a request, with what its message says.
#[derive(Debug, Clone, Copy)]
pub(super) enum Refused {
    Balance { balance: Decimal, hold: Decimal },
    Budget { budget: Decimal, spent: Decimal },
    Daily { limit: u32, wait: i64 },
    Rpm { wait: i64 },
    Concurrency { limit: u32 },
}

impl Refused {
    /// Why, for the refusals metric.
    fn reason(self) -> Reason {
        match self {
            Refused::Balance { .. } => Reason::InsufficientBalance,
            Refused::Budget { .. } => Reason::BudgetExceeded,
            Refused::Daily { .. } => Reason::QuotaExceeded,
            Refused::Rpm { .. } => Reason::Rpm,
            Refused::Concurrency { .. } => Reason::Concurrency,
        }
    }

    fn error(self) -> ApiError {
        match self {
            Refused::Balance { balance, hold } => ApiError::with_status(
                StatusCode::PAYMENT_REQUIRED,
                ErrorKind::InsufficientBalance,
                format!(
                    "The key's balance is ${} and this request may cost up to ${}: add credits, or lower `max_tokens`.",
                    balance.max(Decimal::ZERO).round_dp(6).normalize(),
                    hold.round_dp(6).normalize(),
                ),
            ),
            Refused::Budget { budget, spent } => ApiError::with_status(
                StatusCode::PAYMENT_REQUIRED,
                ErrorKind::BudgetExceeded,
                format!(
                    "The key's monthly budget of ${} is reached (${} spent or held this month); it renews on the 1st (UTC).",
                    budget.normalize(),
                    spent.round_dp(6).normalize(),
                ),
            ),
            Refused::Daily { limit, wait } => limited(
                ErrorKind::QuotaExceeded,
                format!("Daily request quota of {limit} exceeded. Try again in {wait} seconds."),
                wait,
            ),
            Refused::Rpm { wait } => limited(
                ErrorKind::RateLimit,
                format!("Rate limit exceeded. Try again in {wait} seconds."),
                wait,
            ),
            // A slot frees when any running request ends, which nobody can foresee; one second
            // is the shortest honest wait.
            Refused::Concurrency { limit, .. } => limited(
                ErrorKind::RateLimit,
                format!("Concurrent request limit of {limit} exceeded. Try again in 1 second."),
                1,
            ),
        }
    }

    /// The refusal to answer with.
    pub(super) fn refusal(self, headers: RateHeaders) -> Refusal {
        Refusal {
            error: self.error(),
            headers,
            reason: self.reason(),
        }
    }
}

fn limited(kind: ErrorKind, message: String, wait: i64) -> ApiError {
    let wait = u64::try_from(wait.max(1)).unwrap_or(1);
    ApiError::with_status(StatusCode::TOO_MANY_REQUESTS, kind, message).retry_after(Some(wait))
}

/// A refused request: the error and the headers as they stood when it was refused.
#[derive(Debug)]
pub(crate) struct Refusal {
    pub(crate) error: ApiError,
    pub(super) headers: RateHeaders,
    /// Counted in the refusals metric when the refusal is answered.
    pub(super) reason: Reason,
}

impl Refusal {
    /// Refused for the key's balance or monthly budget: a smaller hold may pass.
    pub(crate) fn is_money(&self) -> bool {
        matches!(
            self.reason,
            Reason::InsufficientBalance | Reason::BudgetExceeded
        )
    }
}

/// A refusal answers as every client-visible error does, with the rate-limit headers as they
/// stood; it is counted in the refusals metric here, once.
impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> Self {
        metrics::refused(refusal.reason);
        refusal.error.with_extension(refusal.headers)
    }
}
