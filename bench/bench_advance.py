"""Simulated days per second of `dsmr-twin ctl advance` against a real twin process.

Starts a twin (default configuration: P1 on a pty, P2 with the simulated gas meter; no P3, so
no port is bound) in a temporary state directory, runs `ctl advance --days N` through the CLI
and prints the simulated days per real second the twin reported and the CLI's wall time.

Run: .venv/bin/python bench/bench_advance.py [--days 30] [--runs 3]
Target (issue 13): >= 10 simulated days per second.
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STARTUP_S = 30.0


def _wait_for_control(state_dir: Path, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + STARTUP_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit("the twin exited during start-up")
        with socket.socket(socket.AF_UNIX) as probe:
            try:
                probe.connect(str(state_dir / "control.sock"))
                return
            except OSError:
                time.sleep(0.05)
    raise SystemExit("the control socket did not answer")


def run_once(days: float) -> tuple[float, float]:
    """(days per second the twin reports, wall seconds of the ctl command)."""
    with tempfile.TemporaryDirectory(prefix="twin-bench-") as path:
        state_dir = Path(path)
        twin = [sys.executable, "-m", "twin", "run", "--state-dir", path]
        process = subprocess.Popen(
            [*twin, "--p1", "pty://p1", "--p3", "none"], stderr=subprocess.DEVNULL
        )
        try:
            _wait_for_control(state_dir, process)
            ctl = [sys.executable, "-m", "twin", "ctl", "--state-dir", path]
            began = time.monotonic()
            out = subprocess.run(
                [*ctl, "advance", "--days", str(days)], capture_output=True, text=True, check=True
            ).stdout
            wall = time.monotonic() - began
            result = json.loads(out)
            return float(result["days_per_s"]), wall
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--days", type=float, default=30)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    for _ in range(args.runs):
        rate, wall = run_once(args.days)
        print(
            f"ctl advance --days {args.days:g}: {rate:.1f} simulated days/s in the twin,"
            f" {wall:.2f} s wall time of the command (CLI start-up included)"
        )


if __name__ == "__main__":
    main()
