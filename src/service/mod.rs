//! `izzi service`: the gateway as a per-user daemon under the OS's own manager — a systemd user
//! unit (Linux), a LaunchAgent (macOS), a logon task of Task Scheduler (Windows).
//!
//! Each manager is a pure renderer of its definition file from a [`Spec`] plus the manager's
//! commands, run through a [`Runner`]. What was installed is recorded in `$IZZI_HOME/service.json`
//! before the definition is written, so uninstall removes exactly that. Prints nothing.

mod launchd;
pub(crate) mod logfile;
pub(crate) mod probe;
mod systemd;
mod windows;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};

use crate::files::{self, Mode};

/// What the service runs: `BINARY serve [--config PATH] [--port N]`, with `IZZI_HOME` (and
/// `IZZI_KEYRING=file` when it is set now) so the daemon uses what this shell uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Spec {
    pub(crate) binary: PathBuf,
    pub(crate) config: Option<PathBuf>,
    pub(crate) port: Option<u16>,
    pub(crate) izzi_home: PathBuf,
    pub(crate) keyring_file: bool,
}

impl Spec {
    /// The arguments after the binary. `log_dir`: managers without a journal get a rotated log
    /// file under `IZZI_HOME/logs`.
    fn args(&self, log_dir: bool) -> Vec<String> {
        let mut args = vec!["serve".to_owned()];
        if let Some(config) = &self.config {
            args.extend(["--config".to_owned(), config.display().to_string()]);
        }
        if let Some(port) = self.port {
            args.extend(["--port".to_owned(), port.to_string()]);
        }
        if log_dir {
            args.extend(["--log-dir".to_owned(), self.log_dir().display().to_string()]);
        }
        args
    }

    /// The environment the daemon gets.
    fn env(&self) -> Vec<(&'static str, String)> {
        let mut env = vec![(crate::env::IZZI_HOME, self.izzi_home.display().to_string())];
        if self.keyring_file {
            env.push((crate::env::IZZI_KEYRING, "file".to_owned()));
        }
        env
    }

    /// The address the gateway will listen on: the config's `server`, with `--port`.
    pub(crate) fn address(&self) -> Result<SocketAddr> {
        let (config, _) = crate::config::Config::load(self.config.as_deref())?;
        Ok(SocketAddr::new(
            probe::reachable(config.server.host),
            self.port.unwrap_or(config.server.port),
        ))
    }

    /// Where the daemon's log files go when the manager keeps no journal.
    pub(crate) fn log_dir(&self) -> PathBuf {
        logfile::dir(&self.izzi_home)
    }

    /// The command that runs the gateway in the foreground, for where no manager is usable.
    pub(crate) fn foreground(&self) -> String {
        let mut words = vec![self.binary.display().to_string()];
        words.extend(self.args(false));
        words
            .iter()
            .map(|w| shell_word(w))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// `word` as a POSIX shell reads it back: as it is when plain, else in single quotes.
fn shell_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-:=+,@%".contains(c));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// The OS's service manager.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Manager {
    /// A systemd user unit, `~/.config/systemd/user/izzi.service`.
    Systemd,
    /// A LaunchAgent, `~/Library/LaunchAgents/com.izziapi.izzi.plist`.
    Launchd,
    /// A Task Scheduler task run at logon, defined by `IZZI_HOME/service/izzi-task.xml`.
    TaskScheduler,
}

/// The manager's own view of the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Activity {
    Running,
    Starting,
    Stopped,
    Failed,
    /// The manager does not know it (not loaded, not registered).
    Unknown,
}

impl Manager {
    /// This platform's manager, or the one `IZZI_SERVICE_MANAGER` names.
    pub(crate) fn native() -> Result<Self> {
        if let Some(name) = crate::env::service_manager() {
            return serde_json::from_value(serde_json::Value::String(name.clone())).map_err(|_| {
                anyhow::anyhow!(
                    "`{}` is `{name}`, not one of systemd, launchd, task-scheduler",
                    crate::env::IZZI_SERVICE_MANAGER
                )
            });
        }
        Ok(if cfg!(target_os = "macos") {
            Self::Launchd
        } else if cfg!(windows) {
            Self::TaskScheduler
        } else {
            Self::Systemd
        })
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Systemd => "systemd (user unit)",
            Self::Launchd => "launchd (LaunchAgent)",
            Self::TaskScheduler => "Task Scheduler (logon task)",
        }
    }

    /// Where the definition file goes.
    pub(crate) fn definition_path(self, home: &Path, izzi_home: &Path) -> PathBuf {
        match self {
            Self::Systemd => systemd::unit_path(home),
            Self::Launchd => launchd::plist_path(home),
            Self::TaskScheduler => windows::task_path(izzi_home),
        }
    }

    /// The definition file's bytes.
    pub(crate) fn render(self, spec: &Spec) -> Vec<u8> {
        match self {
            Self::Systemd => systemd::unit(spec).into_bytes(),
            Self::Launchd => launchd::plist(spec).into_bytes(),
            Self::TaskScheduler => windows::encode(&windows::task(spec, &windows::user())),
        }
    }

    /// Whether the manager can be used here; if not, why.
    pub(crate) fn available(self, run: &dyn Runner) -> Result<(), String> {
        match self {
            Self::Systemd => systemd::available(run),
            Self::Launchd | Self::TaskScheduler => Ok(()),
        }
    }

    /// Registers the written definition and starts the service, now and at every login.
    pub(crate) fn enable(self, run: &dyn Runner, definition: &Path) -> Result<()> {
        match self {
            Self::Systemd => systemd::enable(run),
            Self::Launchd => launchd::enable(run, definition),
            Self::TaskScheduler => windows::enable(run, definition),
        }
    }

    /// Stops the service and unregisters it (the definition file stays for the caller).
    pub(crate) fn disable(self, run: &dyn Runner) -> Result<()> {
        match self {
            Self::Systemd => systemd::disable(run),
            Self::Launchd => launchd::disable(run),
            Self::TaskScheduler => windows::disable(run),
        }
    }

    /// Once the definition file is removed: makes the manager forget it.
    pub(crate) fn forget(self, run: &dyn Runner) -> Result<()> {
        match self {
            Self::Systemd => systemd::forget(run),
            Self::Launchd | Self::TaskScheduler => Ok(()),
        }
    }

    /// Starts, stops or restarts the registered service.
    pub(crate) fn control(self, run: &dyn Runner, action: Action) -> Result<()> {
        match self {
            Self::Systemd => systemd::control(run, action),
            Self::Launchd => launchd::control(run, action),
            Self::TaskScheduler => windows::control(run, action),
        }
    }

    /// What the manager says about the service.
    pub(crate) fn activity(self, run: &dyn Runner) -> Activity {
        match self {
            Self::Systemd => systemd::activity(run),
            Self::Launchd => launchd::activity(run),
            Self::TaskScheduler => windows::activity(run),
        }
    }

    /// The command that shows the service's logs, when the manager keeps them (a journal).
    pub(crate) fn journal(self, lines: usize, follow: bool) -> Option<(String, Vec<String>)> {
        match self {
            Self::Systemd => Some(systemd::journal(lines, follow)),
            Self::Launchd | Self::TaskScheduler => None,
        }
    }
}

/// What `start`, `stop` and `restart` ask of the manager.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    Start,
    Stop,
    Restart,
}

/// Runs the managers' commands: the real programs, or a fake in tests.
pub(crate) trait Runner {
    /// Runs `program` with `args`, its output captured.
    fn run(&self, program: &str, args: &[String]) -> Result<Ran>;
}

/// A finished command.
#[derive(Debug, Clone, Default)]
pub(crate) struct Ran {
    pub(crate) success: bool,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Ran {
    /// `Ok` if it succeeded, else an error that quotes the command and what it said.
    pub(crate) fn check(self, program: &str, args: &[String]) -> Result<Self> {
        if self.success {
            return Ok(self);
        }
        let said = self.stderr.trim();
        let said = if said.is_empty() {
            self.stdout.trim()
        } else {
            said
        };
        anyhow::bail!("`{program} {}` failed: {said}", args.join(" "))
    }
}

/// The OS's programs.
pub(crate) struct System;

impl Runner for System {
    fn run(&self, program: &str, args: &[String]) -> Result<Ran> {
        let out = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("cannot run `{program}`"))?;
        Ok(Ran {
            success: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }
}

/// Runs `program` with `args` and checks that it succeeded.
fn run_checked(run: &dyn Runner, program: &str, args: &[&str]) -> Result<Ran> {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    run.run(program, &args)?.check(program, &args)
}

/// What `izzi service install` did, kept in `IZZI_HOME/service.json` until uninstall.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Record {
    pub(crate) manager: Manager,
    /// The definition file written.
    pub(crate) file: PathBuf,
    pub(crate) spec: Spec,
    /// Where it listened when installed, for when its config no longer loads.
    pub(crate) address: SocketAddr,
    /// `izzi setup --local` installed it, so `izzi setup --undo` removes it.
    #[serde(default)]
    pub(crate) by_setup: bool,
}

impl Record {
    fn path(izzi_home: &Path) -> PathBuf {
        izzi_home.join("service.json")
    }

    /// The record, if a service is installed.
    pub(crate) fn load(izzi_home: &Path) -> Result<Option<Self>> {
        let path = Self::path(izzi_home);
        let text = match fs_err::read_to_string(&path) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(err.into()),
        };
        serde_json::from_str(&text)
            .map(Some)
            .with_context(|| format!("`{}` is not a service record", path.display()))
    }

    /// Writes the record first, then the definition file.
    pub(crate) fn write(&self, izzi_home: &Path) -> Result<()> {
        files::create_dirs(izzi_home)?;
        let json = serde_json::to_vec_pretty(self)?;
        files::write_atomic(&Self::path(izzi_home), &json, Mode::Keep)?;
        if let Some(dir) = self.file.parent() {
            files::create_dirs(dir)?;
        }
        files::write_atomic(&self.file, &self.manager.render(&self.spec), Mode::Keep)
    }

    /// Removes the definition file, then the record.
    pub(crate) fn remove(&self, izzi_home: &Path) -> Result<()> {
        for path in [&self.file, &Self::path(izzi_home)] {
            match fs_err::remove_file(path) {
                Ok(()) => {}
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                Err(err) => return Err(err.into()),
            }
        }
        Ok(())
    }

    /// The address the service listens on: its config's `server` with the port it was given,
    /// or, while the config does not load (being edited), the address it had when installed.
    pub(crate) fn address(&self) -> SocketAddr {
        self.spec.address().unwrap_or(self.address)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The spec the golden files in `tests/fixtures/service` are rendered from.
    pub(super) fn spec() -> Spec {
        Spec {
            binary: PathBuf::from("/home/ada/.local/bin/izzi"),
            config: Some(PathBuf::from("/home/ada/.config/izzi/config.toml")),
            port: Some(8745),
            izzi_home: PathBuf::from("/home/ada/.config/izzi"),
            keyring_file: false,
        }
    }

    #[test]
    fn the_foreground_command_runs_what_the_service_would() {
        let mut spec = spec();
        assert_eq!(
            spec.foreground(),
            "/home/ada/.local/bin/izzi serve --config /home/ada/.config/izzi/config.toml --port 8745"
        );
        spec.binary = PathBuf::from("/opt/my tools/izzi");
        spec.config = None;
        spec.port = None;
        assert_eq!(spec.foreground(), "'/opt/my tools/izzi' serve");
    }
}
