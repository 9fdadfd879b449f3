"""Commits that fail or stall: nothing the meter logged is lost, the loop stays free."""

from __future__ import annotations

import asyncio
import os
import random
import resource
import signal
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from tests.support import amsterdam, steady_config
from twin.app import MeterLoop, build, serve
from twin.clock import ManualClock
from twin.control import ControlServer, call
from twin.meter.events import EventCode, EventLog
from twin.metering import Meter
from twin.store import Store, StoreError
from twin.store_writer import STALLED_AFTER_S


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


async def test_a_stuck_write_holds_neither_status_nor_metering(tmp_path: Path) -> None:
    start = amsterdam(2026, 11, 23, 12, 0)
    clock = ManualClock(start)
    socket_dir = Path(tempfile.mkdtemp(prefix="twin-"))  # Unix socket paths are short
    meter = Meter(steady_config(), clock, Store.open(tmp_path), random.Random(1))
    meter.act(lambda m, now: m.set_load_override(now, 3000))
    control = ControlServer(meter, socket_dir / "control.sock")
    metering = MeterLoop(meter, checkpoint_interval_s=900)
    tasks = [asyncio.create_task(control.run()), asyncio.create_task(metering.run())]
    disk = threading.Event()
    # The disk stops in the middle of a write (a frozen file system): the writer waits.
    meter.store.writer.submit(lambda db: disk.wait(10))
    try:
        await _until((socket_dir / "control.sock").exists)
        before = (await call(socket_dir / "control.sock", {"cmd": "status"}))["1-0:1.8.2"]
        await clock.advance(3600)
        await _until(lambda: meter.model.time >= start + timedelta(hours=1))  # it meters on
        # The write has hung for longer than a healthy one takes (the metering loop wakes at
        # once when the test clock moves, so this may take it a moment more).
        await _until(meter.store.writer.stalled)

        began = time.monotonic()
        status = await call(socket_dir / "control.sock", {"cmd": "status"})
        assert time.monotonic() - began < 0.5
        assert status["storage"]["stalled"] is True
        assert status["1-0:1.8.2"] == before  # not a value that is not on disk
        assert meter.store.load_profile(since=start) == []  # committed data stays readable
        began = time.monotonic()
        shown = meter.publish()  # what P3 reads: at once, and only what is on disk
        assert time.monotonic() - began < 0.1
        assert shown.energy_wh["1-0:1.8.2"] == before * 1000
        began = time.monotonic()
        energy = meter.published_energy()  # the energy registers alone: the same rule
        assert time.monotonic() - began < 0.1
        assert energy == shown.energy_wh

        disk.set()
        await asyncio.to_thread(_settled, meter)
        status = await call(socket_dir / "control.sock", {"cmd": "status"})
        assert status["1-0:1.8.2"] == 3.0
        assert status["storage"]["stalled"] is False
        assert len(meter.store.load_profile(since=start + timedelta(minutes=15))) == 4
    finally:
        disk.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _until(condition: Callable[[], bool], within_s: float = 5.0) -> None:
    deadline = time.monotonic() + within_s
    while not condition():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)


def test_a_write_behind_a_stuck_one_gives_up_as_soon_as_the_store_is_stalled(
    tmp_path: Path,
) -> None:
    store = Store.open(tmp_path)
    disk = threading.Event()
    store.writer.submit(lambda db: disk.wait(10))  # a frozen file system (a fake of the disk)
    began = time.monotonic()
    with pytest.raises(StoreError, match="a write is stuck"):
        store.put_setting("example", 1)
    assert time.monotonic() - began < STALLED_AFTER_S + 0.3  # the loop was held that long only
    disk.set()
    store.close()
    assert Store.open(tmp_path).setting("example") is None  # taken back: not written later


async def test_an_awaited_settings_write_leaves_the_loop_free(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    disk = threading.Event()
    store.writer.submit(lambda db: disk.wait(10))  # a slow disk (a fake of the disk)
    write = asyncio.create_task(store.put_setting_async("example", 1))
    began = time.monotonic()
    for _ in range(10):  # the loop goes on while the write waits for the disk
        await asyncio.sleep(0.01)
    assert time.monotonic() - began < 0.3
    assert not write.done()
    disk.set()
    await asyncio.wait_for(write, 5)  # then it is durable
    store.close()
    again = Store.open(tmp_path)
    assert again.setting("example") == 1
    again.close()


async def test_sigterm_with_a_frozen_disk_stops_within_two_seconds() -> None:
    state_dir = Path(tempfile.mkdtemp(prefix="twin-"))  # Unix socket paths are short
    config = steady_config()
    config = replace(config, clock=replace(config.clock, speed=3600.0))
    twin = build(config, state_dir)
    running = asyncio.create_task(serve(twin))
    disk = threading.Event()
    try:
        await _until((state_dir / "control.sock").exists)
        twin.store.writer.submit(lambda db: disk.wait(10))  # the file system freezes
        await asyncio.sleep(STALLED_AFTER_S)
        began = time.monotonic()
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.wait_for(running, 5)
        assert time.monotonic() - began < 2.0
    finally:
        disk.set()
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)


def test_a_write_that_raises_fails_alone_and_the_writer_goes_on(tmp_path: Path) -> None:
    store = Store.open(tmp_path)

    def broken(db: sqlite3.Connection) -> None:
        db.execute("INSERT INTO settings (key, value) VALUES ('half', '1')")
        raise ValueError("not storable")

    with pytest.raises(ValueError, match="not storable"):
        store.writer.submit(broken).result(5)
    store.put_setting("after", 2)
    assert store.setting("after") == 2
    assert store.setting("half") is None  # rolled back
    store.close()


async def test_the_energy_registers_alone_are_committed_before_they_are_shown(
    tmp_path: Path,
) -> None:
    start = amsterdam(2026, 11, 23, 12, 0)
    clock = ManualClock(start)
    meter = Meter(steady_config(), clock, Store.open(tmp_path), random.Random(1))
    meter.act(lambda m, now: m.set_load_override(now, 3600))  # 1 Wh a second
    await clock.advance(10)
    energy = meter.published_energy()
    assert energy == meter.publish().energy_wh  # what a full reading shows
    checkpoint = meter.store.load()
    assert checkpoint is not None
    assert checkpoint.state.registers_wh() == energy  # on disk before it was returned
    assert meter.commit_soon() is None  # nothing new since: nothing to write
    await clock.advance(1)
    queued = meter.commit_soon()  # a new Wh: queued, not waited for
    assert queued is not None
    queued.result(5)
    checkpoint = meter.store.load()
    assert checkpoint is not None
    assert checkpoint.state.registers_wh() == meter.published_energy() != energy
