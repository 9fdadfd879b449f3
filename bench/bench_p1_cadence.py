"""P1 cadence error and memory of the running twin, read through its pty as a P1 reader would.

Starts `dsmr-twin run` at speed 1 on a pty, loads the machine with busy processes (one per core)
and records when the first byte of each telegram arrives. The error of telegram i is its arrival
minus (arrival of telegram 0 + 10 s x i). Also prints the twin's RSS after start.

Run: .venv/bin/python bench/bench_p1_cadence.py [--count 60] [--no-load]
Target (issue 2): cadence error p99 <= 5 ms over 60 telegrams; RSS <= 60 MB.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import serial

BUSY = "import time\nend = time.monotonic() + 3600\nwhile time.monotonic() < end: pass\n"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def wait_for(path: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{path} did not appear")
        time.sleep(0.05)


def arrivals(link: Path, count: int) -> list[float]:
    """Monotonic arrival time of the '/' that starts each telegram."""
    times: list[float] = []
    with serial.Serial(str(link), 115200, timeout=0.001) as port:
        while len(times) < count:
            chunk = port.read(4096)
            if b"/" in chunk:
                times.append(time.monotonic())
    return times


def report(title: str, offsets: list[float]) -> None:
    errors = sorted(abs(o) * 1000 for o in offsets)
    p99 = errors[min(len(errors) - 1, int(len(errors) * 0.99))]
    median = errors[len(errors) // 2]
    print(f"{title}: median error {median:.2f} ms, p99 {p99:.2f} ms, max {errors[-1]:.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=60)
    parser.add_argument("--no-load", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="twin-bench-") as tmp:
        state = Path(tmp)
        command = [sys.executable, "-m", "twin", "run", "--state-dir", str(state)]
        twin = subprocess.Popen(
            [*command, "--p1", "pty://p1", "--p3", "none"], stderr=subprocess.DEVNULL
        )
        busy = []
        try:
            wait_for(state / "p1")
            time.sleep(2)
            print(f"RSS after start: {rss_mb(twin.pid):.1f} MB")
            if not args.no_load:
                cores = os.cpu_count() or 1
                busy = [subprocess.Popen([sys.executable, "-c", BUSY]) for _ in range(cores)]
            times = arrivals(state / "p1", args.count + 1)[1:]  # the first may be partial
            load = "idle machine" if args.no_load else f"{len(busy)} busy processes"
            offsets = [t - (times[0] + 10 * i) for i, t in enumerate(times)]
            report(f"P1 cadence over {len(times)} telegrams ({load}), grid from the first", offsets)
            # The reader's own constant latency is not cadence error: the grid through the
            # median offset is the best estimate of the meter's 10 s grid.
            middle = sorted(offsets)[len(offsets) // 2]
            report("  same, grid through the median offset", [o - middle for o in offsets])
            print(f"RSS after {len(times)} telegrams: {rss_mb(twin.pid):.1f} MB")
        finally:
            for process in busy:
                process.kill()
            twin.send_signal(signal.SIGTERM)
            twin.wait(timeout=30)


if __name__ == "__main__":
    main()
