//! Client authentication: the IP block, taking the key from `Authorization: Bearer` or
//! `x-api-key`, hashing it, and finding the client key it belongs to among the config's
//! `[[keys]]`, the keys in `izzi.db` (re-read by the ledger thread every half second, so a
//! revocation applies within a second) and, with neither, the key `izzi setup` stored.
//!
//! [`layer`] runs in front of every `/v1` route: it refuses blocked addresses and bad keys, hands
//! the handler its [`Client`], and writes the rate-limit headers on whatever the handler answers,
//! success or error. Never reads bodies; never logs, stores or echoes a key.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{Extensions, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rust_decimal::Decimal;
use sha2::{Digest as _, Sha256};

use super::AppState;
use super::errors::ApiError;
use super::limits::RateHeaders;
use crate::config::{ClientKey, Limits, Plan, Security};
use crate::store::StoredKey;

/// SHA-256 of a key: how keys are compared and stored.
pub(crate) type KeyHash = [u8; 32];

/// Hashes a client key.
pub(crate) fn hash(key: &str) -> KeyHash {
    Sha256::digest(key.as_bytes()).into()
}

/// The name the key `izzi setup` stored goes by when it serves as the only client key.
const PERSONAL: &str = "personal";

/// A client key izzi accepts, without the key itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Client {
    pub(crate) name: String,
    pub(crate) plan: Plan,
    pub(crate) limits: Limits,
    /// Credits granted in all; spend is debited from them. `None`: no balance check.
    pub(crate) credits: Option<Decimal>,
    /// Monthly budget. `None`: no budget.
    pub(crate) budget: Option<Decimal>,
}

impl Client {
    /// A client on `plan`, with the overrides a key sets.
    fn new(
        name: &str,
        plan: Plan,
        overrides: (Option<u32>, Option<u32>, Option<u32>),
        credits: Option<Decimal>,
        budget: Option<Decimal>,
    ) -> Self {
        let (rpm, concurrent, daily) = overrides;
        let base = plan.limits();
        Self {
            name: name.to_owned(),
            plan,
            limits: Limits {
                rpm: rpm.unwrap_or(base.rpm),
                concurrent: concurrent.unwrap_or(base.concurrent),
                daily: daily.unwrap_or(base.daily),
            },
            credits,
            budget,
        }
    }

    /// A `[[keys]]` entry of config.
    pub(crate) fn from_config(k: &ClientKey) -> Self {
        Self::new(
            &k.name,
            k.plan,
            (k.rpm, k.concurrent, k.daily),
            k.credits_usd,
            k.monthly_budget_usd,
        )
    }

    /// A key stored by `izzi keys create`.
    pub(crate) fn from_stored(k: &StoredKey) -> Self {
        Self::new(
            &k.name,
            k.plan,
            (k.rpm, k.concurrent, k.daily),
            k.credits_usd,
            k.monthly_budget_usd,
        )
    }
}

/// The client key a request presents, if any.
pub(crate) fn presented_key(headers: &HeaderMap) -> Option<&str> {
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    bearer
        .or_else(|| {
            headers
                .get("x-api-key")
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
        })
        .filter(|k| !k.is_empty())
}

/// One snapshot of every accepted key, by hash.
#[derive(Debug, Default)]
struct Snapshot {
    by_hash: HashMap<KeyHash, Arc<Client>>,
}

/// Every client key: the config's (replaced when the config is reloaded) and the database's
/// (when the ledger thread re-reads them), swapped in whole so lookups never wait.
#[derive(Debug)]
pub(crate) struct Keys {
    /// What the snapshot is built from; locked only while one is built, never by a lookup.
    sources: Mutex<Sources>,
    /// Hash of the key `izzi setup` stored (never the key itself).
    personal: Option<KeyHash>,
    current: ArcSwap<Snapshot>,
}

#[derive(Debug, Default)]
struct Sources {
    config: Vec<(KeyHash, Arc<Client>)>,
    db: Vec<StoredKey>,
}

impl Keys {
    /// The config's `[[keys]]`, the active keys of `izzi.db`, and with neither the key `izzi
    /// setup` stored, as a personal gateway.
    pub(crate) fn new(
        config_keys: &[ClientKey],
        stored_key: Option<&str>,
        db: &[StoredKey],
    ) -> Self {
        for k in db {
            if k.revoked_at.is_none() && config_keys.iter().any(|c| c.name == k.name) {
                tracing::warn!(
                    key = %k.name,
                    "a key in izzi.db has the name of a `[[keys]]` entry of the config; the config's wins"
                );
            }
        }
        let keys = Self {
            sources: Mutex::default(),
            personal: stored_key.map(hash),
            current: ArcSwap::default(),
        };
        keys.set_config(config_keys);
        keys.reload(db);
        keys
    }

    /// Replaces the config's keys with `config_keys` (the config was reloaded).
    pub(crate) fn set_config(&self, config_keys: &[ClientKey]) {
        let mut sources = self.sources.lock().unwrap_or_else(PoisonError::into_inner);
        sources.config = config_keys
            .iter()
            .map(|k| (hash(&k.key), Arc::new(Client::from_config(k))))
            .collect();
        self.rebuild(&sources);
    }

    /// Replaces the database's keys with `db` (revoked ones are dropped).
    pub(crate) fn reload(&self, db: &[StoredKey]) {
        let mut sources = self.sources.lock().unwrap_or_else(PoisonError::into_inner);
        db.clone_into(&mut sources.db);
        self.rebuild(&sources);
    }

    fn rebuild(&self, sources: &Sources) {
        let mut by_hash: HashMap<KeyHash, Arc<Client>> = sources.config.iter().cloned().collect();
        for k in &sources.db {
            let shadowed = sources.config.iter().any(|(_, c)| c.name == k.name);
            if k.revoked_at.is_none() && !shadowed {
                by_hash.insert(k.key_sha256, Arc::new(Client::from_stored(k)));
            }
        }
        if by_hash.is_empty()
            && let Some(personal) = self.personal
        {
            let client = Client::new(PERSONAL, Plan::Ultra, (None, None, None), None, None);
            by_hash.insert(personal, Arc::new(client));
        }
        let unchanged = {
            let current = self.current.load();
            current.by_hash.len() == by_hash.len()
                && by_hash
                    .iter()
                    .all(|(h, c)| current.by_hash.get(h).is_some_and(|d| d == c))
        };
        if !unchanged {
            self.current.store(Arc::new(Snapshot { by_hash }));
        }
    }

    /// Whether any client key exists (else every request gets 401).
    pub(crate) fn is_empty(&self) -> bool {
        self.current.load().by_hash.is_empty()
    }

    /// Whether client keys come from config or the database rather than the personal key.
    pub(crate) fn has_client_keys(&self) -> bool {
        self.current
            .load()
            .by_hash
            .values()
            .any(|c| c.name != PERSONAL)
    }

    /// The client a key belongs to. The lookup is by SHA-256 digest, so its timing says nothing
    /// about how much of a real key a guess matched.
    pub(crate) fn find(&self, key: &str) -> Option<Arc<Client>> {
        self.current.load().by_hash.get(&hash(key)).cloned()
    }
}

/// Failed authentications per address, and the addresses blocked for them.
#[derive(Debug)]
pub(crate) struct IpBlock {
    after: usize,
    window: Duration,
    duration: Duration,
    ips: Mutex<HashMap<IpAddr, Failures>>,
}

#[derive(Debug, Default)]
struct Failures {
    /// Times of the latest failures inside the window, at most `after` of them.
    recent: VecDeque<Instant>,
    blocked_until: Option<Instant>,
}

/// Beyond this many tracked addresses, idle ones are forgotten on the next failure.
const MAX_TRACKED: usize = 10_000;

impl IpBlock {
    /// `[security]`; `ip_block_after_failures = 0` turns the block off.
    pub(crate) fn new(security: &Security) -> Self {
        Self {
            after: usize::try_from(security.ip_block_after_failures).unwrap_or(usize::MAX),
            window: Duration::from_secs(security.ip_block_window_s),
            duration: Duration::from_secs(security.ip_block_duration_s),
            ips: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Failures>> {
        self.ips.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How much longer `ip` stays blocked, if it is.
    pub(crate) fn blocked(&self, ip: IpAddr, now: Instant) -> Option<Duration> {
        let ips = self.lock();
        let until = ips.get(&ip)?.blocked_until?;
        (until > now).then(|| until - now)
    }

    /// Counts a failed authentication from `ip`, blocking it when it reaches the limit.
    pub(crate) fn failed(&self, ip: IpAddr, now: Instant) {
        if self.after == 0 {
            return;
        }
        let mut ips = self.lock();
        if ips.len() >= MAX_TRACKED {
            let window = self.window;
            ips.retain(|_, f| {
                f.blocked_until.is_some_and(|u| u > now)
                    || f.recent.back().is_some_and(|t| now - *t < window)
            });
        }
        let failures = ips.entry(ip).or_default();
        while failures
            .recent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.window)
        {
            failures.recent.pop_front();
        }
        failures.recent.push_back(now);
        if failures.recent.len() >= self.after {
            failures.recent.clear();
            failures.blocked_until = Some(now + self.duration);
            tracing::warn!(%ip, seconds = self.duration.as_secs(), "blocking an address after repeated failed authentications");
        }
    }
}

/// The client the auth layer found for this request.
pub(crate) fn client(extensions: &Extensions) -> Result<Arc<Client>, ApiError> {
    extensions
        .get::<Arc<Client>>()
        .cloned()
        .ok_or_else(|| ApiError::internal("The request reached a handler without authentication."))
}

/// The middleware in front of every authenticated route: IP block (403), key (401), then the
/// handler, then the rate-limit headers on its answer. Only a wrong key counts against the
/// address; a missing key never does (Claude Code probes without one).
pub(crate) async fn layer(
    State(state): State<Arc<AppState>>,
    mut request: Request,
    next: Next,
) -> Response {
    let ip = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_canonical());
    let now = Instant::now();
    if let Some(ip) = ip
        && let Some(left) = state.ip_block.blocked(ip, now)
    {
        super::metrics::refused(super::metrics::Reason::IpBlocked);
        let seconds = left.as_secs() + u64::from(left.subsec_nanos() > 0);
        return ApiError::with_status(
            StatusCode::FORBIDDEN,
            "ip_blocked",
            format!(
                "This address is blocked after too many failed authentications. Try again in {seconds} seconds."
            ),
        )
        .retry_after(Some(seconds))
        .into_response();
    }
    let found = match presented_key(request.headers()) {
        None => Err(ApiError::unauthenticated(
            "No API key was given: send it as `Authorization: Bearer KEY` or `x-api-key: KEY`.",
        )),
        Some(key) => state.keys.find(key).ok_or_else(|| {
            if let Some(ip) = ip {
                state.ip_block.failed(ip, now);
            }
            ApiError::unauthenticated("The API key is not valid.")
        }),
    };
    let client = match found {
        Ok(client) => client,
        Err(err) => {
            super::metrics::refused(super::metrics::Reason::Authentication);
            return err.into_response();
        }
    };
    request.extensions_mut().insert(Arc::clone(&client));
    let mut response = next.run(request).await;
    let headers = match response.extensions_mut().remove::<RateHeaders>() {
        Some(headers) => headers,
        None => state.limits.peek(&client).await,
    };
    headers.apply(response.headers_mut());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config_key(name: &str, key: &str) -> ClientKey {
        ClientKey {
            name: name.into(),
            key: key.into(),
            plan: Plan::Free,
            monthly_budget_usd: None,
            credits_usd: Some(Decimal::from(3)),
            rpm: Some(600),
            concurrent: None,
            daily: None,
        }
    }

    fn stored(name: &str, key: &str, revoked: bool) -> StoredKey {
        StoredKey {
            name: name.into(),
            key_sha256: hash(key),
            plan: Plan::Max,
            rpm: None,
            concurrent: Some(9),
            daily: None,
            monthly_budget_usd: Some(Decimal::from(5)),
            credits_usd: None,
            created_at: "2026-01-01T00:00:00.000Z".into(),
            revoked_at: revoked.then(|| "2026-01-02T00:00:00.000Z".into()),
        }
    }

    /// Keys are compared as SHA-256 digests, never as text: the gateway holds only digests, so
    /// no comparison can stop early at a guess's first wrong character (its timing depends on
    /// the guess's digest, which says nothing about how close the guess is), and near misses
    /// are refused.
    #[test]
    fn keys_are_held_and_compared_only_as_digests() {
        let real = "izzi-ci-0123456789abcdef";
        let keys = Keys::new(
            &[config_key("ci", real)],
            Some("izzi-personal-secret"),
            &[stored("db", "izzi-db-secret-1", false)],
        );
        let held = format!("{keys:?}");
        for secret in [real, "izzi-personal-secret", "izzi-db-secret-1"] {
            assert!(!held.contains(secret), "{held}");
        }
        assert!(keys.find(real).is_some());
        assert!(keys.find("izzi-db-secret-1").is_some());
        let (head, last) = real.split_at(real.len() - 1);
        assert_eq!(last, "f");
        for guess in [head, &format!("{head}e"), &format!("{real}0"), "", " "] {
            assert!(keys.find(guess).is_none(), "{guess:?}");
        }
    }

    #[test]
    fn both_headers_work_and_bearer_wins() {
        let mut h = HeaderMap::new();
        assert_eq!(presented_key(&h), None);
        h.insert("x-api-key", "k1".parse().unwrap());
        assert_eq!(presented_key(&h), Some("k1"));
        h.insert("authorization", "Bearer k2".parse().unwrap());
        assert_eq!(presented_key(&h), Some("k2"));
    }

    #[test]
    fn config_keys_take_plan_limits_and_overrides() {
        let keys = Keys::new(
            &[config_key("ci", "izzi-ci-0000000000")],
            Some("stored"),
            &[],
        );
        let ci = keys.find("izzi-ci-0000000000").unwrap();
        assert_eq!(
            (ci.limits.rpm, ci.limits.concurrent, ci.limits.daily),
            (600, 1, 100)
        );
        assert_eq!(ci.credits, Some(Decimal::from(3)));
        assert!(
            keys.find("stored").is_none(),
            "the personal key is only for key-less configs"
        );
        assert!(Keys::new(&[], Some("stored"), &[]).find("stored").is_some());
    }

    #[test]
    fn database_keys_load_reload_and_revoke() {
        let keys = Keys::new(&[config_key("ci", "izzi-ci-0000000000")], None, &[]);
        assert!(keys.find("izzi-db-1").is_none());
        keys.reload(&[stored("db", "izzi-db-1", false)]);
        let db = keys.find("izzi-db-1").unwrap();
        assert_eq!(
            (db.plan, db.limits.concurrent, db.limits.rpm),
            (Plan::Max, 9, 90)
        );
        assert_eq!(db.budget, Some(Decimal::from(5)));
        keys.reload(&[stored("db", "izzi-db-1", true)]);
        assert!(keys.find("izzi-db-1").is_none());
        // A database key cannot take over a config key's name (and so its account).
        keys.reload(&[stored("ci", "izzi-db-2", false)]);
        assert!(keys.find("izzi-db-2").is_none());
        assert!(keys.find("izzi-ci-0000000000").is_some());
    }

    #[test]
    fn a_reloaded_config_replaces_its_keys_and_keeps_the_databases() {
        let keys = Keys::new(
            &[config_key("ci", "izzi-ci-0000000000")],
            None,
            &[stored("db", "izzi-db-1", false)],
        );
        keys.set_config(&[config_key("ci2", "izzi-ci2-000000000")]);
        assert!(keys.find("izzi-ci-0000000000").is_none());
        assert_eq!(keys.find("izzi-ci2-000000000").unwrap().name, "ci2");
        assert_eq!(keys.find("izzi-db-1").unwrap().name, "db");
        // The next re-read of the database keeps the reloaded config's keys.
        keys.reload(&[stored("db", "izzi-db-1", false)]);
        assert!(keys.find("izzi-ci2-000000000").is_some());
    }

    #[test]
    fn a_created_key_retires_the_personal_key() {
        let keys = Keys::new(&[], Some("stored"), &[]);
        assert!(!keys.has_client_keys());
        keys.reload(&[stored("db", "izzi-db-1", false)]);
        assert!(keys.has_client_keys());
        assert!(keys.find("stored").is_none());
        keys.reload(&[stored("db", "izzi-db-1", true)]);
        assert_eq!(keys.find("stored").unwrap().name, PERSONAL);
    }

    #[test]
    fn failures_in_the_window_block_for_the_duration() {
        let block = IpBlock::new(&Security {
            ip_block_after_failures: 3,
            ip_block_window_s: 10,
            ip_block_duration_s: 100,
        });
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let other: IpAddr = "10.0.0.2".parse().unwrap();
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        block.failed(ip, at(0));
        block.failed(ip, at(1_000));
        // The first failure has left the window when the third arrives.
        block.failed(ip, at(10_000));
        assert_eq!(block.blocked(ip, at(10_000)), None);
        block.failed(ip, at(10_500));
        assert_eq!(
            block.blocked(ip, at(10_500)),
            Some(Duration::from_secs(100))
        );
        assert_eq!(block.blocked(other, at(10_500)), None);
        assert_eq!(block.blocked(ip, at(110_500)), None);
    }

    #[test]
    fn zero_failures_turns_the_block_off() {
        let block = IpBlock::new(&Security {
            ip_block_after_failures: 0,
            ip_block_window_s: 10,
            ip_block_duration_s: 100,
        });
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let now = Instant::now();
        for _ in 0..100 {
            block.failed(ip, now);
        }
        assert_eq!(block.blocked(ip, now), None);
    }
}
