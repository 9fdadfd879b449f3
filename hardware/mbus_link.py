"""Byte links for the wired M-Bus (P2): the `MbusLink` Protocol and the line timing.

One `MbusLink` Protocol serves both roles: the E meter's master and a gas meter (slave) each
hold one end. Timing (P2 §3.1.4, EN 13757-2):

- P2 §3.1.4 Table 3: 2400 Bd, 8 data bits, even parity, 1 stop bit "at all times": with the
  start bit that is 11 bit times per byte.
- EN 13757-2 (via EN 60870-5-1, as quoted in libmbus `mbus-serial.c`): a slave answers between
  11 bit times and 330 bit times + 50 ms after the master's frame. `response_timeout_s()` is
  that upper bound; a master waits that long after its frame has left before it gives up.
  `min_answer_delay_s()` is the lower bound, which the gas-meter twin keeps.

Implementations, one module each:

- `hardware.mbus_sim.SimulatedBus`: an in-process bus between one master end and any number
  of slave ends, instant or with 2400-baud timing.
- `hardware.mbus_pty.PtyBusLink`: this end owns a pseudo-terminal; the other end opens the
  symlink to its slave side like a UART.
- `hardware.mbus_uart.UartBusLink`: a real serial device at 2400 8E1 through pyserial, with
  optional local-echo removal and bus power (`hardware.mbus_power.GpioBusPower`).

`hardware.registry.open_mbus_link` opens the one the configuration names, importing the pty and
UART modules only then, so a simulated bus never loads what a device needs.
"""

from __future__ import annotations

from typing import Protocol

BAUD = 2400  # P2 §2.1 Table 1, §3.1.4
BITS_PER_BYTE = 11  # start + 8 data + even parity + stop (P2 §3.1.4 Table 3)
ANSWER_MIN_BITS = 11  # EN 13757-2: a slave answers no sooner than 11 bit times
RESPONSE_BITS = 330  # EN 13757-2: answer within 330 bit times + 50 ms
RESPONSE_EXTRA_S = 0.050


def byte_time_s(baud: int = BAUD) -> float:
    """Line time of one byte at `baud` with 8E1 framing."""
    return BITS_PER_BYTE / baud


def frame_time_s(size: int, baud: int = BAUD) -> float:
    """Line time of `size` bytes sent back to back (M-Bus has no pauses inside a frame)."""
    return size * byte_time_s(baud)


def min_answer_delay_s(baud: int = BAUD) -> float:
    """EN 13757-2: the earliest a slave may answer after the master's frame (4.58 ms at 2400)."""
    return ANSWER_MIN_BITS / baud


def response_timeout_s(baud: int = BAUD) -> float:
    """EN 13757-2 answer window: 330 bit times + 50 ms (0.1875 s at 2400 Bd)."""
    return RESPONSE_BITS / baud + RESPONSE_EXTRA_S


class MbusLink(Protocol):
    """One end of a wired M-Bus: bytes out, bytes in (half duplex, the master speaks first)."""

    @property
    def description(self) -> str:
        """Where the bus is, for logs and `ctl status`."""
        ...

    async def open(self) -> None: ...

    async def send(self, data: bytes) -> None:
        """Put `data` on the bus; returns once it has left the line (or would have)."""
        ...

    async def receive(self, timeout_s: float | None) -> bytes:
        """The next bytes from the bus (at least one), or b"" if none came within `timeout_s`.

        `None` waits for ever. A simulated bus may also return b"" early when it knows no
        answer can come (every slave is idle).
        """
        ...

    def discard_input(self) -> None:
        """Drop whatever was received and not read yet."""
        ...

    async def close(self) -> None: ...
