//! Client authentication: taking the key from `Authorization: Bearer` or `x-api-key`, hashing
//! it, and finding the client key it belongs to. Never reads bodies; never logs a key.

use std::collections::HashMap;
use std::sync::Arc;

use axum::http::HeaderMap;
use sha2::{Digest as _, Sha256};

use crate::config::{ClientKey, Limits, Plan};

/// SHA-256 of a key: how keys are compared and stored.
pub(crate) type KeyHash = [u8; 32];

/// Hashes a client key.
pub(crate) fn hash(key: &str) -> KeyHash {
    Sha256::digest(key.as_bytes()).into()
}

/// A client key izzi accepts, without the key itself.
#[derive(Debug, Clone)]
pub(crate) struct Client {
    pub(crate) name: String,
    pub(crate) plan: Plan,
    pub(crate) limits: Limits,
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

/// Every client key, by hash.
#[derive(Debug, Default)]
pub(crate) struct Keys {
    by_hash: HashMap<KeyHash, Arc<Client>>,
}

impl Keys {
    /// The static `[[keys]]` of config; with none, the key `izzi setup` stored, as a personal
    /// gateway.
    pub(crate) fn new(config_keys: &[ClientKey], stored_key: Option<&str>) -> Self {
        let mut by_hash = HashMap::new();
        for k in config_keys {
            let plan_limits = k.plan.limits();
            let limits = Limits {
                rpm: k.rpm.unwrap_or(plan_limits.rpm),
                concurrent: k.concurrent.unwrap_or(plan_limits.concurrent),
                daily: k.daily.unwrap_or(plan_limits.daily),
            };
            by_hash.insert(
                hash(&k.key),
                Arc::new(Client {
                    name: k.name.clone(),
                    plan: k.plan,
                    limits,
                }),
            );
        }
        if by_hash.is_empty()
            && let Some(key) = stored_key
        {
            let plan = Plan::Ultra;
            by_hash.insert(
                hash(key),
                Arc::new(Client {
                    name: "personal".to_owned(),
                    plan,
                    limits: plan.limits(),
                }),
            );
        }
        Self { by_hash }
    }

    /// Whether any client key exists (else the gateway must stay on loopback).
    pub(crate) fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }

    /// Whether client keys come from config or the database rather than the personal key.
    pub(crate) fn has_client_keys(&self) -> bool {
        self.by_hash.values().any(|c| c.name != "personal")
    }

    /// The client a key belongs to. The lookup is by SHA-256 digest, so its timing says nothing
    /// about how much of a real key a guess matched.
    pub(crate) fn find(&self, key: &str) -> Option<Arc<Client>> {
        self.by_hash.get(&hash(key)).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            &[ClientKey {
                name: "ci".into(),
                key: "izzi-ci-0000000000".into(),
                plan: Plan::Free,
                monthly_budget_usd: None,
                credits_usd: None,
                rpm: Some(600),
                concurrent: None,
                daily: None,
            }],
            Some("stored"),
        );
        let ci = keys.find("izzi-ci-0000000000").unwrap();
        assert_eq!(
            (ci.limits.rpm, ci.limits.concurrent, ci.limits.daily),
            (600, 1, 100)
        );
        assert!(
            keys.find("stored").is_none(),
            "the personal key is only for key-less configs"
        );
        assert!(Keys::new(&[], Some("stored")).find("stored").is_some());
    }
}
