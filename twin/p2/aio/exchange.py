"""Drives the sans-IO `MbusMaster` over an `MbusLink`: frames out, answers (or silence) in.

The master decides what to send and what an answer means (it is sans-IO, no clock); this
module only moves bytes and time: it feeds every answer, or a timeout, to the master and hands
the master's events to the service's handler, whose reply may start a new exchange.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime

from hardware.mbus_link import MbusLink
from twin.p2.master import MbusMaster
from twin.p2.master_events import MasterEvent, MasterOutput

EventHandler = Callable[[tuple[MasterEvent, ...]], bytes]  # returns a frame to send, or b""


class BusExchange:
    """The bus side of the P2 service, with its counters and the loop's heartbeat."""

    def __init__(
        self,
        link: MbusLink,
        timeout_s: float,
        now: Callable[[], datetime],
        handle: EventHandler,
    ) -> None:
        self.link = link
        self.timeout_s = timeout_s
        self._now = now
        self._handle = handle
        self.exchanges = 0
        self.no_answer = 0
        self.heartbeat = time.monotonic()

    async def run(self, master: MbusMaster, send: bytes) -> None:
        """Drive the master until it has nothing more to send."""
        while send:
            self.exchanges += 1
            await self.link.send(send)
            out = await self._answer(master)
            kicked = self._handle(out.events)
            send = out.send or kicked
            self.heartbeat = time.monotonic()

    async def _answer(self, master: MbusMaster) -> MasterOutput:
        """Feed the answer to the master; EN 13757-2 timeout before the first byte and
        between bytes (a long frame lasts longer than the answer window)."""
        events: list[MasterEvent] = []
        while True:
            data = await self.link.receive(self.timeout_s)
            now = self._now()
            out = master.receive(data, now) if data else master.timeout(now)
            events.extend(out.events)
            if not data:
                self.no_answer += 1
            if out.send or not master.busy or not data:
                return MasterOutput(out.send, tuple(events))

    def run_at_once(
        self, master: MbusMaster, send: bytes, answer: Callable[[bytes], bytes]
    ) -> None:
        """`run` against a peer that replies at once, without the link (power-up discovery)."""
        while send:
            reply = answer(send)
            now = self._now()
            out = master.receive(reply, now) if reply else master.timeout(now)
            kicked = self._handle(out.events)  # always: the events must not be lost
            send = out.send or kicked
