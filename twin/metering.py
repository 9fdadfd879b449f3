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

from twin.clock import Clock, OffsetClock
from twin.config import WEEKDAYS, Config, parse_hhmm
from twin.meter.model import MeterModel, Outbox
from twin.meter.state import MeterReading
from twin.meter.tariff import TariffProgram
from twin.store import Store

log = logging.getLogger(__name__)

T = TypeVar("T")
TARIFF_SETTING = "tariff_program"
CLOCK_OFFSET_SETTING = "clock_offset_s"


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
        # The meter's clock is the host's (or simulated) clock plus what P3 clock sets moved it.
        self.clock = OffsetClock(clock, float(store.setting(CLOCK_OFFSET_SETTING) or 0.0))
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
        else:
            self.model = MeterModel(config, rng, checkpoint.state, program)
            downtime = (now - checkpoint.state.time).total_seconds()
            log.info(
                "meter resumes after %.0f s of downtime (recorded as a power failure)", downtime
            )
            self.model.record_downtime(checkpoint.state.time, now)
        self._committed: dict[str, int] = {}
        # Drained from the model but not yet durable: kept until a commit succeeds, so a
        # failed commit (disk full) loses no row or event; the next commit carries them.
        self._unsaved = Outbox()
        # Called after events were committed (e.g. GPRS re-checks the alarm register at once);
        # listeners must be quick and must not call back into the meter.
        self.on_events: list[Callable[[], None]] = []
        self.commit()

    def commit(self) -> None:
        """Advance to now and make the registers and the outbox durable."""
        self.model.advance(self.clock.now())
        self._store(self.model.drain())
        self._committed = self.model.state.registers_wh()

    def _store(self, outbox: Outbox) -> None:
        self._unsaved.extend(outbox)
        outbox, self._unsaved = self._unsaved, Outbox()
        try:
            self.store.commit(self.model.state, outbox)
        except BaseException:
            self._unsaved = outbox
            raise
        if outbox.events:
            for listener in self.on_events:
                listener()

    def tick(self) -> None:
        """Advance to now; commit at once if something was logged (events are never held)."""
        self.model.advance(self.clock.now())
        if self.model.outbox or self._unsaved:
            self.commit()

    def publish(self, at: datetime | None = None) -> MeterReading:
        """A snapshot that is safe to show: everything in it is committed first.

        `at` may lie a little ahead of the clock: a port that must send on time (P1 every 10 s)
        takes and commits its reading just before the due time, so no fsync sits between the
        due time and the first byte on the wire. The model never runs back to the clock.
        """
        now = self.clock.now()
        reading = self.model.reading(max(at, now) if at else now)
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
        """Set the meter clock (P3 clock object); the offset persists.

        With `event` (a shift above the clock time shift limit): events 4/5 and the CAD status
        bit. Without: the clock just moves (a small synchronisation, P3 §5.3).
        """
        old = self.clock.now()
        self.model.advance(old)
        self.clock.set_now(new)
        self.store.put_setting(CLOCK_OFFSET_SETTING, self.clock.offset.total_seconds())
        if event:
            self.model.clock_adjusted(old, new)
        else:
            self.model.clock_moved(new)
        self.commit()

    def is_powered(self) -> bool:
        return self.model.is_powered(self.clock.now())

    def now(self) -> datetime:
        return self.clock.now().astimezone(UTC)
