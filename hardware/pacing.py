"""Wire timing for the simulated P1 lines (pty, TCP): bytes leave no faster than a UART sends.

On a pty or a socket a whole telegram would arrive in one read; on the real line (P1 §5.1:
115200 baud, 8N1 = 10 bit times a byte) 800 bytes take about 70 ms, and readers with
inter-byte time-outs or partial-message handling (P1 §4.4) see it arrive over that time. So a
telegram is handed over in small chunks on a real-time schedule (never meter time: the line
runs in real time at any clock speed). Each chunk goes out when its first byte would start on
the wire, and the write returns when the last byte would have left, as tcdrain does on a UART.
When the writer is cancelled (Request fell, P1 §4.3), what was handed over stays delivered
and the rest is counted as cut.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

P1_BAUDRATE = 115200  # P1 §5.1
BITS_PER_BYTE_8N1 = 10  # P1 §5.1: a start bit, 8 data bits, no parity, a stop bit
# About 2.8 ms of line time at 115200: fine enough that a reader sees the wire's spread, coarse
# enough that an 800-byte telegram costs the event loop some 25 wake-ups.
CHUNK = 32

Send = Callable[[memoryview], Awaitable[None]]


def wire_time(size: int, baudrate: int = P1_BAUDRATE) -> float:
    """Real seconds that `size` bytes take on a line of `baudrate` 8N1."""
    return size * BITS_PER_BYTE_8N1 / baudrate


class PacedLine:
    """Hands bytes to `send` at the line speed (or at once when not `paced`); counts cuts."""

    def __init__(self, baudrate: int = P1_BAUDRATE, *, paced: bool = True) -> None:
        if baudrate <= 0:
            raise ValueError("baudrate must be positive")
        self.baudrate = baudrate
        self.paced = paced
        self.telegrams_cut = 0  # writes cancelled before their last byte was handed over
        self.bytes_cut = 0  # the bytes those writes never sent

    def wire_time(self, size: int) -> float:
        """Real seconds that `size` bytes take on the line."""
        return wire_time(size, self.baudrate)

    def status(self) -> dict[str, object]:
        return {
            "baudrate": self.baudrate,
            "paced": self.paced,
            "telegrams_cut": self.telegrams_cut,
            "bytes_cut": self.bytes_cut,
        }

    async def write(self, data: bytes, send: Send) -> None:
        """Send all of `data`; on cancellation the bytes not yet handed over are counted."""
        view = memoryview(data)
        sent = 0
        try:
            if not self.paced:
                await send(view)
                sent = len(view)
                return
            loop = asyncio.get_running_loop()
            start = loop.time()
            while sent < len(view):
                # Absolute times from the start: a late wake-up does not stretch the telegram.
                await _sleep_until(loop, start + self.wire_time(sent))
                end = min(sent + CHUNK, len(view))
                await send(view[sent:end])
                sent = end
            await _sleep_until(loop, start + self.wire_time(len(view)))
        except asyncio.CancelledError:
            if sent < len(view):
                self.telegrams_cut += 1
                self.bytes_cut += len(view) - sent
            raise


async def _sleep_until(loop: asyncio.AbstractEventLoop, when: float) -> None:
    delay = when - loop.time()
    if delay > 0:
        await asyncio.sleep(delay)
