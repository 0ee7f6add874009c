//! An admitted request's reservation: its concurrency slot and its cost hold, freed exactly once.

use std::sync::Arc;

use jiff::Timestamp;
use rust_decimal::Decimal;

use super::headers::RateHeaders;
use super::limiter::Limiter;
use super::shared;
use crate::gateway::identity::Client;
use crate::gateway::ledger::Settle;

/// A new request id: 128 random bits in hex. Names the ledger row and the shared lease.
pub(super) fn request_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// An admitted request's reservation: its concurrency slot and its cost hold. Settled by the
/// ledger once the request's row is committed; dropped unsettled (a row that could not be
/// written), it still frees the slot and the hold.
#[derive(Debug)]
pub(crate) struct Admission {
    backend: Backend,
    /// The request's id: its ledger row's and, shared, its lease's.
    id: String,
    key: String,
    hold: Decimal,
    started: Timestamp,
    headers: RateHeaders,
    /// The request has ended and its row is queued.
    ended: bool,
    settled: bool,
}

/// Who admitted a request, and so who frees its slot.
#[derive(Debug)]
pub(super) enum Backend {
    Local(Arc<Limiter>),
    Shared(Arc<shared::Shared>),
}

impl Admission {
    /// A reservation just made by `backend` for `client`.
    pub(super) fn new(
        backend: Backend,
        client: &Client,
        hold: Decimal,
        started: Timestamp,
        headers: RateHeaders,
    ) -> Self {
        Self::with_id(backend, request_id(), client, hold, started, headers)
    }

    /// The same, with the id the shared lease already took.
    pub(super) fn with_id(
        backend: Backend,
        id: String,
        client: &Client,
        hold: Decimal,
        started: Timestamp,
        headers: RateHeaders,
    ) -> Self {
        Self {
            backend,
            id,
            key: client.name.clone(),
            hold,
            started,
            headers,
            ended: false,
            settled: false,
        }
    }

    /// The worst-case cost it holds.
    pub(super) fn hold(&self) -> Decimal {
        self.hold
    }

    /// Whether its request has ended and its row is queued.
    pub(super) fn has_ended(&self) -> bool {
        self.ended
    }

    /// The request's id.
    pub(crate) fn id(&self) -> &str {
        &self.id
    }

    /// The key name it was admitted for.
    pub(crate) fn key(&self) -> &str {
        &self.key
    }

    /// When it was admitted.
    pub(crate) fn started(&self) -> Timestamp {
        self.started
    }

    /// The headers as they stood right after admission.
    pub(crate) fn headers(&self) -> RateHeaders {
        self.headers
    }

    /// The request has ended and its row is queued: its slot frees at the commit.
    pub(crate) fn ended(&mut self) {
        if !self.ended {
            self.ended = true;
            match &self.backend {
                Backend::Local(limiter) => limiter.ended(&self.key),
                Backend::Shared(shared) => shared.ended(&self.key),
            }
        }
    }

    /// Replaces the hold with the real cost (debited from the balance, added to the month's
    /// spend) and frees the concurrency slot.
    pub(crate) fn settle(mut self, cost: Decimal) {
        self.release(Some(cost));
    }

    fn release(&mut self, cost: Option<Decimal>) {
        if self.settled {
            return;
        }
        self.settled = true;
        match &self.backend {
            Backend::Local(limiter) => limiter.settle(self, cost),
            Backend::Shared(shared) => shared.release(self, cost),
        }
    }
}

impl Settle for Admission {
    fn id(&self) -> &str {
        Admission::id(self)
    }

    fn key(&self) -> &str {
        Admission::key(self)
    }

    fn started(&self) -> Timestamp {
        Admission::started(self)
    }

    fn ended(&mut self) {
        Admission::ended(self);
    }

    fn settle(self: Box<Self>, cost: Decimal) {
        Admission::settle(*self, cost);
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.release(None);
    }
}
