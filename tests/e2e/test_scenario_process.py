"""`dsmr-twin run --scenario` as real processes: two runs of one scenario (each its own
interpreter, so its own hash seed and start time) write byte-identical P1 captures."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from twin.p1.capture import load_capture

SCENARIO = """
start = "2026-03-29T01:50:00+01:00"
duration = "20m"
seed = 3

[config.p1]
pace = false

[[event]]
after = "2m5s"
cmd = "power-failure"
seconds = 95

[[event]]
after = "7m"
cmd = "message"
text = "Hallo"
"""


def _run(scenario: Path, state_dir: Path, capture: Path) -> None:
    command = [sys.executable, "-m", "twin", "run", "--scenario", str(scenario)]
    command += ["--state-dir", str(state_dir), "--record", str(capture)]
    done = subprocess.run(
        [*command, "--p1", "tcp://127.0.0.1:0"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_two_processes_running_one_scenario_send_the_same_bytes() -> None:
    with tempfile.TemporaryDirectory(prefix="scn-") as scratch:
        root = Path(scratch)
        scenario = root / "spring.toml"
        scenario.write_text(SCENARIO, encoding="utf-8")
        _run(scenario, root / "a", root / "a.jsonl")
        _run(scenario, root / "b", root / "b.jsonl")
        first, second = (root / "a.jsonl").read_bytes(), (root / "b.jsonl").read_bytes()
        telegrams = load_capture(first.decode())
    assert first == second
    # 20 minutes every 10 s, less the slots in the 95 s power failure (130..210 s; at 220 s
    # the supply is back): the DST change at 02:00 CET is in the middle.
    assert len(telegrams) == 121 - 9
    assert b"0-0:1.0.0(260329015950W)" in telegrams[59 - 9].data
    assert b"0-0:1.0.0(260329030000S)" in telegrams[60 - 9].data
