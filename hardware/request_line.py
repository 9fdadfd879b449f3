"""Request lines that need no hardware: held high, or toggled by `ctl` and tests.

P1 §4.3: the reader raises Request to receive telegrams and the meter stops at once when it
drops. Both edges matter, so `wait_for` is edge-aware: a waiter returns once the line has been
in the wanted state, even if a short pulse already took it back before the waiter ran.
"""

from __future__ import annotations

import asyncio


class LevelLatch:
    """The level of a request line plus a wake-up for every change (asyncio side only)."""

    def __init__(self, raised: bool = False) -> None:
        self._raised = raised
        self._changed = asyncio.Event()

    def is_raised(self) -> bool:
        return self._raised

    def update(self, raised: bool) -> None:
        """Record the level; a repeat of the current level is not an edge."""
        if raised == self._raised:
            return
        self._raised = raised
        # Waiters hold the old event: they all wake; later waiters get a fresh one.
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_for(self, raised: bool) -> None:
        if self._raised == raised:
            return
        # The first change after this point is necessarily to `raised`.
        await self._changed.wait()


class AlwaysRequested:
    """Request hard-wired high, as on most PC cables (dsmr_parser, DSMR-reader drive no pin)."""

    @property
    def description(self) -> str:
        return "always requested"

    async def open(self) -> None:
        return None

    def is_raised(self) -> bool:
        return True

    async def wait_for(self, raised: bool) -> None:
        if raised:
            return
        # It never falls: wait until cancelled.
        await asyncio.get_running_loop().create_future()

    async def close(self) -> None:
        return None


class SimulatedRequestLine:
    """A Request line set by software: `ctl request on|off` or a test."""

    def __init__(self, raised: bool = False) -> None:
        self._latch = LevelLatch(raised)

    @property
    def description(self) -> str:
        return f"simulated ({'raised' if self.is_raised() else 'released'})"

    async def open(self) -> None:
        return None

    def set(self, raised: bool) -> None:
        """Raise or release the line (must be called on the event loop's thread)."""
        self._latch.update(raised)

    def is_raised(self) -> bool:
        return self._latch.is_raised()

    async def wait_for(self, raised: bool) -> None:
        await self._latch.wait_for(raised)

    async def close(self) -> None:
        return None
