//! `izzi keys create|list|revoke`: client keys in `izzi.db`, next to the config's `[[keys]]`.
//!
//! A created key is printed once and stored only as its SHA-256 hash; nothing here prints,
//! stores or logs a key after that. The database (`izzi.db`, or PostgreSQL with
//! `[state].postgres_url`) is opened directly: a running gateway re-reads the keys within a
//! second.

use anyhow::{Result, bail};
use rust_decimal::Decimal;
use serde::Serialize;

use crate::cli::{KeyCreateArgs, KeysArgs, KeysCommand};
use crate::config::{
    ClientKey, Config, KEY_NAME_RULE, KeySource, Limits, Plan, SETUP_KEY_NAME, SETUP_KEY_PLAN,
    valid_key_name,
};
use crate::output::{self, UsageError};
use crate::store::{self, Account, Database, StoredKey};

/// Characters after the `izzi-` prefix: 32 from the URL-safe alphabet, 192 random bits.
const KEY_CHARS: usize = 32;
const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

pub(crate) fn run(args: KeysArgs) -> Result<()> {
    let (config, _) = Config::load(args.config.as_deref())?;
    match args.command {
        KeysCommand::Create(create) => self::create(&config, &create),
        KeysCommand::List { json } => list(&config, json),
        KeysCommand::Revoke { name } => revoke(&config, &name),
    }
}

/// A new random client key.
fn generate() -> String {
    let bytes: [u8; KEY_CHARS] = rand::random();
    // 256 is a multiple of 64, so taking six bits of each byte keeps every character equally
    // likely.
    let chars: String = bytes
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(b & 63)]))
        .collect();
    format!("izzi-{chars}")
}

fn check_name(name: &str) -> Result<()> {
    if !valid_key_name(name) {
        bail!(UsageError(format!(
            "`{name}` is not a valid key name: {KEY_NAME_RULE}"
        )));
    }
    Ok(())
}

fn check_amount(flag: &str, amount: Option<Decimal>) -> Result<()> {
    if amount.is_some_and(|a| a.is_sign_negative()) {
        bail!(UsageError(format!("`{flag}` cannot be negative")));
    }
    Ok(())
}

fn create(config: &Config, args: &KeyCreateArgs) -> Result<()> {
    check_name(&args.name)?;
    check_amount("--budget", args.budget)?;
    check_amount("--credits", args.credits)?;
    if config.keys.iter().any(|k| k.name == args.name) {
        bail!(UsageError(format!(
            "the config already has a key named `{}`; pick another name",
            args.name
        )));
    }
    let store = Database::open(&config.state)?;
    let key = generate();
    store
        .create_key(&StoredKey {
            name: args.name.clone(),
            key_sha256: crate::gateway::hash_key(&key),
            plan: args.plan,
            rpm: args.rpm,
            concurrent: args.concurrent,
            daily: args.daily,
            monthly_budget_usd: args.budget,
            credits_usd: args.credits,
            created_at: store::stamp(jiff::Timestamp::now()),
            revoked_at: None,
        })
        .map_err(|err| match err.downcast::<store::NameTaken>() {
            // A name in use is the user's to change: exit code 2.
            Ok(taken) => UsageError(taken.to_string()).into(),
            Err(err) => err,
        })?;
    output::line(&key);
    output::notice(format_args!(
        "created the key `{}` ({} plan); it is shown only this once, so store it now",
        args.name,
        args.plan.name()
    ));
    Ok(())
}

fn revoke(config: &Config, name: &str) -> Result<()> {
    if name == SETUP_KEY_NAME {
        bail!(UsageError(format!(
            "`{SETUP_KEY_NAME}` is the key `izzi setup` stored; a gateway stops accepting it with `accept_stored_key = false` under `[security]` in the config"
        )));
    }
    if config.keys.iter().any(|k| k.name == name) {
        bail!(UsageError(format!(
            "`{name}` is a `[[keys]]` entry of the config; remove it there to revoke it"
        )));
    }
    let store = Database::open(&config.state)?;
    if !store.revoke_key(name, jiff::Timestamp::now())? {
        bail!(UsageError(format!(
            "no active key is named `{name}`; `izzi keys list` shows the keys"
        )));
    }
    output::notice(format_args!(
        "revoked the key `{name}`; a running gateway refuses it within a second"
    ));
    Ok(())
}

/// One key as `izzi keys list --json` prints it. Amounts are decimal strings.
#[derive(Debug, Serialize)]
struct Listed {
    name: String,
    source: KeySource,
    plan: Plan,
    limits: Limits,
    #[serde(with = "rust_decimal::serde::str_option")]
    monthly_budget_usd: Option<Decimal>,
    #[serde(with = "rust_decimal::serde::str")]
    month_spent_usd: Decimal,
    #[serde(with = "rust_decimal::serde::str")]
    spent_usd: Decimal,
    #[serde(with = "rust_decimal::serde::str_option")]
    credits_usd: Option<Decimal>,
    /// Credits minus everything spent; absent without credits.
    #[serde(with = "rust_decimal::serde::str_option")]
    balance_usd: Option<Decimal>,
    requests_today: u32,
    created_at: Option<String>,
    revoked_at: Option<String>,
}

fn list(config: &Config, json: bool) -> Result<()> {
    let store = Database::open(&config.state)?;
    let now = jiff::Timestamp::now();
    let accounts = store.accounts()?;
    let today = store.requests_since(store::window_start(now, store::DAY))?;
    let month = store::month(now);
    let listed = |name: &str,
                  source,
                  plan: Plan,
                  overrides: (Option<u32>, Option<u32>, Option<u32>),
                  money: (Option<Decimal>, Option<Decimal>),
                  times: (Option<String>, Option<String>)| {
        let account = accounts.get(name).cloned().unwrap_or_else(Account::default);
        let base = plan.limits();
        let (budget, credits) = money;
        Listed {
            name: name.to_owned(),
            source,
            plan,
            limits: Limits {
                rpm: overrides.0.unwrap_or(base.rpm),
                concurrent: overrides.1.unwrap_or(base.concurrent),
                daily: overrides.2.unwrap_or(base.daily),
            },
            monthly_budget_usd: budget,
            month_spent_usd: account.spent_in(&month),
            spent_usd: account.spent_usd,
            credits_usd: credits,
            balance_usd: credits.map(|c| c - account.spent_usd),
            requests_today: today.get(name).copied().unwrap_or(0),
            created_at: times.0,
            revoked_at: times.1,
        }
    };
    let mut keys: Vec<Listed> = config
        .keys
        .iter()
        .map(|k: &ClientKey| {
            listed(
                &k.name,
                KeySource::Config,
                k.plan,
                (k.rpm, k.concurrent, k.daily),
                (k.monthly_budget_usd, k.credits_usd),
                (None, None),
            )
        })
        .collect();
    keys.extend(store.keys()?.into_iter().map(|k| {
        listed(
            &k.name,
            KeySource::Created,
            k.plan,
            (k.rpm, k.concurrent, k.daily),
            (k.monthly_budget_usd, k.credits_usd),
            (Some(k.created_at), k.revoked_at),
        )
    }));
    // The key `izzi setup` stored, which a gateway accepts from loopback beside the rest.
    if config.security.accept_stored_key && crate::secrets::load()?.is_some() {
        keys.push(listed(
            SETUP_KEY_NAME,
            KeySource::Setup,
            SETUP_KEY_PLAN,
            (None, None, None),
            (None, None),
            (None, None),
        ));
    }
    if json {
        output::json(&keys);
        return Ok(());
    }
    if keys.is_empty() {
        output::notice("no client keys; create one with `izzi keys create --name NAME`");
        return Ok(());
    }
    let usd = |d: Option<Decimal>| d.map_or_else(|| "-".to_owned(), crate::output::usd);
    let rows: Vec<Vec<String>> = keys
        .iter()
        .map(|k| {
            vec![
                k.name.clone(),
                match k.source {
                    KeySource::Config => "config",
                    KeySource::Created => "created",
                    KeySource::Setup => "setup (loopback)",
                }
                .to_owned(),
                k.plan.name().to_owned(),
                k.limits.rpm.to_string(),
                k.limits.concurrent.to_string(),
                format!("{}/{}", k.requests_today, k.limits.daily),
                usd(Some(k.month_spent_usd)),
                usd(k.monthly_budget_usd),
                usd(k.balance_usd),
                if k.revoked_at.is_some() {
                    "revoked"
                } else {
                    "active"
                }
                .to_owned(),
            ]
        })
        .collect();
    output::table(
        &[
            "NAME",
            "SOURCE",
            "PLAN",
            "RPM",
            "CONCURRENT",
            "TODAY",
            "MONTH",
            "BUDGET",
            "BALANCE",
            "STATUS",
        ],
        &rows,
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_are_prefixed_url_safe_and_distinct() {
        let a = generate();
        let b = generate();
        assert_ne!(a, b);
        let rest = a.strip_prefix("izzi-").unwrap();
        assert_eq!(rest.len(), KEY_CHARS);
        assert!(rest.bytes().all(|c| ALPHABET.contains(&c)));
    }

    #[test]
    fn names_are_checked() {
        assert!(check_name("ci-bot_1.x").is_ok());
        for bad in ["", "a b", "ключ", &"x".repeat(65)] {
            let err = check_name(bad).unwrap_err();
            assert!(err.downcast_ref::<UsageError>().is_some(), "{bad}");
        }
    }
}
