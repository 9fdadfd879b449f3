"""The running meter: the model, its clock and its store, bound by one rule.

Commit before publish: every snapshot handed to a port (P1, P3, control, display) is taken
after the registers and the pending events behind it have been committed, so nothing that was
ever shown can be lost or come back lower after a crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import Future, wait
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, TypeVar

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
from twin.meter.events import COMMUNICATION_CODES
from twin.meter.model import MeterModel
from twin.meter.state import MeterReading, MeterState
from twin.meter.tariff import TariffProgram
from twin.store import Store

log = logging.getLogger(__name__)

T = TypeVar("T")
TARIFF_SETTING = "tariff_program"
# How long a synchronous caller (a P3 read, an operator action) waits for its commit before
# it goes on with the last committed reading; a faulted or stalled store is not waited for.
SYNC_WAIT_S = 0.5
# Meter time a synchronous caller integrates itself at simulated speeds (see `_reachable`).
SYNC_STEP = timedelta(minutes=15)


@dataclass(frozen=True, slots=True)
class _Inflight:
    """A submitted commit: what becomes true when its future completes."""

    future: Future[None]
    registers: dict[str, int]
    reading: MeterReading | None
    events: bool


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
        # Commits submitted to the store's writer and not yet seen durable, oldest first.
        self._inflight: deque[_Inflight] = deque()
        self._durable: dict[str, int] = {}  # registers of the last commit known durable
        self._published: MeterReading | None = None  # the last reading known durable
        # Called after events were committed (other than communication session log entries
        # alone) or an operator action changed the alarm register (GPRS re-checks the alarm
        # register at once);
        # listeners must be quick and must not call back into the meter.
        self.on_events: list[Callable[[], None]] = []
        # True while `ctl advance` lives through a span (twin/fast_forward.py): the model is
        # ahead of the clock, and ports that would act on the clock's time hold off.
        self.advancing = False
        self.publish()
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

    # ------------------------------------------------------------------ commits

    def commit(self) -> None:
        """Advance to now and make the registers and the outbox durable.

        Waits for the store at most SYNC_WAIT_S, and not at all while it is faulted or
        stalled: the commit then stays queued, in order, and is written when it can be.
        """
        self.model.advance(self._reachable(self.clock.now()))
        self._wait(self._submit(None))

    def submit(self) -> None:
        """Hand what the model logged and its registers to the writer, without waiting."""
        self._submit(None)

    def _submit(
        self, reading: MeterReading | None, settings: Mapping[str, Any] | None = None
    ) -> Future[None]:
        # The outbox leaves the model only into a queued commit, which the writer retries
        # until it succeeds: a failed commit (disk full) loses no row or event.
        outbox = self.model.drain()
        future = self.store.submit_commit(self.model.state, outbox, settings)
        registers = self.model.state.registers_wh()
        # The communication session log (P3 §4.2.1, one entry per code at each release)
        # raises no register bit and counts no failure: nothing a listener reads changes.
        told = any(event.code not in COMMUNICATION_CODES for event in outbox.events)
        self._inflight.append(_Inflight(future, registers, reading, told))
        return future

    def _wait(self, future: Future[None]) -> bool:
        """Wait briefly for `future` unless the store is stalled; True if it is durable."""
        if not self.store.writer.stalled():
            wait([future], SYNC_WAIT_S)
        self.settle()
        return future.done() and not future.cancelled() and future.exception() is None

    def settle(self) -> None:
        """Take note of the commits that became durable (always on the event loop's thread)."""
        while self._inflight and self._inflight[0].future.done():
            done = self._inflight.popleft()
            if done.future.cancelled() or done.future.exception() is not None:
                continue  # only at shutdown on a faulted store; the writer logged it
            self._durable = done.registers
            if done.reading is not None:
                self._published = done.reading
            if done.events:
                for listener in self.on_events:
                    listener()

    def catch_up(self, step: timedelta) -> bool:
        """Integrate at most `step` of meter time toward now; True once the model is there.

        The metering loop calls this between yields, so a fast clock (or a long pause)
        never holds the event loop for more than one step's worth of integration.
        """
        now = self.clock.now()
        self.model.advance(min(now, self.model.time + step))
        return self.model.time >= now

    def _reachable(self, when: datetime) -> datetime:
        """How far a synchronous caller may integrate on the spot.

        At speed 1 the backlog is at most a metering tick. At simulated speeds the metering
        loop carries the backlog in steps with yields in between; a read or an action
        integrates at most SYNC_STEP itself, so it never holds the event loop for long.
        """
        if self.clock.speed <= 1:
            return when
        return min(when, self.model.time + SYNC_STEP)

    # ------------------------------------------------------------------ readings

    def _prepare(self, at: datetime | None) -> tuple[MeterReading, Future[None] | None]:
        now = self.clock.now()
        # Never ahead of the meter's range: a slot after TIME_MAX is never reached (twin/clock).
        reading = self.model.reading(self._reachable(min(max(at, now), TIME_MAX) if at else now))
        self.settle()
        if not self.model.outbox and reading.energy_wh == self._durable and not self._inflight:
            return reading, None  # nothing in it that is not durable already
        return reading, self._submit(reading)

    def publish(self, at: datetime | None = None) -> MeterReading:
        """A snapshot that is safe to show: everything in it is committed.

        `at` may lie a little ahead of the clock: a port that must send on time (P1 every 10 s)
        takes and commits its reading just before the due time, so no fsync sits between the
        due time and the first byte on the wire. The model never runs back to the clock.
        When the store cannot commit within SYNC_WAIT_S (or is faulted) this is the last
        reading that was committed: what is shown is never ahead of what is on disk.
        """
        reading, future = self._prepare(at)
        if future is None or self._wait(future):
            return reading
        return self._last_durable(reading)

    def _last_durable(self, fallback: MeterReading) -> MeterReading:
        return self._published if self._published is not None else fallback

    def published_energy(self) -> dict[str, int]:
        """The energy registers (Wh) exactly as `publish().energy_wh` would show them, without
        building the rest of a reading (a head-end's GET of 1-0:1.8.1 needs nothing else):
        committed before they are returned, or the last committed ones when the store cannot
        commit within SYNC_WAIT_S."""
        future = self.commit_soon()
        registers = self.model.state.registers_wh()
        if future is None or self._wait(future):
            return registers
        return self._durable or registers

    def commit_soon(self) -> Future[None] | None:
        """Advance to now and queue the registers and the outbox unless all of it is durable
        already, without waiting; the future completes when it is (None: nothing to do)."""
        self.model.advance(self._reachable(self.clock.now()))
        self.settle()
        if (
            not self.model.outbox
            and not self._inflight
            and self.model.state.registers_wh() == self._durable
        ):
            return None
        return self._submit(None)

    async def publish_durable(self, at: datetime | None = None) -> MeterReading:
        """Like `publish`, but waits (without holding the event loop) until it is committed,
        however long the store takes: for a port that must never show an older reading."""
        reading, future = self._prepare(at)
        if future is not None:
            # Shielded: a caller cancelled while waiting must not cancel the queued commit.
            await asyncio.shield(asyncio.wrap_future(future))
            self.settle()
        return reading

    async def latest(self, timeout_s: float) -> MeterReading:
        """The newest reading that is committed within `timeout_s`, else the last committed
        one (`ctl status`: it answers while the store is stuck, and never shows more)."""
        reading, future = self._prepare(None)
        if future is None:
            return reading
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await asyncio.shield(asyncio.wrap_future(future))
        self.settle()
        return reading if future.done() else self._last_durable(reading)

    def act(self, action: Callable[[MeterModel, datetime], T]) -> T:
        """Run an operator action at the current meter time and commit what it logged."""
        alarms = self.model.state.alarm_register
        result = self._apply(action)
        self.commit()  # an acknowledged change is durable (unless the store is stuck)
        if self.model.state.alarm_register != alarms:
            # Alarm bits raised or cleared without an event (P3 §4.2.4): the register monitor
            # (P3 §9.1.2) compares afresh, as after committed events; nothing polls for it.
            for listener in self.on_events:
                listener()
        return result

    def act_soon(
        self,
        action: Callable[[MeterModel, datetime], T],
        settings: Mapping[str, Any] | None = None,
    ) -> T:
        """Like `act`, for a change nobody is answered about (a value read from an M-Bus
        device): queued in order, not waited for, so a busy bus never holds the loop.
        `settings` (key -> value) go into the same transaction as what the action logged."""
        result = self._apply(action)
        self._submit(None, settings)
        return result

    def _apply(self, action: Callable[[MeterModel, datetime], T]) -> T:
        at = self._reachable(self.clock.now())
        self.model.advance(at)
        return action(self.model, at)

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
