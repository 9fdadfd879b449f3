"""The P1 service: telegrams on the data line while the reader raises Request.

P1 §5.2: the first telegram goes out immediately when Request rises, then one every ten
seconds (§4.5) until it falls; §4.3: transfer stops at once when Request drops, even in the
middle of a telegram. The cadence runs on meter time, on a fixed grid from the rise, so a
simulated clock keeps it; missed slots are skipped, never sent in a burst. A meter in a power
failure is dead and sends nothing.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Coroutine
from datetime import datetime, timedelta
from typing import Any, Protocol

from hardware.ports import ByteSink, RequestLine
from twin.clock import Clock
from twin.meter.state import MeterReading
from twin.p1.telegram import TelegramEncoder

log = logging.getLogger(__name__)

# P1 §4.5: a transfer must be complete within 8 s (real time: the line runs in real time).
WRITE_TIMEOUT_S = 8.0
# Real seconds between heartbeats while the service waits (for Request or the next slot).
HEARTBEAT_S = 5.0


class MeterSource(Protocol):
    """What the service needs of `twin.metering.Meter`."""

    def publish(self) -> MeterReading: ...

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
    ) -> None:
        if interval_s <= 0:
            raise ValueError("interval_s must be positive")
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
        self.requests = 0  # rises of Request seen
        self.last_sent: datetime | None = None

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
            "requests": self.requests,
            "last_sent": self.last_sent.isoformat() if self.last_sent else None,
        }

    async def run(self) -> None:
        """Serve until cancelled; a port failure (PortError) ends it for the supervisor."""
        await self.sink.open()
        try:
            await self.request.open()
            try:
                self.ready.set()
                while True:
                    await self._race(self.request.wait_for(True))
                    await self._serve_request()
            finally:
                self.ready.clear()
                await self.request.close()
        finally:
            await self.sink.close()

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
        while True:
            self._beat()
            if self.meter.is_powered():
                await self._send(self.meter.publish())
            else:
                self.unpowered += 1
            slot = self._next_slot(rise, slot)
            await self.clock.sleep_until(rise + slot * self.interval)

    def _next_slot(self, rise: datetime, slot: int) -> int:
        # The first grid point still ahead: slots missed by a slow write are skipped.
        elapsed = (self.clock.now() - rise) / self.interval
        return max(slot + 1, math.floor(elapsed) + 1)

    async def _send(self, reading: MeterReading) -> None:
        telegram = self.encoder.encode(reading)
        try:
            async with asyncio.timeout(WRITE_TIMEOUT_S):
                await self.sink.write(telegram)
        except TimeoutError:
            self.sink.abort_output()
            self.timed_out += 1
            log.warning(
                "P1 telegram not out within %s s on %s", WRITE_TIMEOUT_S, self.sink.description
            )
            return
        except asyncio.CancelledError:
            # Request fell mid-telegram (P1 §4.3): the rest of it is never sent.
            self.sink.abort_output()
            self.aborted += 1
            raise
        self.sent += 1
        self.last_sent = reading.time

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
