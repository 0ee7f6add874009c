//! Reloading `config.toml` while serving (SIGHUP, `izzi service reload`): client keys, their
//! limits, providers and models change for the next request; requests in flight finish on the
//! state they started with. A file that does not load changes nothing: the error (file, line,
//! field) is logged and shown by `/health`. Listening, `[state]` and `[security]` settings take
//! effect at the next restart, which the log says.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use anyhow::{Context as _, Result, bail};
use serde::Serialize;

use super::{AppState, routing, upstream};
use crate::config::Config;

/// What a reload needs that the config file does not say: the `--config` given at start (else
/// `$IZZI_HOME/config.toml`), the address listened on, and the key `izzi setup` stored, read
/// once at start.
pub(crate) struct Source {
    pub(crate) path: Option<PathBuf>,
    pub(crate) host: IpAddr,
    pub(crate) stored_key: Option<String>,
}

/// SIGHUPs, watched from when this is made: before the gateway says it listens, so a reload
/// asked for at once is never taken by the default action, which ends the process.
pub(crate) struct Hangups {
    #[cfg(unix)]
    signal: Option<tokio::signal::unix::Signal>,
}

impl Hangups {
    pub(crate) fn watch() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let signal = signal(SignalKind::hangup())
                .inspect_err(|err| {
                    tracing::warn!(error = %err, "cannot watch for SIGHUP; the config reloads only at restart");
                })
                .ok();
            Self { signal }
        }
        #[cfg(not(unix))]
        Self {}
    }

    /// The next SIGHUP; never, where there are none.
    pub(crate) async fn next(&mut self) {
        #[cfg(unix)]
        if let Some(signal) = &mut self.signal
            && signal.recv().await.is_some()
        {
            return;
        }
        std::future::pending::<()>().await;
    }
}

/// This process, for `/health`: its start, its config file, its reloads.
#[derive(Debug)]
pub(crate) struct Process {
    started: Instant,
    reloads: Mutex<Reloads>,
}

/// The config file and how its reloads went.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct Reloads {
    /// The config file in use, if any.
    pub(crate) path: Option<PathBuf>,
    /// Reloads attempted since start.
    pub(crate) reloads: u64,
    /// Why the latest reload changed nothing, if it failed.
    pub(crate) error: Option<String>,
}

impl Process {
    pub(crate) fn new(path: Option<PathBuf>) -> Self {
        Self {
            started: Instant::now(),
            reloads: Mutex::new(Reloads {
                path,
                ..Reloads::default()
            }),
        }
    }

    /// Whole seconds since the gateway started.
    pub(crate) fn uptime_s(&self) -> u64 {
        self.started.elapsed().as_secs()
    }

    pub(crate) fn reloads(&self) -> Reloads {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Reloads> {
        self.reloads.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Loads the config again and builds the state the next requests get, or says why not; either
/// way the outcome is logged and recorded for `/health`.
pub(crate) async fn reload(current: &AppState, source: &Source) -> Option<AppState> {
    let outcome = load(current, source).await;
    let mut reloads = current.process.lock();
    reloads.reloads += 1;
    match outcome {
        Ok((state, path)) => {
            match &path {
                Some(path) => tracing::info!(config = %path.display(), "config reloaded"),
                None => tracing::info!("config reloaded: no config file, the embedded defaults"),
            }
            reloads.path = path;
            reloads.error = None;
            Some(state)
        }
        Err(err) => {
            // The message quotes the line at fault, which may hold a key; `/health` needs none.
            let error = crate::secrets::mask_secrets(&format!("{err:#}"));
            tracing::error!(error, "config not reloaded; the running config stays");
            reloads.error = Some(error);
            None
        }
    }
}

async fn load(current: &AppState, source: &Source) -> Result<(AppState, Option<PathBuf>)> {
    let path = source.path.clone();
    let (config, path) =
        tokio::task::spawn_blocking(move || Config::load(path.as_deref())).await??;
    let router = routing::Router::new(&config, source.stored_key.as_deref())
        .with_context(|| Config::invalid(path.as_deref()))?;
    let client = if same_upstream_settings(&current.config, &config) {
        current.client.clone()
    } else {
        upstream::Client::new(&config.server)?
    };
    current.keys.set_config(&config.keys);
    if !source.host.is_loopback() && !current.keys.has_client_keys() {
        current.keys.set_config(&current.config.keys);
        bail!(
            "the new config has no client keys, and the gateway listens on {}, beyond loopback",
            source.host
        );
    }
    let restart = needs_restart(&current.config, &config);
    if !restart.is_empty() {
        tracing::warn!(
            settings = restart.join(", "),
            "these settings take effect at the next restart"
        );
    }
    let state = AppState {
        config,
        router,
        keys: Arc::clone(&current.keys),
        ip_block: Arc::clone(&current.ip_block),
        limits: Arc::clone(&current.limits),
        ledger: current.ledger.clone(),
        responses: Arc::clone(&current.responses),
        metrics: current.metrics.clone(),
        client,
        process: Arc::clone(&current.process),
        alerts: Arc::clone(&current.alerts),
        reader: Arc::clone(&current.reader),
        breakers: Arc::clone(&current.breakers),
        affinity: Arc::clone(&current.affinity),
    };
    Ok((state, path))
}

/// Whether the upstream client (built from these) can be kept.
fn same_upstream_settings(old: &Config, new: &Config) -> bool {
    old.server.connect_timeout_s == new.server.connect_timeout_s
        && old.server.upstream_idle_timeout_s == new.server.upstream_idle_timeout_s
}

/// The settings that changed but apply only when the gateway starts.
fn needs_restart(old: &Config, new: &Config) -> Vec<&'static str> {
    let (o, n) = (&old.server, &new.server);
    [
        ("server.host", o.host != n.host),
        ("server.port", o.port != n.port),
        (
            "server.max_connections",
            o.max_connections != n.max_connections,
        ),
        (
            "server.header_read_timeout_s",
            o.header_read_timeout_s != n.header_read_timeout_s,
        ),
        (
            "server.shutdown_grace_s",
            o.shutdown_grace_s != n.shutdown_grace_s,
        ),
        ("security", old.security != new.security),
        ("state", old.state != new.state),
    ]
    .into_iter()
    .filter_map(|(name, changed)| changed.then_some(name))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_start_time_settings_need_a_restart() {
        let old = Config::parse("").unwrap();
        let same = Config::parse(
            "[server]\nmax_body_bytes = 10\n[[keys]]\nname = \"a\"\nkey = \"izzi-a-0000\"\n",
        )
        .unwrap();
        assert!(needs_restart(&old, &same).is_empty());
        assert!(same_upstream_settings(&old, &same));
        let moved = Config::parse(
            "[server]\nport = 9000\nconnect_timeout_s = 3\n[security]\nip_block_window_s = 5\n",
        )
        .unwrap();
        assert_eq!(needs_restart(&old, &moved), ["server.port", "security"]);
        assert!(!same_upstream_settings(&old, &moved));
    }
}
