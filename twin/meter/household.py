"""A Dutch household behind the meter: base load, appliances, optional EV and heat pump, PV.

Pure: it draws from an injected `random.Random` and is asked for the power of one minute at
a time, in order. Each call returns the watts consumed and generated per phase during that
minute; the meter model integrates them.

Reactive power (for the average +Q/-Q registers, P3 §6.4) is a pure function of the same
loads: every load has a fixed displacement power factor (`POWER_FACTOR`), inductive for
consumption, so Q = P * tan(phi) on its phase; PV inverters run at unity power factor. It never
draws from the random stream, so the active power (and every energy register) is exactly what
it was without it.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field, replace
from datetime import datetime

from twin.clock import local
from twin.config import LoadConfig, PvConfig

# Longitude 5 deg E: solar noon is about 11:40 UTC all year (ignoring the equation of time).
SOLAR_NOON_UTC_H = 11.67
# A single-phase inverter up to this size; above it a three-phase one (Dutch grid code).
SINGLE_PHASE_PV_MAX_W = 5000.0

# Displacement power factor (cos phi) per load, inductive. Resistive heaters are 1.0; motors
# and compressors lag. Typical values for household appliances, not measurements.
POWER_FACTOR = {
    "base": 0.95,  # standby electronics and lighting (drivers with PFC)
    "fridge": 0.80,  # compressor motor
    "kettle": 1.0,
    "cooking": 0.98,
    "washer": 0.90,  # heater plus drum motor
    "dryer": 0.95,
    "dishwasher": 0.97,
    "tv": 0.95,
    "vacuum": 0.85,
    "ev": 0.99,  # charger with active PFC
    "heat_pump": 0.92,  # inverter compressor
}


def tan_phi(power_factor: float) -> float:
    """var per W of a load with displacement power factor `power_factor` (inductive)."""
    return math.tan(math.acos(power_factor))


_TAN = {name: tan_phi(pf) for name, pf in POWER_FACTOR.items()}
# A forced load (ctl load / set_load_override) draws like the base load.
OVERRIDE_TAN_PHI = _TAN["base"]


@dataclass(frozen=True, slots=True)
class Appliance:
    name: str
    watts: float
    minutes: int
    # Chance of a start in any minute, per local hour of day (24 values).
    start_chance: tuple[float, ...]
    phase: int


def _hours(base: float, **peaks: float) -> tuple[float, ...]:
    """A 24-value chance table: `base` everywhere, `hNN=x` for the busy hours."""
    table = [base] * 24
    for key, value in peaks.items():
        table[int(key[1:])] = value
    return tuple(table)


APPLIANCES = (
    Appliance("kettle", 2000, 3, _hours(0.0005, h07=0.02, h08=0.015, h12=0.01, h16=0.01), 0),
    Appliance("cooking", 2500, 40, _hours(0.0, h17=0.01, h18=0.02), 1),
    Appliance("washer", 2000, 25, _hours(0.0, h09=0.004, h10=0.004, h19=0.003), 2),
    Appliance("dryer", 2200, 60, _hours(0.0, h11=0.003, h20=0.002), 1),
    Appliance("dishwasher", 1900, 30, _hours(0.0, h20=0.004, h21=0.006), 2),
    Appliance("tv", 150, 90, _hours(0.0, h19=0.02, h20=0.02), 0),
    Appliance("vacuum", 1200, 15, _hours(0.0, h10=0.004, h14=0.003), 0),
)


@dataclass(frozen=True, slots=True)
class MinutePower:
    """Watts per phase (index 0 = L1) for one minute."""

    consumed: tuple[float, ...]
    generated: tuple[float, ...]
    # Net reactive power per phase (var, + inductive = +Q); empty = none (unity power factor).
    reactive: tuple[float, ...] = field(default=())


class Household:
    """Draws minute by minute what the household consumes and the PV array generates."""

    def __init__(self, load: LoadConfig, pv: PvConfig, phases: int, rng: random.Random) -> None:
        self._load = load
        self._pv = pv
        self._phases = phases
        self._rng = rng
        self._running: dict[str, tuple[Appliance, int]] = {}  # name -> (appliance, minutes left)
        self._fridge_phase_minute = 0
        self._clouds = 1.0
        self._ev_remaining_wh = 0.0
        self._base_drift = 1.0
        self._reactive = [0.0] * phases  # of the minute being drawn

    def set_cloudiness(self, cloudiness: float) -> None:
        """The weather from now on (0 clear skies, 1 heavily clouded): the level the cloud
        process reverts to and how much it varies. Draws nothing, so the random stream (and
        everything else drawn from it) stays the same."""
        if not 0 <= cloudiness <= 1:
            raise ValueError(f"cloudiness is from 0 to 1, got {cloudiness}")
        self._pv = replace(self._pv, cloudiness=cloudiness)

    def minute(self, start: datetime, here: datetime | None = None) -> MinutePower:
        """Power during the minute from `start` (UTC); `here` is the same instant in local time."""
        here = here or local(start)
        consumed = [0.0] * self._phases
        self._reactive = [0.0] * self._phases
        self._add_base(consumed, here)
        if self._load.appliances:
            self._add_appliances(consumed, here)
        if self._load.ev:
            self._add_ev(consumed, here)
        if self._load.heat_pump:
            self._add_heat_pump(consumed, here)
        generated = self._pv_power(start)  # unity power factor: no reactive share
        return MinutePower(tuple(consumed), generated, tuple(self._reactive))

    def _spread(self, into: list[float], watts: float, phase: int | None, load: str) -> None:
        """Put watts on one phase (wrapped onto L1 in a 1-phase meter) or over all phases,
        and the load's reactive power (`POWER_FACTOR[load]`) with them."""
        var = watts * _TAN[load]
        if phase is None:
            for i in range(self._phases):
                into[i] += watts / self._phases
                self._reactive[i] += var / self._phases
        else:
            into[phase % self._phases] += watts
            self._reactive[phase % self._phases] += var

    def _add_base(self, into: list[float], here: datetime) -> None:
        # Slow random walk around the configured base, plus a fridge compressor duty cycle.
        self._base_drift = min(1.3, max(0.7, self._base_drift + self._rng.gauss(0, 0.01)))
        hour = here.hour
        lighting = 150.0 if hour >= 18 or hour < 1 or 6 <= hour < 8 else 0.0
        self._spread(into, self._load.base_w * self._base_drift + lighting, None, "base")
        self._fridge_phase_minute = (self._fridge_phase_minute + 1) % 50
        if self._fridge_phase_minute < 18:
            self._spread(into, 110.0, 0, "fridge")

    def _add_appliances(self, into: list[float], here: datetime) -> None:
        hour = here.hour
        for appliance in APPLIANCES:
            if appliance.name not in self._running and (
                self._rng.random() < appliance.start_chance[hour]
            ):
                self._running[appliance.name] = (appliance, appliance.minutes)
        for name, (appliance, left) in list(self._running.items()):
            self._spread(into, appliance.watts, appliance.phase, appliance.name)
            if left <= 1:
                del self._running[name]
            else:
                self._running[name] = (appliance, left - 1)

    def _add_ev(self, into: list[float], here: datetime) -> None:
        arrives = here.weekday() < 5 and here.hour == 18 and self._rng.random() < 0.01
        if self._ev_remaining_wh <= 0 and arrives:  # home once on most working evenings
            self._ev_remaining_wh = self._rng.uniform(8_000, 30_000)
        if self._ev_remaining_wh > 0:
            watts = self._load.ev_w
            self._ev_remaining_wh -= watts / 60
            self._spread(into, watts, None if self._phases == 3 and watts > 7400 else 1, "ev")

    def _add_heat_pump(self, into: list[float], here: datetime) -> None:
        # Duty cycle follows the season: about 80 % in January, off in high summer.
        season = (math.cos(2 * math.pi * (here.timetuple().tm_yday - 15) / 365) + 1) / 2
        cycle_minute = (here.hour * 60 + here.minute) % 60
        if cycle_minute < 60 * 0.8 * season:
            self._spread(into, self._load.heat_pump_w, None, "heat_pump")

    def _pv_power(self, start: datetime) -> tuple[float, ...]:
        zero = (0.0,) * self._phases
        if not self._pv.enabled or self._pv.peak_w <= 0:
            return zero
        day_of_year = start.timetuple().tm_yday
        # Day length in NL: about 7.7 h at midwinter, 16.7 h at midsummer.
        season = math.sin(2 * math.pi * (day_of_year - 80) / 365)
        day_length_h = 12.2 + 4.5 * season
        hour_utc = start.hour + start.minute / 60
        x = (hour_utc - (SOLAR_NOON_UTC_H - day_length_h / 2)) / day_length_h
        self._clouds = self._next_clouds()
        if not 0 < x < 1:
            return zero
        elevation = math.sin(math.pi * x) ** 1.5
        watts = self._pv.peak_w * elevation * (0.6 + 0.4 * season) * self._clouds
        if self._phases == 3 and self._pv.peak_w > SINGLE_PHASE_PV_MAX_W:
            return (watts / 3,) * 3
        return (watts,) + (0.0,) * (self._phases - 1)

    def _next_clouds(self) -> float:
        # Mean-reverting random process: passing clouds dim the array for minutes at a time.
        clear = 1.0 - 0.7 * self._pv.cloudiness
        drift = 0.05 * (clear - self._clouds) + self._rng.gauss(0, 0.08 * self._pv.cloudiness)
        return min(1.0, max(0.1, self._clouds + drift))
