"""The DSMR 4.2.2 P1 telegram encoder (sans-IO: a reading in, bytes out).

Frame (P1 §5.2): `/XXX5Identification CR LF CR LF data lines ! CRC CR LF`. Every line ends in
CR LF (§5.12). The CRC covers `/` up to and including `!` and is sent as four upper-case hex
digits. Values use the fixed widths of Table 5-3; readers such as ESPHome reject a telegram
whose field widths differ, so widths never vary with the value. A cumulative register that
outgrows its width rolls over, as on a real meter; any other value out of its width is a
TelegramError, never a wrapped string a reader would take for a real value.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from functools import cache

from twin.catalogue import (
    CATALOGUE,
    DEVICE_TYPE,
    GAS_VOLUME,
    MBUS_DEVICE_TYPE,
    MBUS_EQUIPMENT_ID,
    MBUS_HOURLY_VALUE,
    ObisObject,
    P1Format,
    P1Kind,
)
from twin.clock import local
from twin.meter.state import FailureRecord, MbusReading, MeterReading
from twin.p1.crc import crc16_arc

CRLF = "\r\n"
# 1-0:99.97.0 entries: end time (TST) and duration F10(0,0) in s (Table 5-3).
FAILURE_DURATION = P1Format(P1Kind.FIXED, 10, 0, "s")
FAILURE_DURATION_OBIS = "0-0:96.7.19"
# An M-Bus device that has not delivered an hourly value yet.
NO_CAPTURE = "000101000000W"

Render = Callable[[MeterReading], str]


class TelegramError(ValueError):
    """The reading cannot be written as a valid telegram (e.g. a character P1 cannot carry)."""


def timestamp(when: datetime) -> str:
    """TST: YYMMDDhhmmssX in Dutch local time, X = 'S' in summer time, 'W' in winter time."""
    t = local(when)
    flag = "S" if t.dst() else "W"
    return (
        f"{t.year % 100:02d}{t.month:02d}{t.day:02d}{t.hour:02d}{t.minute:02d}{t.second:02d}{flag}"
    )


def fixed(value: int, fmt: P1Format) -> str:
    """Fn(d,d): an integer in 10^-d units written with n digits, d of them after the point."""
    return fixed_writer(fmt)(value)


@cache
def fixed_writer(fmt: P1Format, what: str = "value") -> Callable[[int], str]:
    """A compiled writer for one fixed format (the encoder's hot path); `what` names the
    object in the error for a value that does not fit."""
    wrap: int = 10**fmt.digits
    scale = 10**fmt.decimals
    whole_digits, unit = fmt.digits - fmt.decimals, f"*{fmt.unit}" if fmt.unit else ""

    def fitted(value: int) -> int:
        if fmt.rolls_over:
            return value % wrap
        if not 0 <= value < wrap:
            raise TelegramError(
                f"{what} = {value} does not fit F{fmt.digits}({fmt.decimals},{fmt.decimals})"
            )
        return value

    if fmt.decimals == 0:
        return lambda value: f"{fitted(value):0{fmt.digits}d}{unit}"

    def write(value: int) -> str:
        whole, part = divmod(fitted(value), scale)
        return f"{whole:0{whole_digits}d}.{part:0{fmt.decimals}d}{unit}"

    return write


def hex_text(text: str) -> str:
    """An octet-string of ASCII characters as upper-case hex (P1 §5.5)."""
    try:
        return text.encode("ascii").hex().upper()
    except UnicodeEncodeError as exc:
        raise TelegramError(f"P1 carries ASCII only: {text!r}") from exc


def failure_log(entries: tuple[FailureRecord, ...]) -> str:
    """1-0:99.97.0 as a P1 profile generic (§5.11): (count)(buffer OBIS)(TST)(value*unit)..."""
    parts = [f"({len(entries)})", f"({FAILURE_DURATION_OBIS})"]
    parts.extend(f"({timestamp(e.end)})({fixed(e.duration_s, FAILURE_DURATION)})" for e in entries)
    return "".join(parts)


def _renderer(obj: ObisObject, fmt: P1Format) -> Render:
    """Compile one catalogue object into a function from a reading to its `(value)` text."""
    value = obj.value
    match fmt.kind:
        case P1Kind.FIXED:
            write = fixed_writer(fmt, obj.code)
            return lambda r: f"({write(value(r))})"  # type: ignore[arg-type]
        case P1Kind.TEXT:
            return lambda r: f"({value(r)})"
        case P1Kind.HEX:
            return lambda r: f"({hex_text(str(value(r)))})"
        case P1Kind.TIMESTAMP:
            return lambda r: f"({timestamp(value(r))})"  # type: ignore[arg-type]
        case P1Kind.FAILURE_LOG:
            return lambda r: failure_log(value(r))  # type: ignore[arg-type]
    raise TelegramError(f"no P1 format for {obj.code}")


def mbus_lines(devices: tuple[MbusReading, ...]) -> Iterable[str]:
    """0-n:24.1.0, 0-n:96.1.0 and 0-n:24.2.1 per installed device, in channel order."""
    for device in sorted(devices, key=lambda d: d.channel):
        n = device.channel
        yield MBUS_DEVICE_TYPE.format(n=n) + f"({fixed(device.device_type, DEVICE_TYPE)})"
        yield MBUS_EQUIPMENT_ID.format(n=n) + f"({hex_text(device.equipment_id)})"
        stamp = timestamp(device.capture) if device.capture else NO_CAPTURE
        volume = fixed(device.value_thousandths, GAS_VOLUME)
        yield MBUS_HOURLY_VALUE.format(n=n) + f"({stamp})({volume})"


class TelegramEncoder:
    """Writes P1 telegrams for one meter: `encode(reading) -> bytes`."""

    def __init__(self, manufacturer: str, identification: str) -> None:
        self.header = f"/{manufacturer}5{identification}"
        if any(c in identification for c in "/!") or not self.header.isascii():
            raise TelegramError("the identification must be ASCII without '/' or '!'")
        self._compiled: dict[int, list[tuple[str, Render]]] = {}

    def encode(self, reading: MeterReading) -> bytes:
        lines = [self.header, ""]
        lines.extend(code + render(reading) for code, render in self._renderers(reading.phases))
        lines.extend(mbus_lines(reading.mbus))
        body = (CRLF.join(lines) + CRLF + "!").encode("ascii")
        return body + b"%04X\r\n" % crc16_arc(body)

    def _renderers(self, phases: int) -> list[tuple[str, Render]]:
        """The catalogue's P1 objects for a meter with `phases`, each compiled once."""
        if phases not in self._compiled:
            self._compiled[phases] = [
                (obj.code, _renderer(obj, obj.p1))
                for obj in CATALOGUE
                if obj.p1 is not None and phases >= obj.min_phases
            ]
        return self._compiled[phases]
