"""The OBIS catalogue: every object of the meter, defined once.

The P1 encoder renders the entries that have a `p1` format, in catalogue order (the order of
P1 Table 5-3 and its §5.13 example); P3 uses the COSEM class, scaler and unit; the display
shows an object with a label when its readout list names it (twin/readout_lists.py, P3 §5.15).
A DSMR variant is a copy of this table with changes, never a subclass.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from twin.meter.state import MeterReading


class P1Kind(Enum):
    """How a value is written on P1 (P1 §5.4 formats)."""

    FIXED = "fixed"  # Fn(x,x): n digits, x of them decimals, from an integer in 10^-x units
    TEXT = "text"  # Sn: the characters as they are (version, tariff)
    HEX = "hex"  # Sn octet-string: the hex of the ASCII characters, upper case (P1 §5.5)
    TIMESTAMP = "tst"  # YYMMDDhhmmssX, X = S (summer) or W (winter)
    FAILURE_LOG = "log"  # 1-0:99.97.0 profile generic (P1 §5.11)


@dataclass(frozen=True, slots=True)
class P1Format:
    kind: P1Kind
    digits: int = 0
    decimals: int = 0
    unit: str | None = None
    # A cumulative register rolls over at its width, as a real meter's register does; any
    # other value that does not fit is an error, never a wrapped string (150 kW as 50.000 kW).
    rolls_over: bool = False


# DLMS unit codes (IEC 62056-62 / Blue Book) for the units the meter uses.
UNIT_CODES = {"Wh": 30, "W": 27, "A": 33, "V": 35, "s": 7, "m3": 14, "var": 29}


@dataclass(frozen=True, slots=True)
class ObisObject:
    code: str  # reduced OBIS (value group F = 255 omitted, P1 §5.4)
    name: str
    value: Callable[[MeterReading], object]
    p1: P1Format | None
    cosem_class: int
    unit: str | None = None  # COSEM unit of the native value
    scaler: int = 0
    label: str | None = None  # display label: the object can be a display page
    min_phases: int = 1  # L2/L3 objects exist on polyphase meters only


def _fixed(
    digits: int, decimals: int, unit: str | None = None, *, rolls_over: bool = False
) -> P1Format:
    return P1Format(P1Kind.FIXED, digits, decimals, unit, rolls_over)


def _energy(code: str, name: str, label: str) -> ObisObject:
    # P1 Table 5-3: F9(3,3) kWh; P3 §6.1: Wh, scaler 0, double-long-unsigned.
    return ObisObject(code, name, lambda r: r.energy_wh[code], ENERGY, 3, "Wh", 0, label)


def _per_phase(
    codes: tuple[str, str, str],
    name: str,
    getter: Callable[[MeterReading], tuple[int, ...]],
    fmt: P1Format,
    *,
    cosem_class: int = 3,
    unit: str | None = None,
    label: str | None = None,
) -> tuple[ObisObject, ...]:
    """The L1, L2, L3 variants of one quantity; L2 and L3 exist on polyphase meters only.
    `label` is a display label with `{n}` for the phase number."""
    return tuple(
        ObisObject(
            code,
            f"{name} L{i + 1}",
            _item(getter, i),
            fmt,
            cosem_class,
            unit,
            label=None if label is None else label.format(n=i + 1),
            min_phases=1 if i == 0 else 3,
        )
        for i, code in enumerate(codes)
    )


def _item(
    getter: Callable[[MeterReading], tuple[int, ...]], index: int
) -> Callable[[MeterReading], int]:
    return lambda r: getter(r)[index]


def _counter(code: str, name: str, getter: Callable[[MeterReading], int], label: str) -> ObisObject:
    return ObisObject(code, name, getter, COUNT, 1, label=label)


def _averaged(
    codes: tuple[str, str, str],
    name: str,
    getter: Callable[[MeterReading], tuple[int, ...]],
    unit: str,
) -> tuple[ObisObject, ...]:
    """10-minute averages (P3 §6.4, class 3, scaler 0): on P3 only, neither P1 nor display."""
    return tuple(
        ObisObject(
            code,
            f"{name} L{i + 1}",
            _item(getter, i),
            None,
            3,
            unit,
            min_phases=1 if i == 0 else 3,
        )
        for i, code in enumerate(codes)
    )


ENERGY = _fixed(9, 3, "kWh", rolls_over=True)
KW = _fixed(5, 3, "kW")
AMPERE = _fixed(3, 0, "A")
COUNT = _fixed(5, 0)

# Catalogue order = P1 Table 5-3 order = the §5.13 example telegram order.
CATALOGUE: tuple[ObisObject, ...] = (
    ObisObject(
        "1-3:0.2.8", "P1 version", lambda r: "42", P1Format(P1Kind.TEXT), 1, label="Version"
    ),
    ObisObject(
        "0-0:1.0.0", "Clock", lambda r: r.time, P1Format(P1Kind.TIMESTAMP), 8, label="Date time"
    ),
    ObisObject(
        "0-0:96.1.1",
        "Equipment identifier",
        lambda r: r.equipment_id,
        P1Format(P1Kind.HEX),
        1,
        label="Meter ID",
    ),
    _energy("1-0:1.8.1", "Energy delivered to client, tariff 1", "T1 import"),
    _energy("1-0:1.8.2", "Energy delivered to client, tariff 2", "T2 import"),
    _energy("1-0:2.8.1", "Energy delivered by client, tariff 1", "T1 export"),
    _energy("1-0:2.8.2", "Energy delivered by client, tariff 2", "T2 export"),
    ObisObject(
        "0-0:96.14.0",
        "Tariff indicator",
        lambda r: f"{int(r.tariff):04d}",  # S4: '0001' low, '0002' normal (P1 §6.1)
        P1Format(P1Kind.TEXT),
        1,
        label="Tariff",
    ),
    ObisObject("1-0:1.7.0", "Power delivered (+P)", lambda r: r.import_w, KW, 3, "W", 0, "Import"),
    ObisObject("1-0:2.7.0", "Power received (-P)", lambda r: r.export_w, KW, 3, "W", 0, "Export"),
    _counter("0-0:96.7.21", "Power failures in any phase", lambda r: r.failures_any, "Failures"),
    _counter(
        "0-0:96.7.9", "Long power failures in any phase", lambda r: r.failures_long, "Long fails"
    ),
    ObisObject(
        "1-0:99.97.0",
        "Power failure event log",
        lambda r: r.failure_log,
        P1Format(P1Kind.FAILURE_LOG),
        7,
    ),
    *_per_phase(
        ("1-0:32.32.0", "1-0:52.32.0", "1-0:72.32.0"),
        "Voltage sags",
        lambda r: r.sags,
        COUNT,
        cosem_class=1,
        label="L{n} sags",
    ),
    *_per_phase(
        ("1-0:32.36.0", "1-0:52.36.0", "1-0:72.36.0"),
        "Voltage swells",
        lambda r: r.swells,
        COUNT,
        cosem_class=1,
        label="L{n} swells",
    ),
    ObisObject(
        "0-0:96.13.1",
        "Message code",
        lambda r: r.message_code,
        P1Format(P1Kind.HEX),
        1,
        label="Message",
    ),
    ObisObject("0-0:96.13.0", "Message text", lambda r: r.message_text, P1Format(P1Kind.HEX), 1),
    *_per_phase(
        ("1-0:31.7.0", "1-0:51.7.0", "1-0:71.7.0"),
        "Current",
        lambda r: r.current_a,
        AMPERE,
        unit="A",
        label="L{n} current",
    ),
    *_per_phase(
        ("1-0:21.7.0", "1-0:41.7.0", "1-0:61.7.0"),
        "Power +P",
        lambda r: r.import_w_phase,
        KW,
        unit="W",
        label="L{n} import",
    ),
    *_per_phase(
        ("1-0:22.7.0", "1-0:42.7.0", "1-0:62.7.0"),
        "Power -P",
        lambda r: r.export_w_phase,
        KW,
        unit="W",
        label="L{n} export",
    ),
    # Not on P1 (p1 is None): P3 §6.4 average values of the last completed 10 minutes.
    *_averaged(
        ("1-0:32.24.0", "1-0:52.24.0", "1-0:72.24.0"),
        "Average voltage",
        lambda r: r.averages.voltage_v,
        "V",
    ),
    *_averaged(
        ("1-0:31.24.0", "1-0:51.24.0", "1-0:71.24.0"),
        "Average current",
        lambda r: r.averages.current_a,
        "A",
    ),
    *_averaged(
        ("1-0:21.24.0", "1-0:41.24.0", "1-0:61.24.0"),
        "Average active power +P",
        lambda r: r.averages.import_w,
        "W",
    ),
    *_averaged(
        ("1-0:22.24.0", "1-0:42.24.0", "1-0:62.24.0"),
        "Average active power -P",
        lambda r: r.averages.export_w,
        "W",
    ),
    *_averaged(
        ("1-0:23.24.0", "1-0:43.24.0", "1-0:63.24.0"),
        "Average reactive power +Q",
        lambda r: r.averages.import_var,
        "var",
    ),
    *_averaged(
        ("1-0:24.24.0", "1-0:44.24.0", "1-0:64.24.0"),
        "Average reactive power -Q",
        lambda r: r.averages.export_var,
        "var",
    ),
)

BY_CODE = {obj.code: obj for obj in CATALOGUE}

# M-Bus objects per installed device, channel n = 1..4 in installation order (P1 Table 5-3).
MBUS_DEVICE_TYPE = "0-{n}:24.1.0"
MBUS_EQUIPMENT_ID = "0-{n}:96.1.0"
MBUS_HOURLY_VALUE = "0-{n}:24.2.1"
# Gas: temperature-converted volume F8(3,3) m3 (G4/G6 meters).
GAS_VOLUME = _fixed(8, 3, "m3", rolls_over=True)
DEVICE_TYPE = _fixed(3, 0)
