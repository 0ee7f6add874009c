//! The harness: starts the mock upstream and the real `izzi serve` as child processes, each on
//! a free port, with `IZZI_HOME` and `HOME` in a temp dir; stops them when dropped.

use std::io::{BufRead as _, BufReader, Read as _};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The real binary under test.
pub(crate) fn izzi_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_izzi"))
}

/// The mock upstream, built as the example `mock-upstream` beside the binary.
fn mock_bin() -> PathBuf {
    let bin = izzi_bin();
    let dir = bin.parent().expect("binary dir");
    dir.join("examples")
        .join(format!("mock-upstream{}", std::env::consts::EXE_SUFFIX))
}

/// A running mock upstream.
pub(crate) struct Mock {
    pub(crate) url: String,
    child: Child,
}

impl Mock {
    pub(crate) fn start() -> Self {
        let path = mock_bin();
        assert!(
            path.exists(),
            "{} is missing: run `cargo build --examples` first",
            path.display()
        );
        let mut child = Command::new(path)
            .stdout(Stdio::piped())
            .spawn()
            .expect("start mock upstream");
        let stdout = child.stdout.take().expect("mock stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("mock banner");
        let url = line.trim().rsplit(' ').next().expect("mock url").to_owned();
        Self { url, child }
    }

    /// Everything the mock received, oldest first.
    pub(crate) async fn requests(&self) -> Vec<Value> {
        let response = http()
            .get(format!("{}/_mock/requests", self.url))
            .send()
            .await
            .expect("mock requests");
        response.json().await.expect("mock json")
    }
}

impl Drop for Mock {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Config with both provider kinds pointed at the mock: Claude models over Anthropic Messages,
/// GPT models over Chat Completions, and the given client keys.
pub(crate) fn mock_config(mock: &Mock, extra: &str) -> String {
    format!(
        r#"{providers}
[[keys]]
name = "test"
key = "{KEY}"
plan = "ultra"
{extra}
"#,
        providers = mock_providers(mock)
    )
}

/// Both provider kinds pointed at the mock, and no client keys.
pub(crate) fn mock_providers(mock: &Mock) -> String {
    format!(
        r#"
[[providers]]
name = "anthropic"
kind = "anthropic"
base_url = "{url}"
api_key = "sk-upstream-anthropic"

[[providers]]
name = "openai"
kind = "openai"
base_url = "{url}/v1"
api_key = "sk-upstream-openai"
models = ["*"]
"#,
        url = mock.url
    )
}

/// The URL a "listening" banner names: a text line, or a JSON one (`--log-format json`).
fn banner_url(line: &str) -> Option<String> {
    if let Some((_, url)) = line.trim_end().split_once("izzi gateway listening on ") {
        return Some(url.to_owned());
    }
    let event: Value = serde_json::from_str(line).ok()?;
    (event["message"] == "izzi gateway listening")
        .then(|| event["url"].as_str().map(str::to_owned))?
}

/// The client key every default test config accepts.
pub(crate) const KEY: &str = "izzi-test-key-0123456789abcdef";

/// A fresh `IZZI_HOME` holding `config` as its config file.
pub(crate) fn home_with(config: &str) -> tempfile::TempDir {
    let home = tempfile::tempdir().expect("temp home");
    std::fs::write(home.path().join("config.toml"), config).expect("write config");
    home
}

/// A running `izzi serve`.
pub(crate) struct Gateway {
    pub(crate) url: String,
    pub(crate) home: tempfile::TempDir,
    child: Option<Child>,
}

impl Gateway {
    /// Starts `izzi serve --port 0` with `config` as its config file.
    pub(crate) fn start(config: &str) -> Self {
        Self::start_in(home_with(config), &[])
    }

    /// Starts `izzi serve` in an existing home with extra arguments.
    pub(crate) fn start_in(home: tempfile::TempDir, args: &[&str]) -> Self {
        Self::start_logging(home, args, "izzi=debug,info")
    }

    /// Starts `izzi serve` in an existing home with extra arguments and `IZZI_LOG=filter`.
    pub(crate) fn start_logging(home: tempfile::TempDir, args: &[&str], filter: &str) -> Self {
        Self::spawn(Command::new(izzi_bin()), home, args, filter)
    }

    /// Starts `izzi serve --port 0` with `config`, from a shell that first lowers the soft
    /// limit on open files to `open_files` (the hard limit stays as inherited).
    #[cfg(target_os = "linux")]
    pub(crate) fn start_with_open_files(config: &str, open_files: u32) -> Self {
        let mut shell = Command::new("sh");
        shell
            .args([
                "-c",
                &format!("ulimit -Sn {open_files} && exec \"$0\" \"$@\""),
            ])
            .arg(izzi_bin());
        Self::spawn(shell, home_with(config), &[], "izzi=debug,info")
    }

    /// Starts `izzi serve --port 0` through `command` (the binary, or a shell that runs it).
    /// The key store is the file unless `command` already sets or removes `IZZI_KEYRING`.
    pub(crate) fn spawn(
        mut command: Command,
        home: tempfile::TempDir,
        args: &[&str],
        filter: &str,
    ) -> Self {
        let log = std::fs::File::create(home.path().join("izzi.log")).expect("log file");
        if !command.get_envs().any(|(name, _)| name == "IZZI_KEYRING") {
            command.env("IZZI_KEYRING", "file");
        }
        let child = command
            .args(["serve", "--port", "0"])
            .args(args)
            .env("IZZI_HOME", home.path())
            .env("HOME", home.path())
            .env("IZZI_LOG", filter)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start izzi serve");
        let mut gateway = Self {
            url: String::new(),
            home,
            child: Some(child),
        };
        gateway.url = gateway.wait_for_banner();
        gateway
    }

    fn wait_for_banner(&mut self) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let log = self.log();
            // Only a whole line: stderr is unbuffered, so the banner may be half written.
            if let Some(url) = log
                .split_inclusive('\n')
                .filter(|l| l.ends_with('\n'))
                .find_map(banner_url)
            {
                return url;
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!("izzi serve exited with {status} before listening:\n{log}");
            }
            assert!(
                Instant::now() < deadline,
                "izzi serve did not start:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The gateway's soft limit on open files.
    #[cfg(target_os = "linux")]
    pub(crate) fn open_file_limit(&self) -> usize {
        let pid = self.child.as_ref().expect("running").id();
        open_file_limits(&pid.to_string())
            .expect("Max open files")
            .0
    }

    /// The names of the gateway's threads (Linux: `/proc/PID/task/*/comm`).
    #[cfg(target_os = "linux")]
    pub(crate) fn thread_names(&self) -> std::collections::BTreeSet<String> {
        let pid = self.child.as_ref().expect("running").id();
        std::fs::read_dir(format!("/proc/{pid}/task"))
            .expect("proc tasks")
            .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
            .map(|name| name.trim_end().to_owned())
            .collect()
    }

    /// The gateway's resident memory in KiB (Linux: `/proc/PID/status`).
    #[cfg(target_os = "linux")]
    pub(crate) fn rss_kib(&self) -> u64 {
        let pid = self.child.as_ref().expect("running").id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS")
    }

    /// Everything the gateway wrote to stderr so far.
    pub(crate) fn log(&self) -> String {
        let mut text = String::new();
        if let Ok(mut file) = std::fs::File::open(self.home.path().join("izzi.log")) {
            let _ = file.read_to_string(&mut text);
        }
        text
    }

    /// `GET {path}` without a key, answered 200; its body as text.
    pub(crate) async fn get_text(&self, path: &str) -> String {
        let response = http()
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .expect("GET sent");
        assert_eq!(response.status(), 200, "GET {path}");
        response.text().await.expect("GET body")
    }

    /// `GET {path}` with `key` as a bearer token.
    pub(crate) async fn get(&self, path: &str, key: &str) -> reqwest::Response {
        http()
            .get(format!("{}{path}", self.url))
            .bearer_auth(key)
            .send()
            .await
            .expect("GET sent")
    }

    /// `GET {path}` with `key` as a bearer token, answered 200; its body as JSON.
    pub(crate) async fn get_json(&self, path: &str, key: &str) -> Value {
        let response = self.get(path, key).await;
        assert_eq!(response.status(), 200, "GET {path}");
        response.json().await.expect("GET body is JSON")
    }

    /// `POST {path}` with `body` as JSON and `key` as a bearer token.
    pub(crate) async fn post(&self, path: &str, key: &str, body: &Value) -> reqwest::Response {
        let bytes = serde_json::to_vec(body).expect("a JSON body");
        self.post_bytes(path, key, bytes).await
    }

    /// `POST {path}` with `body` as JSON, the test key and `headers`, answered 200; its body as
    /// JSON.
    pub(crate) async fn post_ok(
        &self,
        path: &str,
        headers: &[(&str, &str)],
        body: &Value,
    ) -> Value {
        let mut request = http()
            .post(format!("{}{path}", self.url))
            .bearer_auth(KEY)
            .json(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.expect("gateway answers");
        let status = response.status();
        let answer: Value = response.json().await.expect("a JSON answer");
        assert_eq!(status, 200, "{answer}");
        answer
    }

    /// `POST {path}` with `body` sent as it is, labelled JSON, and `key` as a bearer token.
    pub(crate) async fn post_bytes(
        &self,
        path: &str,
        key: &str,
        body: Vec<u8>,
    ) -> reqwest::Response {
        http()
            .post(format!("{}{path}", self.url))
            .bearer_auth(key)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("POST sent")
    }

    /// Sends SIGTERM and waits for the exit status.
    #[cfg(unix)]
    pub(crate) fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        let pid = child.id().to_string();
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        child.wait().expect("wait")
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// An HTTP client for tests.
pub(crate) fn http() -> reqwest::Client {
    http_builder().build().expect("client")
}

/// The builder of [`http`], for a test that needs another setting.
pub(crate) fn http_builder() -> reqwest::ClientBuilder {
    // reqwest is built without a default TLS provider (the binary installs ring at start).
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().timeout(Duration::from_secs(120))
}

/// The soft and hard limits on open files of process `pid` (or `self`), where the system says
/// them (`Max open files` in `/proc/PID/limits`); an unlimited hard limit is `None`.
pub(crate) fn open_file_limits(pid: &str) -> Option<(usize, Option<usize>)> {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let mut values = line.split_whitespace().skip(3);
    let soft = values.next()?.parse().ok()?;
    Some((soft, values.next()?.parse().ok()))
}
