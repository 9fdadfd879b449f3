"""Commits that fail or stall: nothing the meter logged is lost, the loop stays free."""

from __future__ import annotations

import random
import resource
import signal
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest

from tests.support import amsterdam, steady_config
from twin.clock import ManualClock
from twin.meter.events import EventCode, EventLog
from twin.metering import Meter
from twin.store import Store


@contextmanager
def file_size_limit(limit: int) -> Iterator[None]:
    """A real write failure: the kernel refuses writes past `limit` bytes (EFBIG), as a full
    disk refuses them; SIGXFSZ is ignored so the write fails instead of killing the process."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)


def _empty_wal(path: Path) -> None:
    """Fold the WAL into the database so the next commit writes the WAL from byte 0."""
    with sqlite3.connect(path / "meter.sqlite3") as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def _settled(meter: Meter, within_s: float = 10.0) -> None:
    """Wait until the writer has written everything queued (it works in its own thread)."""
    deadline = time.monotonic() + within_s
    while meter.store.writer.pending():
        assert time.monotonic() < deadline, meter.store.writer.status()
        time.sleep(0.01)
    meter.settle()


async def test_rows_and_events_of_a_failed_commit_are_committed_later(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    start = amsterdam(2026, 11, 23, 12, 0)
    clock = ManualClock(start)
    meter = Meter(steady_config(), clock, Store.open(tmp_path), random.Random(1))
    meter.commit()
    _empty_wal(tmp_path)

    with file_size_limit(1024):
        await clock.set(start + timedelta(hours=17, minutes=30))  # 70 quarters
        meter.commit()
        meter.act(lambda m, now: m.tamper(now))
        _retried(meter, attempts=3)
        assert "write to" in str(meter.store.writer.status()["fault"])

    meter.commit()  # the fault cleared: everything pending goes in, in order
    _settled(meter)

    rows = meter.store.load_profile(since=start + timedelta(minutes=15))
    assert [r.time for r in rows] == [start + timedelta(minutes=15 * q) for q in range(1, 71)]
    fraud = [e.code for e in meter.store.events(EventLog.FRAUD)]
    assert fraud == [EventCode.TERMINAL_COVER_REMOVED]
    checkpoint = meter.store.load()
    assert checkpoint is not None
    assert checkpoint.state.time == start + timedelta(hours=17, minutes=30)
    # One line for the fault with its cause, one for the recovery: not one per retry.
    faults = [r for r in caplog.records if "storage fault" in r.getMessage()]
    recoveries = [r for r in caplog.records if "storage recovered" in r.getMessage()]
    assert len(faults) == 1
    assert "disk I/O error" in faults[0].getMessage()
    assert len(recoveries) == 1
    assert meter.store.writer.status()["fault"] is None


def _retried(meter: Meter, attempts: int) -> None:
    deadline = time.monotonic() + 10
    while meter.store.writer.failed_attempts < attempts:
        assert time.monotonic() < deadline, meter.store.writer.status()
        meter.submit()  # a new commit is a reason for the writer to try again
        time.sleep(0.05)
