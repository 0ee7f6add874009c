"""`scripts/test`'s first step: what the suite needs from the system, from the one list in
`scripts/test.d/needs`.

The tests run the real `scripts/test --needs` on a copy of the script beside a list of their
own, with PATH holding only the programs the script uses, and where a test needs them stand-ins
for apt-get, sudo and rustup that record how they were called and install the missing program
into that PATH. No real package is installed.
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "test"
NEEDS = ROOT / "scripts" / "test.d" / "needs"
# Programs every Debian system has (Essential packages), and the Rust toolchain itself: the
# tests may start them without a line in the needs list.
BASE = {"sh", "id", "chown", "mount", "umount", "unshare", "tar", "cargo", "rustc"}
# Started only by tests that skip, saying why, where they are missing: no package brings them.
OPTIONAL = {"docker"}


def needs() -> list[tuple[list[str], str]]:
    """(the alternatives a need is found by, what installs it), for every line of the list."""
    out = []
    for line in NEEDS.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            found_by, install = line.split()[:2]
            out.append((found_by.split("|"), install))
    return out


def started_programs() -> set[str]:
    """Every program the tests start by name: `Command::new("x")`, `program("x")` and
    `command("x")` in tests/it, `run(["x", ...])` and `Popen(["x", ...])` in tests/python."""
    names = set()
    for source in (ROOT / "tests" / "it").glob("*.rs"):
        names |= set(re.findall(r'(?:Command::new|program|command)\("([^"/]+)"\)', source.read_text()))
    for source in (ROOT / "tests" / "python").glob("*.py"):
        if source.name == Path(__file__).name:
            continue
        names |= set(re.findall(r'(?:run|Popen)\(\s*\[\s*"([^"/]+)"', source.read_text()))
    return names


def test_every_program_the_tests_start_is_a_need():
    listed = {alternative for found_by, _ in needs() for alternative in found_by}
    started = started_programs()
    assert {"redis-server", "initdb", "tmux", "npm", "shellcheck"} <= started, started
    assert sorted(started - listed - BASE - OPTIONAL) == [], "add these to scripts/test.d/needs"


def test_every_need_names_what_installs_it():
    for found_by, install in needs():
        assert install.startswith("rustup:") or re.fullmatch(r"[a-z0-9][a-z0-9+.-]+", install), (found_by, install)
        for alternative in found_by:
            assert re.fullmatch(r"(python3:[\w.]+|/[\w/.*+-]+|[\w.+-]+)", alternative), alternative


def sandbox(tmp_path: Path, needs_text: str, programs: dict[str, str]) -> tuple[Path, dict]:
    """A copy of scripts/test beside `needs_text`, and an environment whose PATH holds only
    bash, the programs the script runs and `programs` (name: shell script)."""
    repo = tmp_path / "repo"
    (repo / "scripts" / "test.d").mkdir(parents=True)
    shutil.copy(SCRIPT, repo / "scripts" / "test")
    (repo / "scripts" / "test.d" / "needs").write_text(needs_text)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "dirname", "id", "env", "true"):
        (bin_dir / tool).symlink_to(shutil.which(tool))
    (bin_dir / "python3").symlink_to(sys.executable)
    for name, body in programs.items():
        (bin_dir / name).write_text(f"#!{shutil.which('bash')}\n{body}\n")
        (bin_dir / name).chmod(0o755)
    env = {"PATH": str(bin_dir), "HOME": str(tmp_path), "CALLS": str(tmp_path / "calls")}
    return repo, env


def run_needs(repo: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([shutil.which("bash"), repo / "scripts" / "test", "--needs"], env=env,
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)


LIST = """# a comment, and a blank line

bash                          bash            the script itself
izzi-no-such-program          izzi-pkg-a      the first test
/izzi/no/such/*/file|izzi-no-such-program izzi-pkg-a the second test
python3:izzi_no_such_module   izzi-pkg-b      the third test
izzi-no-such-linter           rustup:izzi-lint the fourth test
"""
SUDO = 'echo "sudo $*" >>"$CALLS"; [ "$1" = -n ] && shift; exec "$@"'


def test_a_missing_need_stops_the_run_with_the_install_command(tmp_path):
    repo, env = sandbox(tmp_path, LIST, {})
    done = run_needs(repo, env)
    assert done.returncode == 1, done
    assert done.stdout == ""
    sudo = "" if os.geteuid() == 0 else "sudo "
    assert done.stderr.splitlines() == [
        "scripts/test: missing izzi-pkg-a, for the first test",
        "scripts/test: missing izzi-pkg-a, for the second test",
        "scripts/test: missing izzi-pkg-b, for the third test",
        "scripts/test: missing rustup:izzi-lint, for the fourth test",
        "scripts/test: cannot install them here; install them, then run scripts/test again:",
        f"  {sudo}apt-get update && {sudo}apt-get install -y --no-install-recommends izzi-pkg-a izzi-pkg-b",
        "  rustup component add izzi-lint",
        "(Debian package names: your package manager may name them differently)",
    ]


def test_missing_needs_are_installed_when_apt_get_and_rustup_are_there(tmp_path):
    bin_dir, chmod = tmp_path / "bin", shutil.which("chmod")
    (tmp_path / "py").mkdir()
    apt = f"""echo "apt-get $* DEBIAN_FRONTEND=$DEBIAN_FRONTEND" >>"$CALLS"
if [ "$1" = install ]; then
  for package in "$@"; do
    case "$package" in
      izzi-pkg-a) printf '#!/bin/sh\\n' >{bin_dir}/izzi-no-such-program; {chmod} +x {bin_dir}/izzi-no-such-program ;;
      izzi-pkg-b) : >{tmp_path}/py/izzi_no_such_module.py ;;
    esac
  done
fi"""
    rustup = f"""echo "rustup $*" >>"$CALLS"
printf '#!/bin/sh\\n' >{bin_dir}/izzi-no-such-linter; {chmod} +x {bin_dir}/izzi-no-such-linter"""
    repo, env = sandbox(tmp_path, LIST, {"apt-get": apt, "sudo": SUDO, "rustup": rustup})
    env["PYTHONPATH"] = str(tmp_path / "py")
    done = run_needs(repo, env)
    assert done.returncode == 0, done
    assert done.stdout == "scripts/test: every need in scripts/test.d/needs is met\n"
    sudo = "" if os.geteuid() == 0 else "sudo "
    assert "scripts/test: installing them: " in done.stderr
    calls = (tmp_path / "calls").read_text().splitlines()
    apt_calls = [c for c in calls if c.startswith("apt-get")]
    assert apt_calls == [
        "apt-get update -qq DEBIAN_FRONTEND=noninteractive",
        "apt-get install -y -qq --no-install-recommends izzi-pkg-a izzi-pkg-b DEBIAN_FRONTEND=noninteractive",
    ]
    assert "rustup component add izzi-lint" in calls
    # Not root: every apt-get went through sudo, after asking it not to prompt.
    if sudo:
        assert calls[0] == "sudo -n true" and sum(c.startswith("sudo env") for c in calls) == 2, calls
    # Found now, a second run installs nothing.
    (tmp_path / "calls").unlink()
    again = run_needs(repo, env)
    assert (again.returncode, again.stderr) == (0, "")
    assert not (tmp_path / "calls").exists()


def test_a_need_the_install_did_not_bring_fails_the_run(tmp_path):
    repo, env = sandbox(tmp_path, "izzi-no-such-program izzi-pkg-a the first test\n",
                        {"apt-get": 'echo "apt-get $*" >>"$CALLS"', "sudo": SUDO})
    done = run_needs(repo, env)
    assert done.returncode == 1, done
    assert done.stderr.endswith(
        "scripts/test: still missing after the install:\nizzi-pkg-a\tthe first test\n"), done.stderr
    assert done.stdout == ""
