//! `izzi service` against a fake `systemctl --user` and `launchctl` (tests/fixtures/service/bin)
//! that record their calls and really run the registered command under a supervisor honouring
//! `Restart=on-failure` / `KeepAlive`; and the second-instance message of `izzi serve`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{Gateway, KEY, Mock, http, izzi_bin, mock_config};

/// The fake managers' folder, to put first on `PATH`.
pub(crate) fn fake_bin() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/service/bin")
}

/// A temp `HOME` and `IZZI_HOME`, the fake manager first on `PATH`, and a free port.
struct Sandbox {
    _dir: tempfile::TempDir,
    home: PathBuf,
    izzi_home: PathBuf,
    state: PathBuf,
    path: String,
    port: u16,
    /// `IZZI_SERVICE_MANAGER`, when not this OS's.
    manager: Option<&'static str>,
}

impl Sandbox {
    fn new(config: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let home = dir.path().join("home");
        let izzi_home = dir.path().join("izzi-home");
        let state = dir.path().join("fake-systemd");
        std::fs::create_dir_all(&home).expect("home");
        std::fs::create_dir_all(dir.path().join("tmp")).expect("tmp");
        std::fs::create_dir_all(&izzi_home).expect("izzi home");
        std::fs::write(izzi_home.join("config.toml"), config).expect("config");
        let path = format!(
            "{}:{}",
            fake_bin().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        Self {
            _dir: dir,
            home,
            izzi_home,
            state,
            path,
            port: free_port(),
            manager: None,
        }
    }

    fn command(&self, bin: &Path, args: &[&str]) -> Command {
        let mut command = Command::new(bin);
        command
            .args(args)
            .env("HOME", &self.home)
            .env("IZZI_HOME", &self.izzi_home)
            .env("IZZI_KEYRING", "file")
            .env("FAKE_SYSTEMD", &self.state)
            // The binary under test may itself sit in the system's temp dir (a checkout in
            // /tmp), which izzi takes for a copy that will vanish: the sandbox has its own.
            .env("TMPDIR", self.home.with_file_name("tmp"))
            .env("PATH", &self.path)
            .env_remove("XDG_CONFIG_HOME");
        match self.manager {
            Some(manager) => command.env("IZZI_SERVICE_MANAGER", manager),
            None => command.env_remove("IZZI_SERVICE_MANAGER"),
        };
        command
    }

    fn run_with(&self, bin: &Path, args: &[&str]) -> Output {
        self.command(bin, args).output().expect("run izzi")
    }

    fn run(&self, args: &[&str]) -> Output {
        self.run_with(&izzi_bin(), args)
    }

    fn unit(&self) -> PathBuf {
        self.home.join(".config/systemd/user/izzi.service")
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn calls(&self) -> String {
        std::fs::read_to_string(self.state.join("calls")).unwrap_or_default()
    }

    async fn health(&self) -> Option<Value> {
        let response = http()
            .get(format!("{}/health", self.url()))
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .ok()?;
        response.json().await.ok()
    }

    async fn pid(&self) -> Option<u64> {
        self.health().await.and_then(|h| h["pid"].as_u64())
    }

    /// Waits until a gateway other than `old` answers; its pid.
    async fn wait_for_new_pid(&self, old: u64) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(pid) = self.pid().await
                && pid != old
            {
                return pid;
            }
            assert!(
                Instant::now() < deadline,
                "no new gateway answered; calls:\n{}",
                self.calls()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        stop_fakes(&self.state);
    }
}

/// Kills whatever the fake managers keeping state in `state` left running (a failed test).
pub(crate) fn stop_fakes(state: &Path) {
    for file in ["supervisor.pid", "main.pid"] {
        if let Ok(pid) = std::fs::read_to_string(state.join(file)) {
            let _ = Command::new("kill")
                .args(["-9", pid.trim()])
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Every file under `dir`, relative.
fn files_under(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() && !path.is_symlink() {
                stack.push(path);
            } else {
                found.push(path.display().to_string());
            }
        }
    }
    found
}

async fn models_status(url: &str, key: &str) -> u16 {
    http()
        .get(format!("{url}/v1/models"))
        .bearer_auth(key)
        .send()
        .await
        .expect("GET /v1/models")
        .status()
        .as_u16()
}

#[tokio::test]
async fn install_serves_restarts_after_kill_9_reloads_and_uninstall_leaves_nothing() {
    let mock = Mock::start();
    let sandbox = Sandbox::new(&mock_config(&mock, ""));
    let port = sandbox.port.to_string();

    let out = sandbox.run(&["service", "install", "--port", &port]);
    assert!(out.status.success(), "install: {}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains(&format!("serves on {}", sandbox.url())),
        "{}",
        text(&out.stdout)
    );
    let calls = sandbox.calls();
    assert!(
        calls
            .contains("systemctl --user daemon-reload\nsystemctl --user enable --now izzi.service"),
        "{calls}"
    );

    // The registered unit: the stable binary, the port, this IZZI_HOME; systemd accepts it.
    let unit = std::fs::read_to_string(sandbox.unit()).expect("unit written");
    let exe = std::fs::canonicalize(izzi_bin()).expect("binary");
    assert!(
        unit.contains(&format!(
            "ExecStart={} serve --port {port}\n",
            exe.display()
        )),
        "{unit}"
    );
    assert!(
        unit.contains(&format!(
            "Environment=IZZI_HOME={}\n",
            std::fs::canonicalize(&sandbox.izzi_home).unwrap().display()
        )),
        "{unit}"
    );
    assert!(unit.contains("Restart=on-failure\n"), "{unit}");
    verify_unit(&sandbox.unit());

    // What the unit runs serves, with the config's keys.
    assert_eq!(models_status(&sandbox.url(), KEY).await, 200);
    let out = sandbox.run(&["service", "status", "--json"]);
    assert!(out.status.success(), "status: {}", text(&out.stderr));
    let status: Value = serde_json::from_slice(&out.stdout).expect("status JSON");
    assert_eq!(status["installed"], true);
    assert_eq!(status["running"], true);
    assert_eq!(status["state"], "running");
    assert_eq!(status["manager"], "systemd");
    assert_eq!(status["address"], sandbox.url());
    assert_eq!(status["health"]["version"], env!("CARGO_PKG_VERSION"));
    let first = status["health"]["pid"].as_u64().expect("pid");
    let out = sandbox.run(&["service", "status"]);
    let said = text(&out.stdout);
    assert!(
        said.contains("Service: installed (systemd (user unit)"),
        "{said}"
    );
    assert!(said.contains(&format!("pid {first}, up ")), "{said}");

    // Killed with SIGKILL, the gateway is started again (Restart=on-failure).
    let killed = Command::new("kill")
        .args(["-9", &first.to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let second = sandbox.wait_for_new_pid(first).await;
    assert!(
        sandbox.calls().contains("exited 137"),
        "{}",
        sandbox.calls()
    );
    assert_eq!(models_status(&sandbox.url(), KEY).await, 200);

    let out = sandbox.run(&["service", "restart"]);
    assert!(out.status.success(), "restart: {}", text(&out.stderr));
    let third = sandbox.pid().await.expect("running after restart");
    assert_ne!(third, second);

    // A new key, through `izzi service reload`, without a restart.
    let new_key = "izzi-reloaded-key-000000000000";
    let config = mock_config(
        &mock,
        &format!("[[keys]]\nname = \"new\"\nkey = \"{new_key}\"\n"),
    );
    std::fs::write(sandbox.izzi_home.join("config.toml"), &config).expect("config");
    let out = sandbox.run(&["service", "reload"]);
    assert!(out.status.success(), "reload: {}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("reloaded"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(models_status(&sandbox.url(), new_key).await, 200);
    assert_eq!(sandbox.pid().await, Some(third));

    // A broken file changes nothing, and the command says where it is broken.
    std::fs::write(
        sandbox.izzi_home.join("config.toml"),
        format!("{config}\n[server\n"),
    )
    .expect("config");
    let out = sandbox.run(&["service", "reload"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("config.toml"), "{stderr}");
    assert!(stderr.contains("line"), "{stderr}");
    assert_eq!(models_status(&sandbox.url(), new_key).await, 200);

    // The journal holds the gateway's lines, without colour codes.
    let out = sandbox.run(&["service", "logs", "-n", "200"]);
    assert!(out.status.success(), "logs: {}", text(&out.stderr));
    let logs = text(&out.stdout);
    assert!(logs.contains("izzi gateway listening on"), "{logs}");
    assert!(logs.contains("config not reloaded"), "{logs}");
    assert!(
        !logs.contains('\u{1b}'),
        "colour codes in the journal:\n{logs}"
    );

    let out = sandbox.run(&["service", "uninstall"]);
    assert!(out.status.success(), "uninstall: {}", text(&out.stderr));
    assert!(sandbox.health().await.is_none(), "still serving");
    assert!(
        sandbox
            .calls()
            .contains("systemctl --user disable --now izzi.service"),
        "{}",
        sandbox.calls()
    );
    let left = files_under(&sandbox.home.join(".config"));
    assert!(left.is_empty(), "uninstall left {left:?}");
    assert!(!sandbox.izzi_home.join("service.json").exists());
    std::fs::write(sandbox.izzi_home.join("config.toml"), &config).expect("config");
    let out = sandbox.run(&["service", "status", "--json"]);
    let status: Value = serde_json::from_slice(&out.stdout).expect("status JSON");
    assert_eq!(
        (&status["installed"], &status["running"]),
        (&json!(false), &json!(false))
    );
}

#[tokio::test]
async fn a_launch_agent_keeps_the_gateway_alive_logs_to_a_file_and_uninstalls_clean() {
    let mock = Mock::start();
    let mut sandbox = Sandbox::new(&mock_config(&mock, ""));
    sandbox.manager = Some("launchd");
    let port = sandbox.port.to_string();
    let out = sandbox.run(&["service", "install", "--port", &port]);
    assert!(out.status.success(), "install: {}", text(&out.stderr));
    let plist = sandbox
        .home
        .join("Library/LaunchAgents/com.izziapi.izzi.plist");
    let uid = text(&Command::new("id").arg("-u").output().expect("id").stdout);
    let calls = sandbox.calls();
    assert!(
        calls.contains(&format!(
            "launchctl bootstrap gui/{} {}",
            uid.trim(),
            plist.display()
        )),
        "{calls}"
    );
    let written = std::fs::read_to_string(&plist).expect("plist");
    assert!(written.contains("<string>--log-dir</string>"), "{written}");
    assert_eq!(models_status(&sandbox.url(), KEY).await, 200);
    let out = sandbox.run(&["service", "status", "--json"]);
    let status: Value = serde_json::from_slice(&out.stdout).expect("status JSON");
    assert_eq!(status["manager"], "launchd");
    assert_eq!(status["state"], "running");
    let first = status["health"]["pid"].as_u64().expect("pid");

    // KeepAlive: killed, it runs again.
    Command::new("kill")
        .args(["-9", &first.to_string()])
        .status()
        .expect("kill");
    sandbox.wait_for_new_pid(first).await;

    // Stopped, it stays stopped (a graceful exit is a successful one); started, it serves.
    let out = sandbox.run(&["service", "stop"]);
    assert!(out.status.success(), "stop: {}", text(&out.stderr));
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(sandbox.health().await.is_none(), "restarted after stop");
    let out = sandbox.run(&["service", "start"]);
    assert!(out.status.success(), "start: {}", text(&out.stderr));
    assert_eq!(models_status(&sandbox.url(), KEY).await, 200);

    // `logs -f` prints what comes: the line of a reload.
    let mut follow = sandbox
        .command(&izzi_bin(), &["service", "logs", "-f", "-n", "0"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("logs -f");
    // It has read the file's end by then (`-n 0`: what comes after it).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let out = sandbox.run(&["service", "reload"]);
    assert!(out.status.success(), "reload: {}", text(&out.stderr));
    let followed = std::thread::spawn({
        let stdout = follow.stdout.take().expect("stdout");
        move || {
            use std::io::BufRead as _;
            std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .find(|l| l.contains("config reloaded"))
        }
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while !followed.is_finished() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = follow.kill();
    let _ = follow.wait();
    assert!(
        followed.join().expect("reader").is_some(),
        "`logs -f` did not print the reload"
    );

    // No journal: the gateway's own log file, plain lines.
    let out = sandbox.run(&["service", "logs", "-n", "500"]);
    assert!(out.status.success(), "logs: {}", text(&out.stderr));
    let logs = text(&out.stdout);
    assert!(logs.contains("config loaded"), "{logs}");
    assert!(!logs.contains('\u{1b}'), "{logs}");
    assert!(sandbox.izzi_home.join("logs/izzi.log").exists());

    let out = sandbox.run(&["service", "uninstall"]);
    assert!(out.status.success(), "uninstall: {}", text(&out.stderr));
    assert!(sandbox.health().await.is_none(), "still serving");
    assert!(
        sandbox.calls().contains("launchctl bootout gui/"),
        "{}",
        sandbox.calls()
    );
    let left = files_under(&sandbox.home.join("Library"));
    assert!(left.is_empty(), "uninstall left {left:?}");
    assert!(!sandbox.izzi_home.join("service.json").exists());
}

#[tokio::test]
async fn a_service_that_cannot_start_is_reported_with_its_last_log_lines() {
    let mock = Mock::start();
    // An address of no interface here (TEST-NET-1): the gateway cannot listen, and exits 1.
    let sandbox = Sandbox::new(&format!(
        "{}\n[server]\nhost = \"192.0.2.1\"\n",
        mock_config(&mock, "")
    ));
    let port = sandbox.port.to_string();
    let out = sandbox.run(&["service", "install", "--port", &port]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("did not answer on http://192.0.2.1:"),
        "{stderr}"
    );
    assert!(stderr.contains("its last log lines"), "{stderr}");
    assert!(stderr.contains("cannot listen on 192.0.2.1"), "{stderr}");
    // Restart=on-failure kept trying.
    assert!(
        sandbox.calls().matches("exited 1").count() > 1,
        "{}",
        sandbox.calls()
    );
    let out = sandbox.run(&["service", "uninstall"]);
    assert!(out.status.success(), "uninstall: {}", text(&out.stderr));
    assert!(!sandbox.unit().exists());
}

/// `systemd-analyze verify`, where systemd is installed (`.ci/run` installs it).
#[expect(
    clippy::print_stderr,
    reason = "a skipped check says so in the test's output"
)]
fn verify_unit(unit: &Path) {
    let Ok(out) = Command::new("systemd-analyze")
        .args(["verify"])
        .arg(unit)
        .output()
    else {
        eprintln!("systemd-analyze is not installed: the unit file is not verified");
        return;
    };
    // It reports bad settings on stderr but still exits 0.
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "systemd-analyze verify: {}",
        text(&out.stderr)
    );
}

#[tokio::test]
async fn a_binary_in_the_npx_cache_is_refused_with_the_command_that_installs_one() {
    let mock = Mock::start();
    let sandbox = Sandbox::new(&mock_config(&mock, ""));
    let npx = sandbox
        .home
        .join(".npm/_npx/4f1e2c/node_modules/@izziapi/linux-x64/bin");
    std::fs::create_dir_all(&npx).expect("npx dir");
    let copy = npx.join("izzi");
    std::fs::copy(izzi_bin(), &copy).expect("copy binary");
    let out = sandbox.run_with(&copy, &["service", "install"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("npm install -g izziapi"), "{stderr}");
    assert!(stderr.contains("_npx"), "{stderr}");
    assert!(!sandbox.unit().exists());
    assert!(!sandbox.izzi_home.join("service.json").exists());
    assert_eq!(sandbox.calls(), "", "the manager was called");
}

#[tokio::test]
async fn without_a_user_systemd_install_gives_the_foreground_command() {
    let mock = Mock::start();
    let mut sandbox = Sandbox::new(&mock_config(&mock, ""));
    let bin = sandbox.home.join("no-systemd");
    std::fs::create_dir_all(&bin).expect("dir");
    let systemctl = bin.join("systemctl");
    std::fs::write(
        &systemctl,
        "#!/bin/sh\necho 'Failed to connect to bus: No medium found' >&2\nexit 1\n",
    )
    .expect("script");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&systemctl, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    sandbox.path = format!("{}:{}", bin.display(), sandbox.path);
    let port = sandbox.port.to_string();
    let out = sandbox.run(&["service", "install", "--port", &port]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("no user systemd"), "{stderr}");
    assert!(stderr.contains(&format!("serve --port {port}")), "{stderr}");
    assert!(!sandbox.unit().exists());
    assert!(!sandbox.izzi_home.join("service.json").exists());
}

#[tokio::test]
async fn setup_local_installs_the_service_and_undo_removes_it() {
    let mock = Mock::start();
    let sandbox = Sandbox::new(&format!(
        "{}\n[server]\nport = {}\n",
        mock_config(&mock, ""),
        free_port()
    ));
    // Claude Code is found by its folder.
    std::fs::create_dir_all(sandbox.home.join(".claude")).expect("claude dir");
    let setup = [
        "setup",
        "--local",
        "--yes",
        "--key",
        KEY,
        "--tools",
        "claude-code",
    ];
    let mut skipped = setup.to_vec();
    skipped.push("--no-service");
    let out = sandbox.run(&skipped);
    assert!(out.status.success(), "setup: {}", text(&out.stderr));
    assert!(
        !sandbox.unit().exists(),
        "--no-service installed the service"
    );
    assert!(
        text(&out.stdout).contains("izzi service install"),
        "{}",
        text(&out.stdout)
    );

    let out = sandbox.run(&setup);
    assert!(out.status.success(), "setup: {}", text(&out.stderr));
    assert!(sandbox.unit().exists(), "{}", text(&out.stdout));
    let out = sandbox.run(&["status", "--json"]);
    let status: Value = serde_json::from_slice(&out.stdout).expect("status JSON");
    assert_eq!(status["service"]["installed"], true);
    assert_eq!(status["service"]["running"], true);
    assert_eq!(status["endpoint"]["ok"], true, "{status}");

    let out = sandbox.run(&["setup", "--undo", "--yes"]);
    assert!(out.status.success(), "undo: {}", text(&out.stderr));
    assert!(!sandbox.unit().exists());
    assert!(!sandbox.izzi_home.join("service.json").exists());
    assert!(
        sandbox.calls().contains("disable --now"),
        "{}",
        sandbox.calls()
    );
}

#[tokio::test]
async fn a_second_gateway_on_a_taken_port_names_what_holds_it() {
    let mock = Mock::start();
    let first = Gateway::start(&mock_config(&mock, ""));
    let health = first.get_text("/health").await;
    let health: Value = serde_json::from_str(&health).expect("health JSON");
    let addr = first.url.trim_start_matches("http://").to_owned();
    // `izzi serve` on `port` beside the first gateway: it must fail; its stderr.
    let serve_on = |port: &str| {
        let out = Command::new(izzi_bin())
            .args(["serve", "--port", port])
            .env("IZZI_HOME", first.home.path())
            .env("HOME", first.home.path())
            .env("IZZI_KEYRING", "file")
            .output()
            .expect("serve");
        assert_eq!(out.status.code(), Some(1));
        text(&out.stderr)
    };
    let stderr = serve_on(addr.rsplit(':').next().expect("port"));
    assert!(
        stderr.contains(&format!(
            "izzi {}, pid {}, already serves on {addr}",
            env!("CARGO_PKG_VERSION"),
            health["pid"]
        )),
        "{stderr}"
    );

    // Another program: named where the system says who listens.
    let other = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let stderr = serve_on(&other.local_addr().expect("addr").port().to_string());
    assert!(stderr.contains("is already in use by"), "{stderr}");
    #[cfg(target_os = "linux")]
    assert!(
        stderr.contains(&format!("(pid {})", std::process::id())),
        "{stderr}"
    );
}
