"""The running meter: the model, its clock and its store, bound by one rule.

Commit before publish: every snapshot handed to a port (P1, P3, control, display) is taken
after the registers and the pending events behind it have been committed, so nothing that was
ever shown can be lost or come back lower after a crash.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from datetime import UTC, date, datetime, time
from typing import TypeVar

from twin.clock import (
    TIME_MAX,
    TIME_MIN,
    TIME_SHIFT_LIMIT_S,
    Clock,
    OffsetClock,
    SystemClock,
    carryable,
    check_carryable,
    clamp_carryable,
)
from twin.config import WEEKDAYS, Config, parse_hhmm
from twin.meter.model import MeterModel, Outbox
from twin.meter.state import MeterReading, MeterState
from twin.meter.tariff import TariffProgram
from twin.store import Store

log = logging.getLogger(__name__)

T = TypeVar("T")
TARIFF_SETTING = "tariff_program"


def program_from_config(config: Config) -> TariffProgram:
    tariff = config.tariff
    return TariffProgram(
        normal_start=parse_hhmm(tariff.normal_start),
        normal_end=parse_hhmm(tariff.normal_end),
        working_days=frozenset(WEEKDAYS.index(d) for d in tariff.working_days),
        use_dutch_holidays=tariff.dutch_holidays,
        special_days=frozenset(date.fromisoformat(d) for d in tariff.extra_holidays),
    )


def program_to_setting(program: TariffProgram) -> dict[str, object]:
    return {
        "normal_start": program.normal_start.strftime("%H:%M"),
        "normal_end": program.normal_end.strftime("%H:%M"),
        "working_days": sorted(program.working_days),
        "use_dutch_holidays": program.use_dutch_holidays,
        "special_days": sorted(d.isoformat() for d in program.special_days),
        "recurring_days": sorted([m, d] for m, d in program.recurring_days),
    }


def program_from_setting(value: dict[str, object]) -> TariffProgram:
    return TariffProgram(
        normal_start=time.fromisoformat(str(value["normal_start"])),
        normal_end=time.fromisoformat(str(value["normal_end"])),
        working_days=frozenset(int(d) for d in value["working_days"]),  # type: ignore[attr-defined]
        use_dutch_holidays=bool(value["use_dutch_holidays"]),
        special_days=frozenset(date.fromisoformat(d) for d in value["special_days"]),  # type: ignore[attr-defined]
        # Absent in programs saved before recurring days were kept as a rule.
        recurring_days=frozenset(
            (int(m), int(d))
            for m, d in value.get("recurring_days", [])  # type: ignore[attr-defined]
        ),
    )


class Meter:
    """The meter as the services see it."""

    def __init__(self, config: Config, clock: Clock, store: Store, rng: random.Random) -> None:
        self.config = config
        # The meter's clock: `clock` continues the checkpointed timeline (twin.app.make_clock),
        # and P3 clock sets of this run move it. The checkpoint holds every earlier clock set;
        # the offset that stores written before this rule hold is not applied again.
        self.clock = OffsetClock(clock)
        self.store = store
        checkpoint = store.load()
        now = self.clock.now()
        saved_program = store.setting(TARIFF_SETTING)
        program = (
            program_from_setting(saved_program) if saved_program else program_from_config(config)
        )
        if checkpoint is None:
            state = MeterModel.new_state(config, now)
            self.model = MeterModel(config, rng, state, program)
            log.info("new meter %s starts at %s", config.meter.equipment_id, now.isoformat())
        elif not carryable(checkpoint.state.time):
            self.model = self._recover(checkpoint.state, now, program, rng)
        else:
            self.model = MeterModel(config, rng, checkpoint.state, program)
            downtime = (now - checkpoint.state.time).total_seconds()
            log.info(
                "meter resumes after %.0f s of downtime (recorded as a power failure)", downtime
            )
            self.model.record_downtime(checkpoint.state.time, now)
        self._committed: dict[str, int] = {}
        # Called after events were committed (e.g. GPRS re-checks the alarm register at once);
        # listeners must be quick and must not call back into the meter.
        self.on_events: list[Callable[[], None]] = []
        self.commit()
        if checkpoint is not None and config.clock.resync:
            self._resync()

    def _recover(
        self, state: MeterState, now: datetime, program: TariffProgram, rng: random.Random
    ) -> MeterModel:
        """The store holds a meter time no port can carry (a clock set before they were
        range-checked): restart the clock at `now` as a clock set from the nearest time the
        meter can carry (events 4/5), and drop what was stamped after `now`."""
        log.error(
            "the stored meter time %s is outside %s .. %s; the meter clock restarts at %s",
            state.time.isoformat(),
            TIME_MIN.isoformat(),
            TIME_MAX.isoformat(),
            now.isoformat(),
        )
        state.time = clamp_carryable(state.time)
        model = MeterModel(self.config, rng, state, program)
        model.clock_adjusted(state.time, now)
        # The dropped rows were the ones after `now`: captures need not wait for them.
        model.state.capture_floor = None
        self.store.drop_entries_after(now)
        return model

    def _resync(self) -> None:
        """`[clock] resync`: set the clock to the configured start or the host's clock, like a
        P3 clock set (events 4/5 beyond the default time shift limit, P3 §5.3)."""
        target = clamp_carryable(self.config.clock.start_time() or SystemClock().now())
        shift = abs((target - self.clock.now()).total_seconds())
        log.info("clock resync to %s (a shift of %.0f s)", target.isoformat(), shift)
        self.set_time(target, event=shift > TIME_SHIFT_LIMIT_S)

    def commit(self) -> None:
        """Advance to now and make the registers and the outbox durable."""
        self.model.advance(self.clock.now())
        self._store(self.model.drain())
        self._committed = self.model.state.registers_wh()

    def _store(self, outbox: Outbox) -> None:
        self.store.commit(self.model.state, outbox)
        if outbox.events:
            for listener in self.on_events:
                listener()

    def tick(self) -> None:
        """Advance to now; commit at once if something was logged (events are never held)."""
        self.model.advance(self.clock.now())
        if self.model.outbox:
            self.commit()

    def publish(self, at: datetime | None = None) -> MeterReading:
        """A snapshot that is safe to show: everything in it is committed first.

        `at` may lie a little ahead of the clock: a port that must send on time (P1 every 10 s)
        takes and commits its reading just before the due time, so no fsync sits between the
        due time and the first byte on the wire. The model never runs back to the clock.
        """
        now = self.clock.now()
        # Never ahead of the meter's range: a slot after TIME_MAX is never reached (twin/clock).
        reading = self.model.reading(min(max(at, now), TIME_MAX) if at else now)
        if self.model.outbox or reading.energy_wh != self._committed:
            self._store(self.model.drain())
            self._committed = dict(reading.energy_wh)
        return reading

    def act(self, action: Callable[[MeterModel, datetime], T]) -> T:
        """Run an operator action at the current meter time and commit what it logged."""
        result = action(self.model, self.clock.now())
        self.commit()
        return result

    def set_time(self, new: datetime, *, event: bool = True) -> None:
        """Set the meter clock (P3 clock object); the next checkpoint carries the new time.

        With `event` (a shift above the clock time shift limit): events 4/5 and the CAD status
        bit. Without: the clock just moves (a small synchronisation, P3 §5.3).
        """
        check_carryable(new)  # TimeRangeError: no port could show it (twin/clock.py)
        old = self.clock.now()
        self.model.advance(old)
        self.clock.set_now(new)
        if event:
            self.model.clock_adjusted(old, new)
        else:
            self.model.clock_moved(new)
        self.commit()

    def is_powered(self) -> bool:
        return self.model.is_powered(self.clock.now())

    def now(self) -> datetime:
        return self.clock.now().astimezone(UTC)
