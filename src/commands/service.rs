//! `izzi service install | uninstall | start | stop | restart | status | logs | reload`: the
//! gateway as a per-user daemon. What each OS's manager is told lives in `crate::service`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use serde::Serialize;

use super::block_on;
use crate::cli::{ServiceCommand, ServiceInstallArgs};
use crate::output;
use crate::service::probe::{self, Health};
use crate::service::{Action, Activity, Manager, Record, Runner, Spec, System, logfile};

/// How long a started service gets to answer `/health`.
const START_WAIT: Duration = Duration::from_secs(20);
/// How long a stopped one gets to stop answering (in-flight requests finish first).
const STOP_WAIT: Duration = Duration::from_secs(40);

pub(crate) fn run(command: ServiceCommand) -> Result<()> {
    let run = System;
    match command {
        ServiceCommand::Install(args) => install(&args, false, &run),
        ServiceCommand::Uninstall => {
            if !uninstall(&run)? {
                output::line("The izzi service is not installed.");
            }
            Ok(())
        }
        ServiceCommand::Start => control(Action::Start, &run),
        ServiceCommand::Stop => control(Action::Stop, &run),
        ServiceCommand::Restart => control(Action::Restart, &run),
        ServiceCommand::Status { json } => status(json, &run),
        ServiceCommand::Logs { follow, lines } => logs(follow, lines),
        ServiceCommand::Reload => reload(&run),
    }
}

/// Installs (or replaces) the service and waits until it answers. `by_setup`: `izzi setup
/// --undo` will remove it.
pub(crate) fn install(args: &ServiceInstallArgs, by_setup: bool, run: &dyn Runner) -> Result<()> {
    let Some(binary) = crate::setup::stable_izzi() else {
        let exe = std::env::current_exe().unwrap_or_default();
        bail!(
            "this izzi runs from `{}`, a temporary copy (npx's cache or a temp dir) that will vanish, so a service cannot run it; install izzi first with `npm install -g izziapi` (or `curl -fsSL https://github.com/izziapi/izzi/releases/latest/download/install.sh | sh`), then run `izzi service install` with that binary",
            exe.display()
        );
    };
    let izzi_home = absolute(&crate::env::izzi_home()?)?;
    let config = args
        .config
        .as_deref()
        .map(|p| {
            fs_err::canonicalize(p)
                .with_context(|| format!("the config file `{}` cannot be read", p.display()))
        })
        .transpose()?;
    let manager = Manager::native()?;
    let spec = Spec {
        binary,
        config,
        port: args.port,
        izzi_home: izzi_home.clone(),
        keyring_file: crate::env::keyring_forced_file(),
    };
    // A config that does not load would leave a service restarting forever.
    let address = spec.address()?;
    let record = Record {
        manager,
        file: manager.definition_path(&crate::env::home_dir()?, &izzi_home),
        spec,
        address,
        by_setup,
    };
    if let Err(why) = manager.available(run) {
        bail!(
            "{why}; izzi cannot be installed as a service here, so run the gateway in the foreground (or under your own supervisor): {}",
            record.spec.foreground()
        );
    }
    if let Some(old) = Record::load(&izzi_home)? {
        remove(&old, &izzi_home, run)?;
    }
    if let Err(err) = std::net::TcpListener::bind(address)
        && err.kind() == std::io::ErrorKind::AddrInUse
    {
        bail!("{}", block_on(probe::holder(address))?);
    }
    record.write(&izzi_home)?;
    manager.enable(run, &record.file)?;
    let health = wait_until_up(&record, address, None, run)?;
    output::line(format_args!(
        "The izzi service is installed ({}, `{}`) and serves on http://{address} (pid {}); it starts at every login and restarts after a crash.",
        manager.name(),
        record.file.display(),
        health.pid
    ));
    output::line("Remove it with `izzi service uninstall`.");
    Ok(())
}

/// Stops and removes the service, if one is installed; whether one was.
pub(crate) fn uninstall(run: &dyn Runner) -> Result<bool> {
    let izzi_home = crate::env::izzi_home()?;
    let Some(record) = Record::load(&izzi_home)? else {
        return Ok(false);
    };
    remove(&record, &izzi_home, run)?;
    output::line(format_args!(
        "The izzi service is stopped and removed (`{}`).",
        record.file.display()
    ));
    Ok(true)
}

/// Whether `izzi setup` installed the service.
pub(crate) fn installed_by_setup() -> Result<bool> {
    Ok(Record::load(&crate::env::izzi_home()?)?.is_some_and(|r| r.by_setup))
}

fn remove(record: &Record, izzi_home: &Path, run: &dyn Runner) -> Result<()> {
    let address = record.address();
    if let Err(err) = record.manager.disable(run) {
        // Unregistered by hand, or the manager is gone: the files go all the same.
        output::notice(format_args!(
            "note: {err:#}; removing the service's files anyway"
        ));
    }
    record.remove(izzi_home)?;
    record.manager.forget(run)?;
    wait_until_down(address)
}

fn installed() -> Result<(Record, SocketAddr)> {
    let record = Record::load(&crate::env::izzi_home()?)?
        .ok_or_else(|| anyhow!("the izzi service is not installed; run `izzi service install`"))?;
    let address = record.address();
    Ok((record, address))
}

fn control(action: Action, run: &dyn Runner) -> Result<()> {
    let (record, address) = installed()?;
    let before = block_on(probe::health(address))?;
    record.manager.control(run, action)?;
    match action {
        Action::Stop => {
            wait_until_down(address)?;
            output::line("The izzi service is stopped; it starts again at the next login.");
        }
        Action::Start | Action::Restart => {
            let old = before.filter(|_| action == Action::Restart).map(|h| h.pid);
            let health = wait_until_up(&record, address, old, run)?;
            output::line(format_args!(
                "The izzi service serves on http://{address} (pid {}).",
                health.pid
            ));
        }
    }
    Ok(())
}

/// `izzi service status --json`; its field names are stable.
#[derive(Debug, Serialize)]
struct Status {
    installed: bool,
    manager: Manager,
    /// The definition file, when installed.
    file: Option<PathBuf>,
    /// What the manager says: running, starting, stopped, failed, unknown.
    state: Activity,
    address: String,
    /// A gateway answers `/health` on the address.
    running: bool,
    health: Option<Health>,
}

fn status(json: bool, run: &dyn Runner) -> Result<()> {
    let record = Record::load(&crate::env::izzi_home()?)?;
    let (manager, address) = match &record {
        Some(record) => (record.manager, record.address()),
        None => (Manager::native()?, default_address()?),
    };
    let health = block_on(probe::health(address))?;
    let status = Status {
        installed: record.is_some(),
        manager,
        file: record.as_ref().map(|r| r.file.clone()),
        state: if record.is_some() {
            manager.activity(run)
        } else {
            Activity::Unknown
        },
        address: format!("http://{address}"),
        running: health.is_some(),
        health,
    };
    if json {
        output::json(&status);
        return Ok(());
    }
    match &status.file {
        Some(file) => output::line(format_args!(
            "Service: installed ({}, `{}`), {}",
            manager.name(),
            file.display(),
            activity_text(status.state)
        )),
        None => output::line("Service: not installed; run `izzi service install`"),
    }
    match &status.health {
        Some(h) => {
            output::line(format_args!(
                "Gateway: {} on {}: izzi {}, pid {}, up {}",
                h.status,
                status.address,
                h.version,
                h.pid,
                uptime(h.uptime_s)
            ));
            if let Some(path) = &h.config.path {
                output::line(format_args!("Config: `{}`", path.display()));
            }
            if let Some(error) = &h.config.error {
                output::line(format_args!(
                    "Config reload failed (the previous config serves): {error}"
                ));
            }
        }
        None => output::line(format_args!(
            "Gateway: nothing answers on {}",
            status.address
        )),
    }
    Ok(())
}

/// The service as `izzi status` reports it; its field names are stable.
#[derive(Debug, Serialize)]
pub(crate) struct Summary {
    installed: bool,
    /// A gateway answers on the service's address.
    running: bool,
    address: Option<String>,
    pid: Option<u32>,
}

impl Summary {
    /// The service's state, and whether its address answers.
    pub(crate) fn read() -> Result<Self> {
        let Some(record) = Record::load(&crate::env::izzi_home()?)? else {
            return Ok(Self {
                installed: false,
                running: false,
                address: None,
                pid: None,
            });
        };
        let address = record.address();
        let health = block_on(probe::health(address))?;
        Ok(Self {
            installed: true,
            running: health.is_some(),
            address: Some(format!("http://{address}")),
            pid: health.map(|h| h.pid),
        })
    }

    pub(crate) fn text(&self) -> String {
        match (self.installed, &self.address, self.pid) {
            (false, _, _) => {
                "not installed (`izzi service install` keeps the gateway running)".to_owned()
            }
            (true, Some(address), Some(pid)) => {
                format!("installed, running on {address} (pid {pid})")
            }
            (true, address, _) => format!(
                "installed, not answering on {}; see `izzi service status`",
                address.as_deref().unwrap_or("its address")
            ),
        }
    }
}

fn activity_text(activity: Activity) -> &'static str {
    match activity {
        Activity::Running => "running",
        Activity::Starting => "starting",
        Activity::Stopped => "stopped",
        Activity::Failed => "failed (see `izzi service logs`)",
        Activity::Unknown => "not known to the manager",
    }
}

fn uptime(seconds: u64) -> String {
    match seconds {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m {}s", s / 60, s % 60),
        s if s < 86_400 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        s => format!("{}d {}h", s / 86_400, s % 86_400 / 3600),
    }
}

fn logs(follow: bool, lines: usize) -> Result<()> {
    let izzi_home = crate::env::izzi_home()?;
    let manager = match Record::load(&izzi_home)? {
        Some(record) => record.manager,
        None => Manager::native()?,
    };
    if let Some((program, args)) = manager.journal(lines, follow) {
        let status = std::process::Command::new(&program)
            .args(&args)
            .status()
            .with_context(|| format!("cannot run `{program}`"))?;
        if !status.success() {
            bail!("`{program} {}` failed ({status})", args.join(" "));
        }
        return Ok(());
    }
    let dir = logfile::dir(&izzi_home);
    let (tail, mut seen) = logfile::tail(&dir, lines)?;
    for line in tail {
        output::line(line);
    }
    if !follow {
        return Ok(());
    }
    loop {
        std::thread::sleep(Duration::from_millis(250));
        let (fresh, next) = logfile::since(&dir, seen)?;
        for line in fresh {
            output::line(line);
        }
        seen = next;
    }
}

/// Signals the gateway on the service's address (or the config's, without a service) to
/// re-read its config, and reports how that went.
fn reload(run: &dyn Runner) -> Result<()> {
    let izzi_home = crate::env::izzi_home()?;
    let record = Record::load(&izzi_home)?;
    let address = match &record {
        Some(record) => record.address(),
        None => default_address()?,
    };
    let before = block_on(probe::health(address))?.ok_or_else(|| {
        anyhow!("no izzi gateway answers on {address}; start one with `izzi service start` or `izzi serve`")
    })?;
    #[cfg(unix)]
    {
        let _ = (run, record);
        let pid = i32::try_from(before.pid)
            .ok()
            .and_then(rustix::process::Pid::from_raw)
            .ok_or_else(|| anyhow!("the gateway reports an impossible pid {}", before.pid))?;
        rustix::process::kill_process(pid, rustix::process::Signal::HUP)
            .with_context(|| format!("cannot signal the gateway (pid {})", before.pid))?;
        wait_for_reload(address, &before)
    }
    #[cfg(not(unix))]
    {
        // No signals: the service restarts on its new config.
        let record = record.ok_or_else(|| {
            anyhow!("only the service reloads here; restart `izzi serve` to read the config")
        })?;
        record.manager.control(run, Action::Restart)?;
        wait_until_up(&record, address, Some(before.pid), run)?;
        output::line("The izzi service restarted with the new config.");
        Ok(())
    }
}

/// Waits until the gateway counts one more reload than `before`, and reports how it went.
#[cfg(unix)]
fn wait_for_reload(address: SocketAddr, before: &Health) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(now) = block_on(probe::health(address))?
            && now.config.reloads > before.config.reloads
        {
            if let Some(error) = now.config.error {
                bail!(
                    "the config was not reloaded; the gateway keeps serving with its previous config: {error}"
                );
            }
            match now.config.path {
                Some(path) => output::line(format_args!(
                    "The gateway (pid {}) reloaded `{}`.",
                    now.pid,
                    path.display()
                )),
                None => output::line(format_args!(
                    "The gateway (pid {}) reloaded: no config file, the defaults.",
                    now.pid
                )),
            }
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "the gateway on {address} did not report a reload within 5 seconds; see `izzi service logs`"
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The address `izzi serve` would take from the default config.
fn default_address() -> Result<SocketAddr> {
    let (config, _) = crate::config::Config::load(None)?;
    Ok(SocketAddr::new(
        probe::reachable(config.server.host),
        config.server.port,
    ))
}

/// Waits until a gateway answers on `address` (one other than pid `old`, on a restart); if none
/// does in time, says what the manager and the last log lines say.
fn wait_until_up(
    record: &Record,
    address: SocketAddr,
    old: Option<u32>,
    run: &dyn Runner,
) -> Result<Health> {
    let deadline = Instant::now() + START_WAIT;
    loop {
        if let Some(health) = block_on(probe::health(address))?
            && Some(health.pid) != old
        {
            return Ok(health);
        }
        if Instant::now() > deadline {
            bail!(
                "the service did not answer on http://{address} within {} seconds; {} says it is {}; its last log lines:\n{}\nsee more with `izzi service logs`",
                START_WAIT.as_secs(),
                record.manager.name(),
                activity_text(record.manager.activity(run)),
                recent_logs(record, run)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The service's last log lines, from the journal or its log file.
fn recent_logs(record: &Record, run: &dyn Runner) -> String {
    const LINES: usize = 10;
    let lines = match record.manager.journal(LINES, false) {
        Some((program, args)) => run
            .run(&program, &args)
            .map(|ran| ran.stdout.lines().map(str::to_owned).collect()),
        None => logfile::tail(&record.spec.log_dir(), LINES).map(|(lines, _)| lines),
    };
    match lines {
        Ok(lines) if !lines.is_empty() => lines
            .iter()
            .map(|l| format!("  {l}"))
            .collect::<Vec<_>>()
            .join("\n"),
        Ok(_) => "  (none)".to_owned(),
        Err(err) => format!("  (cannot read them: {err:#})"),
    }
}

fn wait_until_down(address: SocketAddr) -> Result<()> {
    let deadline = Instant::now() + STOP_WAIT;
    while block_on(probe::health(address))?.is_some() {
        if Instant::now() > deadline {
            bail!("a gateway still answers on http://{address}; see `izzi service status`");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

fn absolute(path: &Path) -> Result<PathBuf> {
    crate::files::create_dirs(path)?;
    Ok(fs_err::canonicalize(path)?)
}
