"""The P1 service: telegrams on the data line while the reader raises Request.

P1 §5.2: the first telegram goes out immediately when Request rises, then one every ten
seconds (§4.5) until it falls; §4.3: transfer stops at once when Request drops, even in the
middle of a telegram. The cadence runs on meter time, on a fixed grid from the rise, so a
simulated clock keeps it, and each telegram is stamped with its slot. A slot that passed during
a slow send still goes out, late; when the service is further behind, only the latest due slot
is sent, never a burst. A meter in a power failure is dead and sends nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import time
from collections.abc import AsyncIterator, Coroutine
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any, Protocol

from hardware.pacing import P1_BAUDRATE, wire_time
from hardware.ports import ByteSink, RequestLine
from twin.clock import Clock
from twin.meter.state import MeterReading
from twin.p1.recent import RecentTelegrams
from twin.p1.telegram import TelegramEncoder

log = logging.getLogger(__name__)

# P1 §4.5: a transfer must be complete within 8 s (real time: the line runs in real time).
WRITE_TIMEOUT_S = 8.0
# Real seconds between heartbeats while the service waits (for Request or the next slot).
HEARTBEAT_S = 5.0
# Real seconds before a slot at which its reading is taken and committed, so the commit's fsync
# never sits between the slot and the first byte on the wire (bench/bench_p1_cadence.py).
PREPARE_AHEAD_S = 0.05


class Sent(Enum):
    """How a telegram's write ended."""

    WHOLE = "whole"
    CUT = "cut"  # Request fell during the write (P1 §4.3): the rest is never sent
    TIMED_OUT = "timed out"  # not out within WRITE_TIMEOUT_S (P1 §4.5)


# How the console's list of recent telegrams names each ending (twin/p1/recent.py).
OUTCOMES = {Sent.WHOLE: "sent", Sent.CUT: "aborted", Sent.TIMED_OUT: "timed-out"}


async def send_telegram(sink: ByteSink, request: RequestLine, telegram: bytes) -> Sent:
    """The P1 write path, the service's and `p1 replay`'s: write `telegram`, stopping at once
    when Request falls (P1 §4.3) or when it is not out within WRITE_TIMEOUT_S (P1 §4.5); a
    stopped write's output is aborted. A write failure (PortError) is raised (the supervisor
    restarts the port), and so is a cancellation from outside (after the abort).

    The write runs in the caller's task (it counts the telegram as soon as it is out); a
    falling Request cancels it through a watcher, as asyncio.timeout cancels on its deadline.
    """
    task = asyncio.current_task()
    assert task is not None
    watcher = asyncio.ensure_future(request.wait_for(False))
    cut = False

    def request_fell(done: asyncio.Future[None]) -> None:
        nonlocal cut
        if not done.cancelled():
            cut = True
            task.cancel()

    watcher.add_done_callback(request_fell)
    try:
        async with asyncio.timeout(WRITE_TIMEOUT_S):
            await sink.write(telegram)
    except TimeoutError:
        sink.abort_output()
        log.warning("P1 telegram not out within %s s on %s", WRITE_TIMEOUT_S, sink.description)
        return Sent.TIMED_OUT
    except asyncio.CancelledError:
        sink.abort_output()
        if cut and task.uncancel() == 0:
            return Sent.CUT  # our own cancellation, nobody else's
        raise
    finally:
        watcher.remove_done_callback(request_fell)
        watcher.cancel()
    return Sent.WHOLE


@contextlib.asynccontextmanager
async def lines_open(
    sink: ByteSink, request: RequestLine, ready: asyncio.Event
) -> AsyncIterator[None]:
    """The data line and the Request line open, `ready` set while they are; both closed after
    (the service's and `p1 replay`'s)."""
    await sink.open()
    try:
        await request.open()
        try:
            ready.set()
            yield
        finally:
            ready.clear()
            await request.close()
    finally:
        await sink.close()


class MeterSource(Protocol):
    """What the service needs of `twin.metering.Meter`."""

    async def publish_durable(self, at: datetime | None = None) -> MeterReading: ...

    def is_powered(self) -> bool: ...


class P1Service:
    """Sends the meter's telegrams on `sink` while `request` is raised."""

    def __init__(
        self,
        meter: MeterSource,
        encoder: TelegramEncoder,
        sink: ByteSink,
        request: RequestLine,
        clock: Clock,
        *,
        interval_s: float = 10,
        baudrate: int = P1_BAUDRATE,
    ) -> None:
        if interval_s <= 0:
            raise ValueError("interval_s must be positive")
        self.baudrate = baudrate  # the line's speed ([p1] baudrate; P1 §5.1: 115200 8N1)
        self.meter = meter
        self.encoder = encoder
        self.sink = sink
        self.request = request
        self.clock = clock
        self.interval = timedelta(seconds=interval_s)
        self.heartbeat = time.monotonic()  # read by the supervisor's watchdog
        self.ready = asyncio.Event()  # set once the sink and the request line are open
        self.sent = 0
        self.aborted = 0  # writes cut off because Request fell (P1 §4.3)
        self.timed_out = 0  # writes abandoned after WRITE_TIMEOUT_S
        self.unpowered = 0  # slots skipped during a power failure
        self.missed = 0  # slots skipped because the service was more than a slot behind
        self.requests = 0  # rises of Request seen
        self.last_sent: datetime | None = None
        self.recent = RecentTelegrams()  # what went out lately, for the web console

    def status(self) -> dict[str, Any]:
        """For `ctl status`."""
        return {
            "sink": self.sink.description,
            "request": self.request.description,
            "requested": self.request.is_raised(),
            "interval_s": self.interval.total_seconds(),
            "telegrams_sent": self.sent,
            "telegrams_aborted": self.aborted,
            "telegrams_timed_out": self.timed_out,
            "slots_unpowered": self.unpowered,
            "slots_missed": self.missed,
            "requests": self.requests,
            "last_sent": self.last_sent.isoformat() if self.last_sent else None,
        }

    async def run(self) -> None:
        """Serve until cancelled; a port failure (PortError) ends it for the supervisor."""
        async with lines_open(self.sink, self.request, self.ready):
            while True:
                await self._race(self.request.wait_for(True))
                await self._serve_request()

    async def _serve_request(self) -> None:
        self.requests += 1
        log.info("P1 Request raised")
        try:
            await self._race(self._cadence(), self.request.wait_for(False))
        finally:
            # P1 §4.3: nothing queued for the line goes out after Request has dropped.
            self.sink.abort_output()
        log.info("P1 Request released")

    async def _cadence(self) -> None:
        rise = self.clock.now()
        slot = 0
        steps = self.clock.steps
        while True:
            if self.clock.steps != steps:
                # The meter clock was set (P3): restart the grid at the new time, at once.
                rise, slot, steps = self.clock.now(), 0, self.clock.steps
            self._beat()
            due = rise + slot * self.interval
            if self.meter.is_powered():
                # Commit before publish, but ahead of the slot: then wait for the slot itself.
                reading = await self.meter.publish_durable(at=due)
                await self.clock.sleep_until(due)
                if self.clock.steps != steps:
                    continue  # the clock was set before the slot: its grid is gone
                began = time.monotonic()
                size = await self._send(reading, due)
                await asyncio.sleep(self._line_pause(size, time.monotonic() - began))
            else:
                self.unpowered += 1
            # A slot whose time passed during the send still goes out (late by less than an
            # interval); when further behind, only the latest due slot is sent: no bursts.
            following = max(slot + 1, self._slot_at(rise))
            await self.clock.sleep_until(rise + following * self.interval - self._lead())
            if self.clock.steps != steps:
                continue
            latest = max(following, self._slot_at(rise))
            self.missed += latest - slot - 1
            slot = latest

    def _line_pause(self, size: int, took_s: float) -> float:
        """Real seconds to wait after a telegram of `size` bytes whose write took `took_s`.

        A line carries one telegram at a time, however fast the meter's clock runs (an
        ~800-byte telegram takes ~70 ms): when slots come faster than that (a fast simulated
        clock) the service waits out the telegram's time on the line, then sends the latest
        due slot. So it never sends more than the wire carries, and never spins the loop.
        """
        line_s = wire_time(size, self.baudrate)
        if self.interval.total_seconds() / self.clock.speed >= line_s:
            return 0.0  # the slots themselves are further apart than a telegram's time
        return max(0.0, line_s - took_s)

    def _lead(self) -> timedelta:
        """How far ahead of a slot (in meter time) its reading is prepared."""
        return min(timedelta(seconds=PREPARE_AHEAD_S * self.clock.speed), self.interval / 2)

    def _slot_at(self, rise: datetime) -> int:
        return math.floor((self.clock.now() - rise) / self.interval)

    async def _send(self, reading: MeterReading, slot: datetime) -> int:
        """Write one telegram; its size in bytes (what it occupies the line for)."""
        # The telegram carries the time of its slot, so stamps are exactly interval_s apart
        # as on a real meter even when the event loop's latency is many meter seconds (a
        # fast simulated clock). The registers are those of the slot (prepared just ahead).
        telegram = self.encoder.encode(dataclasses.replace(reading, time=slot))
        sent_at = datetime.now(UTC)
        try:
            sent = await send_telegram(self.sink, self.request, telegram)
        except asyncio.CancelledError:
            # Request fell mid-telegram (P1 §4.3), seen first by `_serve_request`.
            self.aborted += 1
            self.recent.add(slot, telegram, "aborted", sent_at)
            raise
        self.recent.add(slot, telegram, OUTCOMES[sent], sent_at)
        if sent is Sent.WHOLE:
            self.sent += 1
            self.last_sent = slot
        elif sent is Sent.CUT:
            self.aborted += 1
        else:
            self.timed_out += 1
        return len(telegram)

    async def _race(self, *jobs: Coroutine[Any, Any, None]) -> None:
        """Run `jobs` until the first ends, beating the heartbeat meanwhile; cancel the rest.

        The first failure among them is raised. Waiting on Request or on the clock is healthy
        idleness, so the heartbeat goes on while we wait.
        """
        tasks = [asyncio.ensure_future(job) for job in jobs]
        try:
            while not any(task.done() for task in tasks):
                self._beat()
                await asyncio.wait(tasks, timeout=HEARTBEAT_S, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            # Let them unwind (a cancelled write aborts the output) before going on.
            await asyncio.wait(tasks)
        self._beat()
        errors = [e for t in tasks if not t.cancelled() and (e := t.exception()) is not None]
        if errors:
            raise errors[0]

    def _beat(self) -> None:
        self.heartbeat = time.monotonic()
