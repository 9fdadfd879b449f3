"""The real twin on a small tmpfs that fills up: it keeps answering, logs the fault once, and
writes everything it held back once space returns."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any, BinaryIO

import pytest

from twin.control import SOCKET_NAME, call
from twin.store import Store

STARTUP_S = 30.0


@pytest.fixture
def small_disk() -> Iterator[Path]:
    """A 4 MiB tmpfs: a real file system that really runs full."""
    with tempfile.TemporaryDirectory(prefix="twin-disk-") as path:
        mounted = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", path],
            capture_output=True,
            text=True,
            check=False,
        )
        if mounted.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs (needs root): {mounted.stderr.strip()}")
        try:
            yield Path(path)
        finally:
            subprocess.run(["umount", "-l", path], check=True)


def _fill(disk: Path) -> Path:
    """Write until the file system refuses (ENOSPC)."""
    filler = disk / "filler"
    block = b"\0" * 65536
    with filler.open("wb") as out, pytest.raises(OSError, match="No space left"):
        _write_forever(out, block)
    return filler


def _write_forever(out: BinaryIO, block: bytes) -> None:
    while True:
        out.write(block)
        out.flush()


def _status(state_dir: Path) -> dict[str, Any]:
    return asyncio.run(call(state_dir / SOCKET_NAME, {"cmd": "status"}))  # type: ignore[no-any-return]


def _meter_time(state_dir: Path) -> datetime:
    return datetime.fromisoformat(_status(state_dir)["meter_time"])


def _until(check: Any, within_s: float, what: str) -> None:
    deadline = time.monotonic() + within_s
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def test_a_full_disk_holds_back_nothing_and_the_twin_keeps_answering(small_disk: Path) -> None:
    state_dir = small_disk / "state"
    log_path = Path(tempfile.mkdtemp(prefix="twin-log-")) / "twin.log"
    command = [sys.executable, "-m", "twin", "run", "--state-dir", str(state_dir)]
    command += ["--speed", "3600", "--p1", "pty://p1", "--p3", "none"]  # a row every 0.25 s
    command += ["--web", "none"]  # the console's default port is not the test's to take
    process = subprocess.Popen(command, stderr=log_path.open("w"))
    try:
        _until((state_dir / SOCKET_NAME).exists, STARTUP_S, "no control socket")
        started = datetime.fromisoformat(_status(state_dir)["meter_time"])
        # Past the first quarter boundary, so a load profile row is on disk before the fault.
        _until(lambda: _meter_time(state_dir) > started + timedelta(minutes=16), 5, "too slow")
        _until(lambda: _status(state_dir)["storage"]["pending_writes"] == 0, 5, "not settled")
        before = _meter_time(state_dir)
        filler = _fill(small_disk)

        _until(lambda: _status(state_dir)["storage"]["fault"] is not None, 20, "no fault seen")
        for _ in range(5):  # it keeps answering (with what is on disk) while it cannot write
            began = time.monotonic()
            status = _status(state_dir)
            assert time.monotonic() - began < 1.0
            time.sleep(0.3)
        time.sleep(1.5)  # hours of meter time pass while nothing can be written
        assert "database or disk is full" in status["storage"]["fault"]
        assert status["storage"]["failed_attempts"] > 1

        filler.unlink()
        _until(lambda: _status(state_dir)["storage"]["fault"] is None, 10, "no recovery")
        _until(lambda: _status(state_dir)["storage"]["pending_writes"] == 0, 5, "not written")
        after = datetime.fromisoformat(_status(state_dir)["meter_time"])
    finally:
        process.terminate()
        code = process.wait(timeout=10)
    log = log_path.read_text()
    assert code == 0, log
    assert log.count("storage fault") == 1, log
    assert log.count("storage recovered") == 1, log

    store = Store.open(state_dir)
    try:
        rows = store.load_profile()
        checkpoint = store.load()
    finally:
        store.close()
    assert checkpoint is not None
    # Every quarter from the first row on has its row: none was lost to the full disk.
    assert all(b.time - a.time == timedelta(minutes=15) for a, b in pairwise(rows)), [
        r.time.isoformat() for r in rows
    ]
    # ... from before the disk ran full to after it had space again (hours of meter time).
    assert rows[0].time <= before
    assert rows[-1].time > after - timedelta(minutes=15)
    assert after - before > timedelta(hours=2)
    with contextlib.suppress(OSError):
        log_path.unlink()
