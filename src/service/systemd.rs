//! Linux: a systemd user unit, `~/.config/systemd/user/izzi.service`, enabled with
//! `systemctl --user enable --now`. Logs go to the journal (stderr, without colour).

use std::path::{Path, PathBuf};

use super::{Action, Activity, Runner, Spec, run_checked};

const UNIT: &str = "izzi.service";

/// Where the unit goes (systemd reads `~/.config/systemd/user` whatever `XDG_CONFIG_HOME`
/// says only when it is unset; izzi writes there, the place every user unit guide names).
pub(super) fn unit_path(home: &Path) -> PathBuf {
    home.join(".config/systemd/user").join(UNIT)
}

/// The unit file.
pub(super) fn unit(spec: &Spec) -> String {
    let mut exec = vec![quote(&spec.binary.display().to_string())];
    exec.extend(spec.args(false).iter().map(|a| quote(a)));
    let env: String = spec
        .env()
        .iter()
        .map(|(name, value)| format!("Environment={}\n", quote(&format!("{name}={value}"))))
        .collect();
    format!(
        "# Written by `izzi service install`; remove it with `izzi service uninstall`.
[Unit]
Description=izzi gateway: one key and one endpoint for every AI coding tool
Documentation=https://github.com/izziapi/izzi

[Service]
Type=simple
ExecStart={exec}
ExecReload=/bin/kill -HUP $MAINPID
{env}Restart=on-failure
RestartSec=2
# In-flight requests get `server.shutdown_grace_s` (30 s by default) to finish.
TimeoutStopSec=40

[Install]
WantedBy=default.target
",
        exec = exec.join(" ")
    )
}

/// One word of a unit's command line or assignment, quoted when it must be: `\` and `"`
/// escaped, `%` (specifiers) and `$` (variables) doubled.
pub(super) fn quote(word: &str) -> String {
    let escaped = word
        .replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('%', "%%")
        .replace('$', "$$");
    if !escaped.is_empty()
        && escaped == word
        && !word
            .chars()
            .any(|c| c.is_whitespace() || c == '\'' || c == ';')
    {
        escaped
    } else {
        format!("\"{escaped}\"")
    }
}

fn systemctl(run: &dyn Runner, args: &[&str]) -> anyhow::Result<super::Ran> {
    let mut all = vec!["--user"];
    all.extend_from_slice(args);
    run_checked(run, "systemctl", &all)
}

/// Whether a user systemd answers (not in most containers, nor WSL without systemd).
pub(super) fn available(run: &dyn Runner) -> Result<(), String> {
    let args = ["--user".to_owned(), "show-environment".to_owned()];
    match run.run("systemctl", &args) {
        Ok(ran) if ran.success => Ok(()),
        Ok(ran) => Err(format!(
            "no user systemd answers here (`systemctl --user` says: {})",
            ran.stderr.trim()
        )),
        Err(err) => Err(format!("{err:#}")),
    }
}

pub(super) fn enable(run: &dyn Runner) -> anyhow::Result<()> {
    systemctl(run, &["daemon-reload"])?;
    systemctl(run, &["enable", "--now", UNIT])?;
    Ok(())
}

pub(super) fn disable(run: &dyn Runner) -> anyhow::Result<()> {
    systemctl(run, &["disable", "--now", UNIT])?;
    Ok(())
}

/// After the unit file is gone, so systemd forgets it.
pub(super) fn forget(run: &dyn Runner) -> anyhow::Result<()> {
    systemctl(run, &["daemon-reload"])?;
    Ok(())
}

pub(super) fn control(run: &dyn Runner, action: Action) -> anyhow::Result<()> {
    let verb = match action {
        Action::Start => "start",
        Action::Stop => "stop",
        Action::Restart => "restart",
    };
    systemctl(run, &[verb, UNIT])?;
    Ok(())
}

pub(super) fn activity(run: &dyn Runner) -> Activity {
    let args = ["--user", "is-active", UNIT].map(str::to_owned);
    // `is-active` prints the state and fails for every state but `active`.
    match run
        .run("systemctl", &args)
        .map(|r| r.stdout.trim().to_owned())
    {
        Ok(state) => match state.as_str() {
            "active" | "reloading" => Activity::Running,
            "activating" => Activity::Starting,
            "inactive" | "deactivating" => Activity::Stopped,
            "failed" => Activity::Failed,
            _ => Activity::Unknown,
        },
        Err(_) => Activity::Unknown,
    }
}

pub(super) fn journal(lines: usize, follow: bool) -> (String, Vec<String>) {
    let mut args = vec![
        "--user".to_owned(),
        "--unit".to_owned(),
        UNIT.to_owned(),
        "--lines".to_owned(),
        lines.to_string(),
        "--no-pager".to_owned(),
    ];
    if follow {
        args.push("--follow".to_owned());
    }
    ("journalctl".to_owned(), args)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_unit_matches_its_golden_file() {
        assert_eq!(
            unit(&super::super::tests::spec()),
            include_str!("../../tests/fixtures/service/izzi.service")
        );
    }

    #[test]
    fn words_are_quoted_only_when_they_must_be() {
        assert_eq!(quote("/usr/bin/izzi"), "/usr/bin/izzi");
        assert_eq!(quote("/opt/my tools/izzi"), "\"/opt/my tools/izzi\"");
        assert_eq!(quote("100%"), "\"100%%\"");
        assert_eq!(quote("$HOME"), "\"$$HOME\"");
        assert_eq!(quote(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(quote(""), "\"\"");
    }
}
