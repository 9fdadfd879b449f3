"""Electricity objects of P3 chapter 6 and the power failure objects of §5.9, driven by the
OBIS catalogue (twin/catalogue.py: class, unit, scaler) with the P3 attribute types.

Types follow DSMR 4.2.2 P3 §6.2-§6.5, including the 4.2.2 fixes: 1-0:2.7.0 is
double-long-unsigned like 1-0:1.7.0, and 1-0:16.7.0 is double-long (signed). The 10-minute
averages of §6.4 (averaging scheme 3, computed in twin/meter/averages.py) are long-unsigned.
"""

from __future__ import annotations

from collections.abc import Callable

from twin.catalogue import BY_CODE, UNIT_CODES, ObisObject
from twin.meter.state import MeterReading
from twin.p3.objects.activation import mask_name
from twin.p3.objects.base import CosemObject, Request
from twin.p3.objects.env import Env
from twin.p3.objects.resolution import voltage_and_current
from twin.p3.objects.simple import DataObject, Register, Stored
from twin.p3.objects.values import Data, i32, octets, u16, u32

Encoder = Callable[[int], Data]

AVERAGED = (32, 31, 21, 22, 23, 24)  # C of the L1 averages: U, I, +P, -P, +Q, -Q (§6.4)
# code -> value type (P3 §6.2, §6.4); every one is management read only.
REGISTER_TYPES: dict[str, Encoder] = {
    "1-0:1.8.1": u32,
    "1-0:1.8.2": u32,
    "1-0:2.8.1": u32,
    "1-0:2.8.2": u32,
    "1-0:1.7.0": u32,
    "1-0:2.7.0": u32,
    **dict.fromkeys(("1-0:21.7.0", "1-0:41.7.0", "1-0:61.7.0"), u16),
    **dict.fromkeys(("1-0:22.7.0", "1-0:42.7.0", "1-0:62.7.0"), u16),
    # §6.4 averages: U, I, +P, -P, +Q, -Q per phase (L2/L3 on polyphase meters only)
    **dict.fromkeys((f"1-0:{k + p}.24.0" for p in (0, 20, 40) for k in AVERAGED), u16),
}
COUNTERS = (
    "0-0:96.7.21",
    "0-0:96.7.9",
    *(f"1-0:{p}.{k}.0" for k in (32, 36) for p in (32, 52, 72)),
)
ENERGY_REGISTERS = frozenset(("1-0:1.8.1", "1-0:1.8.2", "1-0:2.8.1", "1-0:2.8.2"))
TOTALS = {"1-0:1.8.0": ("1-0:1.8.1", "1-0:1.8.2"), "1-0:2.8.0": ("1-0:2.8.1", "1-0:2.8.2")}
SECONDS, VOLT, WATT, AMPERE, WH = (UNIT_CODES[u] for u in ("s", "V", "W", "A", "Wh"))


def _catalogued(env: Env, entry: ObisObject, encode: Encoder) -> Register:
    value: Callable[[Request], Data]
    if entry.code in ENERGY_REGISTERS:
        # The energy registers, the head-end's most frequent read, take the committed
        # registers alone: the same value as the reading's, without building the reading.
        code = entry.code
        value = lambda _r: encode(env.energy()[code])  # noqa: E731
    else:
        value = lambda _r: encode(_as_int(entry.value(env.reading())))  # noqa: E731

    return Register(
        entry.code, ("/R/", "/R/"), value, scaler=entry.scaler, unit=UNIT_CODES[entry.unit or "Wh"]
    )


def _reading(
    env: Env, pick: Callable[[MeterReading], int], encode: Encoder
) -> Callable[[Request], Data]:
    return lambda _r: encode(pick(env.reading()))


def _as_int(value: object) -> int:
    if not isinstance(value, int):
        raise TypeError(f"catalogue value {value!r} is not an integer")
    return value


def _sum_of(env: Env, codes: tuple[str, ...]) -> Callable[[Request], Data]:
    return lambda _r: u32(sum(env.energy()[c] for c in codes))


def _entry(code: str) -> Callable[[MeterReading], int]:
    entry = BY_CODE[code]
    return lambda r: _as_int(entry.value(r))


def _phases(env: Env, code: str) -> bool:
    entry = BY_CODE.get(code)
    return entry is None or env.meter.config.meter.phases >= entry.min_phases


def registers(env: Env) -> list[CosemObject]:
    out: list[CosemObject] = [
        _catalogued(env, BY_CODE[code], encode)
        for code, encode in REGISTER_TYPES.items()
        if _phases(env, code)
    ]
    for code, parts in TOTALS.items():
        total = _sum_of(env, parts)
        out.append(Register(code, ("/R/", "/R/"), total, scaler=0, unit=WH))
    net = _reading(env, lambda r: r.import_w - r.export_w, i32)  # abs(QI+QIV)-abs(QII+QIII)
    out.append(Register("1-0:16.7.0", ("/R/", "/R/"), net, scaler=0, unit=WATT))
    total_a = _reading(env, lambda r: sum(r.current_a), u16)
    out.append(Register("1-0:90.7.0", ("/R/", "/R/"), total_a, scaler=0, unit=AMPERE))
    out.extend(voltage_and_current(env))  # scaler_unit RW (P3 §6.4)
    return out


def counters(env: Env) -> list[CosemObject]:
    """Power failure counters (§5.9) and sag/swell counters (§6.5): class 1 long-unsigned."""
    return [
        DataObject(code, "/R/", _reading(env, _entry(code), u16))
        for code in COUNTERS
        if _phases(env, code)
    ]


def thresholds(env: Env) -> list[CosemObject]:
    """Writable thresholds (§5.9, §6.5) and the duration of the last long failure."""
    out: list[CosemObject] = []
    for code, default, unit in (
        ("0-0:96.7.20", 180, SECONDS),
        ("1-0:12.31.0", 207, VOLT),
        ("1-0:12.43.0", 30, SECONDS),
        ("1-0:12.35.0", 253, VOLT),
        ("1-0:12.44.0", 30, SECONDS),
    ):
        s = Stored(env.attrs, code, u16(default))
        out.append(Register(code, ("/RW/", "/R/"), s.get, scaler=0, unit=unit, setter=s.set))
    # 0-0:96.7.19 "is reset at the end of the power failure, i.e. after capturing in the event
    # log" (§5.9): between failures it reads 0.
    out.append(Register("0-0:96.7.19", ("/R/", "/R/"), lambda _r: u32(0), scaler=0, unit=SECONDS))
    return out


def tariff_indicator(env: Env) -> CosemObject:
    """0-0:96.14.0 octet-string[2]: the active tariff as 0x0001 / 0x0002, "= active_mask of
    register activation object" 0-0:14.0.0 (P3 §5.4; both use `mask_name`)."""
    return DataObject("0-0:96.14.0", "/R/", lambda _r: octets(mask_name(env.reading().tariff)))
