//! Who a client is: its key's SHA-256 digest, the [`Client`] it stands for (plan, limits,
//! money), where the request comes from ([`Peer`]), and every accepted key ([`Keys`]: the
//! config's, the database's, and from loopback the one `izzi setup` stored), swapped in whole so
//! lookups never wait. A leaf: depends on nothing else in the gateway.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;
use axum::http::{HeaderMap, HeaderName, header};
use rust_decimal::Decimal;
use sha2::{Digest as _, Sha256};

use crate::config::{ClientKey, KeySource, Limits, Plan, SETUP_KEY_NAME, SETUP_KEY_PLAN};
use crate::store::StoredKey;

/// SHA-256 of a key: how keys are compared and stored.
pub(crate) type KeyHash = [u8; 32];

/// Hashes a client key.
pub(crate) fn hash(key: &str) -> KeyHash {
    Sha256::digest(key.as_bytes()).into()
}

/// A client key izzi accepts, without the key itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Client {
    /// The account limits and usage are kept under: the key's name, or [`SETUP_KEY_NAME`].
    pub(crate) name: String,
    pub(crate) source: KeySource,
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
        source: KeySource,
        plan: Plan,
        overrides: (Option<u32>, Option<u32>, Option<u32>),
        credits: Option<Decimal>,
        budget: Option<Decimal>,
    ) -> Self {
        let (rpm, concurrent, daily) = overrides;
        let base = plan.limits();
        Self {
            name: name.to_owned(),
            source,
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

    /// Whether the key has credits or a budget: its requests must be priced and held.
    pub(crate) fn has_money_limits(&self) -> bool {
        self.credits.is_some() || self.budget.is_some()
    }

    /// A `[[keys]]` entry of config.
    pub(crate) fn from_config(k: &ClientKey) -> Self {
        Self::new(
            &k.name,
            KeySource::Config,
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
            KeySource::Created,
            k.plan,
            (k.rpm, k.concurrent, k.daily),
            k.credits_usd,
            k.monthly_budget_usd,
        )
    }

    /// The key `izzi setup` stored: the user's own tools, on the top plan, without money limits.
    fn setup() -> Self {
        Self::new(
            SETUP_KEY_NAME,
            KeySource::Setup,
            SETUP_KEY_PLAN,
            (None, None, None),
            None,
            None,
        )
    }
}

/// Where a request comes from, as far as keys care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Peer {
    /// This machine (127.0.0.0/8, `::1`): every local tool shares the address.
    Loopback,
    /// Anywhere else, or unknown.
    Remote,
}

impl Peer {
    pub(crate) fn of(ip: Option<IpAddr>) -> Self {
        match ip {
            Some(ip) if ip.to_canonical().is_loopback() => Self::Loopback,
            _ => Self::Remote,
        }
    }
}

/// The client key a request presents, if any.
pub(crate) fn presented_key(headers: &HeaderMap) -> Option<&str> {
    // Built at compile time: a `&str` name is parsed and validated on every lookup.
    const X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    bearer
        .or_else(|| {
            headers
                .get(X_API_KEY)
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
/// (when the ledger thread re-reads them), swapped in whole so lookups never wait, and the key
/// `izzi setup` stored.
#[derive(Debug)]
pub(crate) struct Keys {
    /// What the snapshot is built from; locked only while one is built, never by a lookup.
    sources: Mutex<Sources>,
    /// The hash of the key `izzi setup` stored (never the key itself), accepted from loopback
    /// only; `None` without one or with `accept_stored_key = false`.
    setup: Option<(KeyHash, Arc<Client>)>,
    current: ArcSwap<Snapshot>,
}

#[derive(Debug, Default)]
struct Sources {
    config: Vec<(KeyHash, Arc<Client>)>,
    db: Vec<StoredKey>,
}

impl Keys {
    /// The config's `[[keys]]`, the active keys of `izzi.db`, and the key `izzi setup` stored
    /// when it is accepted.
    pub(crate) fn new(
        config_keys: &[ClientKey],
        setup_key: Option<&str>,
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
            setup: setup_key.map(|k| (hash(k), Arc::new(Client::setup()))),
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

    /// Whether no key at all is accepted (every request gets 401).
    pub(crate) fn is_empty(&self) -> bool {
        self.setup.is_none() && !self.has_client_keys()
    }

    /// Whether client keys exist in the config or the database (the key `izzi setup` stored
    /// is not one: it serves loopback only).
    pub(crate) fn has_client_keys(&self) -> bool {
        !self.current.load().by_hash.is_empty()
    }

    /// Every accepted key's client (the stored key's too), by name.
    pub(crate) fn clients(&self) -> Vec<Arc<Client>> {
        let mut clients: Vec<Arc<Client>> = self
            .current
            .load()
            .by_hash
            .values()
            .chain(self.setup.iter().map(|(_, client)| client))
            .cloned()
            .collect();
        clients.sort_by(|a, b| a.name.cmp(&b.name));
        clients.dedup_by(|a, b| a.name == b.name);
        clients
    }

    /// The client a key belongs to, for a request from `peer`. The lookup is by SHA-256
    /// digest, so its timing says nothing about how much of a real key a guess matched.
    pub(crate) fn find(&self, key: &str, peer: Peer) -> Option<Arc<Client>> {
        let digest = hash(key);
        if let Some(client) = self.current.load().by_hash.get(&digest) {
            return Some(Arc::clone(client));
        }
        match &self.setup {
            Some((setup, client)) if *setup == digest && peer == Peer::Loopback => {
                Some(Arc::clone(client))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A `[[keys]]` entry on the free plan with credits and an RPM override.
    pub(crate) fn config_key(name: &str, key: &str) -> ClientKey {
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
        assert!(keys.find(real, Peer::Remote).is_some());
        assert!(keys.find("izzi-db-secret-1", Peer::Remote).is_some());
        assert!(keys.find("izzi-personal-secret", Peer::Loopback).is_some());
        let (head, last) = real.split_at(real.len() - 1);
        assert_eq!(last, "f");
        for guess in [head, &format!("{head}e"), &format!("{real}0"), "", " "] {
            assert!(keys.find(guess, Peer::Loopback).is_none(), "{guess:?}");
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
        let keys = Keys::new(&[config_key("ci", "izzi-ci-0000000000")], None, &[]);
        let ci = keys.find("izzi-ci-0000000000", Peer::Remote).unwrap();
        assert_eq!(
            (ci.limits.rpm, ci.limits.concurrent, ci.limits.daily),
            (600, 1, 100)
        );
        assert_eq!(ci.credits, Some(Decimal::from(3)));
        assert_eq!(ci.source, KeySource::Config);
    }

    #[test]
    fn database_keys_load_reload_and_revoke() {
        let keys = Keys::new(&[config_key("ci", "izzi-ci-0000000000")], None, &[]);
        assert!(keys.find("izzi-db-1", Peer::Remote).is_none());
        keys.reload(&[stored("db", "izzi-db-1", false)]);
        let db = keys.find("izzi-db-1", Peer::Remote).unwrap();
        assert_eq!(
            (db.plan, db.limits.concurrent, db.limits.rpm),
            (Plan::Max, 9, 90)
        );
        assert_eq!(db.budget, Some(Decimal::from(5)));
        assert_eq!(db.source, KeySource::Created);
        keys.reload(&[stored("db", "izzi-db-1", true)]);
        assert!(keys.find("izzi-db-1", Peer::Remote).is_none());
        // A database key cannot take over a config key's name (and so its account).
        keys.reload(&[stored("ci", "izzi-db-2", false)]);
        assert!(keys.find("izzi-db-2", Peer::Remote).is_none());
        assert!(keys.find("izzi-ci-0000000000", Peer::Remote).is_some());
    }

    #[test]
    fn a_reloaded_config_replaces_its_keys_and_keeps_the_databases() {
        let keys = Keys::new(
            &[config_key("ci", "izzi-ci-0000000000")],
            None,
            &[stored("db", "izzi-db-1", false)],
        );
        keys.set_config(&[config_key("ci2", "izzi-ci2-000000000")]);
        assert!(keys.find("izzi-ci-0000000000", Peer::Remote).is_none());
        assert_eq!(
            keys.find("izzi-ci2-000000000", Peer::Remote).unwrap().name,
            "ci2"
        );
        assert_eq!(keys.find("izzi-db-1", Peer::Remote).unwrap().name, "db");
        // The next re-read of the database keeps the reloaded config's keys.
        keys.reload(&[stored("db", "izzi-db-1", false)]);
        assert!(keys.find("izzi-ci2-000000000", Peer::Remote).is_some());
    }

    /// The key `izzi setup` stored serves loopback beside every other key, is never accepted
    /// from elsewhere, and keeps its own account even next to a key named `personal` (the name
    /// it went by when it was the only key).
    #[test]
    fn the_setup_key_serves_loopback_beside_other_keys_and_never_remote() {
        let keys = Keys::new(&[], Some("izzi-setup-key-0"), &[]);
        assert!(!keys.has_client_keys() && !keys.is_empty());
        let alone = keys.find("izzi-setup-key-0", Peer::Loopback).unwrap();
        assert_eq!(
            (alone.name.as_str(), alone.source, alone.plan),
            (SETUP_KEY_NAME, KeySource::Setup, SETUP_KEY_PLAN)
        );
        assert!(keys.find("izzi-setup-key-0", Peer::Remote).is_none());
        keys.reload(&[stored("personal", "izzi-db-1", false)]);
        assert!(keys.has_client_keys());
        assert_eq!(
            keys.find("izzi-setup-key-0", Peer::Loopback).unwrap(),
            alone
        );
        assert!(keys.find("izzi-setup-key-0", Peer::Remote).is_none());
        let created = keys.find("izzi-db-1", Peer::Loopback).unwrap();
        assert_eq!(created.name, "personal");
        assert_ne!(created.name, alone.name);
        let config = Keys::new(
            &[config_key("personal", "izzi-config-1")],
            Some("izzi-setup-key-0"),
            &[],
        );
        let named = config.find("izzi-config-1", Peer::Loopback).unwrap();
        let setup = config.find("izzi-setup-key-0", Peer::Loopback).unwrap();
        assert_ne!(named.name, setup.name);
        assert_eq!(
            (named.source, setup.source),
            (KeySource::Config, KeySource::Setup)
        );
        // `accept_stored_key = false` passes no key here.
        let off = Keys::new(&[], None, &[]);
        assert!(off.is_empty());
        assert!(off.find("izzi-setup-key-0", Peer::Loopback).is_none());
    }

    #[test]
    fn loopback_means_127_0_0_0_8_and_ipv6_loopback_mapped_or_not() {
        for ip in ["127.0.0.1", "127.0.0.2", "::1", "::ffff:127.0.0.1"] {
            assert_eq!(Peer::of(Some(ip.parse().unwrap())), Peer::Loopback, "{ip}");
        }
        for ip in ["10.0.0.1", "::ffff:10.0.0.1", "0.0.0.0", "fe80::1"] {
            assert_eq!(Peer::of(Some(ip.parse().unwrap())), Peer::Remote, "{ip}");
        }
        assert_eq!(Peer::of(None), Peer::Remote);
    }
}
