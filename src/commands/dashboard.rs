//! `izzi dashboard`: the running gateway's page, printed and opened in the browser.

use std::net::SocketAddr;
use std::process::{Command, Stdio};

use anyhow::{Result, bail};

use super::block_on;
use crate::cli::DashboardArgs;
use crate::config::Config;
use crate::output;
use crate::service::probe;

pub(super) fn run(args: &DashboardArgs) -> Result<()> {
    let (config, _) = Config::load(args.config.as_deref())?;
    let address = SocketAddr::new(
        probe::reachable(config.server.host),
        args.port.unwrap_or(config.server.port),
    );
    let url = format!("http://{address}/");
    output::line(&url);
    if block_on(probe::health(address))?.is_none() {
        bail!(
            "no izzi gateway answers on http://{address}; start one with `izzi serve` (or `izzi service install`), or give its port with `--port N`"
        );
    }
    if args.no_open {
        return Ok(());
    }
    if let Err(err) = open(&url) {
        output::notice(format_args!(
            "could not open a browser ({err:#}); open {url} yourself"
        ));
    }
    Ok(())
}

/// Opens `url` with the system's opener, as a double-click would.
fn open(url: &str) -> Result<()> {
    let mut command = if cfg!(target_os = "macos") {
        Command::new("open")
    } else if cfg!(windows) {
        let mut start = Command::new("cmd");
        start.args(["/C", "start", ""]);
        start
    } else {
        Command::new("xdg-open")
    };
    let status = command
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(|err| anyhow::anyhow!("cannot run it: {err}"))?;
    if !status.success() {
        bail!("the opener exited with {status}");
    }
    Ok(())
}
