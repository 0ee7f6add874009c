"""The container image (Dockerfile) and the compose example (docker-compose.yml).

Building needs a Docker engine: where `docker info` fails (no engine, as on the development
machines), the image tests are skipped with that reason. The config the compose example mounts
is checked everywhere, with the real binary.
"""

import json
import shutil
import socket
import subprocess
import time
import tomllib
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VERSION = tomllib.loads((ROOT / "Cargo.toml").read_text())["package"]["version"]
IMAGE = "izzi-test-image"


def docker_engine() -> str | None:
    """Why there is no usable Docker engine, or None when there is one."""
    if shutil.which("docker") is None:
        return "`docker` is not installed"
    done = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
        return f"`docker info` failed: {last}"
    return None


@pytest.fixture(scope="module")
def image() -> str:
    reason = docker_engine()
    if reason:
        pytest.skip(f"no Docker engine, so the image is not built: {reason}")
    subprocess.run(["docker", "build", "-t", IMAGE, str(ROOT)], check=True, timeout=3600)
    return IMAGE


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_compose_config_is_valid(izzi_binary):
    config = ROOT / "docker" / "config.toml"
    done = subprocess.run(
        [izzi_binary, "config", "check", "--config", config],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    compose = (ROOT / "docker-compose.yml").read_text()
    assert "./docker/config.toml:/etc/izzi/config.toml:ro" in compose


def test_image_runs_as_non_root_and_reports_the_version(image):
    user = subprocess.run(
        ["docker", "image", "inspect", "-f", "{{json .Config.User}}", image],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout
    assert json.loads(user) == "65532:65532"
    done = subprocess.run(
        ["docker", "run", "--rm", image, "--version"],
        capture_output=True, text=True, timeout=120,
    )
    assert done.stdout.strip() == f"izzi {VERSION}", done


def test_image_serves_health_with_a_mounted_config(image, tmp_path):
    config = tmp_path / "config.toml"
    config.write_text('[[keys]]\nname = "ci"\nkey = "izzi-container-test-key-0123"\n')
    port = free_port()
    name = f"izzi-test-{port}"
    subprocess.run(
        ["docker", "run", "-d", "--rm", "--name", name, "-p", f"127.0.0.1:{port}:8745",
         "-v", f"{config}:/etc/izzi/config.toml:ro", image],
        check=True, timeout=120,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                    assert json.loads(r.read())["status"] == "ok"
                    break
            except OSError:
                assert time.monotonic() < deadline, "the container did not answer /health"
                time.sleep(0.5)
        logs = subprocess.run(["docker", "logs", name], capture_output=True, text=True).stderr
        # JSON logs by default in the image.
        assert any(json.loads(line).get("message") == "izzi gateway listening"
                   for line in logs.splitlines() if line.startswith("{")), logs
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, timeout=60)
