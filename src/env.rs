//! Every environment variable izzi reads, and the paths derived from them. Nothing else reads env.

use std::path::PathBuf;

use anyhow::{Context as _, Result};

/// `IZZI_HOME`: where izzi keeps `config.toml`, `izzi.db`, backups and the file credential store.
pub(crate) const IZZI_HOME: &str = "IZZI_HOME";
/// `IZZI_KEYRING=file` forces the 0600 file credential store.
pub(crate) const IZZI_KEYRING: &str = "IZZI_KEYRING";
/// `IZZI_LOG`: tracing filter for `izzi serve` (e.g. `debug`, `izzi=trace`).
pub(crate) const IZZI_LOG: &str = "IZZI_LOG";

/// `IZZI_LOG_FORMAT=text|json`: how `izzi serve` writes its log, when `--log-format` is not given.
pub(crate) const IZZI_LOG_FORMAT: &str = "IZZI_LOG_FORMAT";

/// `OTEL_EXPORTER_OTLP_ENDPOINT`: the OpenTelemetry collector's OTLP/HTTP base URL, used when
/// config sets no `[telemetry] otlp_endpoint`.
pub(crate) const OTEL_EXPORTER_OTLP_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";

/// `OTEL_EXPORTER_OTLP_ENDPOINT`, if set and non-empty.
pub(crate) fn otlp_endpoint() -> Option<String> {
    var(OTEL_EXPORTER_OTLP_ENDPOINT)
}

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

/// `IZZI_LOG_FORMAT`, if set and non-empty.
pub(crate) fn log_format() -> Option<String> {
    var(IZZI_LOG_FORMAT)
}

/// Variables that move AI tools' config folders, honoured by `izzi setup` (research/tools.md):
/// Claude Code, Codex CLI and Cline read them, and XDG ones move `~/.config` and `~/.local/share`.
pub(crate) const CLAUDE_CONFIG_DIR: &str = "CLAUDE_CONFIG_DIR";
pub(crate) const CODEX_HOME: &str = "CODEX_HOME";
pub(crate) const CLINE_DIR: &str = "CLINE_DIR";
pub(crate) const CLINE_DATA_DIR: &str = "CLINE_DATA_DIR";
pub(crate) const XDG_CONFIG_HOME: &str = "XDG_CONFIG_HOME";
pub(crate) const XDG_DATA_HOME: &str = "XDG_DATA_HOME";
/// An exported `ANTHROPIC_API_KEY` beats Claude Code's `apiKeyHelper`, so setup warns about it.
pub(crate) const ANTHROPIC_API_KEY: &str = "ANTHROPIC_API_KEY";
/// `IZZI_SETUP_OS=linux|macos|windows`: look for tool configs in that platform's layout under
/// `HOME` (tests check every layout on one machine).
pub(crate) const IZZI_SETUP_OS: &str = "IZZI_SETUP_OS";
/// `IZZI_SERVICE_MANAGER=systemd|launchd|task-scheduler`: the service manager `izzi service`
/// uses instead of this OS's (tests drive each one's commands against a fake on one machine).
pub(crate) const IZZI_SERVICE_MANAGER: &str = "IZZI_SERVICE_MANAGER";
/// `IZZI_TEST_PAUSE_AFTER_FILE=N`: setup stops after writing N files and waits to be killed, so a
/// test can show that an interrupted run leaves no half-written file.
pub(crate) const IZZI_TEST_PAUSE_AFTER_FILE: &str = "IZZI_TEST_PAUSE_AFTER_FILE";

/// `DOMAIN\user` on Windows (`USERDOMAIN`, `USERNAME`): whose logon starts `izzi service`.
pub(crate) fn windows_user() -> String {
    let name = std::env::var("USERNAME").unwrap_or_default();
    match std::env::var("USERDOMAIN") {
        Ok(domain) if !domain.is_empty() => format!("{domain}\\{name}"),
        _ => name,
    }
}

/// A path from an environment variable, if set and non-empty.
pub(crate) fn path_var(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// The `IZZI_SERVICE_MANAGER` override, if set.
pub(crate) fn service_manager() -> Option<String> {
    var(IZZI_SERVICE_MANAGER)
}

/// `PATH`, where setup looks for tools' binaries.
pub(crate) fn search_path() -> Option<std::ffi::OsString> {
    std::env::var_os("PATH")
}

/// Whether `name` is exported with a non-empty value (never returns the value).
pub(crate) fn is_set(name: &str) -> bool {
    std::env::var_os(name).is_some_and(|v| !v.is_empty())
}

/// The `IZZI_TEST_PAUSE_AFTER_FILE` count, if set. Only test builds (debug assertions on) read
/// it: a release binary never pauses.
#[cfg(debug_assertions)]
pub(crate) fn pause_after_file() -> Option<usize> {
    std::env::var(IZZI_TEST_PAUSE_AFTER_FILE)
        .ok()
        .and_then(|v| v.parse().ok())
}

#[cfg(not(debug_assertions))]
pub(crate) fn pause_after_file() -> Option<usize> {
    None
}

/// Whether `DBUS_SESSION_BUS_ADDRESS` is set (to anything valid as UTF-8), as zbus reads it.
#[cfg(all(unix, not(target_os = "macos")))]
pub(crate) fn session_bus_address_set() -> bool {
    std::env::var("DBUS_SESSION_BUS_ADDRESS").is_ok()
}

/// `XDG_RUNTIME_DIR`, as zbus reads it (set, even empty, and valid UTF-8).
#[cfg(all(unix, not(target_os = "macos")))]
pub(crate) fn xdg_runtime_dir() -> Option<String> {
    std::env::var("XDG_RUNTIME_DIR").ok()
}
