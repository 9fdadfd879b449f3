"""Instantaneous voltage and current with the resolution the CS chooses (P3 §6.4: the
scaler_unit of 1-0:32.7.0 / 52.7.0 / 72.7.0 and 1-0:31.7.0 / 51.7.0 / 71.7.0 is RW).

The factory setting is scaler 0 (whole V and A, as on P1); a CS that wants 0.1 V writes
{-1, V}. The value is the model's voltage or |P| / U of the phase divided by 10^scaler, so a
finer scaler shows real decimals rather than zeros. The unit cannot change, and the scalers
accepted (-2..0) keep every value inside long-unsigned (655.35 V or A at -2); others answer
other-reason. A meter reset to factory setting (§8.5) brings scaler 0 back.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from twin.catalogue import UNIT_CODES
from twin.meter.state import MeterReading
from twin.p3.dlms.cosem import DataAccessResult
from twin.p3.objects.base import ObjectError, Request
from twin.p3.objects.env import Env
from twin.p3.objects.simple import Generic, Stored, conform
from twin.p3.objects.values import Data, scaler_unit, u16

SCALERS = (-2, -1, 0)
VOLTAGES = ("1-0:32.7.0", "1-0:52.7.0", "1-0:72.7.0")
CURRENTS = ("1-0:31.7.0", "1-0:51.7.0", "1-0:71.7.0")
Physical = Callable[[MeterReading], float]


class AdjustableRegister(Generic):
    """Class 3 Register whose scaler the management client may write."""

    class_id: ClassVar[int] = 3

    def __init__(self, env: Env, code: str, unit: str, physical: Physical) -> None:
        self.unit = UNIT_CODES[unit]
        self.setting = Stored(env.attrs, f"{code}#3", scaler_unit(0, self.unit))
        super().__init__(
            code,
            {1: "/R/", 2: "/R/", 3: "/RW/"},
            {2: lambda _r: self._value(env.reading(), physical), 3: self.setting.get},
            {3: self._set_scaler_unit},
        )

    def scaler(self) -> int:
        return self.setting.get().items[0].integer()

    def _value(self, reading: MeterReading, physical: Physical) -> Data:
        return u16(min(0xFFFF, round(physical(reading) / 10 ** self.scaler())))

    def _set_scaler_unit(self, value: Data, _request: Request) -> None:
        conform(self.setting.default, value)  # {integer, enum}, else type-unmatched
        scaler, unit = (item.integer() for item in value.items)
        if unit != self.unit or scaler not in SCALERS:
            raise ObjectError(DataAccessResult.OTHER_REASON, f"scaler {scaler}, unit {unit}")
        self.setting.put(value)


def _volts(phase: int) -> Physical:
    return lambda r: r.voltage_v[phase]


def _amps(phase: int) -> Physical:
    def amps(r: MeterReading) -> float:
        volts = r.voltage_v[phase]
        net = r.import_w_phase[phase] - r.export_w_phase[phase]
        return abs(net) / volts if volts > 0 else 0.0  # as the model's 1-0:31.7.0

    return amps


def voltage_and_current(env: Env) -> list[AdjustableRegister]:
    phases = range(env.meter.config.meter.phases)
    return [
        *(AdjustableRegister(env, VOLTAGES[p], "V", _volts(p)) for p in phases),
        *(AdjustableRegister(env, CURRENTS[p], "A", _amps(p)) for p in phases),
    ]
