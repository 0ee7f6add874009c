"""Harness for the SDK tests: the mock upstream and the real `izzi serve`, as child processes.

The binaries come from `cargo build --all-targets` (scripts/test builds them first):
`target/debug/izzi` and `target/debug/examples/mock-upstream`.
"""

import json
import os
import pathlib
import subprocess
import tempfile
import time
import urllib.request

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
TARGET = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
IZZI = TARGET / "debug" / "izzi"
MOCK = TARGET / "debug" / "examples" / "mock-upstream"
KEY = "izzi-test-key-0123456789abcdef"


class Mock:
    """The mock upstream; see tests/mock/main.rs for its `mock:` directives."""

    def __init__(self):
        assert MOCK.exists(), f"{MOCK} is missing: run `cargo build --all-targets`"
        self.proc = subprocess.Popen([str(MOCK)], stdout=subprocess.PIPE, text=True)
        self.url = self.proc.stdout.readline().strip().rsplit(" ", 1)[-1]

    def requests(self):
        with urllib.request.urlopen(f"{self.url}/_mock/requests") as r:
            return json.load(r)

    def last(self, path=None):
        seen = [r for r in self.requests() if path is None or r["path"] == path]
        assert seen, f"the mock received nothing at {path}"
        return seen[-1]

    def stop(self):
        self.proc.kill()
        self.proc.wait()


class Gateway:
    """`izzi serve --port 0` with its own IZZI_HOME and HOME."""

    def __init__(self, config: str, env=None):
        self.home = pathlib.Path(tempfile.mkdtemp(prefix="izzi-test-"))
        (self.home / "config.toml").write_text(config)
        self.log_path = self.home / "izzi.log"
        full_env = dict(os.environ, IZZI_HOME=str(self.home), HOME=str(self.home), IZZI_KEYRING="file",
                        IZZI_LOG="izzi=debug,info")
        full_env.update(env or {})
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen([str(IZZI), "serve", "--port", "0"], stderr=log,
                                         stdout=subprocess.DEVNULL, env=full_env)
        deadline = time.monotonic() + 30
        while True:
            text = self.log()
            banner = [line for line in text.splitlines() if "izzi gateway listening on " in line]
            if banner:
                self.url = banner[0].rsplit(" ", 1)[-1]
                break
            if self.proc.poll() is not None:
                raise AssertionError(f"izzi serve exited before listening:\n{text}")
            if time.monotonic() > deadline:
                raise AssertionError(f"izzi serve did not start:\n{text}")
            time.sleep(0.02)

    def log(self):
        return self.log_path.read_text() if self.log_path.exists() else ""

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def providers(mock: Mock, anthropic_kind="anthropic", openai_kind="openai") -> str:
    """Config text: Claude models to a provider named `anthropic`, the rest to `openai`, both the
    mock; the kinds can be swapped to force translation."""
    base = {"anthropic": mock.url, "openai": f"{mock.url}/v1"}
    return f"""
[[providers]]
name = "anthropic"
kind = "{anthropic_kind}"
base_url = "{base[anthropic_kind]}"
api_key = "sk-upstream-anthropic"

[[providers]]
name = "openai"
kind = "{openai_kind}"
base_url = "{base[openai_kind]}"
api_key = "sk-upstream-openai"
models = ["*"]

[[keys]]
name = "test"
key = "{KEY}"
plan = "ultra"
"""


@pytest.fixture(scope="session")
def izzi_binary() -> pathlib.Path:
    """The debug binary, built if missing."""
    if not IZZI.is_file():
        subprocess.run(["cargo", "build", "--bin", "izzi"], cwd=ROOT, check=True, timeout=1800)
    return IZZI


@pytest.fixture(scope="session")
def mock():
    m = Mock()
    yield m
    m.stop()


@pytest.fixture
def start_gateway():
    """Starts gateways from config text; all are stopped after the test."""
    started = []

    def start(config: str, env=None) -> Gateway:
        gw = Gateway(config, env)
        started.append(gw)
        return gw

    yield start
    for gw in started:
        gw.stop()


@pytest.fixture(scope="module")
def gateway(mock):
    """One gateway with native kinds: Claude over Anthropic Messages, the rest over Chat."""
    gw = Gateway(providers(mock))
    yield gw
    gw.stop()
