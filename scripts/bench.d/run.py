#!/usr/bin/env python3
"""The benchmark driver behind `scripts/bench` (which builds the binaries first).

Starts the mock upstream, nginx, the relay (`bench-relay`), `izzi serve` and the LiteLLM proxy, pins the
servers under test to one core and the mock and the load generator (`bench-load`) to the other,
runs every lane in interleaved rounds, and writes the figures as JSON and as a Markdown table.

Lanes (what the client speaks -> what the provider speaks):
  direct      the load generator straight to the mock (the baseline)
  nginx       nginx's `proxy_pass` in front of the mock, one worker, upstream keep-alive, no
              buffering: the best-engineered plain reverse proxy, which every izzi lane is
              judged against (issue 25)
  relay       a TCP relay that reads no HTTP: the floor any proxy pays on this machine
              (latency at concurrency 1 and capacity only)
  izzi        `izzi serve`, same format and translating, with a client key, limits and the
              ledger on, as users run it
  litellm     the LiteLLM proxy (its own venv), same mock, same requests

Figures: latency at concurrency 1 (zero-delay mock), latency at a constant rate against a
fixed-delay mock, capacity (highest constant rate with p99 < 5 ms and no errors), streams of 64
content events 20 ms apart (time to first byte, largest gap between content events, content
events received against sent), 1,000 concurrent streams, CPU time per request (utime + stime
from /proc), RSS idle, under load and after, cold start to the first 200.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
KEY = "izzi-bench-key-0123456789abcdef"
# A second key with a monthly budget and credits: each request then holds its worst-case cost,
# which needs its input tokens counted locally (docs/gateway.md: Keys, limits and usage).
BUDGET_KEY = "izzi-bench-budget-0123456789abcd"
LITELLM_KEY = "sk-bench-litellm"
CLAUDE = "claude-sonnet-4-20250514"
GPT = "gpt-4.1"
# The mock answers "Hello from the mock upstream." plus N words, one content event per word.
EXTRA_WORDS = 59
CONTENT_EVENTS = 5 + EXTRA_WORDS
FLOOR = "relay messages"
# The reference every izzi lane is a ratio to: nginx facing the same client format.
NGINX = "nginx"
CHUNK_DELAY_MS = 20
FIXED_DELAY_MS = 50
P99_LIMIT_US = 5000
CLK_TCK = os.sysconf("SC_CLK_TCK")
# A prompt of about 1 KB, so the gateway handles a body of realistic size (coding tools send far
# larger ones; the cost of copying grows with them).
PROMPT = (
    "You are a careful assistant. Answer briefly and precisely. "
    + " ".join(f"context line {i}: the quick brown fox jumps over the lazy dog." for i in range(14))
)


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Processes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def descendants(pid: int) -> list[int]:
    """`pid` and every process below it (LiteLLM may fork workers)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def cpu_seconds(pid: int) -> float:
    """utime + stime of the process tree, in seconds."""
    total = 0
    for p in descendants(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / CLK_TCK


def cpu_us_per_request(result: dict) -> float:
    """The server's CPU time per request served over one load run, in microseconds."""
    return result["cpu_s"] * 1e6 / max(result.get("requests_total", 0), 1)


def rss_mb(pid: int) -> float:
    total_kb = 0
    for p in descendants(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kb += int(line.split()[1])
        except OSError:
            continue
    return total_kb / 1024


class RssSampler:
    """Samples the RSS of some processes every 50 ms while a lane runs; keeps the peak."""

    def __init__(self, pids: list[int]):
        self.pids = pids
        self.peak = {p: 0.0 for p in pids}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for p in self.pids:
                self.peak[p] = max(self.peak[p], rss_mb(p))
            self._stop.wait(0.05)

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        for p in self.pids:
            self.peak[p] = max(self.peak[p], rss_mb(p))


@dataclass
class Server:
    name: str
    proc: subprocess.Popen
    url: str
    started_s: float = 0.0

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def wait_for_line(path: Path, marker: str, proc: subprocess.Popen, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = path.read_text(errors="replace") if path.exists() else ""
        # Whole lines only: the last may be read half written.
        for line in text.split("\n")[:-1]:
            if marker in line:
                return line
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode}:\n{text[-2000:]}")
        time.sleep(0.01)
    raise RuntimeError(f"no `{marker}` in {path} after {timeout} s")


def http_post(url: str, body: dict, headers: dict[str, str], timeout: float = 10) -> tuple[int, bytes]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"content-type": "application/json", **headers}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()
    except OSError as err:
        return 0, str(err).encode()


def clear_mock(mock: Server) -> None:
    """The mock records every request; forgetting them keeps its memory flat across lanes."""
    request = urllib.request.Request(f"{mock.url}/_mock/requests", method="DELETE")
    with urllib.request.urlopen(request, timeout=10):
        pass


# ---------------------------------------------------------------------------------------------
# Lanes


@dataclass
class Lane:
    name: str
    server: str  # "mock", "nginx", "relay", "izzi" or "litellm"
    client: str  # the client's format: "messages" or "chat"
    upstream: str  # the provider's format
    model: str
    key: str = ""
    url: str = ""
    pid: int = 0
    error: str | None = None
    rounds: dict[str, list[dict]] = field(default_factory=dict)
    once: dict[str, dict] = field(default_factory=dict)

    @property
    def baseline(self) -> str:
        return f"direct {self.upstream}"

    @property
    def path(self) -> str:
        return "/v1/messages" if self.client == "messages" else "/v1/chat/completions"

    def headers(self) -> dict[str, str]:
        upstream = "sk-upstream"
        key = self.key or {"mock": upstream, "nginx": upstream, "relay": upstream, "izzi": KEY,
                           "litellm": LITELLM_KEY}[self.server]
        if self.client == "messages":
            return {"x-api-key": key, "anthropic-version": "2023-06-01"}
        return {"authorization": f"Bearer {key}"}

    def body(self, directives: str = "", stream: bool = False) -> dict:
        text = f"{PROMPT} {directives}".strip()
        body: dict = {"model": self.model, "max_tokens": 1024}
        if self.client == "messages":
            body["messages"] = [{"role": "user", "content": text}]
        else:
            body["messages"] = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": text}]
        if stream:
            body["stream"] = True
            if self.client == "chat":
                body["stream_options"] = {"include_usage": True}
        return body


def make_lanes(with_litellm: bool) -> list[Lane]:
    lanes = [
        Lane("direct messages", "mock", "messages", "messages", CLAUDE),
        Lane("direct chat", "mock", "chat", "chat", GPT),
        # The reference: a plain reverse proxy (every lane, streams too).
        Lane("nginx messages", NGINX, "messages", "messages", CLAUDE),
        Lane("nginx chat", NGINX, "chat", "chat", GPT),
        # The floor: what any proxy costs on this machine (latency at concurrency 1, capacity).
        Lane(FLOOR, "relay", "messages", "messages", CLAUDE),
        Lane("izzi messages", "izzi", "messages", "messages", CLAUDE),
        Lane("izzi chat", "izzi", "chat", "chat", GPT),
        Lane("izzi messages +budget", "izzi", "messages", "messages", CLAUDE, key=BUDGET_KEY),
        Lane("izzi messages->chat", "izzi", "messages", "chat", GPT),
        Lane("izzi chat->messages", "izzi", "chat", "messages", CLAUDE),
    ]
    if with_litellm:
        lanes += [
            Lane("litellm messages", "litellm", "messages", "messages", CLAUDE),
            Lane("litellm chat", "litellm", "chat", "chat", GPT),
        ]
    return lanes


class Bench:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.bin = Path(args.bin_dir)
        self.work = Path(args.out) / "run"
        if self.work.exists():
            shutil.rmtree(self.work)
        self.work.mkdir(parents=True)
        self.cores = os.sched_getaffinity(0)
        if len(self.cores) >= 2:
            self.server_core, self.load_core = (str(c) for c in sorted(self.cores)[:2])
        else:
            log("only one core: the servers and the load generator share it; figures will be poor")
            self.server_core = self.load_core = str(next(iter(self.cores)))
        # On a machine shared with other work (compilers, tests), a server that shares its core
        # with a busy neighbour waits milliseconds for the scheduler now and then, and a lane
        # that crosses cores suffers more than one that does not. Real-time round-robin
        # scheduling for every process of the bench (servers, mock, load generator alike) takes
        # the neighbours out of the figures. Round-robin, not FIFO, with the shortest time
        # slice, so a server's own threads (a ledger writer, say) still take turns with its
        # request thread as under the normal scheduler. The overload probes of the capacity
        # search keep both cores busy: real-time tasks may take 70 % of each second instead of
        # the kernel's default 95 %, so the rest of the machine keeps running (a probe that needs
        # more has failed anyway). Both settings are restored when the run ends.
        self.realtime: list[str] = []
        self.saved: dict[Path, str] = {}
        if not args.no_realtime and shutil.which("chrt"):
            if subprocess.run(["chrt", "-r", "10", "true"], capture_output=True).returncode == 0:
                self.realtime = ["chrt", "-r", "10"]
                for name, value in (("sched_rt_runtime_us", "700000"), ("sched_rr_timeslice_ms", "1")):
                    path = Path("/proc/sys/kernel") / name
                    try:
                        old = path.read_text().strip()
                        path.write_text(value)
                        self.saved[path] = old
                    except OSError:
                        pass
            else:
                log("cannot use real-time scheduling (needs root or CAP_SYS_NICE); busy neighbours will show in the tails")
        self.servers: dict[str, Server] = {}
        self.lanes = make_lanes(not args.no_litellm)
        self.results: dict = {"rounds": args.rounds}
        self.bodies: dict[tuple[str, str], Path] = {}

    # -- processes -------------------------------------------------------------------------

    def pin(self, core: str, cmd: list[str]) -> list[str]:
        return ["taskset", "-c", core, *self.realtime, *cmd]

    def start_example(self, name: str, core: str, example: str, *args: str) -> Server:
        """Starts one of the bench's own examples on `core`; it prints `... listening on URL`."""
        log_path = self.work / f"{name}.log"
        proc = subprocess.Popen(
            self.pin(core, [str(self.bin / "examples" / example), *args]),
            stdout=open(log_path, "w"),
            stderr=subprocess.STDOUT,
        )
        line = wait_for_line(log_path, "listening on", proc, 30)
        return Server(name, proc, line.rsplit(" ", 1)[1])

    def start_nginx(self, mock: Server) -> Server | None:
        """nginx as issue 25 configures it: one worker, an `upstream` with 64 idle keep-alive
        connections, HTTP/1.1 to the mock with `Connection` cleared, no buffering either way. The
        lines beyond those only keep nginx from measuring something else: no access log (izzi
        logs no line per request either), enough connections for the 1,000 streams, and no cap
        on requests per connection (the default 1,000 would make nginx reconnect mid-lane)."""
        exe = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx")
                                             if Path(p).exists()), None)
        if exe is None:
            self.results["nginx_error"] = "nginx is not installed"
            log("nginx lanes skipped: nginx is not installed")
            return None
        prefix = self.work / "nginx"
        (prefix / "tmp").mkdir(parents=True, exist_ok=True)
        port = free_port()
        conf = prefix / "nginx.conf"
        temp = " ".join(f"{kind}_temp_path {prefix / 'tmp' / kind};"
                        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        conf.write_text(
            f"""worker_processes 1;
worker_rlimit_nofile 65536;
daemon off;
pid {prefix / 'nginx.pid'};
error_log {prefix / 'error.log'} warn;
events {{ worker_connections 16384; }}
http {{
  access_log off;
  {temp}
  keepalive_requests 100000000;
  upstream mock {{ server {mock.url.removeprefix('http://')}; keepalive 64; keepalive_requests 100000000; }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://mock;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
      proxy_request_buffering off;
    }}
  }}
}}
"""
        )
        log_path = self.work / "nginx.log"
        url = f"http://127.0.0.1:{port}"
        proc = subprocess.Popen(
            self.pin(self.server_core, [exe, "-p", str(prefix), "-e", str(prefix / "error.log"), "-c", str(conf)]),
            stdout=open(log_path, "w"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    self.results["nginx_version"] = version([exe, "-v"])
                    return Server(NGINX, proc, url)
            except OSError:
                time.sleep(0.02)
        self.results["nginx_error"] = f"nginx did not listen: {(prefix / 'error.log').read_text(errors='replace')[-500:]}"
        log(f"nginx lanes skipped: {self.results['nginx_error']}")
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        return None

    def izzi_config(self, mock: Server) -> Path:
        path = self.work / "izzi.toml"
        path.write_text(
            f"""# The bench's gateway: both provider kinds at the mock, one governed client key whose
# limits are set high enough never to refuse a benchmark request.
[[providers]]
name = "anthropic"
kind = "anthropic"
base_url = "{mock.url}"
api_key = "sk-upstream-anthropic"

[[providers]]
name = "openai"
kind = "openai"
base_url = "{mock.url}/v1"
api_key = "sk-upstream-openai"

[[keys]]
name = "bench"
key = "{KEY}"
plan = "ultra"
rpm = 4000000000
daily = 4000000000
concurrent = 100000

[[keys]]
name = "bench-budget"
key = "{BUDGET_KEY}"
plan = "ultra"
rpm = 4000000000
daily = 4000000000
concurrent = 100000
monthly_budget_usd = 1000000000
credits_usd = 1000000000
"""
        )
        return path

    def izzi_env(self, home: Path) -> dict[str, str]:
        home.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env.update({"IZZI_HOME": str(home), "HOME": str(home), "IZZI_KEYRING": "file"})
        env.pop("IZZI_LOG", None)
        return env

    def izzi_cmd(self, config: Path, port: int) -> list[str]:
        return [str(self.bin / "izzi"), "serve", "--port", str(port), "--config", str(config)]

    def start_izzi(self, config: Path) -> Server:
        log_path = self.work / "izzi.log"
        started = time.monotonic()
        proc = subprocess.Popen(
            self.pin(self.server_core, self.izzi_cmd(config, 0)),
            env=self.izzi_env(self.work / "izzi-home"),
            stdout=subprocess.DEVNULL,
            stderr=open(log_path, "w"),
        )
        line = wait_for_line(log_path, "izzi gateway listening on", proc, 30)
        return Server("izzi", proc, line.rsplit(" ", 1)[1], time.monotonic() - started)

    def litellm_config(self, mock: Server) -> Path:
        path = self.work / "litellm.yaml"
        path.write_text(
            f"""model_list:
  - model_name: {GPT}
    litellm_params:
      model: openai/{GPT}
      api_base: {mock.url}/v1
      api_key: sk-upstream-openai
  - model_name: {CLAUDE}
    litellm_params:
      model: anthropic/{CLAUDE}
      api_base: {mock.url}
      api_key: sk-upstream-anthropic
general_settings:
  master_key: {LITELLM_KEY}
litellm_settings:
  telemetry: false
"""
        )
        return path

    def start_litellm(self, mock: Server) -> Server | None:
        exe = Path(self.args.litellm_venv) / "bin" / "litellm"
        if not exe.exists():
            self.results["litellm_error"] = f"{exe} is missing (the venv install failed or was skipped)"
            log(f"LiteLLM lanes skipped: {self.results['litellm_error']}")
            return None
        port = free_port()
        env = dict(os.environ)
        # No network: the model price map ships inside the package.
        env.update({"LITELLM_LOCAL_MODEL_COST_MAP": "True", "NO_DOCS": "True"})
        log_path = self.work / "litellm.log"
        lane = next(l for l in self.lanes if l.name == "litellm chat")
        url = f"http://127.0.0.1:{port}"
        started = time.monotonic()
        proc = subprocess.Popen(
            self.pin(
                self.server_core,
                [str(exe), "--config", str(self.litellm_config(mock)), "--host", "127.0.0.1",
                 "--port", str(port), "--num_workers", "1"],
            ),
            env=env,
            stdout=open(log_path, "w"),
            stderr=subprocess.STDOUT,
        )
        deadline = started + self.args.litellm_timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            status, _ = http_post(f"{url}{lane.path}", lane.body(), lane.headers(), timeout=5)
            if status == 200:
                server = Server("litellm", proc, url, time.monotonic() - started)
                log(f"LiteLLM answered its first 200 after {server.started_s:.1f} s")
                return server
            time.sleep(0.05)
        tail = log_path.read_text(errors="replace")[-1500:]
        self.results["litellm_error"] = f"LiteLLM did not answer 200 within {self.args.litellm_timeout} s: {tail}"
        log(self.results["litellm_error"])
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        return None

    # -- load -------------------------------------------------------------------------------

    def body_file(self, lane: Lane, kind: str) -> Path:
        key = (lane.name, kind)
        if key not in self.bodies:
            directives = {
                "plain": "mock:words=0",
                "delay": f"mock:words=0 mock:delay_ms={FIXED_DELAY_MS}",
                "stream": f"mock:words={EXTRA_WORDS} mock:chunk_delay_ms={CHUNK_DELAY_MS}",
            }[kind]
            path = self.work / f"body-{lane.name.replace(' ', '_').replace('>', '').replace('+', '')}-{kind}.json"
            path.write_text(json.dumps(lane.body(directives, stream=kind == "stream")))
            self.bodies[key] = path
        return self.bodies[key]

    def load(self, mode: str, lane: Lane, kind: str, *extra: str, timeout: float = 300) -> dict:
        cmd = [str(self.bin / "examples" / "bench-load"), mode, "--url", lane.url, "--path", lane.path,
               "--body", str(self.body_file(lane, kind))]
        for name, value in lane.headers().items():
            cmd += ["--header", f"{name}: {value}"]
        cmd += list(extra)
        pids = [s.pid for s in self.servers.values()]
        cpu_before = cpu_seconds(lane.pid)
        with RssSampler(pids) as rss:
            done = subprocess.run(self.pin(self.load_core, cmd), capture_output=True, text=True, timeout=timeout)
        cpu = cpu_seconds(lane.pid) - cpu_before
        lines = done.stdout.strip().splitlines()
        result = json.loads(lines[-1]) if lines else {"error": done.stderr.strip()[-1000:]}
        result["cpu_s"] = cpu
        result["rss_peak_mb"] = rss.peak[lane.pid]
        for server in self.servers.values():
            self.peak_rss[server.name] = max(self.peak_rss.get(server.name, 0.0), rss.peak[server.pid])
        if "mock" in self.servers:
            clear_mock(self.servers["mock"])
        return result

    # -- the run ----------------------------------------------------------------------------

    def run(self) -> dict:
        self.peak_rss: dict[str, float] = {}
        started = time.monotonic()
        try:
            self._run()
        finally:
            for server in self.servers.values():
                server.stop()
            self.restore()
        self.results["wall_secs"] = time.monotonic() - started
        return self.results

    def restore(self) -> None:
        """Puts back the scheduler settings the run changed."""
        for path, value in self.saved.items():
            path.write_text(value)
        self.saved = {}

    def _run(self) -> None:
        a = self.args
        mock = self.start_example("mock", self.load_core, "mock-upstream")
        self.servers["mock"] = mock
        self.servers["relay"] = self.start_example("relay", self.server_core, "bench-relay",
                                                   mock.url.removeprefix("http://"))
        nginx = self.start_nginx(mock)
        if nginx:
            self.servers[NGINX] = nginx
        config = self.izzi_config(mock)
        self.results["cold_start_ms"] = {
            "mock": self.cold([str(self.bin / "examples" / "mock-upstream"), "--port", "{port}"], "mock", a.cold_runs),
            "izzi": self.cold(self.izzi_cmd(config, 0), "izzi", a.cold_runs, config=config),
        }
        izzi = self.start_izzi(config)
        self.servers["izzi"] = izzi
        if not a.no_litellm:
            litellm = self.start_litellm(mock)
            if litellm:
                self.servers["litellm"] = litellm
                self.results["cold_start_ms"]["litellm"] = [litellm.started_s * 1000]
        for lane in self.lanes:
            server = self.servers.get(lane.server)
            if server is None:
                lane.error = "server not running"
                continue
            lane.url, lane.pid = server.url, server.pid
            status, answer = http_post(f"{lane.url}{lane.path}", lane.body(), lane.headers())
            if status != 200:
                lane.error = f"{status}: {answer[:300].decode(errors='replace')}"
                log(f"lane `{lane.name}` unavailable: {lane.error}")
            else:
                # Warm-up: connection pools, allocator arenas, lazy tables.
                self.load("seq", lane, "plain", "--secs", "0.2", "--warmup-secs", "0.1")
        lanes = [l for l in self.lanes if l.error is None]
        # The relay's lane is measured where the floor matters (concurrency 1, capacity): it
        # forwards streams as bytes, and a figure of its streams would only repeat the direct one.
        measured = [l for l in lanes if l.server != "relay"]
        time.sleep(1)
        self.results["rss_idle_mb"] = {name: rss_mb(s.pid) for name, s in self.servers.items()}

        for r in range(a.rounds):
            order = lanes[r % len(lanes):] + lanes[: r % len(lanes)]
            log(f"round {r + 1}/{a.rounds}: latency at concurrency 1, fixed delay, streams")
            for lane in order:
                self.settle(f"round {r + 1} latency: {lane.name}")
                lane.rounds.setdefault("seq", []).append(
                    self.load("seq", lane, "plain", "--secs", str(a.seq_secs)))
            for lane in (l for l in order if l in measured):
                self.settle(f"round {r + 1} fixed delay: {lane.name}")
                lane.rounds.setdefault("delay", []).append(
                    self.load("rate", lane, "delay", "--rate", str(a.delay_rate), "--secs", str(a.delay_secs)))
            for lane in (l for l in order if l in measured):
                self.settle(f"round {r + 1} streams: {lane.name}")
                lane.rounds.setdefault("stream", []).append(
                    self.load("streams", lane, "stream", "--n", str(a.streams), "--ramp-ms", "300",
                              "--expect", str(CONTENT_EVENTS)))
        # Before the capacity search: its overload probes leave memory behind in every server,
        # which would show up as this lane's RSS. LiteLLM's go last of all, and only in Chat, its
        # own format: it works on for 25-46 s after streams it failed, so every lane after them
        # would wait for that, and it completed none in either format in every run so far.
        slow = [l for l in measured if l.server == "litellm"]
        self.many_streams([l for l in measured if l not in slow])
        for r in range(a.capacity_rounds):
            order = lanes[r % len(lanes):] + lanes[: r % len(lanes)]
            for lane in order:
                self.settle(f"capacity {r + 1}: {lane.name}")
                log(f"capacity {r + 1}/{a.capacity_rounds}: {lane.name}")
                lane.rounds.setdefault("capacity", []).append(self.capacity(lane))
        time.sleep(2)
        self.results["rss_after_mb"] = {name: rss_mb(s.pid) for name, s in self.servers.items()}
        self.many_streams([l for l in slow if l.client == "chat"])
        self.results["rss_peak_mb"] = dict(self.peak_rss)
        self.results["lanes"] = {
            l.name: {"server": l.server, "client": l.client, "upstream": l.upstream, "model": l.model,
                     "error": l.error, "rounds": l.rounds, "once": l.once}
            for l in self.lanes
        }

    def many_streams(self, lanes: list[Lane]) -> None:
        """Each lane's many concurrent streams, with its server's RSS and open files 2 s later."""
        a = self.args
        for lane in lanes:
            self.settle(f"{a.many_streams} streams: {lane.name}")
            log(f"{a.many_streams} concurrent streams: {lane.name}")
            lane.once["streams_many"] = self.load(
                "streams", lane, "stream", "--n", str(a.many_streams), "--ramp-ms", "1000",
                "--expect", str(CONTENT_EVENTS), "--timeout-secs", str(a.many_timeout),
                timeout=a.many_timeout + 60)
            time.sleep(2)
            lane.once["streams_many"]["rss_after_mb"] = rss_mb(lane.pid)
            # Connections still open 2 s later: idle upstream connections kept by a pool.
            lane.once["streams_many"]["open_fds_after"] = len(os.listdir(f"/proc/{lane.pid}/fd"))
            self.results.setdefault("rss_after_streams_mb", {})[lane.server] = rss_mb(lane.pid)

    def settle(self, before: str) -> None:
        """Waits (at most a minute) until every server is idle: at most one clock tick (10 ms) of
        CPU among them over 0.2 s. A server still working off an earlier lane shares the
        servers' core and would slow the next lane of another server (LiteLLM went on with the
        streams the load generator gave up on for 25-46 s)."""
        started = time.monotonic()
        while time.monotonic() - started < 60:
            before_cpu = sum(cpu_seconds(s.pid) for s in self.servers.values())
            time.sleep(0.2)
            if sum(cpu_seconds(s.pid) for s in self.servers.values()) - before_cpu < 1.5 / CLK_TCK:
                break
        waited = time.monotonic() - started
        self.results.setdefault("settle_waits_s", {})[before] = round(waited, 1)
        if waited > 1:
            log(f"waited {waited:.0f} s for the servers to go idle before {before}")

    def cold(self, cmd: list[str], name: str, runs: int, config: Path | None = None) -> list[float]:
        """Spawn-to-first-200 times of a fresh process (a fresh home each time for izzi)."""
        lane = Lane("cold", name, "chat", "chat", GPT)
        times = []
        for i in range(runs):
            port = free_port()
            lane.url = f"http://127.0.0.1:{port}"
            argv = [c.replace("{port}", str(port)) for c in cmd]
            if name == "izzi":
                argv = self.izzi_cmd(config, port)  # type: ignore[arg-type]
            env = self.izzi_env(self.work / f"cold-home-{i}") if name == "izzi" else None
            load = [str(self.bin / "examples" / "bench-load"), "cold", "--url", lane.url, "--path", lane.path,
                    "--body", str(self.body_file(lane, "plain"))]
            for header, value in lane.headers().items():
                load += ["--header", f"{header}: {value}"]
            load += ["--", *self.pin(self.server_core, argv)]
            done = subprocess.run(self.pin(self.load_core, load), capture_output=True, text=True, env=env, timeout=120)
            result = json.loads(done.stdout.strip().splitlines()[-1])
            if "error" in result:
                raise RuntimeError(f"cold start of {name}: {result['error']}")
            times.append(result["ms"])
        return times

    def capacity(self, lane: Lane) -> dict:
        """The highest constant rate with p99 under 5 ms and no errors: double (or halve) from
        the rate one core could serve at the lane's CPU per request one at a time, then bisect."""
        a = self.args
        probes: list[dict] = []

        def attempt(rate: float) -> bool:
            result = self.load("rate", lane, "plain", "--rate", f"{rate:.0f}", "--secs", str(a.probe_secs),
                               "--warmup-secs", "0.2")
            result["passed"] = (
                "error" not in result
                and result["errors"] == 0
                and result["unsent"] == 0
                and result["late"] <= result["ok"] / 100
                and (result["latency_us"]["p99"] or P99_LIMIT_US) < P99_LIMIT_US
            )
            result["cpu_us_per_request"] = cpu_us_per_request(result)
            probes.append(result)
            return result["passed"]

        def probe(rate: float) -> bool:
            # One pause (a scheduler hiccup, a checkpoint) can push a 1 s probe's p99 over the
            # limit: a rate fails only when two probes in a row fail, unless the first showed a
            # server that cannot keep up at all (a tenth of its requests late, or served short).
            if attempt(rate):
                return True
            last = probes[-1]
            if "error" not in last and (last["late"] > last["ok"] / 10 or last["achieved_rps"] < 0.9 * rate):
                return False
            return attempt(rate)

        seq_p50 = statistics.median(r["latency_us"]["p50"] for r in lane.rounds["seq"])
        best = 0.0
        if seq_p50 >= P99_LIMIT_US:
            # Over the limit even one request at a time: one overload probe gives throughput and
            # the CPU per request of a saturated server.
            probe(min(1000.0, 50e6 / max(seq_p50, 1)))
        else:
            # Under load a request costs less CPU than one at a time (it pays no wake-up of its
            # own), so this guess is low, by up to half: about one doubling from the answer.
            cpu_us = statistics.median(cpu_us_per_request(r) for r in lane.rounds["seq"])
            rate = max(20.0, round(1e6 / max(cpu_us, 1), -1))
            low, high = 0.0, None
            while len({p["rate"] for p in probes}) < a.max_probes:
                if probe(rate):
                    low = rate
                    if high is None:
                        rate *= 2
                        if rate > a.max_rate:
                            break
                        continue
                else:
                    high = rate
                    if low == 0:
                        rate /= 2
                        if rate < 10:
                            break
                        continue
                if high is not None and low > 0:
                    if high / low <= 1 + a.precision:
                        break
                    rate = round(math.sqrt(low * high), -1)
            best = low
        # CPU per request at the highest rate that passed; when none did, at the busiest probe
        # (a saturated server), which is how the peer figures were taken.
        passing = [p for p in probes if p["passed"] and p["rate"] == best]
        loaded = passing[0] if passing else max(probes, key=lambda p: p["achieved_rps"], default=None)
        return {
            "rps": best,
            "max_served_rps": max((p["achieved_rps"] for p in probes), default=0.0),
            "cpu_us_per_request": loaded["cpu_us_per_request"] if loaded else None,
            "cpu_at_rps": loaded["achieved_rps"] if loaded else None,
            "p99_us": passing[0]["latency_us"]["p99"] if passing else None,
            "rss_mb": passing[0]["rss_peak_mb"] if passing else None,
            "probes": probes,
        }


# ---------------------------------------------------------------------------------------------
# Figures


def med(values: list[float]) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def summarize(results: dict) -> dict:
    """Median of the per-round figures of every lane, and the added figures against the
    lane's direct baseline."""
    lanes = results["lanes"]
    out: dict[str, dict] = {}
    for name, lane in lanes.items():
        if lane["error"]:
            out[name] = {"error": lane["error"]}
            continue
        r = lane["rounds"]
        seq = r.get("seq", [])
        stream = r.get("stream", [])
        delay = r.get("delay", [])
        cap = r.get("capacity", [])
        many = lane["once"].get("streams_many", {})
        s = {
            "p50_us": med([x["latency_us"]["p50"] for x in seq]),
            "p99_us": med([x["latency_us"]["p99"] for x in seq]),
            "cpu_us_c1": med([cpu_us_per_request(x) for x in seq]),
            "delay_p50_us": med([x["latency_us"]["p50"] for x in delay]),
            "delay_p99_us": med([x["latency_us"]["p99"] for x in delay]),
            "delay_errors": sum(x.get("errors", 0) + x.get("unsent", 0) for x in delay),
            "capacity_rps": med([x["rps"] for x in cap]),
            "max_served_rps": med([x["max_served_rps"] for x in cap]),
            "cpu_us_at_capacity": med([x["cpu_us_per_request"] for x in cap]),
            "rss_at_capacity_mb": med([x.get("rss_mb") for x in cap]),
            "ttfb_p50_us": med([x["ttfb_us"]["p50"] for x in stream]),
            "ttfb_p99_us": med([x["ttfb_us"]["p99"] for x in stream]),
            "gap_max_us": med([x["max_gap_us"]["max"] for x in stream]),
            "content_received": sum(x["content_received"] for x in stream),
            "content_sent": sum(x["content_sent"] for x in stream),
            "stream_errors": sum(x["errors"] + x["timed_out"] for x in stream),
            "many_completed": many.get("completed"),
            "many_n": many.get("n"),
            "many_ttfb_p50_us": many.get("ttfb_us", {}).get("p50"),
            "many_ttfb_p99_us": many.get("ttfb_us", {}).get("p99"),
            "many_gap_max_us": many.get("max_gap_us", {}).get("max"),
            "many_content_received": many.get("content_received"),
            "many_content_sent": many.get("content_sent"),
            "many_rss_peak_mb": many.get("rss_peak_mb"),
            "many_rss_after_mb": many.get("rss_after_mb"),
            "many_open_fds_after": many.get("open_fds_after"),
            "many_error": many.get("first_error") or many.get("error"),
        }
        out[name] = s
    for name, lane in lanes.items():
        s = out[name]
        base = out.get(f"direct {lane['upstream']}", {})
        if "error" in s or lane["server"] == "mock" or "error" in base:
            continue
        for key in ("p50_us", "p99_us", "delay_p50_us", "delay_p99_us", "ttfb_p50_us", "ttfb_p99_us",
                    "gap_max_us", "many_ttfb_p50_us", "many_ttfb_p99_us", "many_gap_max_us"):
            if s.get(key) is not None and base.get(key) is not None:
                s[f"added_{key}"] = s[key] - base[key]
    # Every figure as a ratio to the lane's baseline, and an izzi lane's to nginx and to LiteLLM
    # facing the same client format.
    for name, lane in lanes.items():
        s = out[name]
        if "error" in s or lane["server"] == "mock":
            continue
        base = out.get(f"direct {lane['upstream']}", {})
        numbers = {k: v for k, v in s.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        s["vs_baseline"] = {k: ratio(v, base.get(k)) for k, v in numbers.items() if not k.startswith("added_")}
        for other in (NGINX, "litellm"):
            peer = out.get(f"{other} {lane['client']}", {"error": "did not run"})
            if lane["server"] == "izzi" and "error" not in peer:
                s[f"vs_{other}"] = {k: ratio(v, peer.get(k)) for k, v in numbers.items()}
    return out


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return a / b


def fmt(value, digits: int = 0, unit: str = "") -> str:
    if value is None:
        return "–"
    if isinstance(value, float) and not value.is_integer() and digits == 0 and abs(value) < 10:
        return f"{value:.1f}{unit}"
    return f"{value:,.{digits}f}{unit}"


def fx(value: float | None) -> str:
    if value is None:
        return "–"
    if value < 0.1:
        return f"1/{1 / value:,.0f}" if value > 0 else "0×"
    if value >= 100:
        return f"{value:,.0f}×"
    if value >= 10:
        return f"{value:.0f}×"
    return f"{value:.2g}×" if value < 1 else f"{value:.2f}×"


def peer_of(name: str, lane: dict, summary: dict, server: str = "litellm") -> str | None:
    """The lane of `server` (LiteLLM, nginx) that faces the same client format."""
    peer = f"{server} {lane['client']}"
    return peer if peer in summary and "error" not in summary[peer] else None


def table(results: dict, summary: dict) -> str:
    lanes = results["lanes"]
    rows = []
    rows.append("#### Requests (zero-delay mock unless noted)\n")
    rows.append("| lane | p50 µs | p99 µs | added p50 | added p99 | added p99 ÷ LiteLLM's | "
                f"{FIXED_DELAY_MS} ms upstream: added p50 / p99 | capacity rps (p99 < 5 ms) | × baseline | "
                "× nginx | most rps served in a probe | × LiteLLM | "
                "CPU µs/req under load | CPU × nginx | CPU µs/req, one at a time | CPU × LiteLLM |")
    rows.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, lane in lanes.items():
        s = summary[name]
        if "error" in s:
            rows.append(f"| {name} | unavailable: {s['error'][:120]} ||||||||||||||")
            continue
        base = summary.get(f"direct {lane['upstream']}", {})
        peer = peer_of(name, lane, summary)
        p = summary[peer] if peer else {}
        ref = peer_of(name, lane, summary, NGINX)
        n = summary[ref] if ref and lane["server"] == "izzi" else {}
        added = lane["server"] != "mock"
        cpu, cpu_p = s["cpu_us_at_capacity"], p.get("cpu_us_at_capacity")
        rows.append(
            "| " + " | ".join([
                name,
                fmt(s["p50_us"]), fmt(s["p99_us"]),
                fmt(s.get("added_p50_us")) if added else "(baseline)",
                fmt(s.get("added_p99_us")) if added else "",
                fx(ratio(s.get("added_p99_us"), p.get("added_p99_us"))) if added and p and lane["server"] == "izzi" else "",
                f"{fmt(s.get('added_delay_p50_us'))} / {fmt(s.get('added_delay_p99_us'))}" if added
                else f"{fmt(s['delay_p50_us'])} / {fmt(s['delay_p99_us'])} (total)",
                fmt(s["capacity_rps"]),
                fx(ratio(s["capacity_rps"], base.get("capacity_rps"))) if added else "",
                fx(ratio(s["capacity_rps"], n.get("capacity_rps"))) if n else "",
                fmt(s["max_served_rps"]),
                fx(ratio(s["max_served_rps"], p.get("max_served_rps"))) if lane["server"] == "izzi" and p else "",
                fmt(cpu), fx(ratio(cpu, n.get("cpu_us_at_capacity"))) if n else "", fmt(s["cpu_us_c1"]),
                fx(ratio(cpu, cpu_p)) if lane["server"] == "izzi" and p else "",
            ]) + " |"
        )
    rows.append("")
    rows.append(f"#### Streams ({CONTENT_EVENTS} content events {CHUNK_DELAY_MS} ms apart)\n")
    rows.append(f"| lane | {results['args']['streams']} streams: TTFB p50 µs | added TTFB p50 / p99 | largest gap ms | "
                f"added gap ms | content recv/sent | {results['args']['many_streams']} concurrent: completed | "
                "added TTFB p50 / p99 ms | largest gap ms | content recv/sent | RSS peak → after MB |")
    rows.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, lane in lanes.items():
        s = summary[name]
        if "error" in s or not lane["rounds"].get("stream"):
            continue
        added = lane["server"] != "mock"
        ms = lambda v: fmt(v / 1000 if v is not None else None, 1)
        rows.append(
            "| " + " | ".join([
                name,
                fmt(s["ttfb_p50_us"]),
                f"{fmt(s.get('added_ttfb_p50_us'))} / {fmt(s.get('added_ttfb_p99_us'))}" if added else "(baseline)",
                ms(s["gap_max_us"]), ms(s.get("added_gap_max_us")) if added else "",
                f"{s['content_received']:,}/{s['content_sent']:,}",
                f"{s['many_completed']}/{s['many_n']}" if s["many_n"] else "–",
                f"{ms(s.get('added_many_ttfb_p50_us'))} / {ms(s.get('added_many_ttfb_p99_us'))}" if added
                else f"{ms(s['many_ttfb_p50_us'])} / {ms(s['many_ttfb_p99_us'])} (total)",
                ms(s["many_gap_max_us"]),
                f"{s['many_content_received']:,}/{s['many_content_sent']:,}" if s["many_n"] else "–",
                f"{fmt(s['many_rss_peak_mb'], 1)} → {fmt(s['many_rss_after_mb'], 1)}",
            ]) + " |"
        )
    rows.append("")
    rows.append("#### Processes\n")
    rows.append(f"| process | cold start to first 200, ms (median) | RSS idle MB | RSS peak, {results['args']['many_streams']} "
                "streams MB | RSS after the streams MB | RSS peak, whole run (overload probes too) MB | RSS at the end MB |")
    rows.append("|---|---:|---:|---:|---:|---:|---:|")

    def most(proc: str, key: str) -> float | None:
        values = [summary[n].get(key) for n, l in lanes.items() if l["server"] == proc and "error" not in summary[n]]
        values = [v for v in values if v is not None]
        return max(values) if values else None

    figures = {
        proc: [med(results["cold_start_ms"].get(proc) or []), results["rss_idle_mb"].get(proc),
               most(proc, "many_rss_peak_mb"), results.get("rss_after_streams_mb", {}).get(proc),
               results["rss_peak_mb"].get(proc), results["rss_after_mb"].get(proc)]
        for proc in ("mock", NGINX, "izzi", "litellm") if proc in results["rss_idle_mb"]
    }
    for proc, values in figures.items():
        cells = [fmt(v, 1) for v in values]
        if proc == "izzi":
            # The mock is the baseline process: a Rust HTTP server doing the least possible.
            for other in ("mock", NGINX, "litellm"):
                if other in figures:
                    cells = [f"{c} ({fx(ratio(v, o))} {other})" if ratio(v, o) is not None else c
                             for c, v, o in zip(cells, values, figures[other])]
        rows.append(f"| {proc} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def same_format(summary: dict) -> list[dict]:
    """The figures of the governed same-format izzi lanes that ran, the ones the targets judge."""
    lanes = (summary.get(n, {}) for n in ("izzi messages", "izzi chat"))
    return [s for s in lanes if s and "error" not in s]


def reference(summary: dict, key: str) -> float | None:
    """nginx's figure `key`, the worse of its Messages and Chat lanes (shown beside a target)."""
    values = [summary.get(f"{NGINX} {c}", {}).get(key) for c in ("messages", "chat")]
    values = [v for v in values if v is not None]
    if not values:
        return None
    return min(values) if key == "capacity_rps" else max(values)


def versus_nginx(summary: dict, key: str) -> list[float]:
    """Each governed same-format izzi lane's `key` over the nginx lane's of the same format."""
    pairs = [(summary.get(f"izzi {c}", {}), summary.get(f"{NGINX} {c}", {})) for c in ("messages", "chat")]
    return [r for i, n in pairs if (r := ratio(i.get(key), n.get(key))) is not None]


def targets(results: dict, summary: dict) -> tuple[str, list[dict]]:
    """Issue 25's targets, judged on the governed same-format lanes against nginx in the same run."""
    checks = []

    def check(what: str, value, limit, ok: bool | None, nginx=None) -> None:
        checks.append({"target": what, "measured": value, "nginx": nginx, "limit": limit, "met": ok})

    same = same_format(summary)
    worst = lambda key: max((s[key] for s in same if s.get(key) is not None), default=None)
    ref = lambda key: reference(summary, key)
    # Each format against nginx's lane of the same format, the worse of the two.
    r = max(versus_nginx(summary, "cpu_us_at_capacity"), default=None)
    check("CPU per request under load (at capacity), same format, ÷ nginx's (nginx: µs)", r, "≤ 1.5×",
          r is not None and r <= 1.5, ref("cpu_us_at_capacity"))
    r = min(versus_nginx(summary, "capacity_rps"), default=None)
    check("capacity on one core (p99 < 5 ms), ÷ nginx's (nginx: requests/s)", r, "≥ 0.6×", r is not None and r >= 0.6,
          ref("capacity_rps"))
    for a, b in (("izzi messages->chat", "izzi chat"), ("izzi chat->messages", "izzi messages")):
        # At concurrency 1 both lanes run under the same conditions; capacity rates differ. The
        # ratio is taken in each round, then the median: the lanes of one round run within a
        # minute of each other, while the machine's speed changes from round to round.
        seq = lambda name: results["lanes"].get(name, {}).get("rounds", {}).get("seq", [])
        v = med([ratio(cpu_us_per_request(x), cpu_us_per_request(y)) for x, y in zip(seq(a), seq(b))])
        check(f"CPU per request one at a time, `{a}` ÷ `{b}`", v, "≤ 1.2", v is not None and v <= 1.2)
    many_n = results["args"]["many_streams"]
    v = all(s["many_completed"] == s["many_n"] and s["many_content_received"] == s["many_content_sent"] for s in same) if same else None
    check(f"{many_n:,} concurrent streams: every stream completed, every content event delivered", v, "all", v)
    v = worst("added_many_gap_max_us")
    check(f"{many_n:,} concurrent streams: added largest gap (µs)", v, f"< {CHUNK_DELAY_MS * 1000}",
          v is not None and v < CHUNK_DELAY_MS * 1000, ref("added_many_gap_max_us"))
    v = worst("added_many_ttfb_p99_us")
    check(f"{many_n:,} concurrent streams: added TTFB p99 (µs)", v, "< 10,000", v is not None and v < 10000,
          ref("added_many_ttfb_p99_us"))
    v = worst("many_rss_peak_mb")
    check(f"{many_n:,} concurrent streams: RSS peak (MB)", v, "< 50", v is not None and v < 50, ref("many_rss_peak_mb"))
    v, n = worst("added_p99_us"), ref("added_p99_us")
    check("added p99 at concurrency 1 (µs)", v, f"≤ nginx's + 100 = {fmt(n + 100) if n is not None else '–'}",
          v is not None and n is not None and v <= n + 100, n)
    v = med(results["cold_start_ms"].get("izzi", []))
    check("cold start to first 200 (ms)", v, "< 50", v is not None and v < 50)
    lines = ["| target | izzi | nginx | limit | met |", "|---|---:|---:|---:|:---:|"]
    for c in checks:
        m = c["measured"]
        shown = "–" if m is None else ("yes" if m is True else "no" if m is False else fmt(m, 2 if isinstance(m, float) and 0 < m < 10 else 0))
        lines.append(f"| {c['target']} | {shown} | {fmt(c['nginx']) if c['nginx'] is not None else ''} | {c['limit']} | "
                     f"{'✅' if c['met'] else '❌'} |")
    return "\n".join(lines), checks


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = 0
    try:
        mem = int(Path("/proc/meminfo").read_text().split()[1]) // (1024 * 1024)
    except (OSError, ValueError, IndexError):
        pass
    return f"{cpu}, {os.cpu_count()} cores, {mem} GiB, Linux {platform.release()}"


def headline(results: dict) -> str:
    """When, where and how a run was made: the first paragraph of its table."""
    load = results["load_on_machine"]
    return (
        f"Run {results['date']} on {results['machine']}; load average before the run "
        f"{load[0]:.2f} (the machine is shared, so compare lanes within one run, not across runs). "
        f"Servers pinned to core {results['cores']['servers']}, mock and load generator to core {results['cores']['load']}"
        f"{', all real-time round-robin' if results.get('scheduling', 'default') != 'default' else ''}; "
        f"{results['rounds']} interleaved rounds, median of the per-round medians; "
        f"{results['izzi_version']} at `{results.get('commit', '?')}`"
        f"{', ' + results['nginx_version'].removeprefix('nginx version: ') if results.get('nginx_version') else ''}"
        f"{', LiteLLM ' + results['litellm_version'] if results.get('litellm_version') else ''}. "
        f"Took {results['wall_secs']:.0f} s."
    )


def over_floor(summary: dict, key: str) -> float | None:
    """The most the governed same-format izzi lanes add to the floor lane's figure `key`."""
    floor = summary.get(FLOOR, {})
    return max((s[key] - floor[key] for s in same_format(summary)
                if s.get(key) is not None and floor.get(key) is not None), default=None)


def nginx_note(summary: dict) -> str:
    """izzi's same-format lanes against nginx's `proxy_pass` in the same run."""
    pairs = [(summary[f"izzi {c}"], summary[f"{NGINX} {c}"]) for c in ("messages", "chat")
             if "error" not in summary.get(f"izzi {c}", {"error": 1}) and "error" not in summary.get(f"{NGINX} {c}", {"error": 1})]
    if not pairs:
        return "The nginx lanes did not run."
    versus = lambda key: spread([ratio(i.get(key), n.get(key)) for i, n in pairs])
    over = lambda key: "/".join(fmt(i[key] - n[key]) if i.get(key) is not None and n.get(key) is not None else "–"
                                for i, n in pairs)
    return (
        f"The reference: nginx `proxy_pass` (one worker, upstream keep-alive, no buffering) on izzi's core. "
        f"izzi's governed same-format lanes (Messages/Chat) use {versus('cpu_us_at_capacity')} nginx's CPU per request "
        f"under load and {versus('cpu_us_c1')} one at a time, hold {versus('capacity_rps')} its capacity on one core, "
        f"and add {over('added_p99_us')} µs more than it at p99 one request at a time."
    )


def floor_note(summary: dict) -> str:
    """What the relay lane says about every proxy on this machine."""
    floor = summary.get(FLOOR, {})
    if "error" in floor or floor.get("added_p50_us") is None:
        return "The floor lane (`relay messages`) did not run."
    own = lambda key: over_floor(summary, key)
    return (
        f"The floor: `{FLOOR}` goes through a TCP relay that copies bytes both ways and reads no HTTP, on "
        f"izzi's core. It adds {fmt(floor['added_p50_us'])} µs at p50 and {fmt(floor['added_p99_us'])} µs at p99 "
        f"one request at a time, and uses {fmt(floor['cpu_us_at_capacity'])} µs of CPU per request under load: "
        "the price of a hop through another process on another core here, which any proxy pays before it does "
        f"any work. Over that floor, izzi's same-format lanes add at most {fmt(own('added_p50_us'))} µs at p50 "
        f"and {fmt(own('added_p99_us'))} µs at p99, and use {fmt(own('cpu_us_at_capacity'))} µs more CPU per "
        "request under load."
    )


def render(results: dict, summary: dict) -> str:
    target_table, _ = targets(results, summary)
    mock_cap = summary.get("direct chat", {}).get("capacity_rps")
    izzi_cap = max((summary[n]["capacity_rps"] or 0 for n in summary if n.startswith("izzi") and "error" not in summary[n]), default=0)
    parts = [
        headline(results),
        "",
        f"The mock is not the bottleneck: with the mock and the load generator alone on their core, the direct lane "
        f"holds {fmt(mock_cap)} requests/s against izzi's best {fmt(izzi_cap)}.",
        "",
        nginx_note(summary),
        "",
        floor_note(summary),
        "",
        table(results, summary),
        "",
        "#### Targets (issue 25), governed same-format lanes, worst of Messages and Chat, against nginx in the same run\n",
        target_table,
    ]
    for other in (NGINX, "litellm"):
        if results.get(f"{other}_error"):
            parts += ["", f"{other} lanes skipped: {results[f'{other}_error'][:300]}"]
    return "\n".join(parts)


def spread(values: list[float | None]) -> str:
    """Ratios as `fx` shows them: one, or the range from the smallest to the largest."""
    shown = [fx(v) for v in sorted(v for v in values if v is not None)]
    if not shown:
        return "–"
    return shown[0] if shown[0] == shown[-1] else f"{shown[0]}–{shown[-1]}"


def front_page(results: dict, summary: dict) -> str:
    """Three lines for README.md: izzi against LiteLLM, against the floor, and the targets."""
    lanes = results["lanes"]
    pairs = [(summary[name], summary[peer]) for name in ("izzi messages", "izzi chat")
             if name in summary and "error" not in summary[name]
             and (peer := peer_of(name, lanes[name], summary))]
    versus = lambda key: spread([ratio(s.get(key), p.get(key)) for s, p in pairs])
    whole = lambda figures: spread([ratio(figures.get("izzi"), figures.get("litellm"))])
    cold = {proc: med(ms) for proc, ms in results["cold_start_ms"].items()}
    run = (f"Run {results['date']} on {results['machine']}, izzi at `{results.get('commit', '?')}` (a shared "
           "machine: compare lanes within one run). ")
    if pairs:
        litellm = (f"Against the LiteLLM proxy {results.get('litellm_version', '')} on the same requests (the "
                   f"same-format lanes, Messages and Chat), izzi adds {versus('added_p99_us')} of the latency it adds at "
                   f"p99, serves {versus('max_served_rps')} as many requests per second at most, uses "
                   f"{versus('cpu_us_at_capacity')} of its CPU per request, starts in {whole(cold)} of its time "
                   f"and idles in {whole(results['rss_idle_mb'])} of its memory.")
    else:
        litellm = f"The LiteLLM lanes did not run{': ' + results['litellm_error'][:200] if results.get('litellm_error') else ''}."
    _, checks = targets(results, summary)
    return "\n".join([
        f"- {run}{litellm}",
        f"- {nginx_note(summary)}",
        f"- {sum(1 for c in checks if c['met'])} of {len(checks)} targets met. Every lane, the targets, the "
        "method and the profile: [docs/bench.md](docs/bench.md).",
    ])


def publish_all(args: argparse.Namespace, results: dict, summary: dict, text: str) -> None:
    """The whole table into `--publish` (docs/bench.md), and three lines on it into README.md."""
    if not args.publish:
        return
    publish(Path(args.publish), text)
    publish(ROOT / "README.md", front_page(results, summary))


def publish(doc: Path, text: str) -> None:
    begin, end = "<!-- bench:begin -->", "<!-- bench:end -->"
    current = doc.read_text() if doc.exists() else f"# Benchmarks\n\n{begin}\n{end}\n"
    if begin not in current:
        current += f"\n{begin}\n{end}\n"
    head, rest = current.split(begin, 1)
    tail = rest.split(end, 1)[1]
    doc.write_text(f"{head}{begin}\n{text}\n{end}{tail}")


def version(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        return (out.stdout.strip() or out.stderr.strip()).splitlines()[-1]
    except (OSError, subprocess.TimeoutExpired, IndexError):
        return "unknown"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin-dir", default=str(ROOT / "target" / "release"))
    parser.add_argument("--out", default=str(ROOT / "target" / "bench"))
    parser.add_argument("--litellm-venv", default=str(ROOT / "target" / "bench-venv"))
    parser.add_argument("--no-litellm", action="store_true")
    parser.add_argument("--no-realtime", action="store_true",
                        help="plain scheduling instead of SCHED_FIFO for the bench's processes")
    parser.add_argument("--litellm-timeout", type=float, default=120)
    parser.add_argument("--publish", default=str(ROOT / "docs" / "bench.md"),
                        help="Markdown file whose bench section gets the table ('' for none)")
    parser.add_argument("--quick", action="store_true", help="one round, short lanes (for trying the script)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--capacity-rounds", type=int, default=1)
    parser.add_argument("--seq-secs", type=float, default=1.0)
    parser.add_argument("--delay-rate", type=float, default=100)
    parser.add_argument("--delay-secs", type=float, default=1.0)
    parser.add_argument("--streams", type=int, default=50)
    parser.add_argument("--many-streams", type=int, default=1000)
    parser.add_argument("--many-timeout", type=int, default=10)
    parser.add_argument("--probe-secs", type=float, default=1.0)
    parser.add_argument("--max-probes", type=int, default=7)
    parser.add_argument("--max-rate", type=float, default=200000)
    parser.add_argument("--precision", type=float, default=0.15)
    parser.add_argument("--cold-runs", type=int, default=5)
    parser.add_argument("--render", metavar="JSON",
                        help="only re-render (and publish) the table of an earlier bench.json")
    args = parser.parse_args()
    if args.render:
        results = json.loads(Path(args.render).read_text())
        summary = summarize(results)
        text = render(results, summary)
        publish_all(args, results, summary, text)
        print(text)
        return 0
    if args.quick:
        args.rounds, args.seq_secs, args.delay_secs, args.probe_secs = 1, 0.5, 0.5, 0.5
        args.max_probes, args.cold_runs, args.many_streams, args.streams = 5, 2, 200, 20
    for tool in ("taskset",):
        if shutil.which(tool) is None:
            log(f"`{tool}` is missing: install util-linux")
            return 1
    for binary in ("izzi", "examples/mock-upstream", "examples/bench-load"):
        if not (Path(args.bin_dir) / binary).exists():
            log(f"{Path(args.bin_dir) / binary} is missing: run `scripts/bench` (it builds them)")
            return 1
    # SIGTERM and SIGHUP end the run like Ctrl-C, so the servers stop and the scheduler setting
    # is restored.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: sys.exit(1))
    load_before = os.getloadavg()
    bench = Bench(args)
    results = bench.run()
    results.update({
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "load_on_machine": load_before,
        "cores": {"servers": bench.server_core, "load": bench.load_core},
        "scheduling": "SCHED_RR" if bench.realtime else "default",

        "izzi_version": version([str(Path(args.bin_dir) / "izzi"), "--version"]),
        "commit": version(["git", "-C", str(ROOT), "describe", "--always", "--dirty"]),
        "args": vars(args),
    })
    if "litellm" in bench.servers:
        results["litellm_version"] = version([str(Path(args.litellm_venv) / "bin" / "python"), "-c",
                                              "import importlib.metadata as m; print(m.version('litellm'))"])
    summary = summarize(results)
    results["summary"] = summary
    _, results["targets"] = targets(results, summary)
    out = Path(args.out)
    (out / "bench.json").write_text(json.dumps(results, indent=1, default=str))
    text = render(results, summary)
    (out / "bench.md").write_text(text + "\n")
    publish_all(args, results, summary, text)
    print(text)
    log(f"wrote {out / 'bench.json'} and {out / 'bench.md'}" + (f"; updated {args.publish}" if args.publish else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
