//! `[dashboard]` (who may open the page and its API beyond loopback) and `[alerts]` (budget and
//! balance alerts: the floor, the webhook).

use anyhow::{Result, bail};
use rust_decimal::Decimal;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `[dashboard]`: the page at `/` and its JSON API under `/izzi/api/`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Dashboard {
    /// The key that opens the dashboard from an address other than loopback, sent as
    /// `Authorization: Bearer KEY` (the page asks for it once); at least 16 characters, and not
    /// a client key [default: none, loopback only].
    pub(crate) admin_key: Option<String>,
}

/// `[alerts]`: a key's monthly budget crossing 80, 90 and 100 %, and its balance falling under
/// `balance_floor_usd`, are logged once per threshold and month, shown on the dashboard, sent
/// as `x-izzi-budget-alert` on the key's answers and, with `webhook_url`, posted as JSON.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Alerts {
    /// Alert when a key's remaining credits fall under this many dollars [default: no balance
    /// alert].
    #[serde(with = "rust_decimal::serde::float_option")]
    #[schemars(with = "Option<f64>")]
    pub(crate) balance_floor_usd: Option<Decimal>,
    /// Each alert is POSTed here as JSON, retried with backoff, off the request path.
    pub(crate) webhook_url: Option<String>,
}

impl Dashboard {
    /// A long key, and none of the client keys (`keys`).
    pub(super) fn check(&self, keys: &[super::ClientKey]) -> Result<()> {
        if let Some(admin) = &self.admin_key {
            if admin.trim().len() < 16 {
                bail!("`dashboard.admin_key` must be at least 16 characters long");
            }
            if keys.iter().any(|k| k.key == *admin) {
                bail!("`dashboard.admin_key` must not be a client key of `[[keys]]`");
            }
        }
        Ok(())
    }
}

impl Alerts {
    pub(super) fn check(&self) -> Result<()> {
        if let Some(url) = &self.webhook_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            bail!("`alerts.webhook_url` must start with http:// or https://, not `{url}`");
        }
        if let Some(floor) = self.balance_floor_usd
            && floor < Decimal::ZERO
        {
            bail!("`alerts.balance_floor_usd` must not be negative");
        }
        Ok(())
    }
}
