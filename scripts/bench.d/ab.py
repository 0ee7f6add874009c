#!/usr/bin/env python3
"""Two builds of izzi against each other and nginx's `proxy_pass`, in one run: the same mock, load
generator, core pinning and scheduling as `scripts/bench` (run.py), only the lanes that judge a
change on the request path, interleaved round by round.

  python3 scripts/bench.d/ab.py --base DIR [--bin-dir DIR] [--rounds N] [--rate RPS]

DIR holds a release build (`izzi`, as `cargo build --release` leaves it) of the code to compare
with, say a checkout of the base commit built into its own target directory; --bin-dir (default
target/release) holds this build, the mock and the load generator. Per lane: CPU per request
one at a time and at a fixed rate (utime + stime from /proc over the whole load run), then the
capacity search run.py does; and CPU per relayed event over concurrent streams (64 events
20 ms apart each), with the server's RSS peak over them. p50 and p99 are of the requests sent one
at a time. Prints a table with each izzi lane's ratio to nginx in the same
client format and the new build's to the base; writes target/bench/ab.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run  # noqa: E402  (the bench's own driver, beside this file)

BASE = "izzi-base"


class Ab(run.Bench):
    def start_base(self, config: Path) -> run.Server:
        log_path = self.work / "izzi-base.log"
        cmd = [str(Path(self.args.base) / "izzi"), "serve", "--port", "0", "--config", str(config)]
        proc = subprocess.Popen(
            self.pin(self.server_core, cmd),
            env=self.izzi_env(self.work / "izzi-base-home"),
            stdout=subprocess.DEVNULL,
            stderr=open(log_path, "w"),
        )
        line = run.wait_for_line(log_path, "izzi gateway listening on", proc, 30)
        return run.Server(BASE, proc, line.rsplit(" ", 1)[1])

    def _run(self) -> None:
        a = self.args
        mock = self.start_example("mock", self.load_core, "mock-upstream")
        self.servers["mock"] = mock
        nginx = self.start_nginx(mock)
        if nginx is None:
            raise SystemExit("nginx is needed: apt-get install nginx-light")
        self.servers[run.NGINX] = nginx
        config = self.izzi_config(mock)
        self.servers["izzi"] = self.start_izzi(config)
        self.servers[BASE] = self.start_base(config)
        for lane in self.lanes:
            server = self.servers[lane.server]
            lane.url, lane.pid = server.url, server.pid
            status, answer = run.http_post(f"{lane.url}{lane.path}", lane.body(), lane.headers())
            if status != 200:
                raise SystemExit(f"lane `{lane.name}`: {status} {answer[:300]!r}")
            self.load("seq", lane, "plain", "--secs", "0.3", "--warmup-secs", "0.1")
        for r in range(a.rounds):
            order = self.lanes[r % len(self.lanes):] + self.lanes[: r % len(self.lanes)]
            run.log(f"round {r + 1}/{a.rounds}")
            for lane in order:
                self.settle(f"round {r + 1}: {lane.name}")
                lane.rounds.setdefault("seq", []).append(
                    self.load("seq", lane, "plain", "--secs", str(a.seq_secs)))
                self.settle(f"round {r + 1} rate: {lane.name}")
                lane.rounds.setdefault("rate", []).append(
                    self.load("rate", lane, "plain", "--rate", str(a.rate), "--secs", str(a.rate_secs),
                              "--warmup-secs", "0.2"))
                self.settle(f"round {r + 1} streams: {lane.name}")
                lane.rounds.setdefault("streams", []).append(
                    self.load("streams", lane, "stream", "--n", str(a.streams), "--ramp-ms", "300",
                              "--expect", str(run.CONTENT_EVENTS)))
        for lane in self.lanes:
            self.settle(f"capacity: {lane.name}")
            run.log(f"capacity: {lane.name}")
            lane.rounds.setdefault("capacity", []).append(self.capacity(lane))
        self.results["lanes"] = {l.name: {"server": l.server, "client": l.client, "rounds": l.rounds}
                                 for l in self.lanes}


def lanes() -> list[run.Lane]:
    out = []
    for client, upstream, model in (("messages", "messages", run.CLAUDE), ("chat", "chat", run.GPT),
                                    ("messages", "chat", run.GPT)):
        fmt = client if client == upstream else f"{client}->{upstream}"
        if client == upstream:
            out.append(run.Lane(f"nginx {fmt}", run.NGINX, client, upstream, model))
        out.append(run.Lane(f"base {fmt}", BASE, client, upstream, model, key=run.KEY))
        out.append(run.Lane(f"new {fmt}", "izzi", client, upstream, model))
    return out


def table(results: dict) -> str:
    lanes = results["lanes"]

    def fig(name: str) -> dict:
        rounds = lanes[name]["rounds"]
        cap = rounds["capacity"][0]
        return {
            "c1": statistics.median(run.cpu_us_per_request(x) for x in rounds["seq"]),
            "rate": statistics.median(run.cpu_us_per_request(x) for x in rounds["rate"]),
            "rate_served": statistics.median(x.get("achieved_rps", 0) for x in rounds["rate"]),
            "cap_rps": cap["rps"],
            "cap_cpu": cap["cpu_us_per_request"],
            "p50_us": statistics.median(x["latency_us"]["p50"] for x in rounds["seq"]),
            "p99_us": statistics.median(x["latency_us"]["p99"] for x in rounds["seq"]),
            "rss": max(x.get("rss_peak_mb") or 0 for x in rounds["streams"]),
            # CPU per content event relayed (each stream's request and head included).
            "event": statistics.median(x["cpu_s"] * 1e6 / max(x.get("content_received", 0), 1)
                                       for x in rounds["streams"]),
        }

    figs = {name: fig(name) for name in lanes}
    rows = ["| lane | CPU µs/req c=1 | CPU µs/req at rate | served rps | capacity rps | CPU µs/req at capacity | "
            "p50 µs c=1 | p99 µs c=1 | CPU µs/stream event | RSS peak MB, streams | CPU at rate ÷ nginx | capacity ÷ nginx | "
            "CPU at rate new ÷ base | CPU/event new ÷ base |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, f in figs.items():
        fmt = name.split(" ", 1)[1]
        nginx = figs.get(f"nginx {fmt}") or figs.get(f"nginx {fmt.split('->')[0]}")
        base = figs.get(f"base {fmt}")
        vs_nginx = f"{f['rate'] / nginx['rate']:.2f}x" if nginx and not name.startswith("nginx") else ""
        cap_nginx = (f"{f['cap_rps'] / nginx['cap_rps']:.2f}x"
                     if nginx and nginx["cap_rps"] and not name.startswith("nginx") else "")
        new = base and name.startswith("new")
        vs_base = f"{f['rate'] / base['rate']:.2f}x" if new else ""
        event_base = f"{f['event'] / base['event']:.2f}x" if new else ""
        rows.append(f"| {name} | {f['c1']:.0f} | {f['rate']:.0f} | {f['rate_served']:.0f} | {f['cap_rps']:.0f} | "
                    f"{f['cap_cpu'] or 0:.0f} | {f['p50_us']:.0f} | {f['p99_us']:.0f} | {f['event']:.1f} | {f['rss']:.1f} | {vs_nginx} | {cap_nginx} | "
                    f"{vs_base} | {event_base} |")
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", required=True, help="directory of the base build's `izzi`")
    parser.add_argument("--bin-dir", default=str(run.ROOT / "target" / "release"))
    parser.add_argument("--out", default=str(run.ROOT / "target" / "bench"))
    parser.add_argument("--no-realtime", action="store_true")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seq-secs", type=float, default=1.0)
    parser.add_argument("--rate", type=float, default=2000)
    parser.add_argument("--rate-secs", type=float, default=2.0)
    parser.add_argument("--streams", type=int, default=200, help="concurrent streams per lane and round")
    parser.add_argument("--probe-secs", type=float, default=1.0)
    parser.add_argument("--max-probes", type=int, default=7)
    parser.add_argument("--max-rate", type=float, default=200000)
    parser.add_argument("--precision", type=float, default=0.15)
    args = parser.parse_args()
    args.no_litellm = True
    bench = Ab(args)
    bench.lanes = lanes()
    started = time.monotonic()
    try:
        bench.run()
    finally:
        bench.restore()
    results = bench.results
    results["wall_secs"] = time.monotonic() - started
    results["args"] = vars(args)
    (Path(args.out) / "ab.json").write_text(json.dumps(results, indent=1, default=str))
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
