//! Connections to a plain-HTTP provider (a local model server, the bench's mock): hyper's HTTP/1
//! connection API with a small pool per endpoint, in place of hyper-util's pooled client.
//!
//! Why: per request hyper-util's pool hashes its key, boxes its ~3 KB send future and spawns a
//! task that hands the connection back once the answer is read (docs/bench.md). Here a request
//! pops the newest idle connection under a lock held only for the pop, and the answer's body
//! puts the connection back when it ends ([`Checkin`], carried by `client::Idle`). What
//! hyper-util's pool did and a gateway needs is kept: at most [`POOL_MAX_IDLE`] idle connections,
//! closed after [`POOL_IDLE`] unused, and a request a reused connection closed before sending it
//! is sent again on another.
//!
//! `https` providers keep hyper-util's client: HTTP/2 by ALPN shares one connection between
//! requests, which a list of HTTP/1 senders cannot do.

use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use axum::http::{Request, Response, Uri};
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_util::client::legacy::connect::HttpConnector;
use tokio::time::Instant;
use tower::ServiceExt as _;

use super::client::{BoxError, Connector, POOL_IDLE, POOL_MAX_IDLE};

type Sender = http1::SendRequest<Full<Bytes>>;

/// How often idle connections are looked over for expiry.
const REAP_EVERY: Duration = Duration::from_secs(30);

/// One endpoint's idle connections.
#[derive(Debug, Default)]
pub(crate) struct Pool {
    shared: Arc<Mutex<Parked>>,
}

/// Idle senders, oldest first, each with the time it was parked; and whether the task that
/// closes expired ones runs.
#[derive(Debug, Default)]
struct Parked {
    senders: Vec<(Sender, Instant)>,
    reaping: bool,
}

/// A connection lent to one request, given back by its answer's body when the body ends.
pub(crate) struct Checkin {
    pool: Arc<Mutex<Parked>>,
    sender: Sender,
}

impl Checkin {
    /// The answer was read to its end: the connection can carry the next request.
    pub(crate) fn give_back(self) {
        park(&self.pool, self.sender);
    }
}

impl Pool {
    /// Sends `request` to `uri` (absolute; written in origin form) on an idle connection or a
    /// new one; the answer's head and the connection to give back once its body is read.
    pub(super) async fn send(
        &self,
        connector: &Connector<HttpConnector>,
        uri: &Uri,
        mut request: Request<Full<Bytes>>,
    ) -> Result<(Response<Incoming>, Checkin), BoxError> {
        *request.uri_mut() = uri
            .path_and_query()
            .cloned()
            .map_or_else(Uri::default, Uri::from);
        loop {
            let (mut sender, reused) = match self.take().await {
                Some(sender) => (sender, true),
                None => (Box::pin(connect(connector, uri)).await?, false),
            };
            match sender.try_send_request(request).await {
                Ok(response) => {
                    let checkin = Checkin {
                        pool: Arc::clone(&self.shared),
                        sender,
                    };
                    return Ok((response, checkin));
                }
                Err(mut err) => match err.take_message() {
                    // The provider closed an idle connection as the request went out, before
                    // any of it was written: nothing was sent, so try again.
                    Some(unsent) if reused => request = unsent,
                    _ => return Err(err.into_error().into()),
                },
            }
        }
    }

    /// The newest idle connection that is still open, once it is ready for a request (a body
    /// just read to its end may leave its connection a moment from ready).
    async fn take(&self) -> Option<Sender> {
        loop {
            let mut sender = {
                let mut parked = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
                parked.senders.pop()?.0
            };
            if sender.ready().await.is_ok() {
                return Some(sender);
            }
        }
    }
}

/// A new connection to `uri`'s host, its I/O driven by a task of its own.
async fn connect(connector: &Connector<HttpConnector>, uri: &Uri) -> Result<Sender, BoxError> {
    let io = connector.clone().oneshot(uri.clone()).await?;
    let (sender, connection) = http1::handshake(io).await?;
    tokio::spawn(async move {
        if let Err(err) = connection.await {
            tracing::debug!(error = %err, "upstream connection ended with an error");
        }
    });
    Ok(sender)
}

/// Keeps `sender` for the next request, unless its connection closed or enough are idle.
fn park(shared: &Arc<Mutex<Parked>>, sender: Sender) {
    if sender.is_closed() {
        return;
    }
    let mut parked = shared.lock().unwrap_or_else(PoisonError::into_inner);
    if parked.senders.len() >= POOL_MAX_IDLE {
        drop(parked);
        return; // `sender` goes, and its connection closes.
    }
    parked.senders.push((sender, Instant::now()));
    let start_reaping = !std::mem::replace(&mut parked.reaping, true);
    drop(parked);
    if start_reaping {
        tokio::spawn(reap(Arc::downgrade(shared)));
    }
}

/// Closes connections idle for longer than [`POOL_IDLE`], until the pool is gone (its endpoint
/// replaced by a config reload).
async fn reap(shared: Weak<Mutex<Parked>>) {
    let mut tick = tokio::time::interval(REAP_EVERY);
    loop {
        tick.tick().await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        // Closed outside the lock.
        drop(expired(&shared));
    }
}

/// Takes out the connections idle for [`POOL_IDLE`] or longer (the oldest, at the front).
fn expired(shared: &Mutex<Parked>) -> Vec<(Sender, Instant)> {
    let mut parked = shared.lock().unwrap_or_else(PoisonError::into_inner);
    let cut = parked
        .senders
        .partition_point(|(_, since)| since.elapsed() >= POOL_IDLE);
    parked.senders.drain(..cut).collect()
}

#[cfg(test)]
mod tests {
    use hyper_util::rt::TokioIo;
    use tokio::io::{AsyncReadExt as _, DuplexStream};

    use super::*;

    /// A connection over an in-memory pipe, and the provider's end of it.
    async fn connection() -> (Sender, DuplexStream) {
        let (ours, theirs) = tokio::io::duplex(4096);
        let (sender, connection) = http1::handshake(TokioIo::new(ours))
            .await
            .expect("handshake");
        tokio::spawn(connection);
        (sender, theirs)
    }

    fn idle(pool: &Pool) -> usize {
        pool.shared.lock().expect("not poisoned").senders.len()
    }

    /// Whether the provider's end sees the connection closed.
    async fn closed(theirs: &mut DuplexStream) -> bool {
        let read = tokio::time::timeout(Duration::from_secs(5), theirs.read(&mut [0; 16])).await;
        matches!(read, Ok(Ok(0)))
    }

    #[tokio::test]
    async fn connections_idle_too_long_are_closed_and_the_newer_kept() {
        let pool = Pool::default();
        let (old, mut old_end) = connection().await;
        let (new, mut new_end) = connection().await;
        {
            let mut parked = pool.shared.lock().expect("not poisoned");
            let long_ago = Instant::now() - POOL_IDLE - Duration::from_secs(1);
            parked.senders.push((old, long_ago));
            parked.senders.push((new, Instant::now()));
        }
        drop(expired(&pool.shared));
        assert_eq!(idle(&pool), 1);
        assert!(
            closed(&mut old_end).await,
            "the expired connection is closed"
        );
        // The one kept is the newer, and it still works.
        let kept = pool.take().await.expect("the newer connection");
        assert!(kept.is_ready());
        drop(kept);
        assert!(closed(&mut new_end).await);
    }

    #[tokio::test]
    async fn no_more_than_the_cap_stay_idle() {
        let pool = Pool::default();
        let mut ends = Vec::new();
        for _ in 0..=POOL_MAX_IDLE {
            let (sender, theirs) = connection().await;
            ends.push(theirs);
            park(&pool.shared, sender);
        }
        assert_eq!(idle(&pool), POOL_MAX_IDLE);
        let mut last = ends.pop().expect("one more than the cap");
        assert!(closed(&mut last).await, "the one over the cap is closed");
    }

    #[tokio::test]
    async fn a_connection_closed_while_idle_is_never_taken() {
        let pool = Pool::default();
        let (sender, theirs) = connection().await;
        park(&pool.shared, sender);
        drop(theirs);
        assert!(pool.take().await.is_none());
        assert_eq!(idle(&pool), 0);
        // Nor parked again once closed.
        let (sender, theirs) = connection().await;
        drop(theirs);
        let mut waiting = sender;
        assert!(waiting.ready().await.is_err());
        park(&pool.shared, waiting);
        assert_eq!(idle(&pool), 0);
    }
}
