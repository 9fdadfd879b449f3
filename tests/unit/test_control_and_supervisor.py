"""The control socket over a real Unix socket, the supervisor's restarts and sd_notify."""

from __future__ import annotations

import asyncio
import os
import random
import socket
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support import amsterdam, steady_config
from twin.clock import ManualClock
from twin.control import ControlError, ControlServer, call
from twin.meter.events import EventLog
from twin.metering import Meter
from twin.sdnotify import Notifier
from twin.store import Store
from twin.supervisor import BACKOFF_CAP_S, Service, Supervisor, backoff_delay


@pytest.fixture
def short_tmp() -> Path:
    # Unix socket paths are limited to ~107 bytes; pytest's tmp_path can be longer.
    import tempfile

    return Path(tempfile.mkdtemp(prefix="twin-"))


async def test_control_commands_over_the_socket(short_tmp: Path) -> None:
    clock = ManualClock(amsterdam(2026, 11, 23, 12, 0))
    meter = Meter(steady_config(), clock, Store.open(short_tmp), random.Random(1))
    server = ControlServer(meter, short_tmp / "control.sock")
    task = asyncio.create_task(server.run())
    path = short_tmp / "control.sock"
    for _ in range(100):
        if path.exists():
            break
        await asyncio.sleep(0.01)
    try:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o660
        await call(path, {"cmd": "load", "watts": 3000})
        await clock.advance(3600)
        status = await call(path, {"cmd": "status"})
        assert status["1-0:1.8.2"] == 3.0
        assert status["tariff"] == 2
        assert status["import_w"] == 3000
        assert [p["import_w"] for p in status["phases"]] == [1000, 1000, 1000]

        await call(path, {"cmd": "power-failure", "seconds": 200})
        await clock.advance(300)
        await call(path, {"cmd": "sag", "phase": 1})
        await call(path, {"cmd": "swell", "phase": 3})
        await call(path, {"cmd": "message", "code": "12", "text": "Hallo"})
        await call(path, {"cmd": "tamper"})
        status = await call(path, {"cmd": "status"})
        assert status["power_failures"] == 1
        assert status["long_power_failures"] == 1
        assert status["power_failure_log"][0]["duration_s"] == 200
        assert [p["sags"] for p in status["phases"]] == [1, 0, 0]
        assert [p["swells"] for p in status["phases"]] == [0, 0, 1]
        assert status["message"] == {"code": "12", "text": "Hallo"}
        # The tamper event was committed before the answer came back.
        assert [e.code for e in meter.store.events(EventLog.FRAUD)] == [40]

        with pytest.raises(ControlError, match="unknown command 'nope'"):
            await call(path, {"cmd": "nope"})
        with pytest.raises(ControlError, match="'phase' must be a whole number from 1 to 3"):
            await call(path, {"cmd": "sag", "phase": 5})
        with pytest.raises(ControlError, match="'seconds' must be a number from 1 to 31536000"):
            await call(path, {"cmd": "power-failure", "seconds": "long"})
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_call_without_a_running_twin_is_a_clear_error(short_tmp: Path) -> None:
    with pytest.raises(ControlError, match="no twin is running"):
        await call(short_tmp / "control.sock", {"cmd": "status"})


async def test_malformed_requests_get_an_error_not_a_crash(short_tmp: Path) -> None:
    meter = Meter(
        steady_config(),
        ManualClock(amsterdam(2026, 1, 5, 12, 0)),
        Store.open(short_tmp),
        random.Random(1),
    )
    server = ControlServer(meter, short_tmp / "c.sock")
    assert (await server.dispatch(b"{not json"))["ok"] is False
    assert "cmd" in (await server.dispatch(b"[1, 2]"))["error"]
    assert (await server.dispatch(b'{"cmd": "status"}'))["ok"] is True


def test_backoff_is_capped_and_jittered() -> None:
    rng = random.Random(1)
    delays = [backoff_delay(n, rng) for n in range(20)]
    assert delays[0] < 1
    assert max(delays) <= BACKOFF_CAP_S * 1.2
    assert delays[-1] >= BACKOFF_CAP_S * 0.8


async def _supervise_until(supervisor: Supervisor, done: Callable[[], bool]) -> None:
    """Run `supervisor` until `done()` (at most about 2 s of polling), then stop it."""
    stop = asyncio.Event()
    run = asyncio.create_task(supervisor.run(stop))
    for _ in range(2000):
        if done():
            break
        await asyncio.sleep(0.001)
    stop.set()
    await asyncio.wait_for(run, 5)


async def test_a_crashing_service_restarts_without_stopping_the_others() -> None:
    attempts = 0
    ticks = 0

    async def flaky() -> None:
        nonlocal attempts
        attempts += 1
        if attempts < 3:
            raise OSError(f"port vanished ({attempts})")
        await asyncio.Event().wait()

    async def steady() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    services = [Service("flaky", flaky), Service("steady", steady)]
    supervisor = Supervisor(services, Notifier(""), lambda: True, random.Random(1), 0.001)
    await _supervise_until(supervisor, lambda: attempts >= 3)
    assert attempts == 3
    assert services[0].restarts == 2
    assert services[0].last_error == "OSError: port vanished (2)"
    assert services[1].restarts == 0
    assert ticks > 0


async def test_a_service_failing_again_the_same_way_is_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A full disk makes a port fail at every restart: one ERROR with the traceback, then a
    # quiet line per retry, until the failure changes (then it is logged in full again).
    errors = ["database or disk is full"] * 4 + ["port vanished"]
    attempts = 0

    async def failing() -> None:
        nonlocal attempts
        attempts += 1
        if errors:
            raise OSError(errors.pop(0))
        await asyncio.Event().wait()

    supervisor = Supervisor([Service("p2", failing)], Notifier(""), lambda: True, None, 0.001)
    caplog.set_level("DEBUG", logger="twin.supervisor")
    await _supervise_until(supervisor, lambda: attempts >= 6)
    loud = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(loud) == 2
    assert "database or disk is full" in loud[0].getMessage()
    assert "port vanished" in loud[1].getMessage()
    assert all(r.exc_info for r in loud)
    quiet = [r for r in caplog.records if r.levelname == "DEBUG" and "again" in r.getMessage()]
    assert len(quiet) == 3
    assert not any(r.exc_info for r in quiet)


async def test_sd_notify_ready_watchdog_stopping(short_tmp: Path) -> None:
    address = str(short_tmp / "notify")
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(address)
    receiver.setblocking(False)
    os.environ["WATCHDOG_USEC"] = "20000"
    try:
        notifier = Notifier(address)
    finally:
        del os.environ["WATCHDOG_USEC"]
    assert notifier.watchdog_interval_s == 0.01
    alive = True
    supervisor = Supervisor([], notifier, lambda: alive)
    stop = asyncio.Event()
    run = asyncio.create_task(supervisor.run(stop))
    await asyncio.sleep(0.05)
    stop.set()
    await run
    messages = []
    while True:
        try:
            messages.append(receiver.recv(100).decode())
        except BlockingIOError:
            break
    receiver.close()
    assert messages[0] == "READY=1"
    assert "WATCHDOG=1" in messages
    assert messages[-1] == "STOPPING=1"
    assert Notifier("").enabled is False


def test_a_hung_service_is_detected_but_one_in_backoff_is_not() -> None:
    import time

    beat = time.monotonic() - 100
    service = Service("p1", lambda: asyncio.sleep(0), heartbeat=lambda: beat)
    service.state, service.started_at = "running", beat
    assert service.hung(time.monotonic())
    service.state = "backoff"
    assert not service.hung(time.monotonic())
    fresh = Service("p1", lambda: asyncio.sleep(0), heartbeat=time.monotonic)
    fresh.state = "running"
    assert not fresh.hung(time.monotonic())
