"""The systemd watchdog: WATCHDOG=1 stops while metering is stuck or a port hangs, and comes
back when they recover.

The supervisor runs real services under a real Notifier that sends to a datagram socket this
test owns. Liveness is judged on an injected monotonic clock, so a 31 s hang takes no 31 s:
a stalled service stops stamping progress and the test moves the clock on.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import socket
import tempfile
import threading
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from tests.support import amsterdam, steady_config
from twin.app import MeterLoop
from twin.clock import ManualClock
from twin.metering import Meter
from twin.sdnotify import Notifier
from twin.store import Store
from twin.supervisor import HUNG_AFTER_S, Service, Supervisor

WATCHDOG_USEC = 20_000  # systemd's WatchdogSec: the supervisor pings every 10 ms
QUIET_S = 0.3  # real seconds of watchdog rounds (about 30) that must all be withheld


class Monotonic:
    """A monotonic clock that the test moves on (the supervisor's and MeterLoop's clock)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Stallable:
    """Runs a service's real coroutine; `stall()` stops it (no progress at all), `resume()`
    starts it again, as a port stuck on a dead device and freed again would."""

    def __init__(self, run: Callable[[], Awaitable[None]]) -> None:
        self._run = run
        self._flowing = asyncio.Event()
        self._flowing.set()
        self.stalled = asyncio.Event()

    async def run(self) -> None:
        while True:
            await self._flowing.wait()
            self.stalled.clear()
            work = asyncio.ensure_future(self._run())
            blocked = asyncio.ensure_future(self._wait_blocked())
            try:
                await asyncio.wait({work, blocked}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (work, blocked):
                    task.cancel()
                await asyncio.gather(work, blocked, return_exceptions=True)
            self.stalled.set()

    async def _wait_blocked(self) -> None:
        while self._flowing.is_set():
            await asyncio.sleep(0.001)

    async def stall(self) -> None:
        self._flowing.clear()
        await asyncio.wait_for(self.stalled.wait(), 5)

    def resume(self) -> None:
        self._flowing.set()


class Port:
    """A port loop that stamps its heartbeat on every round, like P1 or P3 do."""

    def __init__(self, clock: Monotonic) -> None:
        self.clock = clock
        self.heartbeat = clock()

    async def run(self) -> None:
        while True:
            self.heartbeat = self.clock()
            await asyncio.sleep(0.002)


class Pings:
    """The receiving end of $NOTIFY_SOCKET."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.setblocking(False)

    def drain(self) -> list[str]:
        messages = []
        with contextlib.suppress(BlockingIOError):
            while True:
                messages.append(self.sock.recv(256).decode())
        return messages

    async def watchdogs_within(self, seconds: float) -> int:
        # Read as systemd does, all along: the socket queue holds only a few datagrams.
        loop = asyncio.get_running_loop()
        deadline, count = loop.time() + seconds, 0
        while loop.time() < deadline:
            await asyncio.sleep(0.005)
            count += self.drain().count("WATCHDOG=1")
        return count

    async def next_watchdog(self, timeout: float = 5.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while "WATCHDOG=1" not in self.drain():
            assert loop.time() < deadline, "the watchdog ping did not come back"
            await asyncio.sleep(0.005)


def test_a_full_notify_socket_does_not_block_the_twin(short_tmp: Path) -> None:
    """systemd busy (its queue full): a ping is dropped with a warning, the loop runs on."""
    pings = Pings(short_tmp / "notify")
    sender = Notifier(str(short_tmp / "notify"))
    done = threading.Event()

    def flood() -> None:
        for _ in range(100):  # more than net.unix.max_dgram_qlen (10 by default)
            sender.notify("WATCHDOG=1")
        done.set()

    threading.Thread(target=flood, daemon=True).start()
    try:
        assert done.wait(5), "notify blocked on a full socket"
        assert 0 < len(pings.drain()) < 100
    finally:
        pings.sock.close()


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="wd-") as path:  # sockaddr_un is short
        yield Path(path)


def notifier(address: Path) -> Notifier:
    os.environ["WATCHDOG_USEC"] = str(WATCHDOG_USEC)
    try:
        return Notifier(str(address))
    finally:
        del os.environ["WATCHDOG_USEC"]


async def test_watchdog_stops_while_metering_is_stuck_or_a_port_hangs(short_tmp: Path) -> None:
    clock = Monotonic()
    store = Store.open(short_tmp)
    meter_clock = ManualClock(amsterdam(2026, 12, 7, 12, 0))
    meter = Meter(steady_config(), meter_clock, store, random.Random(1))
    metering = MeterLoop(meter, checkpoint_interval_s=3600, monotonic=clock)
    meter_service, port = Stallable(metering.run), Port(clock)
    port_service = Stallable(port.run)
    services = [
        Service("meter", meter_service.run),
        Service("p1", port_service.run, heartbeat=lambda: port.heartbeat),
    ]
    pings = Pings(short_tmp / "notify")
    supervisor = Supervisor(
        services, notifier(short_tmp / "notify"), metering.alive, monotonic=clock
    )
    stop = asyncio.Event()
    running = asyncio.create_task(supervisor.run(stop))
    try:
        await pings.next_watchdog()

        # Metering stuck: no tick for longer than MeterLoop allows, the port still beating.
        await meter_service.stall()
        clock.now += 11
        pings.drain()
        assert await pings.watchdogs_within(QUIET_S) == 0
        assert port.heartbeat == clock.now  # the port was fine: metering alone withheld it
        meter_service.resume()
        await pings.next_watchdog()

        # A port hangs: its heartbeat ages past HUNG_AFTER_S while metering ticks on.
        await port_service.stall()
        clock.now += HUNG_AFTER_S + 1
        # Meter time passes too: metering wakes at its next whole minute and stamps progress.
        await meter_clock.advance(60)
        while metering.last_tick != clock.now:  # metering catches up with the moved clock
            await asyncio.sleep(0.01)
            pings.drain()
        pings.drain()
        assert await pings.watchdogs_within(QUIET_S) == 0
        assert metering.alive()  # the port alone withheld it
        port_service.resume()
        await pings.next_watchdog()
        assert await pings.watchdogs_within(QUIET_S) > 5  # and it keeps coming
    finally:
        stop.set()
        await asyncio.wait_for(running, 5)
        pings.sock.close()
        store.close()


async def test_an_idle_metering_loop_is_alive_until_its_wake_up_is_overdue(
    short_tmp: Path,
) -> None:
    """An idle meter sleeps until its next whole minute (or checkpoint): that wait is no stall.
    Only a wake-up that does not come in time withholds the watchdog."""
    clock = Monotonic()
    store = Store.open(short_tmp)
    meter = Meter(
        steady_config(), ManualClock(amsterdam(2026, 12, 7, 12, 0)), store, random.Random(1)
    )
    metering = MeterLoop(meter, checkpoint_interval_s=3600, monotonic=clock)
    running = asyncio.create_task(metering.run())
    try:
        while metering.last_tick != clock.now:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)  # it sleeps now, until the meter's next minute
        clock.now += 30  # longer than any tick interval: still waiting, as planned
        assert metering.alive()
        clock.now += 60  # the wait should have ended (IDLE_MAX_S) long ago: stuck
        assert not metering.alive()
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        store.close()
