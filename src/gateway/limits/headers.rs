//! The rate-limit headers of an authenticated answer, from the state a decision saw.

use std::cell::RefCell;

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::response::Response;
use jiff::Timestamp;

use crate::config::Plan;
use crate::gateway::identity::Client;
use crate::store::MINUTE;

/// The rate-limit headers of one authenticated response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RateHeaders {
    pub(super) tier: Plan,
    pub(super) limit: u32,
    pub(super) remaining: u32,
    /// Unix seconds of the next minute boundary.
    pub(super) reset: i64,
    pub(super) concurrent_limit: u32,
    pub(super) concurrent_remaining: u32,
}

impl RateHeaders {
    /// The headers of `client` with `minute_count` requests in the minute numbered `minute`
    /// (seconds / 60) and `in_flight` running.
    pub(super) fn new(client: &Client, minute: i64, minute_count: u32, in_flight: u32) -> Self {
        Self {
            tier: client.plan,
            limit: client.limits.rpm,
            remaining: client.limits.rpm.saturating_sub(minute_count),
            reset: (minute + 1) * MINUTE,
            concurrent_limit: client.limits.concurrent,
            concurrent_remaining: client.limits.concurrent.saturating_sub(in_flight),
        }
    }

    /// Writes the six headers.
    pub(crate) fn apply(&self, headers: &mut HeaderMap) {
        // Names built at compile time: a `&str` name is parsed and validated on every insert.
        const TIER: HeaderName = HeaderName::from_static("x-ratelimit-tier");
        const LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit-requests");
        const REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining-requests");
        const RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset-requests");
        const CONCURRENT_LIMIT: HeaderName = HeaderName::from_static("x-concurrent-limit");
        const CONCURRENT_REMAINING: HeaderName = HeaderName::from_static("x-concurrent-remaining");
        headers.reserve(6);
        headers.insert(TIER, HeaderValue::from_static(self.tier.name()));
        headers.insert(LIMIT, HeaderValue::from(self.limit));
        headers.insert(REMAINING, HeaderValue::from(self.remaining));
        if let Some(reset) = reset_header(self.reset) {
            headers.insert(RESET, reset);
        }
        headers.insert(CONCURRENT_LIMIT, HeaderValue::from(self.concurrent_limit));
        headers.insert(
            CONCURRENT_REMAINING,
            HeaderValue::from(self.concurrent_remaining),
        );
    }

    /// Marks `response` to carry these headers; the auth layer writes them.
    pub(crate) fn attach(self, mut response: Response) -> Response {
        response.extensions_mut().insert(self);
        response
    }
}

/// The RFC 3339 value of `x-ratelimit-reset-requests` for Unix second `reset`, formatted once
/// per minute per thread rather than for every response.
fn reset_header(reset: i64) -> Option<HeaderValue> {
    thread_local! {
        static LAST: RefCell<Option<(i64, HeaderValue)>> = const { RefCell::new(None) };
    }
    LAST.with_borrow_mut(|last| {
        if let Some((at, value)) = last
            && *at == reset
        {
            return Some(value.clone());
        }
        let value = HeaderValue::try_from(Timestamp::from_second(reset).ok()?.to_string()).ok()?;
        *last = Some((reset, value.clone()));
        Some(value)
    })
}
