"""Choose the ports from the config: the P1 endpoint URL and request-line name, the M-Bus link.

The same lookup serves real and simulated ports; nothing here touches a device, and the GPIO
library is only imported when a `gpio:N` line is opened.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

from hardware.gpio import GpioRequestLine
from hardware.mbus_link import MbusLink
from hardware.pacing import P1_BAUDRATE
from hardware.ports import ByteSink, RequestLine
from hardware.pty_link import PtySink
from hardware.request_line import AlwaysRequested, SimulatedRequestLine
from hardware.tcp_link import TcpSink
from hardware.uart import UartSink

SINK_FORMS = "pty://LINK (relative to the state directory), tcp://HOST:PORT or uart:///dev/DEVICE"
REQUEST_FORMS = "'always', 'simulated' or 'gpio:N' (BCM pin)"


def open_p1_sink(
    endpoint: str, base_dir: Path, *, baudrate: int = P1_BAUDRATE, pace: bool = False
) -> ByteSink:
    """The P1 data line named by `endpoint` (not opened yet: the service opens it). With
    `pace`, the simulated lines (pty, TCP) send at `baudrate`; a UART always does."""
    scheme, _, rest = endpoint.partition("://")
    if scheme == "pty" and rest:
        link = Path(rest)
        path = link if link.is_absolute() else base_dir / link
        return PtySink(path, baudrate=baudrate, pace=pace)
    if scheme == "tcp":
        return TcpSink(*tcp_endpoint(endpoint, SINK_FORMS), baudrate=baudrate, pace=pace)
    if scheme == "uart" and rest.startswith("/") and len(rest) > 1:
        return UartSink(rest, baudrate)
    raise ValueError(f"bad P1 endpoint {endpoint!r}: expected {SINK_FORMS}")


def tcp_endpoint(endpoint: str, forms: str) -> tuple[str, int]:
    """HOST and PORT of tcp://HOST:PORT; ValueError naming the `forms` allowed if not one."""
    bad = ValueError(f"bad P1 endpoint {endpoint!r}: expected {forms}")
    try:
        parts = urlsplit(endpoint)
        host, port = parts.hostname, parts.port
    except ValueError as exc:  # a port that is not a number or out of range
        raise bad from exc
    if not host or port is None or parts.path or parts.query:
        raise bad
    return host, port


def open_request_line(spec: str, active_high: bool) -> RequestLine:
    """The P1 Request input named by `spec` (P1 §4.3)."""
    if spec == "always":
        return AlwaysRequested()
    if spec == "simulated":
        return SimulatedRequestLine()
    if match := re.fullmatch(r"gpio:(\d{1,2})", spec):
        return GpioRequestLine(int(match.group(1)), active_high)
    raise ValueError(f"bad P1 request line {spec!r}: expected {REQUEST_FORMS}")


def open_mbus_link(
    spec: str, base_dir: Path, *, echo: bool = False, power_gpio: int = -1
) -> MbusLink:
    """The bus end named by `spec`: pty://LINK (relative to `base_dir`) or uart:///dev/X.

    The simulated bus is not built here: it needs both ends (see `SimulatedBus`).
    """
    scheme, _, rest = spec.partition("://")
    if scheme == "pty" and rest:
        from hardware.mbus_pty import PtyBusLink

        link = Path(rest)
        return PtyBusLink(link if link.is_absolute() else base_dir / link)
    if scheme == "uart" and rest.startswith("/") and len(rest) > 1:
        from hardware.mbus_power import GpioBusPower
        from hardware.mbus_uart import UartBusLink

        power = GpioBusPower(power_gpio) if power_gpio >= 0 else None
        return UartBusLink(rest, echo=echo, power=power)
    raise ValueError(f"bad M-Bus endpoint {spec!r}: expected pty://LINK or uart:///dev/DEVICE")
