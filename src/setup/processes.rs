//! Which programs are running, so setup can leave alone files that a running app rewrites from
//! memory (Cline's `~/.cline/data`). Linux reads `/proc`; macOS runs `ps`; Windows `tasklist`.
//! Reads only; a listing that fails counts as "nothing running" and is said so by the caller.

use std::process::Command;

/// A running process: its id and executable name (or path, on macOS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Process {
    pub(crate) pid: u32,
    pub(crate) name: String,
}

/// Every process this user can see, or `None` if they cannot be listed.
pub(crate) fn list() -> Option<Vec<Process>> {
    if cfg!(target_os = "linux") {
        linux()
    } else if cfg!(windows) {
        let out = Command::new("tasklist")
            .args(["/fo", "csv", "/nh"])
            .output()
            .ok()?;
        Some(parse_tasklist(&String::from_utf8_lossy(&out.stdout)))
    } else {
        let out = Command::new("ps")
            .args(["-axo", "pid=,comm="])
            .output()
            .ok()?;
        Some(parse_ps(&String::from_utf8_lossy(&out.stdout)))
    }
}

fn linux() -> Option<Vec<Process>> {
    let entries = fs_err::read_dir("/proc").ok()?;
    Some(
        entries
            .filter_map(Result::ok)
            .filter_map(|e| {
                let pid: u32 = e.file_name().to_str()?.parse().ok()?;
                let comm = fs_err::read_to_string(e.path().join("comm")).ok()?;
                // Node CLIs run as `node …/cline`: the script's name is what identifies them.
                let cmdline = fs_err::read(e.path().join("cmdline")).unwrap_or_default();
                let script = cmdline
                    .split(|b| *b == 0)
                    .nth(1)
                    .map(|arg| String::from_utf8_lossy(arg).into_owned())
                    .filter(|_| comm.trim() == "node");
                Some(Process {
                    pid,
                    name: script.unwrap_or_else(|| comm.trim().to_owned()),
                })
            })
            .collect(),
    )
}

fn parse_ps(text: &str) -> Vec<Process> {
    text.lines()
        .filter_map(|line| {
            let (pid, name) = line.trim().split_once(char::is_whitespace)?;
            Some(Process {
                pid: pid.parse().ok()?,
                name: name.trim().to_owned(),
            })
        })
        .collect()
}

fn parse_tasklist(text: &str) -> Vec<Process> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split("\",\"");
            let name = fields.next()?.trim_start_matches('"').to_owned();
            let pid = fields.next()?.parse().ok()?;
            Some(Process { pid, name })
        })
        .collect()
}

/// The base name of a process, lower case, without `.exe`: what hosts are matched on.
pub(crate) fn base_name(process: &Process) -> String {
    let name = process
        .name
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or(&process.name)
        .to_ascii_lowercase();
    name.strip_suffix(".exe")
        .or_else(|| name.strip_suffix(".js"))
        .unwrap_or(&name)
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_listings() {
        let ps = parse_ps(
            "  12 /Applications/Visual Studio Code.app/Contents/MacOS/Electron\n 13 /usr/bin/cline\n",
        );
        assert_eq!(
            ps[1],
            Process {
                pid: 13,
                name: "/usr/bin/cline".to_owned()
            }
        );
        assert_eq!(base_name(&ps[1]), "cline");
        let win = parse_tasklist("\"Code.exe\",\"4242\",\"Console\",\"1\",\"100 K\"\r\n");
        assert_eq!(
            win,
            vec![Process {
                pid: 4242,
                name: "Code.exe".to_owned()
            }]
        );
        assert_eq!(base_name(&win[0]), "code");
    }

    #[test]
    fn lists_this_process() {
        let me = std::process::id();
        let all = list().unwrap();
        assert!(all.iter().any(|p| p.pid == me));
    }
}
