"""The 10-minute average values of P3 §6.4 (1-0:32.24.0, 31.24.0, 21.24.0, 22.24.0, 23.24.0,
24.24.0 and their L2/L3 variants), "averaging scheme 3": the value shown is the average over
the last completed 10-minute period, periods aligned to the clock (xx:00, xx:10, ...).

Exact: the model hands over every integration step (power is constant within a minute, the
voltage within a step except where a sag/swell window ends, which splits the step). Each
quantity is summed as an integer in milli-units x microseconds, like the energy registers, so
the result does not depend on how often the model was advanced. Published values are whole
units (scaler 0), rounded half up.

Power failures (decided here): a period averages only the time the meter was powered. A period
with no powered time at all (or one the meter never saw, e.g. skipped by a clock jump or a long
downtime of the twin) reads 0. The running sums are part of `MeterState`, so a restart in the
middle of a period continues it (the downtime itself counts as unpowered).

Current is |P| / U per phase, as the instantaneous 1-0:31.7.0 is computed by the model.
Reactive power comes from the household model (twin/meter/household.py, a power factor per
load): +Q is inductive (quadrants I+II), -Q capacitive (III+IV), per phase.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from twin.meter.household import MinutePower

PERIOD_S = 600  # P3 §6.4: 10 minutes average
MAX_PHASES = 3
QUANTITIES = ("voltage_v", "current_a", "import_w", "export_w", "import_var", "export_var")

Volts = Callable[[float], tuple[float, ...]]


@dataclass(frozen=True, slots=True)
class AverageValues:
    """Averages of the last completed period per phase (index 0 = L1), whole units."""

    voltage_v: tuple[int, ...]  # 1-0:32.24.0 / 52.24.0 / 72.24.0
    current_a: tuple[int, ...]  # 1-0:31.24.0 / 51.24.0 / 71.24.0
    import_w: tuple[int, ...]  # +P 1-0:21.24.0 / 41.24.0 / 61.24.0
    export_w: tuple[int, ...]  # -P 1-0:22.24.0 / 42.24.0 / 62.24.0
    import_var: tuple[int, ...]  # +Q 1-0:23.24.0 / 43.24.0 / 63.24.0
    export_var: tuple[int, ...]  # -Q 1-0:24.24.0 / 44.24.0 / 64.24.0

    @classmethod
    def zero(cls, phases: int = MAX_PHASES) -> AverageValues:
        return cls(*((0,) * phases for _ in QUANTITIES))


NO_AVERAGES = AverageValues.zero()


def _zeros() -> dict[str, list[int]]:
    return {q: [0] * MAX_PHASES for q in QUANTITIES}


def period_of(ts: float) -> int:
    """Index of the 10-minute period holding epoch second `ts`."""
    return int(ts // PERIOD_S)


Grid = Callable[[MinutePower, int], tuple[float, ...]]
# One integration step: whole microseconds, the constant power, and the phase voltages or the
# epoch minute whose grid voltages apply (computed by `AverageState.grid` when summed).
Step = tuple[int, MinutePower, tuple[float, ...] | int]


@dataclass(slots=True)
class AverageState:
    """The running period's sums and the last completed period's averages (persisted).

    Steps are only recorded as the model integrates (the model runs many simulated days per
    second); they are summed when a value is read or the state is persisted, so a period that
    nobody reads costs one list append per step."""

    period: int = -1  # period index of `sums`
    powered_us: int = 0  # powered time summed in `sums`
    sums: dict[str, list[int]] = field(default_factory=_zeros)  # milli-units x us
    last_period: int = -1  # period index `last` describes
    last: dict[str, list[int]] = field(default_factory=_zeros)  # whole units
    steps: list[Step] = field(default_factory=list)  # of `period`, not yet in `sums`
    completed: tuple[int, dict[str, list[int]], list[Step]] | None = None  # `last`, unsummed
    # The model's grid voltages of a minute; behaviour, not state: not persisted or compared.
    grid: Grid | None = field(default=None, compare=False, repr=False)

    def add_steady(self, start: float, end: float, power: MinutePower) -> None:
        """A powered step [start, end) with constant `power` and no sag/swell window: the
        voltages are the grid's of the minute, computed only when the step is summed (this
        runs for every simulated minute; the sum only for periods someone reads)."""
        period = int(start // PERIOD_S)
        if period != self.period:
            self.roll(period)
        us, minute = round(end * 1e6) - round(start * 1e6), int(start // 60)
        if self.steps:
            last_us, last_power, last_given = self.steps[-1]
            if last_power is power and last_given == minute:
                # The same power and grid voltages: every sum is (whole milli-units) x us, so
                # one step of the summed length adds exactly the same (a meter read a
                # thousand times a minute keeps one step, not a thousand).
                self.steps[-1] = (last_us + us, power, minute)
                return
        self.steps.append((us, power, minute))

    def add(
        self, start: float, end: float, power: MinutePower, volts: Volts, cuts: Iterable[float]
    ) -> None:
        """A powered integration step [start, end) with constant `power`; the voltage is
        `volts(t)` and constant between the `cuts` (ends of sag/swell windows)."""
        period = period_of(start)
        if period != self.period:
            self.roll(period)
        inside = [c for c in cuts if start < c < end]
        if not inside:
            self.steps.append((round(end * 1e6) - round(start * 1e6), power, volts(start)))
            return
        for a, b in pairwise((start, *sorted(inside), end)):
            self.steps.append((round(b * 1e6) - round(a * 1e6), power, volts(a)))

    def roll(self, period: int) -> None:
        """Start accumulating `period`; the one before it becomes the last completed."""
        if period == self.period:
            return
        if period == self.period + 1:
            self.completed = (self.powered_us, self.sums, self.steps)
        else:
            self.completed = (0, _zeros(), [])
        self.period, self.powered_us, self.sums, self.steps = period, 0, _zeros(), []
        self.last_period = period - 1

    def _settle(self) -> None:
        """Sum the recorded steps: the running period's and the completed one's."""
        if self.steps:
            self.powered_us += _sum_steps(self.steps, self.sums, self.grid)
            self.steps = []
        if self.completed is not None:
            us, sums, steps = self.completed
            us += _sum_steps(steps, sums, self.grid)
            self.last, self.completed = _means(us, sums), None

    def published(self, ts: float, phases: int) -> AverageValues:
        """The averages shown at `ts`: those of the period that ended last before `ts`."""
        previous = period_of(ts) - 1
        self._settle()
        if self.period == previous:  # completed, not rolled yet (no powered step since)
            means = _means(self.powered_us, self.sums)
        elif self.last_period == previous:
            means = self.last
        else:
            return AverageValues.zero(phases)
        return AverageValues(*(tuple(means[q][:phases]) for q in QUANTITIES))

    def to_record(self) -> dict[str, Any]:
        self._settle()
        return {
            "period": self.period,
            "powered_us": self.powered_us,
            "sums": {q: list(v) for q, v in self.sums.items()},
            "last_period": self.last_period,
            "last": {q: list(v) for q, v in self.last.items()},
        }

    @classmethod
    def from_record(cls, record: dict[str, Any] | None) -> AverageState:
        """None (a record saved before averages existed) gives an empty state."""
        if not record:
            return cls()
        return cls(
            period=int(record["period"]),
            powered_us=int(record["powered_us"]),
            sums=_phases(record["sums"]),
            last_period=int(record["last_period"]),
            last=_phases(record["last"]),
        )


def _sum_steps(steps: list[Step], sums: dict[str, list[int]], grid: Grid | None) -> int:
    """Add `steps` to `sums` and return their microseconds. Every quantity is taken in whole
    milli-units (mV, mA, mW, mvar) times whole microseconds, like the energy registers, so
    the result does not depend on how the model was advanced; +P/-P and +Q/-Q are the two
    signs of one rounded value."""
    volt, amp, p_in, p_out = (
        sums["voltage_v"],
        sums["current_a"],
        sums["import_w"],
        sums["export_w"],
    )
    q_in, q_out = sums["import_var"], sums["export_var"]
    total = 0
    for us, power, given in steps:
        if isinstance(given, tuple):
            volts = given
        elif grid is not None:
            volts = grid(power, given)
        else:  # only a model records steady steps, and it sets `grid` first
            raise ValueError("steady averaging steps without the grid voltages")
        reactive = power.reactive or (0.0,) * len(power.consumed)
        phases = zip(volts, power.consumed, power.generated, reactive, strict=True)
        for i, (u, consumed, generated, var) in enumerate(phases):
            net = consumed - generated
            volt[i] += round(u * 1000) * us
            if u > 0:  # |P| / U, as the model's instantaneous current
                amp[i] += round(abs(net) / u * 1000) * us
            w = round(net * 1000) * us
            if w >= 0:
                p_in[i] += w
            else:
                p_out[i] -= w
            q = round(var * 1000) * us
            if q >= 0:
                q_in[i] += q
            else:
                q_out[i] -= q
        total += us
    return total


def _means(us: int, sums: dict[str, list[int]]) -> dict[str, list[int]]:
    if us == 0:
        return _zeros()
    # milli-units x us -> whole units, rounded half up (values are never negative)
    return {q: [(s + 500 * us) // (1000 * us) for s in v] for q, v in sums.items()}


def _phases(values: dict[str, list[int]]) -> dict[str, list[int]]:
    return {q: [int(x) for x in values.get(q, [0] * MAX_PHASES)] for q in QUANTITIES}
