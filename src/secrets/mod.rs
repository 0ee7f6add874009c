//! Where izzi keeps the user's Izzi API key: the OS keyring (service `izzi`, user `default`), or,
//! where no keyring is usable (headless Linux, CI) or `IZZI_KEYRING=file` says so, a 0600 file
//! `IZZI_HOME/credentials`. Both sit behind [`Store`]; every keyring call runs on its own thread
//! with a timeout, so a hung D-Bus or an unanswered unlock prompt cannot hang izzi. Never logs or
//! prints a key.

mod file;
mod keyring;

use std::fmt;
use std::path::PathBuf;

use anyhow::{Context as _, Result};

/// A key that prints as `*****` in `Debug`, so it cannot leak through logs or error chains.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Secret(String);

impl Secret {
    /// Wraps a key, trimming the whitespace a paste or a file adds around it.
    pub(crate) fn new(key: &str) -> Self {
        Self(key.trim().to_owned())
    }

    /// The key itself, for the few places that must hand it on.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }

    /// `****` plus the last four characters, enough to tell keys apart in diffs and status.
    pub(crate) fn masked(&self) -> String {
        let chars: Vec<char> = self.0.chars().collect();
        if chars.len() < 12 {
            return "****".to_owned();
        }
        let tail: String = chars[chars.len() - 4..].iter().collect();
        format!("****{tail}")
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("*****")
    }
}

/// A place a key can be kept.
pub(crate) trait Store {
    /// The key kept here, if any. `Err` means the store cannot be used at all.
    fn get(&self) -> Result<Option<Secret>>;
    /// Keeps `key` here, replacing any earlier one.
    fn set(&self, key: &Secret) -> Result<()>;
    /// Where this store is, for messages and `izzi status`.
    fn location(&self) -> Location;
}

/// Where a key lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Location {
    Keyring,
    File(PathBuf),
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Keyring => write!(
                f,
                "the OS keyring (service `{}`, user `{}`)",
                keyring::SERVICE,
                keyring::USER
            ),
            Self::File(path) => write!(f, "`{}` (mode 0600)", path.display()),
        }
    }
}

/// The key `izzi setup` stored, if any. The gateway's entry point.
pub(crate) fn stored_key() -> Result<Option<String>> {
    Ok(load()?.map(|(key, _)| key.expose().to_owned()))
}

/// The stored key and where it was found: the keyring first, then the file (which holds the key
/// when the keyring was unusable at setup time).
pub(crate) fn load() -> Result<Option<(Secret, Location)>> {
    if !crate::env::keyring_forced_file() {
        match keyring::Keyring.get() {
            Ok(Some(key)) => return Ok(Some((key, Location::Keyring))),
            Ok(None) => {}
            // An unusable keyring is the headless norm; the file store answers instead.
            Err(err) => tracing::debug!("the OS keyring is unusable: {err:#}"),
        }
    }
    let file = file::FileStore::new()?;
    Ok(file.get()?.map(|key| (key, file.location())))
}

/// What [`save`] did.
#[derive(Debug)]
pub(crate) struct Saved {
    pub(crate) location: Location,
    /// Why the keyring was not used, when the key went to the file instead.
    pub(crate) fallback: Option<String>,
}

/// Stores `key` in the keyring, or in the 0600 file when the keyring is unusable or
/// `IZZI_KEYRING=file`. A key kept in the keyring removes any older copy in the file, so the key
/// lives in one place.
pub(crate) fn save(key: &Secret) -> Result<Saved> {
    let file = file::FileStore::new()?;
    if crate::env::keyring_forced_file() {
        file.set(key)?;
        return Ok(Saved {
            location: file.location(),
            fallback: Some(format!("`{}=file` is set", crate::env::IZZI_KEYRING)),
        });
    }
    match keyring::Keyring.set(key) {
        Ok(()) => {
            file.remove()?;
            Ok(Saved {
                location: Location::Keyring,
                fallback: None,
            })
        }
        Err(err) => {
            file.set(key)
                .context("the OS keyring is unusable and the credentials file cannot be written")?;
            Ok(Saved {
                location: file.location(),
                fallback: Some(format!("the OS keyring is unusable ({err:#})")),
            })
        }
    }
}

/// `text` with the values of secret-looking settings (`…key`, `…token`, `…secret`,
/// `…password`, OAuth `access`/`refresh`) masked, line by line: diffs show a file's other keys
/// too, and those are no more for the screen than izzi's.
pub(crate) fn mask_secrets(text: &str) -> String {
    let mut out: String = text.split_inclusive('\n').map(mask_line).collect();
    if !text.ends_with('\n') && out.ends_with('\n') {
        out.pop();
    }
    out
}

fn mask_line(line: &str) -> String {
    let Some(split) = line.find([':', '=']) else {
        return line.to_owned();
    };
    let (name, value) = line.split_at(split);
    let name: String = name
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect::<String>()
        .to_ascii_lowercase();
    // `env_key` names a variable, not a key.
    let secret = ["key", "token", "secret", "password"]
        .iter()
        .any(|s| name.ends_with(s))
        && !name.ends_with("envkey")
        || name == "access"
        || name == "refresh";
    let (Some(open), Some(close)) = (value.find('"'), value.rfind('"')) else {
        return line.to_owned();
    };
    let inner = &value[(open + 1).min(close)..close];
    if !secret || inner.is_empty() || inner.starts_with("****") {
        return line.to_owned();
    }
    format!(
        "{name_part}{before}{masked}{after}",
        name_part = &line[..split],
        before = &value[..=open],
        masked = Secret::new(inner).masked(),
        after = &value[close..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_never_shows_in_debug() {
        let key = Secret::new("  sk-izzi-0123456789abcdef\n");
        assert_eq!(key.expose(), "sk-izzi-0123456789abcdef");
        assert_eq!(format!("{key:?}"), "*****");
        assert_eq!(key.masked(), "****cdef");
        assert_eq!(Secret::new("short").masked(), "****");
    }

    #[test]
    fn masks_secret_looking_values_only() {
        let text = "{\n  \"ANTHROPIC_AUTH_TOKEN\": \"sk-or-v1-previous-provider-token\",\n  \"apiKeyHelper\": \"/opt/izzi key print\",\n  \"openAiApiKey\": \"sk-1234567890abcd\",\n  \"access\": \"at-anthropic-access\",\n  \"model\": \"opus\"\n}";
        assert_eq!(
            mask_secrets(text),
            "{\n  \"ANTHROPIC_AUTH_TOKEN\": \"****oken\",\n  \"apiKeyHelper\": \"/opt/izzi key print\",\n  \"openAiApiKey\": \"****abcd\",\n  \"access\": \"****cess\",\n  \"model\": \"opus\"\n}"
        );
        assert_eq!(
            mask_secrets("env_key = \"IZZI_API_KEY\"\n"),
            "env_key = \"IZZI_API_KEY\"\n"
        );
    }
}
