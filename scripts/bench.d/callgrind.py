#!/usr/bin/env python3
"""Instructions per request of an izzi build, counted by callgrind over every thread: the bench's
~1 KB prompt sent one request at a time on one keep-alive connection to the bench's mock,
counters zeroed after a warm-up. Counts do not depend on how busy the machine is, so two builds
can be compared on a loaded machine, or side by side on two cores.

  python3 scripts/bench.d/callgrind.py IZZI [--lane messages|chat|messages->chat|chat->messages]
                                             [--requests N] [--concurrency C] [--bin-dir DIR]

With --concurrency C the counted requests go on C connections at once, so the work done once per
batch of requests (the ledger's commit, the hand-off of rows) is shared as it is under load.

IZZI is the binary to count (a release build works: counts need no symbols); --bin-dir (default
target/release) holds the bench's mock (`cargo build --release --example mock-upstream`).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run  # noqa: E402  (the bench's own driver, beside this file)


def izzi_lane(name: str) -> run.Lane:
    """The bench's izzi lane called `name` (`messages`, `chat`, `messages->chat`, ...)."""
    client, upstream = (name.split("->") + [name])[:2]
    model = run.CLAUDE if upstream == "messages" else run.GPT
    return run.Lane(name, "izzi", client, upstream, model, key=run.KEY)


@contextlib.contextmanager
def under_callgrind(izzi: str, bin_dir: Path, work: Path, flags: list[str]) -> Iterator[tuple[subprocess.Popen, str]]:
    """The bench's mock (from `bin_dir`) and `izzi serve` on the bench's config under callgrind,
    writing `work`/callgrind.out*: izzi's process and URL; both are stopped after."""
    mock_log = work / "mock.log"
    mock = subprocess.Popen([str(bin_dir / "examples" / "mock-upstream"), "--port", "0"],
                            stdout=open(mock_log, "w"), stderr=subprocess.STDOUT)
    procs = [mock]
    try:
        mock_url = run.wait_for_line(mock_log, "listening on", mock, 30).rsplit(" ", 1)[1]
        bench = run.Bench.__new__(run.Bench)
        bench.work = work
        config = bench.izzi_config(run.Server("mock", mock, mock_url))
        log = work / "izzi.log"
        izzi_proc = subprocess.Popen(["valgrind", "--tool=callgrind", *flags, f"--callgrind-out-file={work / 'callgrind.out'}",
                                      izzi, "serve", "--port", "0", "--config", str(config)],
                                     env=bench.izzi_env(work / "home"), stdout=subprocess.DEVNULL,
                                     stderr=open(log, "w"))
        procs.append(izzi_proc)
        yield izzi_proc, run.wait_for_line(log, "izzi gateway listening on", izzi_proc, 300).rsplit(" ", 1)[1]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
                proc.wait()


def send(url: str, method: str, path: str, body: bytes | None, headers: dict[str, str], times: int,
         connections: int = 1) -> None:
    """`times` requests on each of `connections` keep-alive connections at once; stops at the
    first answer that is not a 200."""
    host, port = url.split("//")[1].rsplit(":", 1)
    failures: list[str] = []

    def one_connection() -> None:
        conn = http.client.HTTPConnection(host, int(port), timeout=120)
        for _ in range(times):
            conn.request(method, path, body, {**headers, "content-type": "application/json"})
            answer = conn.getresponse()
            answer.read()
            if answer.status != 200:
                failures.append(f"{answer.status} from {method} {path}")
                return

    senders = [threading.Thread(target=one_connection) for _ in range(connections)]
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join()
    if failures:
        raise SystemExit(failures[0])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("izzi")
    parser.add_argument("--lane", default="messages")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--bin-dir", default=str(run.ROOT / "target" / "release"))
    parser.add_argument("--keep", action="store_true", help="print where the callgrind files are, for callgrind_annotate")
    a = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="izzi-callgrind-"))
    with under_callgrind(a.izzi, Path(a.bin_dir), work, []) as (izzi, url):
        lane = izzi_lane(a.lane)
        body = json.dumps(lane.body()).encode()
        send(url, "POST", lane.path, body, lane.headers(), a.warmup)
        time.sleep(3)  # the ledger's rows of the warm-up committed
        subprocess.run(["callgrind_control", "-z", str(izzi.pid)], check=True, capture_output=True)
        send(url, "POST", lane.path, body, lane.headers(), a.requests // a.concurrency, a.concurrency)
        time.sleep(3)  # and those of the counted requests
        subprocess.run(["callgrind_control", "-d", str(izzi.pid)], check=True, capture_output=True)
        dumped = 0
        for path in work.glob("callgrind.out.*"):
            text = path.read_text(errors="replace")
            summary = re.search(r"^summary:\s+(\d+)", text, re.M)
            if summary and "Trigger: dump" in text[:4000]:
                dumped += int(summary.group(1))
    if a.keep:
        print(f"callgrind output: {work}")
    counted = a.requests // a.concurrency * a.concurrency
    print(f"{a.lane} {a.izzi}: {dumped / counted:,.0f} instructions per request "
          f"({counted} requests, concurrency {a.concurrency})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
