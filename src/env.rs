//! Every environment variable izzi reads, and the paths derived from them. Nothing else reads env.

use std::path::PathBuf;

use anyhow::{Context as _, Result};

/// `IZZI_HOME`: where izzi keeps `config.toml`, `izzi.db`, backups and the file credential store.
pub(crate) const IZZI_HOME: &str = "IZZI_HOME";
/// `IZZI_KEYRING=file` forces the 0600 file credential store.
pub(crate) const IZZI_KEYRING: &str = "IZZI_KEYRING";
/// `IZZI_LOG`: tracing filter for `izzi serve` (e.g. `debug`, `izzi=trace`).
pub(crate) const IZZI_LOG: &str = "IZZI_LOG";

/// The directory izzi writes to: `$IZZI_HOME`, else the platform data dir plus `izzi`.
pub(crate) fn izzi_home() -> Result<PathBuf> {
    if let Some(home) = std::env::var_os(IZZI_HOME).filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(home));
    }
    dirs::config_dir()
        .map(|dir| dir.join("izzi"))
        .context("no config directory is known for this platform; set `IZZI_HOME`")
}

/// The user's home directory (from `HOME`), where tool configs are looked for.
pub(crate) fn home_dir() -> Result<PathBuf> {
    dirs::home_dir().context("no home directory is known; set `HOME`")
}

/// Whether the file credential store is forced (`IZZI_KEYRING=file`).
pub(crate) fn keyring_forced_file() -> bool {
    std::env::var(IZZI_KEYRING).is_ok_and(|v| v.eq_ignore_ascii_case("file"))
}

/// The value of an environment variable named in config (`api_key_env`), if set and non-empty.
pub(crate) fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The tracing filter directive for the gateway, from `IZZI_LOG`.
pub(crate) fn log_filter() -> String {
    std::env::var(IZZI_LOG).unwrap_or_else(|_| "info".to_owned())
}
