//! Windows: a Task Scheduler task that starts at the user's logon and restarts after a failure,
//! registered with `schtasks /Create /XML` (a task for one's own logon needs no admin rights).
//! Its definition is kept in `IZZI_HOME/service/izzi-task.xml`; the gateway writes a rotated
//! log under `IZZI_HOME/logs`, as Windows keeps no journal for it.

use std::path::{Path, PathBuf};

use super::launchd::xml;
use super::{Action, Activity, Runner, Spec, run_checked};

const TASK: &str = "izzi";

pub(super) fn task_path(izzi_home: &Path) -> PathBuf {
    izzi_home.join("service").join("izzi-task.xml")
}

/// `DOMAIN\user`, whose logon starts the task.
pub(super) fn user() -> String {
    crate::env::windows_user()
}

/// The task definition (the text; [`encode`] gives the bytes `schtasks` reads).
pub(super) fn task(spec: &Spec, user: &str) -> String {
    let args: Vec<String> = spec.args(true).iter().map(|a| windows_arg(a)).collect();
    format!(
        r#"<?xml version="1.0" encoding="UTF-16"?>
<!-- Written by `izzi service install`; remove it with `izzi service uninstall`. -->
<Task version="1.2" xmlns="http://schemas.microsoft.com/windows/2004/02/mit/task">
  <RegistrationInfo>
    <Description>izzi gateway: one key and one endpoint for every AI coding tool</Description>
    <URI>\{TASK}</URI>
  </RegistrationInfo>
  <Triggers>
    <LogonTrigger>
      <Enabled>true</Enabled>
      <UserId>{user}</UserId>
    </LogonTrigger>
  </Triggers>
  <Principals>
    <Principal id="Author">
      <UserId>{user}</UserId>
      <LogonType>InteractiveToken</LogonType>
      <RunLevel>LeastPrivilege</RunLevel>
    </Principal>
  </Principals>
  <Settings>
    <MultipleInstancesPolicy>IgnoreNew</MultipleInstancesPolicy>
    <DisallowStartIfOnBatteries>false</DisallowStartIfOnBatteries>
    <StopIfGoingOnBatteries>false</StopIfGoingOnBatteries>
    <StartWhenAvailable>true</StartWhenAvailable>
    <ExecutionTimeLimit>PT0S</ExecutionTimeLimit>
    <RestartOnFailure>
      <Interval>PT1M</Interval>
      <Count>999</Count>
    </RestartOnFailure>
    <IdleSettings>
      <StopOnIdleEnd>false</StopOnIdleEnd>
      <RestartOnIdle>false</RestartOnIdle>
    </IdleSettings>
    <AllowStartOnDemand>true</AllowStartOnDemand>
    <Enabled>true</Enabled>
    <Hidden>true</Hidden>
  </Settings>
  <Actions Context="Author">
    <Exec>
      <Command>{command}</Command>
      <Arguments>{args}</Arguments>
    </Exec>
  </Actions>
</Task>
"#,
        user = xml(user),
        command = xml(&spec.binary.display().to_string()),
        args = xml(&args.join(" ")),
    )
}

/// UTF-16 (little-endian, with a byte-order mark), as the declaration says.
pub(super) fn encode(text: &str) -> Vec<u8> {
    let mut bytes = vec![0xFF, 0xFE];
    for unit in text.encode_utf16() {
        bytes.extend_from_slice(&unit.to_le_bytes());
    }
    bytes
}

/// One argument as Windows' command-line parsing reads it back.
fn windows_arg(arg: &str) -> String {
    if !arg.is_empty() && !arg.contains([' ', '\t', '"']) {
        return arg.to_owned();
    }
    format!("\"{}\"", arg.replace('"', "\\\""))
}

pub(super) fn enable(run: &dyn Runner, definition: &Path) -> anyhow::Result<()> {
    let definition = definition.display().to_string();
    run_checked(
        run,
        "schtasks",
        &["/Create", "/TN", TASK, "/XML", &definition, "/F"],
    )?;
    run_checked(run, "schtasks", &["/Run", "/TN", TASK])?;
    Ok(())
}

pub(super) fn disable(run: &dyn Runner) -> anyhow::Result<()> {
    // Not running is fine; the task is deleted either way.
    let _ = run_checked(run, "schtasks", &["/End", "/TN", TASK]);
    run_checked(run, "schtasks", &["/Delete", "/TN", TASK, "/F"])?;
    Ok(())
}

pub(super) fn control(run: &dyn Runner, action: Action) -> anyhow::Result<()> {
    if matches!(action, Action::Stop | Action::Restart) {
        run_checked(run, "schtasks", &["/End", "/TN", TASK])?;
    }
    if matches!(action, Action::Start | Action::Restart) {
        run_checked(run, "schtasks", &["/Run", "/TN", TASK])?;
    }
    Ok(())
}

pub(super) fn activity(run: &dyn Runner) -> Activity {
    let args = ["/Query", "/TN", TASK, "/FO", "CSV", "/NH"].map(str::to_owned);
    match run.run("schtasks", &args) {
        Ok(ran) if ran.success => {
            let status = ran.stdout.rsplit(',').next().unwrap_or_default();
            match status.trim().trim_matches('"') {
                "Running" => Activity::Running,
                "Ready" => Activity::Stopped,
                _ => Activity::Unknown,
            }
        }
        _ => Activity::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_task_matches_its_golden_file() {
        assert_eq!(
            task(&super::super::tests::spec(), r"ADA-PC\ada"),
            include_str!("../../tests/fixtures/service/izzi-task.xml")
        );
    }

    #[test]
    fn the_task_is_utf16_with_a_byte_order_mark() {
        assert_eq!(
            encode("<a/>"),
            [0xFF, 0xFE, b'<', 0, b'a', 0, b'/', 0, b'>', 0]
        );
    }
}
