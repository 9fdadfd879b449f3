"""The register pages of the display, driven by the OBIS catalogue.

Every catalogue object with a display `label` is a page (in catalogue order, L2/L3 objects only
on polyphase meters), followed by one page per M-Bus device (the gas meter's hourly value,
0-n:24.2.1). Values are written as on P1: the catalogue's fixed format, without the unit,
which goes next to the label.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from twin.catalogue import CATALOGUE, GAS_VOLUME, MBUS_HOURLY_VALUE, ObisObject, P1Kind
from twin.meter.state import MbusReading, MeterReading
from twin.p1.telegram import fixed

GAS_MEDIUM = 3  # EN 13757-3 device type of a gas meter


@dataclass(frozen=True, slots=True)
class Page:
    code: str  # OBIS code of the register shown
    label: str
    value: str
    unit: str


def pages(reading: MeterReading) -> tuple[Page, ...]:
    """The pages for `reading`; the list is never empty (the energy registers always exist)."""
    own = (
        _page(obj, reading)
        for obj in CATALOGUE
        if obj.label is not None and reading.phases >= obj.min_phases
    )
    return (*own, *(_mbus_page(device) for device in reading.mbus))


def _page(obj: ObisObject, reading: MeterReading) -> Page:
    assert obj.label is not None
    value = obj.value(reading)
    fmt = obj.p1
    if fmt is not None and fmt.kind is P1Kind.FIXED and isinstance(value, int):
        text = fixed(value, dataclasses.replace(fmt, unit=None))
        return Page(obj.code, obj.label, text, fmt.unit or "")
    return Page(obj.code, obj.label, str(value), obj.unit or "")


def _mbus_page(device: MbusReading) -> Page:
    n = device.channel
    label = "Gas" if device.device_type == GAS_MEDIUM else f"M-Bus {n}"
    value = fixed(device.value_thousandths, dataclasses.replace(GAS_VOLUME, unit=None))
    return Page(MBUS_HOURLY_VALUE.format(n=n), label, value, GAS_VOLUME.unit or "")
