"""The simulated wired M-Bus: an in-process bus between one master end and any slave ends.

Without `realtime` bytes arrive at once and a master's wait ends as soon as every slave is
provably idle (listening with nothing to process), so tests never sleep; with `realtime` each
byte occupies the line for 11 bit times (delivered in chunks of a few bytes as they would leave
the line) and a missing answer costs the full EN 13757-2 response time (see
`hardware.mbus_link` for the timing).
"""

from __future__ import annotations

import asyncio
from collections import deque

from hardware.mbus_link import BAUD, frame_time_s
from hardware.ports import PortError

REALTIME_CHUNK = 8  # bytes delivered together on a realtime bus (37 ms at 2400 Bd)
HISTORY = 256  # frames kept per simulated bus for forensics and tests


class SimulatedBus:
    """An in-process wired M-Bus: one master end, any number of slave ends.

    What the master sends reaches every open slave end; what a slave sends reaches the master
    (two slaves answering at once simply interleave, as a collision garbles a real bus).
    `history` keeps what was sent as (sender, bytes), one entry per delivery: a whole frame on
    an instant bus, chunks of `REALTIME_CHUNK` bytes on a realtime one.
    """

    def __init__(self, *, realtime: bool = False, baud: int = BAUD) -> None:
        self.realtime = realtime
        self.baud = baud
        self.history: deque[tuple[str, bytes]] = deque(maxlen=HISTORY)
        self._master: SimulatedEnd | None = None
        self._slaves: list[SimulatedEnd] = []
        self._in_flight = 0

    def master_end(self) -> SimulatedEnd:
        """The E meter's end (one per bus)."""
        if self._master is not None:
            raise PortError("a simulated M-Bus has one master")
        self._master = SimulatedEnd(self, "master", master=True)
        return self._master

    def slave_end(self, name: str = "slave") -> SimulatedEnd:
        """A new slave end (a gas meter's connection)."""
        end = SimulatedEnd(self, name)
        self._slaves.append(end)
        return end

    def quiet(self) -> bool:
        """True when no answer can come: nothing on the line, every slave idle and listening.

        A slave end that is connected but not listening yet (its task has not started) keeps
        the bus busy, so the master waits for it up to its response timeout.
        """
        slaves = [s for s in self._slaves if s.connected]
        return self._in_flight == 0 and all(s.idle for s in slaves)

    def _deliver(self, sender: SimulatedEnd, data: bytes) -> None:
        self.history.append((sender.name, data))
        targets = self._slaves if sender is self._master else [self._master]
        for end in targets:
            if end is not None and end.connected:
                end.put(data)

    def _changed(self) -> None:
        """A slave went idle: a master waiting for an answer may conclude there is none."""
        if self._master is not None:
            self._master.wake()


class SimulatedEnd:
    """One end of a `SimulatedBus` (an `MbusLink`)."""

    def __init__(self, bus: SimulatedBus, name: str, *, master: bool = False) -> None:
        self.bus = bus
        self.name = name
        self.master = master
        self.connected = True  # on the bus from creation until closed, like a wired device
        self.is_open = False
        self._inbox = bytearray()
        self._wake = asyncio.Event()
        self._listening = False

    @property
    def description(self) -> str:
        timing = f"{self.bus.baud} Bd timing" if self.bus.realtime else "instant"
        return f"simulated M-Bus ({self.name}, {timing})"

    @property
    def idle(self) -> bool:
        """Listening with nothing left to process."""
        return self._listening and not self._inbox

    async def open(self) -> None:
        self.is_open = self.connected = True

    def put(self, data: bytes) -> None:
        self._inbox += data
        self._wake.set()

    def wake(self) -> None:
        self._wake.set()

    async def send(self, data: bytes) -> None:
        if not self.is_open:
            raise PortError(f"{self.description} is not open")
        if not self.bus.realtime:
            self.bus._deliver(self, bytes(data))
            return
        # Bytes arrive as they leave the line, a few at a time: the receiver sees the first
        # byte within its answer window and the rest without an inter-byte pause.
        self.bus._in_flight += 1
        try:
            for start in range(0, len(data), REALTIME_CHUNK):
                chunk = bytes(data[start : start + REALTIME_CHUNK])
                await asyncio.sleep(frame_time_s(len(chunk), self.bus.baud))
                self.bus._deliver(self, chunk)
        finally:
            self.bus._in_flight -= 1

    async def receive(self, timeout_s: float | None) -> bytes:
        if not self.is_open:
            raise PortError(f"{self.description} is not open")
        loop = asyncio.get_running_loop()
        deadline = None if timeout_s is None else loop.time() + timeout_s
        while not self._inbox:
            if self.master and not self.bus.realtime and self.bus.quiet():
                return b""  # no slave will answer: skip the wait a real bus would take
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                return b""
            self._wake.clear()
            self._listening = True
            if not self.master:
                self.bus._changed()  # a waiting master may now conclude nobody will answer
            try:
                async with asyncio.timeout(remaining):
                    await self._wake.wait()
            except TimeoutError:
                return b""
            finally:
                self._listening = False
        data = bytes(self._inbox)
        self._inbox.clear()
        return data

    def discard_input(self) -> None:
        self._inbox.clear()

    async def close(self) -> None:
        self.is_open = self.connected = False
        self._inbox.clear()
        self.bus._changed()
