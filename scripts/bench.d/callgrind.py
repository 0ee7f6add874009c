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
import http.client
import json
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run  # noqa: E402  (the bench's own driver, beside this file)


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
    mock_log = work / "mock.log"
    mock = subprocess.Popen([str(Path(a.bin_dir) / "examples" / "mock-upstream"), "--port", "0"],
                            stdout=open(mock_log, "w"), stderr=subprocess.STDOUT)
    procs = [mock]
    try:
        mock_url = run.wait_for_line(mock_log, "listening on", mock, 30).rsplit(" ", 1)[1]
        bench = run.Bench.__new__(run.Bench)
        bench.work = work
        config = bench.izzi_config(run.Server("mock", mock, mock_url))
        out = work / "callgrind.out"
        log = work / "izzi.log"
        izzi = subprocess.Popen(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", a.izzi,
                                 "serve", "--port", "0", "--config", str(config)],
                                env=bench.izzi_env(work / "home"), stdout=subprocess.DEVNULL,
                                stderr=open(log, "w"))
        procs.append(izzi)
        url = run.wait_for_line(log, "izzi gateway listening on", izzi, 120).rsplit(" ", 1)[1]
        host, port = url.split("//")[1].rsplit(":", 1)
        client, upstream = (a.lane.split("->") + [a.lane])[:2]
        model = run.CLAUDE if upstream == "messages" else run.GPT
        lane = run.Lane(a.lane, "izzi", client, upstream, model, key=run.KEY)
        body = json.dumps(lane.body()).encode()
        headers = {**lane.headers(), "content-type": "application/json"}
        failures: list[str] = []

        def send(n: int) -> None:
            conn = http.client.HTTPConnection(host, int(port))
            for _ in range(n):
                conn.request("POST", lane.path, body, headers)
                answer = conn.getresponse()
                answer.read()
                if answer.status != 200:
                    failures.append(f"{answer.status} from {lane.path}")
                    return

        send(a.warmup)
        time.sleep(3)  # the ledger's rows of the warm-up committed
        subprocess.run(["callgrind_control", "-z", str(izzi.pid)], check=True, capture_output=True)
        senders = [threading.Thread(target=send, args=(a.requests // a.concurrency,))
                   for _ in range(a.concurrency)]
        for sender in senders:
            sender.start()
        for sender in senders:
            sender.join()
        if failures:
            raise SystemExit(failures[0])
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
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
