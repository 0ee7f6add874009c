"""How izzi reaches users: `scripts/package`, the `izziapi` npm packages and `install.sh`.

The npm tests pack the packages that `scripts/package` makes from the debug binary, install the
tarballs into an empty prefix with the registry unreachable, and run `npx izziapi` as a user
would. The install.sh tests install from a local archive and download from a release server on
127.0.0.1. Nothing here needs the network or a release build. Needs: node and npm, sh, curl,
wget, tar, shellcheck.
"""

import hashlib
import http.server
import io
import json
import os
import re
import shutil
import signal
import subprocess
import tarfile
import threading
import time
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
INSTALL_SH = ROOT / "install.sh"
PLATFORMS = json.loads((ROOT / "npm-wrapper" / "lib" / "platforms.json").read_text())
VERSION = tomllib.loads((ROOT / "Cargo.toml").read_text())["package"]["version"]
# A closed port: any registry request fails at once instead of reaching the network.
NO_REGISTRY = "http://127.0.0.1:9/"


def run(cmd, timeout=120, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(c) for c in cmd],
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
        **kwargs,
    )


def host_target() -> str:
    out = run(["rustc", "-vV"]).stdout
    return re.search(r"^host: (\S+)$", out, re.MULTILINE).group(1)


def write_script(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


@pytest.fixture(scope="module")
def shipped_binary(izzi_binary, tmp_path_factory) -> Path:
    """The debug binary stripped, as the release profile strips: a third of the size to pack."""
    binary = tmp_path_factory.mktemp("shipped") / "izzi"
    shutil.copyfile(izzi_binary, binary)
    binary.chmod(0o755)
    if shutil.which("strip"):
        subprocess.run(["strip", binary], check=True, timeout=120)
    return binary


@pytest.fixture(scope="module")
def packaged(shipped_binary, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    done = run([ROOT / "scripts" / "package", "--binary", shipped_binary, "--out", out])
    assert done.returncode == 0, done.stderr
    return out


@pytest.fixture(scope="module")
def archive(packaged) -> Path:
    return packaged / f"izzi-{VERSION}-{host_target()}.tar.gz"


@pytest.fixture(scope="module")
def npm_env(tmp_path_factory) -> dict:
    """Offline npm with its own cache, config and home, and no inherited IZZI_* settings."""
    home = tmp_path_factory.mktemp("home")
    (home / ".npmrc").write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IZZI_", "npm_config_"))}
    env.update(
        HOME=str(home),
        IZZI_HOME=str(home / "izzi"),
        # The file store: no desktop keyring (D-Bus) to wait on, and nothing stored in it.
        IZZI_KEYRING="file",
        npm_config_cache=str(home / "npm-cache"),
        npm_config_userconfig=str(home / ".npmrc"),
        npm_config_registry=NO_REGISTRY,
        npm_config_offline="true",
        npm_config_audit="false",
        npm_config_fund="false",
        npm_config_update_notifier="false",
    )
    return env


@pytest.fixture(scope="module")
def tarballs(packaged, npm_env, tmp_path_factory) -> dict:
    """`npm pack` of every package scripts/package made: {package dir name: tarball}."""
    dest = tmp_path_factory.mktemp("tarballs")
    packs = {}
    for package in sorted((packaged / "npm").iterdir()):
        done = run(["npm", "pack", "--pack-destination", dest, package], env=npm_env)
        assert done.returncode == 0, done.stderr
        packs[package.name] = dest / done.stdout.strip().splitlines()[-1]
    return packs


def npm_install(prefix: Path, tarballs, env) -> Path:
    prefix.mkdir()
    (prefix / "package.json").write_text("{}\n")
    done = run(
        ["npm", "install", "--offline", "--no-audit", "--no-fund", *tarballs], cwd=prefix, env=env
    )
    assert done.returncode == 0, done.stderr
    return prefix


@pytest.fixture(scope="module")
def prefix(tarballs, npm_env, tmp_path_factory) -> Path:
    """An empty project with the main package and the host's platform package installed."""
    assert len(tarballs) == 2, f"expected izziapi and one platform package: {sorted(tarballs)}"
    return npm_install(tmp_path_factory.mktemp("npm") / "prefix", tarballs.values(), npm_env)


def npx(prefix: Path, env: dict, *args, **kwargs) -> subprocess.CompletedProcess:
    return run(["npx", "izziapi", *args], cwd=prefix, env=env, stdin=subprocess.DEVNULL, **kwargs)


# ---- scripts/package ----------------------------------------------------------------------


def test_archive_holds_the_pages_readme_links_to(archive):
    """README.md keeps the front page; the reference moved to docs/. Whoever unpacks a release
    archive must still have it: every docs/ page that README.md or a docs/ page links to."""
    stem = archive.name.removesuffix(".tar.gz")
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
        readme = tar.extractfile(f"{stem}/README.md").read().decode()
        pages = {name: tar.extractfile(name).read().decode() for name in names if name.endswith(".md")}
    assert readme == (ROOT / "README.md").read_text()
    links = set()
    for name, text in pages.items():
        folder = Path(name).parent
        for target in re.findall(r"\]\(([^)#\s]+)", text):
            link = os.path.normpath(folder / target)
            if "://" not in target and link.startswith(f"{stem}/docs/"):
                links.add(link)
    assert any(link.startswith(f"{stem}/docs/") for link in links), "README.md links to no docs/ page"
    assert sorted(links - names) == []


def test_package_makes_archive_checksum_and_npm_packages(packaged, archive, shipped_binary):
    target = host_target()
    stem = f"izzi-{VERSION}-{target}"
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    assert (packaged / f"{stem}.tar.gz.sha256").read_text() == f"{digest}  {stem}.tar.gz\n"
    with tarfile.open(archive) as tar:
        binary = tar.getmember(f"{stem}/izzi")
        assert binary.mode == 0o755
        assert tar.extractfile(binary).read() == shipped_binary.read_bytes()
        # Completions and man pages from the binary itself, where ripgrep's archives put them.
        bash = tar.extractfile(f"{stem}/complete/izzi.bash").read()
        assert bash == run([shipped_binary, "completions", "bash"]).stdout.encode()
        for name in ("_izzi", "izzi.fish", "_izzi.ps1", "izzi.elv"):
            assert tar.getmember(f"{stem}/complete/{name}").size > 0, name
        pages = {m.name.rsplit("/", 1)[-1] for m in tar.getmembers() if "/doc/" in m.name}
        assert {"izzi.1", "izzi-serve.1", "izzi-completions.1"} <= pages, pages

    main = json.loads((packaged / "npm" / "izziapi" / "package.json").read_text())
    assert main["name"] == "izziapi"
    assert main["version"] == VERSION
    assert main["optionalDependencies"] == {name: VERSION for name in PLATFORMS}
    assert main["bin"] == {"izziapi": "bin/izziapi.js", "izzi": "bin/izzi.js"}
    assert "scripts" not in main, "no install scripts: nothing is downloaded at install time"

    ((name, platform),) = [(n, p) for n, p in PLATFORMS.items() if p["target"] == target]
    package = packaged / "npm" / name.lstrip("@").replace("/", "-")
    manifest = json.loads((package / "package.json").read_text())
    assert manifest["name"] == name
    assert manifest["version"] == VERSION
    assert manifest["os"] == [platform["os"]] and manifest["cpu"] == [platform["cpu"]]
    assert manifest.get("libc") == ([platform["libc"]] if "libc" in platform else None)
    assert (package / "bin" / "izzi").read_bytes() == shipped_binary.read_bytes()
    assert os.access(package / "bin" / "izzi", os.X_OK)


def test_package_refuses_a_binary_of_another_version(tmp_path):
    stale = write_script(tmp_path / "izzi", 'echo "izzi 0.0.0-stale"\n')
    done = run([ROOT / "scripts" / "package", "--binary", stale, "--out", tmp_path / "out"])
    assert done.returncode == 1
    assert f"not `izzi {VERSION}`" in done.stderr
    assert not (tmp_path / "out").exists()


# ---- npx izziapi ----------------------------------------------------------------------------


def test_npx_version_and_help(prefix, npm_env):
    version = npx(prefix, npm_env, "--version")
    assert (version.returncode, version.stdout) == (0, f"izzi {VERSION}\n"), version.stderr
    helped = npx(prefix, npm_env, "--help")
    assert helped.returncode == 0, helped.stderr
    assert "Usage: izzi" in helped.stdout


def test_npx_without_arguments_runs_setup(prefix, npm_env, tmp_path):
    argv = tmp_path / "argv"
    fake = write_script(tmp_path / "fake-izzi", f'printf "%s\\n" "$@" > "{argv}"\nexit 5\n')
    done = npx(prefix, {**npm_env, "IZZI_BINARY": str(fake)})
    assert done.returncode == 5
    assert argv.read_text() == "setup\n"


def test_npx_without_arguments_and_no_tty_ends_like_izzi_setup(prefix, npm_env, izzi_binary):
    """The real binary: `npx izziapi` must behave exactly as `izzi setup` does with no TTY and no
    key, which is to stop with a message and a non-zero exit code."""
    through_npx = npx(prefix, npm_env)
    direct = run([izzi_binary, "setup"], env=npm_env, stdin=subprocess.DEVNULL)
    assert direct.returncode != 0
    assert (through_npx.returncode, through_npx.stdout, through_npx.stderr) == (
        direct.returncode,
        direct.stdout,
        direct.stderr,
    )


def test_npx_passes_arguments_unchanged(prefix, npm_env, tmp_path):
    argv = tmp_path / "argv"
    fake = write_script(tmp_path / "fake-izzi", f'printf "[%s]\\n" "$@" > "{argv}"\n')
    args = ["count-tokens", "a b", "", 'x"y', "$HOME", "it's", "--model=ü"]
    done = npx(prefix, {**npm_env, "IZZI_BINARY": str(fake)}, *args)
    assert done.returncode == 0, done.stderr
    assert argv.read_text() == "".join(f"[{a}]\n" for a in args)


def test_exit_code_passes_through(prefix, npm_env, tmp_path):
    fake = write_script(tmp_path / "fake-izzi", "echo out; echo err >&2; exit 3\n")
    env = {**npm_env, "IZZI_BINARY": str(fake)}
    done = npx(prefix, env, "serve")
    assert (done.returncode, done.stdout, done.stderr) == (3, "out\n", "err\n")
    shim = run([prefix / "node_modules" / ".bin" / "izziapi", "serve"], env=env)
    assert (shim.returncode, shim.stdout, shim.stderr) == (3, "out\n", "err\n")


def trapping_binary(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A fake izzi that records the signals it gets, says when it is ready, and waits."""
    ready, got = tmp_path / "ready", tmp_path / "got"
    fake = write_script(
        tmp_path / "fake-izzi",
        f"trap 'echo TERM >> \"{got}\"; exit 143' TERM\n"
        f"trap 'echo INT >> \"{got}\"; exit 130' INT\n"
        f'touch "{ready}"\n'
        # `wait` returns at once when a trapped signal arrives; a plain `sleep` would not.
        "sleep 30 &\nwait $!\n",
    )
    return fake, ready, got


def wait_for(path: Path, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 30
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


@pytest.mark.parametrize(
    ("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)], ids=["SIGTERM", "SIGINT"]
)
def test_signals_sent_to_the_shim_reach_the_binary(prefix, npm_env, tmp_path, sig, code):
    fake, ready, got = trapping_binary(tmp_path)
    shim = subprocess.Popen(
        [prefix / "node_modules" / ".bin" / "izziapi", "serve"],
        env={**npm_env, "IZZI_BINARY": str(fake)},
        stdin=subprocess.DEVNULL,
        start_new_session=True,  # the signal reaches the shim only, as `kill PID` would
    )
    try:
        wait_for(ready, shim)
        shim.send_signal(sig)
        assert shim.wait(timeout=20) == code
    finally:
        shim.kill()
    assert got.read_text() == f"{sig.name.removeprefix('SIG')}\n"


def test_a_binary_killed_by_a_signal_ends_the_shim_the_same_way(prefix, npm_env, tmp_path):
    fake = write_script(tmp_path / "fake-izzi", "kill -TERM $$\nsleep 5\n")
    done = run(
        [prefix / "node_modules" / ".bin" / "izziapi", "serve"],
        env={**npm_env, "IZZI_BINARY": str(fake)},
    )
    assert done.returncode == -signal.SIGTERM


def test_ctrl_c_under_npx_reaches_the_binary(prefix, npm_env, tmp_path):
    """A terminal's Ctrl-C signals the whole foreground process group: npx, the shell npm exec
    starts, the shim and izzi."""
    fake, ready, got = trapping_binary(tmp_path)
    proc = subprocess.Popen(
        ["npx", "izziapi", "serve"],
        cwd=prefix,
        env={**npm_env, "IZZI_BINARY": str(fake)},
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for(ready, proc)
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(timeout=20) != 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert got.read_text().splitlines()[0] == "INT"


def test_a_missing_binary_from_izzi_binary_is_named(prefix, npm_env, tmp_path):
    missing = tmp_path / "nowhere" / "izzi"
    done = npx(prefix, {**npm_env, "IZZI_BINARY": str(missing)}, "--version")
    assert done.returncode == 1
    assert f"could not run `{missing}` (from `IZZI_BINARY`)" in done.stderr


def test_without_the_platform_package_the_shim_says_what_to_do(tarballs, npm_env, tmp_path):
    """As after `npm install --omit=optional`: only the main package is there."""
    bare = npm_install(tmp_path / "prefix", [tarballs["izziapi"]], npm_env)
    done = npx(bare, npm_env, "--version")
    assert done.returncode == 1
    (name,) = [n for n, p in PLATFORMS.items() if p["target"] == host_target()]
    assert f"its package `{name}` was not installed" in done.stderr
    assert "--omit=optional" in done.stderr
    assert "install.sh | sh" in done.stderr and "cargo install" in done.stderr


def test_on_a_platform_without_a_package_the_shim_names_it(prefix, npm_env):
    shim = prefix / "node_modules" / "izziapi" / "bin" / "izziapi.js"
    code = (
        "Object.defineProperty(process, 'platform', { value: 'freebsd' });"
        f"require({json.dumps(str(shim))});"
    )
    done = run(["node", "-e", code, "node", "--version"], env=npm_env)
    assert done.returncode == 1
    assert f"no prebuilt binary for this platform (freebsd {node_arch()})" in done.stderr
    assert "install.sh | sh" in done.stderr and "cargo install" in done.stderr


def node_arch() -> str:
    return run(["node", "-p", "process.arch"]).stdout.strip()


@pytest.mark.parametrize(
    ("platform", "arch", "libc", "expected"),
    [
        ("linux", "x64", "glibc", ["@izziapi/linux-x64", "@izziapi/linux-x64-musl"]),
        ("linux", "x64", "musl", ["@izziapi/linux-x64-musl"]),
        ("linux", "arm64", "glibc", ["@izziapi/linux-arm64", "@izziapi/linux-arm64-musl"]),
        ("linux", "arm64", "musl", ["@izziapi/linux-arm64-musl"]),
        ("darwin", "x64", None, ["@izziapi/darwin-x64"]),
        ("darwin", "arm64", None, ["@izziapi/darwin-arm64"]),
        ("win32", "x64", None, ["@izziapi/win32-x64"]),
        ("win32", "arm64", None, []),
        ("linux", "ia32", "glibc", []),
        ("freebsd", "x64", None, []),
    ],
)
def test_shim_picks_the_platform_package(platform, arch, libc, expected):
    """Best first: on glibc Linux the static musl build is the fallback, never the reverse."""
    run_js = ROOT / "npm-wrapper" / "lib" / "run.js"
    code = (
        f"const {{ candidates }} = require({json.dumps(str(run_js))});"
        f"const found = candidates({json.dumps(platform)}, {json.dumps(arch)}, {json.dumps(libc)});"
        "process.stdout.write(JSON.stringify(found.map(([name]) => name)));"
    )
    done = run(["node", "-e", code])
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == expected


# ---- install.sh -----------------------------------------------------------------------------


def test_install_sh_passes_shellcheck():
    assert shutil.which("shellcheck"), "install shellcheck (apt-get install -y shellcheck)"
    done = run(["shellcheck", "-s", "sh", INSTALL_SH])
    assert done.returncode == 0, done.stdout


def install_env(tmp_path: Path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IZZI_")}
    env.update(HOME=str(tmp_path / "home"), SHELL="/bin/bash", **extra)
    return env


def install(*args, env) -> subprocess.CompletedProcess:
    return run(["sh", INSTALL_SH, *args], env=env, stdin=subprocess.DEVNULL)


def test_install_from_archive(archive, tmp_path):
    dest = tmp_path / "bin"
    done = install("--archive", archive, env=install_env(tmp_path, IZZI_INSTALL_DIR=str(dest)))
    assert done.returncode == 0, done.stderr
    assert "checked SHA-256" in done.stdout
    assert run([dest / "izzi", "--version"]).stdout == f"izzi {VERSION}\n"
    assert sorted(p.name for p in dest.iterdir()) == ["izzi"]
    assert f"{dest} is not on your PATH" in done.stdout
    assert f"echo 'export PATH=\"{dest}:$PATH\"' >> ~/.bashrc" in done.stdout


def test_install_defaults_to_home_local_bin_and_knows_when_it_is_on_path(archive, tmp_path):
    dest = tmp_path / "home" / ".local" / "bin"
    env = install_env(tmp_path, PATH=f"{dest}:{os.environ['PATH']}")
    done = install("--archive", archive, env=env)
    assert done.returncode == 0, done.stderr
    assert (dest / "izzi").is_file()
    assert "not on your PATH" not in done.stdout


def repacked(archive: Path, dest: Path, izzi_script: str) -> Path:
    """`archive` with its binary replaced by a script, under the same name."""
    stem = archive.name.removesuffix(".tar.gz")
    with tarfile.open(dest, "w:gz") as tar:
        data = ("#!/bin/sh\n" + izzi_script).encode()
        entry = tarfile.TarInfo(f"{stem}/izzi")
        entry.size, entry.mode = len(data), 0o755
        tar.addfile(entry, io.BytesIO(data))
    return dest


def test_install_refuses_a_tampered_archive(archive, tmp_path):
    """The archive's binary swapped for another; the .sha256 beside it is the release's."""
    ran = tmp_path / "tampered-binary-ran"
    forged = repacked(archive, tmp_path / archive.name, f'touch "{ran}"\necho "izzi {VERSION}"\n')
    shutil.copyfile(f"{archive}.sha256", f"{forged}.sha256")
    dest = tmp_path / "bin"
    done = install("--archive", forged, env=install_env(tmp_path, IZZI_INSTALL_DIR=str(dest)))
    assert done.returncode == 1
    assert f"checksum mismatch for {forged}" in done.stderr
    assert "nothing was installed" in done.stderr
    assert not dest.exists()
    assert not ran.exists()


def test_install_refuses_a_damaged_archive(archive, tmp_path):
    damaged = tmp_path / archive.name
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0xFF
    damaged.write_bytes(data)
    shutil.copyfile(f"{archive}.sha256", f"{damaged}.sha256")
    dest = tmp_path / "bin"
    done = install("--archive", damaged, env=install_env(tmp_path, IZZI_INSTALL_DIR=str(dest)))
    assert done.returncode == 1
    assert "checksum mismatch" in done.stderr
    assert not dest.exists()


def test_install_archive_without_checksum_file_says_it_was_not_checked(archive, tmp_path):
    alone = tmp_path / archive.name
    shutil.copyfile(archive, alone)
    dest = tmp_path / "bin"
    done = install("--archive", alone, env=install_env(tmp_path, IZZI_INSTALL_DIR=str(dest)))
    assert done.returncode == 0, done.stderr
    assert "its checksum was not checked" in done.stdout
    assert run([dest / "izzi", "--version"]).stdout == f"izzi {VERSION}\n"


def test_install_refuses_a_binary_that_does_not_run_and_keeps_the_old_one(archive, tmp_path):
    broken = repacked(archive, tmp_path / archive.name, "echo 'cannot execute' >&2\nexit 126\n")
    dest = tmp_path / "bin"
    dest.mkdir()
    old = write_script(dest / "izzi", 'echo "izzi 0.0.1"\n')
    done = install("--archive", broken, env=install_env(tmp_path, IZZI_INSTALL_DIR=str(dest)))
    assert done.returncode == 1
    assert "does not run on this machine (cannot execute)" in done.stderr
    assert run([old]).stdout == "izzi 0.0.1\n"
    assert sorted(p.name for p in dest.iterdir()) == ["izzi"]


@pytest.mark.parametrize(
    ("os_name", "arch"),
    [("Plan9", "x86_64"), ("FreeBSD", "amd64"), ("Linux", "mips64"), ("Darwin", "ppc")],
)
def test_install_on_an_unsupported_platform_says_so(tmp_path, os_name, arch):
    dest = tmp_path / "bin"
    env = install_env(
        tmp_path,
        IZZI_INSTALL_OS=os_name,
        IZZI_INSTALL_ARCH=arch,
        IZZI_INSTALL_DIR=str(dest),
        IZZI_INSTALL_URL=NO_REGISTRY,
    )
    done = install(env=env)
    assert done.returncode == 1
    assert f"izzi has no prebuilt binary for this platform ({os_name} {arch})" in done.stderr
    assert "npx izziapi" in done.stderr and "cargo install" in done.stderr
    assert not dest.exists()


def test_install_rejects_unknown_arguments(tmp_path):
    done = install("--colour", env=install_env(tmp_path))
    assert done.returncode == 2
    assert "unknown argument `--colour`" in done.stderr


class ReleaseServer:
    """Serves a release tree laid out as GitHub's: download/v<V>/<asset>, latest/download/<asset>."""

    def __init__(self, root: Path):
        self.requests: list[str] = []
        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, directory=str(root), **kwargs)

            def log_message(self, *args):
                server.requests.append(self.path)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


TARGETS = sorted(p["target"] for p in PLATFORMS.values())


@pytest.fixture
def release(tmp_path):
    """A release of VERSION for every target, each archive holding a small stand-in izzi."""
    root = tmp_path / "releases"
    (root / "latest" / "download").mkdir(parents=True)
    (root / "latest" / "download" / "version.txt").write_text(f"{VERSION}\n")
    assets = root / "download" / f"v{VERSION}"
    assets.mkdir(parents=True)
    for target in TARGETS:
        name = f"izzi-{VERSION}-{target}.tar.gz"
        archive = repacked(Path(name), assets / name, f'echo "izzi {VERSION} ({target})"\n')
        digest = hashlib.sha256(archive.read_bytes()).hexdigest()
        (assets / f"{name}.sha256").write_text(f"{digest}  {name}\n")
    server = ReleaseServer(root)
    yield server
    server.close()


def path_without(tool: str, tmp_path: Path) -> str:
    """A PATH with every command of this one but `tool`."""
    bin_dir = tmp_path / f"no-{tool}"
    bin_dir.mkdir()
    for directory in os.environ["PATH"].split(":"):
        if not os.path.isdir(directory):
            continue
        for name in os.listdir(directory):
            link, source = bin_dir / name, Path(directory) / name
            if name != tool and not link.exists() and os.access(source, os.X_OK):
                link.symlink_to(source)
    return str(bin_dir)


@pytest.mark.parametrize("downloader", ["curl", "wget"])
def test_install_downloads_the_latest_release_and_checks_it(release, tmp_path, downloader):
    assert shutil.which(downloader), f"install {downloader}"
    other = {"curl": "wget", "wget": "curl"}[downloader]
    dest = tmp_path / "bin"
    env = install_env(
        tmp_path,
        IZZI_INSTALL_URL=release.url,
        IZZI_INSTALL_DIR=str(dest),
        PATH=path_without(other, tmp_path),
    )
    done = install(env=env)
    assert done.returncode == 0, done.stderr
    target = host_target()
    name = f"izzi-{VERSION}-{target}.tar.gz"
    assert release.requests == [
        "/latest/download/version.txt",
        f"/download/v{VERSION}/{name}",
        f"/download/v{VERSION}/{name}.sha256",
    ]
    assert run([dest / "izzi"]).stdout == f"izzi {VERSION} ({target})\n"


@pytest.mark.parametrize(
    ("os_name", "arch", "libc", "target"),
    [
        ("Linux", "x86_64", "gnu", "x86_64-unknown-linux-gnu"),
        ("Linux", "amd64", "musl", "x86_64-unknown-linux-musl"),
        ("Linux", "aarch64", "gnu", "aarch64-unknown-linux-gnu"),
        ("Linux", "arm64", "musl", "aarch64-unknown-linux-musl"),
        ("Darwin", "x86_64", "", "x86_64-apple-darwin"),
        ("Darwin", "arm64", "", "aarch64-apple-darwin"),
    ],
)
def test_install_picks_the_archive_for_the_platform(release, tmp_path, os_name, arch, libc, target):
    dest = tmp_path / "bin"
    env = install_env(
        tmp_path,
        IZZI_INSTALL_URL=release.url,
        IZZI_INSTALL_DIR=str(dest),
        IZZI_INSTALL_OS=os_name,
        IZZI_INSTALL_ARCH=arch,
        IZZI_INSTALL_LIBC=libc,
    )
    done = install("--version", f"v{VERSION}", env=env)
    assert done.returncode == 0, done.stderr
    assert f"/download/v{VERSION}/izzi-{VERSION}-{target}.tar.gz" in release.requests
    assert run([dest / "izzi"]).stdout == f"izzi {VERSION} ({target})\n"


def test_install_refuses_a_download_whose_checksum_differs(release, tmp_path):
    name = f"izzi-{VERSION}-{host_target()}.tar.gz"
    checksum = tmp_path / "releases" / "download" / f"v{VERSION}" / f"{name}.sha256"
    checksum.write_text(f"{'0' * 64}  {name}\n")
    dest = tmp_path / "bin"
    env = install_env(tmp_path, IZZI_INSTALL_URL=release.url, IZZI_INSTALL_DIR=str(dest))
    done = install("--version", VERSION, env=env)
    assert done.returncode == 1
    assert "checksum mismatch" in done.stderr and "nothing was installed" in done.stderr
    assert not dest.exists()


def test_install_of_a_version_that_does_not_exist_fails_clearly(release, tmp_path):
    dest = tmp_path / "bin"
    env = install_env(tmp_path, IZZI_INSTALL_URL=release.url, IZZI_INSTALL_DIR=str(dest))
    done = install("--version", "9.9.9", env=env)
    assert done.returncode == 1
    assert f"could not download {release.url}/download/v9.9.9/izzi-9.9.9-" in done.stderr
    assert not dest.exists()


# ---- the release workflow ------------------------------------------------------------------


def test_release_workflow_builds_every_npm_platform():
    workflow = (ROOT / ".github" / "workflows" / "release.yml").read_text()
    built = sorted(re.findall(r"^\s*- target: (\S+)$", workflow, re.MULTILINE))
    assert built == TARGETS
