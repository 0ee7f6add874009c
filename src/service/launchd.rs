//! macOS: a LaunchAgent, `~/Library/LaunchAgents/com.izziapi.izzi.plist`, loaded with
//! `launchctl bootstrap gui/UID`. launchd keeps no journal for it, so the gateway writes a
//! rotated log under `IZZI_HOME/logs`, and launchd sends what reaches stdout/stderr before that
//! (a crash) beside it.

use std::path::{Path, PathBuf};

use super::{Action, Activity, Runner, Spec, run_checked};

const LABEL: &str = "com.izziapi.izzi";

pub(super) fn plist_path(home: &Path) -> PathBuf {
    home.join("Library/LaunchAgents")
        .join(format!("{LABEL}.plist"))
}

/// The property list.
pub(super) fn plist(spec: &Spec) -> String {
    let mut args = format!(
        "\t\t<string>{}</string>\n",
        xml(&spec.binary.display().to_string())
    );
    for arg in spec.args(true) {
        args.push_str(&format!("\t\t<string>{}</string>\n", xml(&arg)));
    }
    let env: String = spec
        .env()
        .iter()
        .map(|(name, value)| {
            format!(
                "\t\t<key>{name}</key>\n\t\t<string>{}</string>\n",
                xml(value)
            )
        })
        .collect();
    let logs = spec.log_dir();
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<!-- Written by `izzi service install`; remove it with `izzi service uninstall`. -->
<plist version="1.0">
<dict>
	<key>Label</key>
	<string>{LABEL}</string>
	<key>ProgramArguments</key>
	<array>
{args}	</array>
	<key>EnvironmentVariables</key>
	<dict>
{env}	</dict>
	<key>RunAtLoad</key>
	<true/>
	<key>KeepAlive</key>
	<dict>
		<key>SuccessfulExit</key>
		<false/>
	</dict>
	<key>ThrottleInterval</key>
	<integer>2</integer>
	<key>ExitTimeOut</key>
	<integer>40</integer>
	<key>StandardOutPath</key>
	<string>{stdout}</string>
	<key>StandardErrorPath</key>
	<string>{stderr}</string>
</dict>
</plist>
"#,
        stdout = xml(&logs.join("stdout.log").display().to_string()),
        stderr = xml(&logs.join("stderr.log").display().to_string()),
    )
}

/// Text as XML character data.
pub(super) fn xml(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// `gui/UID`, the logged-in user's domain.
fn domain() -> String {
    #[cfg(unix)]
    let uid = rustix::process::getuid().as_raw();
    #[cfg(not(unix))]
    let uid = 0;
    format!("gui/{uid}")
}

fn target() -> String {
    format!("{}/{LABEL}", domain())
}

pub(super) fn enable(run: &dyn Runner, plist: &Path) -> anyhow::Result<()> {
    let plist = plist.display().to_string();
    run_checked(run, "launchctl", &["bootstrap", &domain(), &plist])?;
    Ok(())
}

pub(super) fn disable(run: &dyn Runner) -> anyhow::Result<()> {
    run_checked(run, "launchctl", &["bootout", &target()])?;
    Ok(())
}

pub(super) fn control(run: &dyn Runner, action: Action) -> anyhow::Result<()> {
    let target = target();
    let args: &[&str] = match action {
        Action::Start => &["kickstart", &target],
        // A graceful exit (0) is a successful one, which `KeepAlive` does not restart.
        Action::Stop => &["kill", "SIGTERM", &target],
        Action::Restart => &["kickstart", "-k", &target],
    };
    run_checked(run, "launchctl", args)?;
    Ok(())
}

pub(super) fn activity(run: &dyn Runner) -> Activity {
    let args = ["print".to_owned(), target()];
    match run.run("launchctl", &args) {
        Ok(ran) if ran.success => {
            let state = ran
                .stdout
                .lines()
                .find_map(|l| l.trim().strip_prefix("state = "))
                .unwrap_or_default();
            match state {
                "running" => Activity::Running,
                "spawn scheduled" | "xpcproxy" => Activity::Starting,
                _ => Activity::Stopped,
            }
        }
        _ => Activity::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plist_matches_its_golden_file() {
        assert_eq!(
            plist(&super::super::tests::spec()),
            include_str!("../../tests/fixtures/service/com.izziapi.izzi.plist")
        );
    }
}
