"""The register pages of the display: the codes of a display readout list, shown as pages.

P3 §5.15: each display mode shows the OBIS codes of its readout list (twin/readout_lists.py:
0-0:21.0.1 auto scroll, 0-0:21.0.2 manual scroll, 0-0:21.0.3 service mode), one page per code
in list order. A code is a page when the display can show it:

- a catalogue object with a display `label` (L2/L3 objects on polyphase meters only, Annex B
  note 1). Values are written as on P1, the catalogue's fixed format without the unit, which
  goes next to the label; the clock as Dutch local date and time with the zone as its unit; a
  text value only while it is not empty (the message code: shown until an empty message is
  sent);
- 0-n:24.1.0 of an installed M-Bus device (Annex B note 2): its device type as text ("Gas",
  "Water", ...) with its serial number, the identification number that P2 §4.2.2 takes from the
  last 8 digits of its equipment identifier;
- 0-n:24.2.1 of an installed M-Bus device: its last hourly value.

Consecutive entries with the same code make one page: Annex B lists a device's serial number
and device type (0-n:24.1.0 attributes 6 and 9) as the numeric and alphanumeric row of one
entry. Every other code is skipped: objects outside the catalogue (firmware identifiers
1-x:0.2.x, the communication session log 0-0:99.98.4: the display does not read P3's own
objects), catalogue objects without a label (averages, the failure log, the long message text)
and the readout lists themselves. A list that yields no page shows the energy registers, so the
display is never empty.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from twin.catalogue import (
    BY_CODE,
    GAS_VOLUME,
    MBUS_DEVICE_TYPE,
    MBUS_HOURLY_VALUE,
    ObisObject,
    P1Kind,
)
from twin.clock import local
from twin.meter.state import MbusReading, MeterReading
from twin.p1.telegram import fixed
from twin.readout_lists import AUTO_SCROLL, DEFAULT_LISTS, ENERGY

GAS_MEDIUM = 3  # EN 13757-3 device type of a gas meter
# Annex B: the device type "formatted as text, eg. Gas, Water, Warmte, Koude, Elektr.", from
# the EN 13757-3 device type codes.
DEVICE_TEXT = {
    2: "Elektr.",
    GAS_MEDIUM: "Gas",
    4: "Warmte",  # heat, outlet
    6: "Water",  # warm water
    7: "Water",
    10: "Koude",  # cooling, outlet
    11: "Koude",  # cooling, inlet
    12: "Warmte",  # heat, inlet
    13: "Warmte",  # heat / cooling
}
SERIAL_DIGITS = 8  # P2 §4.2.2: identification number = last 8 digits of the serial number
_TRAILING_DIGITS = re.compile(rf"\d{{1,{SERIAL_DIGITS}}}$")
FALLBACK = tuple(code for _class, code, _index in ENERGY)  # when a list yields no page

_MBUS_DEVICE = {MBUS_DEVICE_TYPE.format(n=n): n for n in range(1, 5)}
_MBUS_VALUE = {MBUS_HOURLY_VALUE.format(n=n): n for n in range(1, 5)}


@dataclass(frozen=True, slots=True)
class Page:
    code: str  # OBIS code of the register shown
    label: str
    value: str
    unit: str


def pages(
    reading: MeterReading, codes: Iterable[str] = DEFAULT_LISTS.codes(AUTO_SCROLL)
) -> tuple[Page, ...]:
    """The pages of readout list `codes` (default: Annex B auto scroll); never empty."""
    shown = _pages(reading, codes) or _pages(reading, FALLBACK)
    assert shown, "the energy registers always have a page"
    return shown


def _pages(reading: MeterReading, codes: Iterable[str]) -> tuple[Page, ...]:
    steps = (code for code, _same in itertools.groupby(codes))  # one page per entry
    return tuple(page for code in steps if (page := page_of(code, reading)) is not None)


def page_of(code: str, reading: MeterReading) -> Page | None:
    """The page of `code`, or None when the display cannot show it (see the module doc)."""
    obj = BY_CODE.get(code)
    if obj is not None:
        return _page(obj, reading)
    if code in _MBUS_DEVICE:
        device = _device(reading, _MBUS_DEVICE[code])
        return None if device is None else _device_page(code, device)
    if code in _MBUS_VALUE:
        device = _device(reading, _MBUS_VALUE[code])
        return None if device is None else _value_page(code, device)
    return None


def _page(obj: ObisObject, reading: MeterReading) -> Page | None:
    if obj.label is None or reading.phases < obj.min_phases:
        return None
    value = obj.value(reading)
    fmt = obj.p1
    if fmt is not None and fmt.kind is P1Kind.FIXED and isinstance(value, int):
        text = fixed(value, dataclasses.replace(fmt, unit=None))
        return Page(obj.code, obj.label, text, fmt.unit or "")
    if isinstance(value, datetime):
        when = local(value)
        return Page(obj.code, obj.label, f"{when:%Y-%m-%d %H:%M:%S}", when.tzname() or "")
    if isinstance(value, str | int):
        text = str(value)
        return Page(obj.code, obj.label, text, obj.unit or "") if text else None
    return None  # a structured value (a log) has no one-line form


def _device(reading: MeterReading, channel: int) -> MbusReading | None:
    return next((d for d in reading.mbus if d.channel == channel), None)


def _device_page(code: str, device: MbusReading) -> Page:
    label = DEVICE_TEXT.get(device.device_type, f"M-Bus {device.channel}")
    match = _TRAILING_DIGITS.search(device.equipment_id)
    serial = match.group().zfill(SERIAL_DIGITS) if match else device.equipment_id
    return Page(code, label, serial, "")


def _value_page(code: str, device: MbusReading) -> Page:
    label = "Gas" if device.device_type == GAS_MEDIUM else f"M-Bus {device.channel}"
    value = fixed(device.value_thousandths, dataclasses.replace(GAS_VOLUME, unit=None))
    return Page(code, label, value, GAS_VOLUME.unit or "")
