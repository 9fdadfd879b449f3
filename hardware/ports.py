"""The ports the twin talks through, as small Protocols.

Each has a real implementation (a device on the Pi) and a simulated one that behaves like the
hardware, selected by the endpoint URL or config name in hardware/registry.py and imported lazily,
so the twin starts on a laptop with none of the Pi libraries installed.
"""

from __future__ import annotations

from typing import Protocol


class PortError(OSError):
    """A port could not be opened or failed while in use (the service restarts it)."""


class ByteSink(Protocol):
    """An output-only serial line: the P1 data line."""

    @property
    def description(self) -> str:
        """Where the bytes go, for logs and `ctl status` (e.g. 'pty /run/dsmr-twin/p1')."""
        ...

    async def open(self) -> None: ...

    async def write(self, data: bytes) -> None:
        """Send `data`; returns when it has been handed to the line. Cancellable."""
        ...

    def status(self) -> dict[str, object]:
        """Line speed and counters for `ctl status`: at least `baudrate`, `paced`,
        `telegrams_cut` and `bytes_cut` (bytes of telegrams that never went out)."""
        ...

    def abort_output(self) -> None:
        """Stop what has not gone out yet (Request fell mid-telegram, P1 §4.3). Bytes already
        delivered to a reader stay delivered: a line cannot take them back."""
        ...

    async def close(self) -> None: ...


class RequestLine(Protocol):
    """The P1 Request input (P1 §4.3): raised by the reader to receive telegrams."""

    @property
    def description(self) -> str: ...

    async def open(self) -> None: ...

    def is_raised(self) -> bool: ...

    async def wait_for(self, raised: bool) -> None:
        """Return once the line is in state `raised` (at once if it already is)."""
        ...

    async def close(self) -> None: ...
