//! `izzi setup` on a terminal: tmux runs it in a pseudo-terminal, and the test answers the
//! dialoguer prompts as a person would (the key, typed hidden; which tools; the confirmation).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::setup::{KEY, Sandbox, text, tree, two_tool_home};
use crate::support::izzi_bin;

/// A private tmux server on its own socket, killed when dropped.
struct Tmux {
    socket: PathBuf,
}

impl Tmux {
    fn cmd(&self, args: &[&str]) -> std::process::Output {
        Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .args(["-f", "/dev/null"])
            .args(args)
            .output()
            .expect("tmux is installed (`.ci/run` installs it)")
    }

    fn start(socket: &Path, command: &str) -> Self {
        let tmux = Self {
            socket: socket.to_path_buf(),
        };
        let out = tmux.cmd(&[
            "new-session",
            "-d",
            "-s",
            "izzi",
            "-x",
            "160",
            "-y",
            "50",
            command,
        ]);
        assert!(out.status.success(), "tmux: {}", text(&out.stderr));
        tmux
    }

    fn screen(&self) -> String {
        text(
            &self
                .cmd(&["capture-pane", "-p", "-J", "-S", "-", "-t", "izzi"])
                .stdout,
        )
    }

    fn wait_for(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let screen = self.screen();
            if screen.contains(needle) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "no `{needle}` on the terminal:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "izzi"];
        args.extend_from_slice(keys);
        assert!(self.cmd(&args).status.success());
    }

    fn type_text(&self, literal: &str) {
        assert!(
            self.cmd(&["send-keys", "-t", "izzi", "-l", literal])
                .status
                .success()
        );
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd(&["kill-server"]);
    }
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[test]
fn prompts_for_the_key_the_tools_and_confirmation() {
    let sandbox: Sandbox = two_tool_home();
    let claude = sandbox.home.join(".claude/settings.json");
    let codex = sandbox.home.join(".codex/config.toml");
    let claude_before = std::fs::read(&claude).expect("read");
    let env: Vec<String> = sandbox
        .env()
        .into_iter()
        .map(|(k, v)| format!("{k}={}", quote(&v)))
        .collect();
    let command = format!(
        "env -i TERM=xterm-256color {} {} setup; echo EXIT=$?; sleep 600",
        env.join(" "),
        quote(&izzi_bin().display().to_string())
    );
    let tmux = Tmux::start(&sandbox.bin.join("tmux.sock"), &command);

    tmux.wait_for("Izzi API key");
    tmux.type_text(KEY);
    tmux.keys(&["Enter"]);
    let screen = tmux.wait_for("Which tools should use izzi?");
    assert!(screen.contains("Claude Code"), "{screen}");
    assert!(screen.contains("OpenAI Codex CLI"), "{screen}");
    // Claude Code is first and checked: uncheck it, keep Codex.
    tmux.keys(&["Space"]);
    tmux.keys(&["Enter"]);
    let screen = tmux.wait_for("Apply these changes?");
    assert!(
        screen.contains("+[model_providers.izzi]"),
        "the diff is shown:\n{screen}"
    );
    assert!(!screen.contains("+++ ~/.claude/settings.json"), "{screen}");
    tmux.keys(&["y"]);
    let screen = tmux.wait_for("EXIT=");
    assert!(screen.contains("EXIT=0"), "{screen}");
    assert!(
        screen.contains("OpenAI Codex CLI: updated `~/.codex/config.toml`"),
        "{screen}"
    );
    assert!(!screen.contains(KEY), "the key was echoed:\n{screen}");

    assert_eq!(
        std::fs::read(&claude).expect("read"),
        claude_before,
        "Claude Code was unchecked"
    );
    let config = std::fs::read_to_string(&codex).expect("read");
    assert!(config.contains("[model_providers.izzi]"), "{config}");
    assert_eq!(
        std::fs::read_to_string(sandbox.izzi_home.join("credentials")).expect("key stored"),
        format!("{KEY}\n")
    );
    drop(tmux);

    // Undo on a terminal asks too; answering no keeps everything.
    let snapshot = tree(&sandbox.home);
    let command = format!(
        "env -i TERM=xterm-256color {} {} setup --undo; echo EXIT=$?; sleep 600",
        env.join(" "),
        quote(&izzi_bin().display().to_string())
    );
    let tmux = Tmux::start(&sandbox.bin.join("tmux2.sock"), &command);
    tmux.wait_for("Restore these files?");
    tmux.keys(&["n"]);
    let screen = tmux.wait_for("EXIT=");
    assert!(screen.contains("Nothing changed."), "{screen}");
    assert!(tree(&sandbox.home) == snapshot);
}

/// Kills the service a failed test left running.
#[cfg(target_os = "linux")]
struct Fakes(PathBuf);

#[cfg(target_os = "linux")]
impl Drop for Fakes {
    fn drop(&mut self) {
        crate::service::stop_fakes(&self.0);
    }
}

#[cfg(target_os = "linux")]
#[test]
fn setup_local_on_a_terminal_offers_the_service_and_undo_removes_it() {
    let sandbox: Sandbox = two_tool_home();
    std::fs::create_dir_all(&sandbox.izzi_home).expect("izzi home");
    let port = crate::service::free_port();
    std::fs::write(
        sandbox.izzi_home.join("config.toml"),
        format!("[server]\nport = {port}\n"),
    )
    .expect("config");
    let state = sandbox.home.join("fake-systemd");
    let _fakes = Fakes(state.clone());
    let env: Vec<String> = sandbox
        .env()
        .into_iter()
        .map(|(k, v)| match k {
            // The fake `systemctl` first; the shell tools it runs last.
            "PATH" => format!(
                "PATH={}",
                quote(&format!(
                    "{}:{v}:/usr/bin:/bin",
                    crate::service::fake_bin().display()
                ))
            ),
            _ => format!("{k}={}", quote(&v)),
        })
        .chain([format!(
            "FAKE_SYSTEMD={}",
            quote(&state.display().to_string())
        )])
        .collect();
    let run = |args: &str, socket: &str| {
        let command = format!(
            "env -i TERM=xterm-256color {} {} {args}; echo EXIT=$?; sleep 600",
            env.join(" "),
            quote(&izzi_bin().display().to_string())
        );
        Tmux::start(&sandbox.bin.join(socket), &command)
    };
    let unit = sandbox.home.join(".config/systemd/user/izzi.service");

    let tmux = run(
        &format!("setup --local --tools claude-code --key {KEY}"),
        "tmux.sock",
    );
    tmux.wait_for("Apply these changes?");
    tmux.keys(&["y"]);
    tmux.wait_for("Keep the local gateway running as a service");
    tmux.keys(&["y"]);
    let screen = tmux.wait_for("EXIT=");
    assert!(screen.contains("EXIT=0"), "{screen}");
    assert!(
        screen.contains(&format!("serves on http://127.0.0.1:{port}")),
        "{screen}"
    );
    assert!(unit.exists());
    drop(tmux);

    let tmux = run("setup --undo", "tmux2.sock");
    tmux.wait_for("Restore these files and remove the izzi service?");
    tmux.keys(&["y"]);
    let screen = tmux.wait_for("EXIT=");
    assert!(screen.contains("EXIT=0"), "{screen}");
    assert!(
        screen.contains("The izzi service is stopped and removed"),
        "{screen}"
    );
    assert!(!unit.exists());
}
