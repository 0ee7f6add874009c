//! `izzi setup`, `--undo`, `status` and `key print`, driving the real binary with `HOME` and
//! `IZZI_HOME` in temp dirs and the file credential store.
//!
//! Each directory in `tests/fixtures/setup/` is a case: `home/` is a user's home as found in the
//! wild (comments, odd key order, unrelated settings, CRLF, broken files), `expected/home/` holds
//! exactly the files setup must produce (every other file must stay byte-identical),
//! `expected/izzi_home/` files setup writes for itself, `dry-run.txt`, `setup.txt` and
//! `setup.stderr.txt` the exact output, and `case.json` the platform layout, extra arguments and
//! exit code. `{{IZZI}}`, `{{HOME}}` and `{{IZZI_HOME}}` stand for the binary and the temp dirs.
//! `IZZI_BLESS=1` rewrites the expected files from what the binary does (review the diff!).

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;

use serde_json::Value;

use crate::support::izzi_bin;

/// The key the cases configure.
pub(crate) const KEY: &str = "sk-izzi-test-0123456789abcdef";

/// Held by every test that runs setup on Cline, or starts a fake Cline host: setup leaves Cline
/// alone while a host runs, and hosts are found machine-wide.
pub(crate) static CLINE_HOSTS: Mutex<()> = Mutex::new(());

/// A home, an `IZZI_HOME`, an empty `PATH` and a temp dir, all fresh.
pub(crate) struct Sandbox {
    _dir: tempfile::TempDir,
    pub(crate) home: PathBuf,
    pub(crate) izzi_home: PathBuf,
    pub(crate) bin: PathBuf,
    pub(crate) tmp: PathBuf,
    os: Option<String>,
}

impl Sandbox {
    pub(crate) fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path().canonicalize().expect("canonical temp dir");
        let sandbox = Self {
            home: root.join("home"),
            izzi_home: root.join("izzi-home"),
            bin: root.join("bin"),
            tmp: root.join("tmp"),
            os: None,
            _dir: dir,
        };
        for d in [&sandbox.home, &sandbox.bin, &sandbox.tmp] {
            std::fs::create_dir_all(d).expect("sandbox dir");
        }
        sandbox
    }

    /// The whole environment the binary gets.
    pub(crate) fn env(&self) -> Vec<(&'static str, String)> {
        let mut env = vec![
            ("HOME", self.home.display().to_string()),
            ("IZZI_HOME", self.izzi_home.display().to_string()),
            ("IZZI_KEYRING", "file".to_owned()),
            ("PATH", self.bin.display().to_string()),
            ("TMPDIR", self.tmp.display().to_string()),
        ];
        if let Some(os) = &self.os {
            env.push(("IZZI_SETUP_OS", os.clone()));
        }
        env
    }

    /// The binary with only the sandbox's environment.
    pub(crate) fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(izzi_bin());
        cmd.args(args).env_clear().envs(self.env());
        cmd
    }

    pub(crate) fn run(&self, args: &[&str]) -> Output {
        self.cmd(args)
            .stdin(Stdio::null())
            .output()
            .expect("run izzi")
    }

    /// Placeholders for the paths that differ per run.
    fn placeholders(&self) -> [(String, &'static str); 3] {
        [
            (izzi_bin().display().to_string(), "{{IZZI}}"),
            (self.izzi_home.display().to_string(), "{{IZZI_HOME}}"),
            (self.home.display().to_string(), "{{HOME}}"),
        ]
    }

    fn normalize(&self, text: &str) -> String {
        self.placeholders()
            .iter()
            .fold(text.to_owned(), |acc, (path, name)| {
                acc.replace(path.as_str(), name)
            })
    }

    fn fill(&self, text: &str) -> String {
        self.placeholders()
            .iter()
            .fold(text.to_owned(), |acc, (path, name)| acc.replace(name, path))
    }
}

/// Every file (bytes) and folder (`None`) under `root`, by `/`-separated relative path.
pub(crate) fn tree(root: &Path) -> BTreeMap<String, Option<Vec<u8>>> {
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Option<Vec<u8>>>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let path = entry.expect("dir entry").path();
        let rel = path
            .strip_prefix(root)
            .expect("under root")
            .to_string_lossy()
            .replace('\\', "/");
        if path.is_dir() {
            out.insert(format!("{rel}/"), None);
            walk(root, &path, out);
        } else {
            out.insert(rel, Some(std::fs::read(&path).expect("read file")));
        }
    }
}

pub(crate) fn copy_tree(from: &Path, to: &Path) {
    for (rel, content) in tree(from) {
        let target = to.join(&rel);
        match content {
            None => std::fs::create_dir_all(&target).expect("create dir"),
            Some(bytes) => {
                std::fs::create_dir_all(target.parent().expect("parent")).expect("create dir");
                std::fs::write(&target, bytes).expect("copy file");
            }
        }
    }
}

/// A readable account of how two trees differ.
fn tree_diff(
    got: &BTreeMap<String, Option<Vec<u8>>>,
    want: &BTreeMap<String, Option<Vec<u8>>>,
) -> String {
    let show = |c: &Option<Vec<u8>>| match c {
        None => "<dir>".to_owned(),
        Some(bytes) => String::from_utf8_lossy(bytes).into_owned(),
    };
    let mut out = String::new();
    for key in got
        .keys()
        .chain(want.keys())
        .collect::<std::collections::BTreeSet<_>>()
    {
        match (got.get(key), want.get(key)) {
            (Some(g), Some(w)) if g == w => {}
            (Some(g), Some(w)) => {
                out += &format!(
                    "--- {key}: got\n{}\n--- {key}: want\n{}\n",
                    show(g),
                    show(w)
                );
            }
            (Some(_), None) => out += &format!("unexpected {key}\n"),
            (None, _) => out += &format!("missing {key}\n"),
        }
    }
    out
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/setup")
}

fn bless() -> bool {
    std::env::var_os("IZZI_BLESS").is_some()
}

/// Compares `actual` with the fixture file `name` of `case` (or writes it when blessing).
fn expect_text(case: &Path, name: &str, actual: &str) {
    let path = case.join(name);
    if bless() {
        std::fs::write(&path, actual).expect("bless");
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_default();
    assert_eq!(actual, want, "{} differs", path.display());
}

pub(crate) fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Unix mode of every file in a tree.
fn modes(root: &Path) -> BTreeMap<String, u32> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        tree(root)
            .into_iter()
            .filter(|(_, c)| c.is_some())
            .map(|(rel, _)| {
                let mode = std::fs::metadata(root.join(&rel))
                    .expect("meta")
                    .permissions()
                    .mode();
                (rel, mode & 0o777)
            })
            .collect()
    }
    #[cfg(not(unix))]
    {
        let _ = root;
        BTreeMap::new()
    }
}

#[cfg(unix)]
fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

#[cfg(unix)]
fn mode_of(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).expect("meta").permissions().mode() & 0o777
}

/// Runs one fixture case through dry run, setup, a second setup and undo.
fn check(name: &str) {
    let _hosts = CLINE_HOSTS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let case = fixtures().join(name);
    let spec: Value =
        serde_json::from_str(&std::fs::read_to_string(case.join("case.json")).expect("case.json"))
            .expect("case.json is JSON");
    let mut sandbox = Sandbox::new();
    sandbox.os = spec["os"].as_str().map(str::to_owned);
    let extra: Vec<&str> = spec["args"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let exit = spec["exit"].as_i64().unwrap_or(0);
    copy_tree(&case.join("home"), &sandbox.home);
    // Tools create their key stores private; so do the fixtures.
    #[cfg(unix)]
    for (rel, _) in tree(&sandbox.home) {
        if rel.ends_with("secrets.json")
            || rel.ends_with("auth.json")
            || rel.ends_with("providers.json")
        {
            chmod(&sandbox.home.join(&rel), 0o600);
        }
    }
    let original = tree(&sandbox.home);
    let original_modes = modes(&sandbox.home);
    let with = |base: &[&'static str]| -> Vec<String> {
        base.iter()
            .map(|s| (*s).to_owned())
            .chain(extra.iter().map(|s| (*s).to_owned()))
            .collect()
    };
    // Runs izzi with the case's extra arguments; it exits as the case says.
    let run = |what: &str, base: &[&'static str]| {
        let args = with(base);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = sandbox.run(&args);
        assert_eq!(
            out.status.code(),
            Some(i32::try_from(exit).expect("an exit code")),
            "{what}: {}",
            text(&out.stderr)
        );
        out
    };

    // A dry run prints the diffs and writes nothing, not even the key.
    let out = run("dry run", &["setup", "--dry-run", "--yes", "--key", KEY]);
    expect_text(&case, "dry-run.txt", &sandbox.normalize(&text(&out.stdout)));
    assert!(
        tree(&sandbox.home) == original,
        "the dry run changed files:\n{}",
        tree_diff(&tree(&sandbox.home), &original)
    );
    assert!(
        !sandbox.izzi_home.exists(),
        "the dry run wrote to IZZI_HOME"
    );
    assert!(
        !text(&out.stdout).contains(KEY),
        "the dry run printed the key"
    );

    // Setup writes exactly the expected files.
    let out = run("setup", &["setup", "--yes", "--key", KEY]);
    expect_text(&case, "setup.txt", &sandbox.normalize(&text(&out.stdout)));
    expect_text(
        &case,
        "setup.stderr.txt",
        &sandbox.normalize(&text(&out.stderr)),
    );
    let after = tree(&sandbox.home);
    let expected_dir = case.join("expected").join("home");
    if bless() {
        let _ = std::fs::remove_dir_all(case.join("expected"));
        for (rel, content) in &after {
            if original.get(rel) != Some(content)
                && let Some(bytes) = content
            {
                let path = expected_dir.join(rel);
                std::fs::create_dir_all(path.parent().expect("parent")).expect("bless dir");
                std::fs::write(path, sandbox.normalize(&text(bytes))).expect("bless file");
            }
        }
    }
    let mut want = original.clone();
    for (rel, content) in tree(&expected_dir) {
        let filled = content.map(|bytes| sandbox.fill(&text(&bytes)).into_bytes());
        // Folders setup creates show up as parents of the expected files.
        let mut parent = Path::new(&rel).parent();
        while let Some(p) = parent.filter(|p| !p.as_os_str().is_empty()) {
            want.entry(format!("{}/", p.to_string_lossy()))
                .or_insert(None);
            parent = p.parent();
        }
        want.insert(rel, filled);
    }
    assert!(
        after == want,
        "setup wrote something else:\n{}",
        tree_diff(&after, &want)
    );
    for (rel, mode) in &original_modes {
        assert_eq!(
            modes(&sandbox.home).get(rel),
            Some(mode),
            "setup changed the mode of {rel}"
        );
    }
    // The manifest and the backups of the user's files are the user's alone (they may hold
    // keys): files 0600 in 0700 folders.
    #[cfg(unix)]
    {
        let kept = sandbox.izzi_home.join("setup");
        for (rel, mode) in modes(&kept) {
            assert_eq!(mode, 0o600, "IZZI_HOME/setup/{rel}");
        }
        for dir in [kept.clone(), kept.join("backups")] {
            if dir.exists() {
                assert_eq!(mode_of(&dir), 0o700, "{}", dir.display());
            }
        }
    }
    let izzi_expected = case.join("expected").join("izzi_home");
    if bless() {
        // The one file setup writes in IZZI_HOME for a tool: Roo Code's import file.
        let name = "roo-code-settings.json";
        let path = sandbox.izzi_home.join(name);
        if path.exists() {
            std::fs::create_dir_all(&izzi_expected).expect("bless dir");
            let content = std::fs::read_to_string(&path).expect("read");
            std::fs::write(izzi_expected.join(name), sandbox.normalize(&content)).expect("bless");
        }
    }
    for (rel, content) in tree(&izzi_expected) {
        let got = std::fs::read(sandbox.izzi_home.join(&rel)).ok();
        let want = content.map(|bytes| sandbox.fill(&text(&bytes)).into_bytes());
        assert_eq!(
            got.map(|b| text(&b)),
            want.map(|b| text(&b)),
            "IZZI_HOME/{rel}"
        );
    }

    // A second run changes nothing, not even the manifest.
    let manifest = sandbox.izzi_home.join("setup").join("manifest.json");
    let manifest_before = std::fs::read(&manifest).ok();
    let izzi_before = tree(&sandbox.izzi_home);
    let out = run("second run", &["setup", "--yes"]);
    assert!(
        !text(&out.stdout).contains("updated"),
        "second run: {}",
        text(&out.stdout)
    );
    assert!(
        tree(&sandbox.home) == after,
        "the second run changed files:\n{}",
        tree_diff(&tree(&sandbox.home), &after)
    );
    assert_eq!(std::fs::read(&manifest).ok(), manifest_before);
    assert!(
        tree(&sandbox.izzi_home) == izzi_before,
        "the second run changed IZZI_HOME"
    );

    // Undo gives back every file byte for byte, with its mode, and removes what setup made.
    let out = sandbox.run(&["setup", "--undo"]);
    assert_eq!(out.status.code(), Some(0), "undo: {}", text(&out.stderr));
    let undone = tree(&sandbox.home);
    assert!(
        undone == original,
        "undo left differences:\n{}",
        tree_diff(&undone, &original)
    );
    assert_eq!(modes(&sandbox.home), original_modes);
    assert!(
        !sandbox.izzi_home.join("setup").exists(),
        "undo left its manifest"
    );
    assert!(!sandbox.izzi_home.join("roo-code-settings.json").exists());
}

macro_rules! fixture {
    ($($test:ident => $dir:literal),* $(,)?) => {
        $(
            #[test]
            fn $test() {
                check($dir);
            }
        )*

        /// Every fixture folder has a test above.
        #[test]
        fn every_fixture_is_checked() {
            let named = [$($dir),*];
            let mut dirs: Vec<String> = std::fs::read_dir(fixtures())
                .expect("fixtures")
                .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
                .collect();
            dirs.sort();
            let mut named: Vec<String> = named.iter().map(|s| (*s).to_owned()).collect();
            named.sort();
            assert_eq!(dirs, named);
        }
    };
}

fixture! {
    fixture_claude_code_linux => "claude-code-linux",
    fixture_claude_code_macos => "claude-code-macos",
    fixture_claude_code_windows => "claude-code-windows",
    fixture_codex => "codex",
    fixture_codex_windows => "codex-windows",
    fixture_codex_claude => "codex-claude",
    fixture_cline => "cline",
    fixture_cline_legacy => "cline-legacy",
    fixture_windsurf => "windsurf",
    fixture_windsurf_bare => "windsurf-bare",
    fixture_opencode => "opencode",
    fixture_zed => "zed",
    fixture_zed_windows => "zed-windows",
    fixture_windsurf_macos => "windsurf-macos",
    fixture_broken => "broken",
    fixture_cursor_local => "cursor-local",
}

/// A home with Claude Code and Codex configs, for the tests below.
pub(crate) fn two_tool_home() -> Sandbox {
    let sandbox = Sandbox::new();
    copy_tree(
        &fixtures().join("claude-code-linux/home/.claude"),
        &sandbox.home.join(".claude"),
    );
    copy_tree(
        &fixtures().join("codex/home/.codex"),
        &sandbox.home.join(".codex"),
    );
    sandbox
}

#[test]
fn no_key_and_no_terminal_is_a_usage_error() {
    let sandbox = two_tool_home();
    let out = sandbox.run(&["setup"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr),
        "error: no API key: run `izzi setup --key KEY` (keys are at https://izziapi.com), or run `izzi setup` in a terminal to be asked\n"
    );
    assert!(!sandbox.izzi_home.exists());
}

#[test]
fn unknown_tools_and_bad_urls_are_usage_errors() {
    let sandbox = two_tool_home();
    let out = sandbox.run(&["setup", "--yes", "--key", KEY, "--tools", "claude-code,vim"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("unknown tool `vim`; known tools: claude-code, cursor"));
    let out = sandbox.run(&["setup", "--yes", "--key", KEY, "--base-url", "ftp://x"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("`ftp://x` is not an http(s) URL"));
}

#[cfg(unix)]
#[test]
fn key_file_is_private_and_key_print_prints_only_the_key() {
    let sandbox = two_tool_home();
    let out = sandbox.run(&["key", "print"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "error: no key is stored; run `izzi setup --key KEY` to store one\n"
    );
    let out = sandbox.run(&["setup", "--yes", "--key", KEY, "--tools", "codex"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("note: `IZZI_KEYRING=file` is set, so the key is stored in `")
    );
    let credentials = sandbox.izzi_home.join("credentials");
    assert_eq!(mode_of(&credentials), 0o600);
    let out = sandbox.run(&["key", "print"]);
    assert!(out.status.success());
    assert_eq!(text(&out.stdout), format!("{KEY}\n"));
    assert!(out.stderr.is_empty());
}

/// Without `IZZI_KEYRING=file` and with no usable Secret Service, the key goes to the 0600 file
/// with a one-line notice, and is found there again. Two ways to have none: a session bus
/// address whose socket is missing (zbus tries and fails), and no session bus at all, as in CI
/// (izzi does not start zbus, and says why).
#[cfg(target_os = "linux")]
#[test]
fn keyring_falls_back_to_the_private_file() {
    for bus in ["missing socket", "none"] {
        let sandbox = two_tool_home();
        let runtime_dir = tempfile::tempdir().expect("runtime dir"); // no `bus` socket in it
        let without_keyring = |mut cmd: Command| {
            cmd.env_remove("IZZI_KEYRING");
            if bus == "none" {
                cmd.env("XDG_RUNTIME_DIR", runtime_dir.path());
            } else {
                cmd.env(
                    "DBUS_SESSION_BUS_ADDRESS",
                    "unix:path=/nonexistent/izzi-test-bus",
                );
            }
            cmd
        };
        let out =
            without_keyring(sandbox.cmd(&["setup", "--yes", "--key", KEY, "--tools", "codex"]))
                .stdin(Stdio::null())
                .output()
                .expect("run");
        assert!(out.status.success(), "{bus}: {}", text(&out.stderr));
        let stderr = text(&out.stderr);
        assert_eq!(stderr.lines().count(), 1, "{bus}: one notice: {stderr}");
        assert!(
            stderr.contains("the OS keyring is unusable"),
            "{bus}: {stderr}"
        );
        assert_eq!(
            stderr.contains("no D-Bus session bus"),
            bus == "none",
            "{bus}: {stderr}"
        );
        let credentials = sandbox.izzi_home.join("credentials");
        assert_eq!(mode_of(&credentials), 0o600);
        let out = without_keyring(sandbox.cmd(&["key", "print"]))
            .output()
            .expect("run");
        assert_eq!(text(&out.stdout), format!("{KEY}\n"), "{bus}");
    }
}

#[cfg(unix)]
#[test]
fn files_setup_creates_with_the_key_are_private_and_existing_modes_stay() {
    let _hosts = CLINE_HOSTS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let sandbox = Sandbox::new();
    std::fs::create_dir_all(sandbox.home.join(".cline/data")).expect("dir");
    std::fs::write(sandbox.home.join(".cline/data/globalState.json"), "{}\n").expect("write");
    chmod(&sandbox.home.join(".cline/data/globalState.json"), 0o640);
    let out = sandbox.run(&["setup", "--yes", "--key", KEY, "--tools", "cline"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        mode_of(&sandbox.home.join(".cline/data/secrets.json")),
        0o600
    );
    assert_eq!(
        mode_of(&sandbox.home.join(".cline/data/globalState.json")),
        0o640
    );
    let secrets: Value = serde_json::from_slice(
        &std::fs::read(sandbox.home.join(".cline/data/secrets.json")).expect("read"),
    )
    .expect("json");
    assert_eq!(secrets["openAiApiKey"], KEY);
}

/// A file that gains the key is made private whatever its mode was (`~/.claude/settings.json`,
/// 0644 as most are, gets the key itself when izzi runs from a temporary place), setup says so,
/// and undo gives back the original bytes with their mode.
#[cfg(unix)]
#[test]
fn a_file_that_gains_the_key_ends_private_and_undo_restores_its_mode() {
    let sandbox = Sandbox::new();
    let settings = sandbox.home.join(".claude/settings.json");
    std::fs::create_dir_all(settings.parent().expect("parent")).expect("dir");
    let original = b"{\n  \"model\": \"opus\"\n}\n";
    std::fs::write(&settings, original).expect("write");
    chmod(&settings, 0o644);
    // A temp dir gets cleaned, so a tool cannot run an izzi found there: the key goes in the file.
    let temporary = sandbox.tmp.join("izzi");
    if std::fs::hard_link(izzi_bin(), &temporary).is_err() {
        std::fs::copy(izzi_bin(), &temporary).expect("copy izzi");
    }
    let setup = |key: &str| {
        Command::new(&temporary)
            .args(["setup", "--yes", "--key", key, "--tools", "claude-code"])
            .env_clear()
            .envs(sandbox.env())
            .stdin(Stdio::null())
            .output()
            .expect("run izzi")
    };
    let out = setup(KEY);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let written = std::fs::read_to_string(&settings).expect("read");
    assert!(written.contains(KEY), "{written}");
    assert_eq!(mode_of(&settings), 0o600);
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains(
            "note: `~/.claude/settings.json` now holds the key, so izzi made it private (mode 0600; it was 0644)"
        ),
        "{stdout}"
    );
    // Written again (a new key): still private, and nothing more to say.
    let out = setup("izzi-another-key-0000000000");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        std::fs::read_to_string(&settings)
            .expect("read")
            .contains("izzi-another-key-0000000000")
    );
    assert_eq!(mode_of(&settings), 0o600);
    assert!(
        !text(&out.stdout).contains("made it private"),
        "{}",
        text(&out.stdout)
    );
    let out = sandbox.run(&["setup", "--undo"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(std::fs::read(&settings).expect("read"), original);
    assert_eq!(mode_of(&settings), 0o644);
}

/// Setup is killed after writing its first file: that file is whole, the next untouched, no
/// temporary file is left, and undo restores everything.
#[cfg(unix)]
#[test]
fn killed_between_two_files_leaves_whole_files_and_undo_restores() {
    let sandbox = two_tool_home();
    let original = tree(&sandbox.home);
    let mut child = sandbox
        .cmd(&[
            "setup",
            "--yes",
            "--key",
            KEY,
            "--tools",
            "claude-code,codex",
        ])
        .env("IZZI_TEST_PAUSE_AFTER_FILE", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let stderr = child.stderr.take().expect("stderr");
    let mut paused = false;
    for line in BufReader::new(stderr).lines() {
        if line.expect("line").contains("paused after 1 files") {
            paused = true;
            break;
        }
    }
    assert!(paused, "setup did not reach the pause");
    child.kill().expect("SIGKILL");
    child.wait().expect("wait");

    let claude = sandbox.home.join(".claude/settings.json");
    let codex = sandbox.home.join(".codex/config.toml");
    let claude_now: Value =
        serde_json::from_slice(&std::fs::read(&claude).expect("read")).expect("whole JSON");
    assert_eq!(
        claude_now["env"]["ANTHROPIC_BASE_URL"],
        "https://api.izziapi.com"
    );
    assert_eq!(
        std::fs::read(&codex).expect("read"),
        original[".codex/config.toml"].clone().expect("file"),
        "the second file must be untouched"
    );
    let leftovers: Vec<_> = tree(&sandbox.home)
        .into_keys()
        .filter(|k| k.contains(".izzi-"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");

    let out = sandbox.run(&["setup", "--undo"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let undone = tree(&sandbox.home);
    assert!(undone == original, "{}", tree_diff(&undone, &original));
}

#[test]
fn undo_by_tool_restores_only_that_tool() {
    let sandbox = two_tool_home();
    let original = tree(&sandbox.home);
    let out = sandbox.run(&[
        "setup",
        "--yes",
        "--key",
        KEY,
        "--tools",
        "claude-code,codex",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let configured_codex = std::fs::read(sandbox.home.join(".codex/config.toml")).expect("read");
    let out = sandbox.run(&["setup", "--undo", "--tools", "claude-code", "--dry-run"]);
    assert!(out.status.success());
    assert!(text(&out.stdout).contains("would restore `~/.claude/settings.json`"));
    let out = sandbox.run(&["setup", "--undo", "--tools", "claude-code"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "restored `~/.claude/settings.json`\n");
    assert_eq!(
        Some(std::fs::read(sandbox.home.join(".claude/settings.json")).expect("read")),
        original[".claude/settings.json"]
    );
    assert_eq!(
        std::fs::read(sandbox.home.join(".codex/config.toml")).expect("read"),
        configured_codex
    );
    let out = sandbox.run(&["setup", "--undo"]);
    assert!(out.status.success());
    assert!(tree(&sandbox.home) == original);
    let out = sandbox.run(&["setup", "--undo"]);
    assert_eq!(
        text(&out.stdout),
        "Nothing to undo: izzi setup has not changed any file.\n"
    );
}

/// A file the user edits after setup is still restored, and their version is kept.
#[test]
fn undo_keeps_what_the_user_changed_since() {
    let sandbox = two_tool_home();
    let original = tree(&sandbox.home);
    let out = sandbox.run(&["setup", "--yes", "--key", KEY, "--tools", "codex"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let config = sandbox.home.join(".codex/config.toml");
    let mut edited = std::fs::read_to_string(&config).expect("read");
    edited.push_str("\n[tui]\nnotifications = true\n");
    std::fs::write(&config, &edited).expect("write");
    let out = sandbox.run(&["setup", "--undo"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(tree(&sandbox.home) == original);
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("changed after izzi setup wrote it; your version is kept in"),
        "{stderr}"
    );
    let kept = stderr.rsplit('`').nth(1).expect("kept path");
    assert_eq!(std::fs::read_to_string(kept).expect("kept copy"), edited);
}

/// Settings kept in a dotfiles repo and linked into place stay links; the target is edited.
#[cfg(unix)]
#[test]
fn symlinked_settings_stay_links() {
    let sandbox = two_tool_home();
    let dotfiles = sandbox.home.join("dotfiles");
    std::fs::create_dir_all(&dotfiles).expect("dir");
    let link = sandbox.home.join(".codex/config.toml");
    std::fs::rename(&link, dotfiles.join("codex.toml")).expect("move");
    std::os::unix::fs::symlink(dotfiles.join("codex.toml"), &link).expect("link");
    let original = tree(&sandbox.home);
    let out = sandbox.run(&["setup", "--yes", "--key", KEY, "--tools", "codex"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        std::fs::symlink_metadata(&link)
            .expect("meta")
            .file_type()
            .is_symlink()
    );
    assert!(
        std::fs::read_to_string(dotfiles.join("codex.toml"))
            .expect("read")
            .contains("[model_providers.izzi]")
    );
    let out = sandbox.run(&["setup", "--undo"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        std::fs::symlink_metadata(&link)
            .expect("meta")
            .file_type()
            .is_symlink()
    );
    assert!(tree(&sandbox.home) == original);
}

/// Cline rewrites its files from memory while a host runs, so setup only prints what to enter.
#[cfg(target_os = "linux")]
#[test]
fn a_running_cline_host_makes_cline_manual() {
    let _hosts = CLINE_HOSTS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let sandbox = Sandbox::new();
    copy_tree(&fixtures().join("cline/home"), &sandbox.home);
    let original = tree(&sandbox.home);
    // A program named `code`, like VS Code's.
    let fake = sandbox.bin.join("code");
    std::fs::copy("/bin/sleep", &fake).expect("copy sleep");
    let mut host = Command::new(&fake)
        .arg("60")
        .spawn()
        .expect("start fake host");
    let out = sandbox.run(&["setup", "--yes", "--key", KEY, "--tools", "cline"]);
    let _ = host.kill();
    let _ = host.wait();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains(&format!(
            "a Cline host is running (`code` (pid {})",
            host.id()
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains("API Provider:  OpenAI Compatible"),
        "{stdout}"
    );
    assert!(
        tree(&sandbox.home) == original,
        "setup wrote while Cline ran"
    );
}

#[test]
fn status_reports_tools_key_and_a_live_endpoint() {
    let home = tempfile::tempdir().expect("temp dir");
    copy_tree(&fixtures().join("codex/home"), home.path());
    let run = |args: &[&str]| {
        Command::new(izzi_bin())
            .args(args)
            .env_clear()
            .env("HOME", home.path())
            .env("IZZI_HOME", home.path())
            .env("IZZI_KEYRING", "file")
            .env("PATH", "")
            .env("TMPDIR", home.path().join("tmp"))
            .stdin(Stdio::null())
            .output()
            .expect("run")
    };
    let out = run(&["setup", "--yes", "--key", KEY, "--tools", "codex"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // The local gateway accepts the stored key when it has no `[[keys]]` of its own.
    let gateway = crate::support::Gateway::start_in(home, &[]);
    let home = gateway.home.path();
    let run = |args: &[&str]| {
        Command::new(izzi_bin())
            .args(args)
            .env_clear()
            .env("HOME", home)
            .env("IZZI_HOME", home)
            .env("IZZI_KEYRING", "file")
            .env("PATH", "")
            // Wherever the checkout is (under /tmp too), izzi must not look ephemeral here.
            .env("TMPDIR", home.join("tmp"))
            .stdin(Stdio::null())
            .output()
            .expect("run")
    };
    let out = run(&[
        "setup",
        "--yes",
        "--tools",
        "codex",
        "--base-url",
        &gateway.url,
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = run(&["status", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let status: Value = serde_json::from_slice(&out.stdout).expect("status JSON");
    assert_eq!(status["key"]["stored"], true);
    assert_eq!(status["key"]["store"], "file");
    assert_eq!(
        status["endpoint"]["url"],
        format!("{}/v1/models", gateway.url)
    );
    assert_eq!(status["endpoint"]["ok"], true, "{status}");
    assert_eq!(status["endpoint"]["status"], 200);
    let tools = status["tools"].as_array().expect("tools");
    let codex = tools.iter().find(|t| t["id"] == "codex").expect("codex");
    assert_eq!(codex["found"], true);
    assert_eq!(codex["configured"], true);
    assert_eq!(codex["by_izzi"], true);
    assert_eq!(codex["files"], serde_json::json!(["~/.codex/config.toml"]));
    let claude = tools
        .iter()
        .find(|t| t["id"] == "claude-code")
        .expect("claude");
    assert_eq!(claude["found"], false);

    // Another key: the endpoint answers, but refuses it.
    std::fs::write(home.join("credentials"), "sk-izzi-some-other-key-000000\n").expect("write");
    let out = run(&["status"]);
    let stdout = text(&out.stdout);
    assert!(stdout.contains("Key: stored in `"), "{stdout}");
    assert!(stdout.contains("/v1/models answers HTTP 401"), "{stdout}");
    // Codex asks `izzi key print` for the key, so its file does not change with the key.
    assert!(
        stdout.contains("codex        configured by izzi [~/.codex]"),
        "{stdout}"
    );
}
