"""A fleet worker's start: a meter whose storage cannot write now is started again with a
backoff and reported as starting meanwhile; a damaged one is reported failed; the others run."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import random
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import twin.store
from twin.config import Config
from twin.fleet.control import fleet_status
from twin.fleet.spec import STATUS_FILE, FleetSpec, meter_dir, write_json_atomically
from twin.fleet.worker import Starter, StartReport, open_meters, serve_meters
from twin.sdnotify import Notifier
from twin.store import DATABASE


def _fleet(tmp_path: Path) -> FleetSpec:
    address = f"127.{random.randint(2, 250)}.{random.randint(0, 250)}.1"
    fleet = FleetSpec(3, b"start seed", f"tcp://{address}:4059", "none", seeded=True)
    fleet.save(tmp_path)
    # The head's view, as `fleet run` writes it: this process is the head and worker 0.
    worker = {"worker": 0, "pid": os.getpid(), "state": "running", "restarts": 0}
    record = {"head_pid": os.getpid(), "workers": [{**worker, "meters": [1, 2, 3]}]}
    write_json_atomically(tmp_path / STATUS_FILE, record)
    return fleet


def _frozen_disk_under(
    monkeypatch: pytest.MonkeyPatch, state_dir: Path, disk: threading.Event
) -> None:
    """The store's writes in `state_dir` hang (a frozen file system) until `disk` is set: its
    write connection (the store's own seam, as the writer opens it) waits for the disk."""
    connect = twin.store._connect

    def frozen(path: Path) -> sqlite3.Connection:
        if path.parent.resolve() == state_dir.resolve():
            disk.wait(30)
        return connect(path)

    monkeypatch.setattr(twin.store, "_connect", frozen)


async def test_a_meter_whose_store_cannot_write_at_start_is_retried_and_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # workers run in the fleet directory
    monkeypatch.setattr(twin.store, "CLOSE_WAIT_S", 0.1)  # a stuck store's close gives up
    fleet = _fleet(tmp_path)
    (tmp_path / meter_dir(3)).mkdir(parents=True)
    (tmp_path / meter_dir(3) / DATABASE).write_bytes(b"not a database" * 100)  # for good
    disk = threading.Event()
    _frozen_disk_under(monkeypatch, tmp_path / meter_dir(2), disk)
    base = dataclasses.replace(
        Config(), store=dataclasses.replace(Config().store, backup_interval_s=0)
    )
    report = StartReport.for_worker(tmp_path, 0)
    retries: asyncio.Queue[None] = asyncio.Queue()
    delays: list[float] = []

    async def backoff(seconds: float) -> None:  # the test says when a retry is due
        delays.append(seconds)
        await retries.get()

    hosted = open_meters(fleet, base, [1, 2, 3], report)
    assert [h.index for h in hosted] == [1]
    stop = asyncio.Event()
    serving = asyncio.create_task(
        serve_meters(hosted, Notifier(), 0, Starter(fleet, base, report, backoff), stop)
    )
    try:
        status = await _status_until(tmp_path, lambda s: s["meters_up"] == 1)
        rows = {m["meter"]: m for m in status["meter_states"]}
        assert rows[2]["state"] == "starting"
        assert "a write is stuck" in rows[2]["error"]
        assert rows[3]["state"] == "failed"
        assert "damaged" in rows[3]["error"]
        assert rows[1]["state"] == "running"
        assert (status["meters_starting"], status["meters_failed"]) == (1, 1)

        await retries.put(None)  # a retry while the disk is still frozen: starting still
        status = await _status_until(
            tmp_path, lambda s: s["meter_states"][1].get("start_attempts") == 2
        )
        assert status["meter_states"][1]["state"] == "starting"
        disk.set()  # the disk comes back
        await retries.put(None)
        status = await _status_until(tmp_path, lambda s: s["meters_up"] == 2)
        assert [m["state"] for m in status["meter_states"]] == ["running", "running", "failed"]
        assert status["meter_states"][1]["p3_listening"]
        assert delays[1] > delays[0]  # backing off
    finally:
        disk.set()
        stop.set()
        await asyncio.wait_for(serving, 30)


async def _status_until(
    fleet_dir: Path, condition: Callable[[dict[str, Any]], bool], within_s: float = 15.0
) -> dict[str, Any]:
    deadline = time.monotonic() + within_s
    while not condition(status := await fleet_status(fleet_dir)):
        assert time.monotonic() < deadline, status
        await asyncio.sleep(0.1)
    return status
