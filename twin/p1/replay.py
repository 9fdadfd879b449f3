"""Replay a P1 capture onto a P1 line (pty, TCP or UART) with its cadence and the Request line.

The telegrams go out at their recorded offsets divided by `speed`, on the real-time event
loop clock: the line itself runs in real time (P1 §5.1), so a replay at speed 1 is what the
reader saw in the field. The Request line is honoured as the meter does (P1 §4.3, §5.2): the
timeline starts when Request first rises (the first telegram at once), then runs on its own
clock as a meter's 10 s cadence does; a telegram whose time comes while Request is down is
skipped (counted), and one cut off by a falling Request is never finished. With `loop`, the
capture starts again after its last telegram, one recorded interval later.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any

from hardware.ports import ByteSink, RequestLine
from twin.p1.capture import PLAIN_INTERVAL_S, CapturedTelegram
from twin.p1.service import Sent, lines_open, send_telegram

log = logging.getLogger(__name__)


def loop_period(telegrams: Sequence[CapturedTelegram]) -> float:
    """Seconds from a replay round's start to the next's: the last offset plus one recorded
    interval (the last gap; P1 §4.5's 10 s for a capture of one telegram)."""
    if len(telegrams) < 2:
        return PLAIN_INTERVAL_S
    last_gap = telegrams[-1].offset_s - telegrams[-2].offset_s
    return telegrams[-1].offset_s + (last_gap if last_gap > 0 else PLAIN_INTERVAL_S)


# A replay keeps the capture's cadence faster or slower, within what a line and a reader can
# follow: at 1000 a 10 s cadence is 100 telegrams a second; far faster (or infinite) a looped
# replay would send without pause, far slower it would never send.
MIN_SPEED, MAX_SPEED = 0.001, 1000.0


def check_speed(speed: float) -> None:
    """ValueError unless MIN_SPEED <= `speed` <= MAX_SPEED (NaN and infinities included)."""
    if not MIN_SPEED <= speed <= MAX_SPEED:
        raise ValueError(f"speed must be from {MIN_SPEED:g} to {MAX_SPEED:g}; got {speed!r}")


class ReplayService:
    """Plays `telegrams` on `sink` while `request` is raised; `run` returns when done."""

    def __init__(
        self,
        telegrams: Sequence[CapturedTelegram],
        sink: ByteSink,
        request: RequestLine,
        *,
        speed: float = 1.0,
        loop: bool = False,
    ) -> None:
        if not telegrams:
            raise ValueError("a replay needs at least one telegram")
        check_speed(speed)
        self.telegrams = tuple(telegrams)
        self.sink = sink
        self.request = request
        self.speed = speed
        self.loop = loop
        self.ready = asyncio.Event()  # set once the sink and the request line are open
        self.heartbeat = time.monotonic()
        self.sent = 0
        self.skipped = 0  # due while Request was down (P1 §4.3)
        self.aborted = 0  # cut off by a falling Request (P1 §4.3)
        self.timed_out = 0  # not out within the P1 §4.5 limit (twin/p1/service.py)
        self.rounds = 0

    def status(self) -> dict[str, Any]:
        return {
            "sink": self.sink.description,
            "request": self.request.description,
            "telegrams": len(self.telegrams),
            "speed": self.speed,
            "loop": self.loop,
            "rounds": self.rounds,
            "telegrams_sent": self.sent,
            "telegrams_skipped": self.skipped,
            "telegrams_aborted": self.aborted,
            "telegrams_timed_out": self.timed_out,
        }

    async def run(self) -> None:
        async with lines_open(self.sink, self.request, self.ready):
            await self._play()

    async def _play(self) -> None:
        # P1 §5.2: the first telegram goes out when Request rises; the capture's timeline
        # starts there and runs on from then, as a meter's cadence does.
        await self.request.wait_for(True)
        clock = asyncio.get_running_loop()
        start, period = clock.time(), loop_period(self.telegrams)
        while True:
            for telegram in self.telegrams:
                # Absolute times from the start: a slow write does not shift later telegrams.
                due = start + (self.rounds * period + telegram.offset_s) / self.speed
                await asyncio.sleep(max(0.0, due - clock.time()))
                self.heartbeat = time.monotonic()
                await self._send(telegram.data)
            self.rounds += 1
            if not self.loop:
                return

    async def _send(self, data: bytes) -> None:
        if not self.request.is_raised():
            self.skipped += 1
            return
        sent = await send_telegram(self.sink, self.request, data)
        if sent is Sent.WHOLE:
            self.sent += 1
        elif sent is Sent.CUT:
            self.aborted += 1
            log.info("P1 replay: a telegram was cut off (Request fell)")
        else:
            self.timed_out += 1
