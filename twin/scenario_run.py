"""Run a scenario (twin/scenario.py): a new meter on a stepped clock, its P1 line, its P2
master with the simulated gas meter (twin/scenario_p2.py) and its control socket, with the
timeline's events dispatched through the control socket's own commands at their times.

Deterministic: the same scenario gives the same P1 telegrams and the same profile rows (the
M-Bus hourly rows included) on every run and every machine. The household, the gas meter and
the keys draw from streams seeded by the scenario's seed and nothing reads the host's clock;
the meter's clock is a stepped clock that this runner moves from due point to due point (the
events, the P1 slots while Request is raised, the P2 master's bus work, at most an hour apart
otherwise), so the model is advanced to the same meter times in the same order on every run,
whatever the scheduling of the host. `--speed` only paces those steps in real time (never
faster than `speed` meter seconds per real second); without it the steps follow each other at
once. P1 sends on the slot grid from the rise of Request (P1 §5.2: the first telegram at
once, then every `[p1] interval_s`, §4.5), each telegram stamped with the meter time of its
slot; a telegram cut off by a falling Request is never finished (§4.3).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import tempfile
from collections import deque
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from hardware.registry import open_p1_sink, open_request_line
from hardware.request_line import SimulatedRequestLine
from twin.clock import TIME_SHIFT_LIMIT_S, ManualClock, parse_meter_time
from twin.control import SOCKET_NAME, ControlServer
from twin.control_fields import Field, flag, parse_fields
from twin.metering import Meter
from twin.p1.capture import CapturedTelegram, header_line, telegram_line
from twin.p1.service import Sent, send_telegram
from twin.p1.telegram import TelegramEncoder
from twin.p2.port import P2MbusPort
from twin.scenario import Scenario, ScenarioError, ScenarioEvent
from twin.scenario_gprs import ScenarioGprs
from twin.scenario_p2 import ScenarioBus
from twin.scenario_p3 import ScenarioHeadEnd
from twin.store import Store

log = logging.getLogger(__name__)

# The longest step while no P1 slot, event or P2 bus work is due: the registers, profiles
# and `ctl status` follow the meter at least hourly. Fixed, so every run steps the same.
MAX_STEP = timedelta(hours=1)


class SteppedClock(ManualClock):
    """Meter time that only the runner moves; `speed` is the pace it was asked for."""

    def __init__(self, start: datetime, speed: float) -> None:
        super().__init__(start)
        self.speed = speed


CLOCK_SET_TIME = Field(
    "time",
    "an ISO time with offset from 2000-01-01 to 2099-12-31 (Dutch local date)",
    lambda value: isinstance(value, str) and parse_meter_time(value) is not None,
    convert=parse_meter_time,
)


class ScenarioRunner:
    """One scenario on one (new) state directory."""

    def __init__(
        self,
        scenario: Scenario,
        state_dir: Path,
        *,
        speed: float | None = None,
        capture: TextIO | None = None,
        pushes: TextIO | None = None,
    ) -> None:
        self.scenario = scenario
        self.speed = speed
        self.capture = capture
        config = scenario.config
        self.store = Store.open(state_dir)
        if self.store.load() is not None:
            self.store.close()
            raise ScenarioError(
                f"{state_dir} holds a meter already: a scenario starts a new one, so give it a"
                " new (or empty) --state-dir"
            )
        self.clock = SteppedClock(scenario.start, speed or 1.0)
        self.meter = Meter(config, self.clock, self.store, random.Random(scenario.seed))
        self.control = ControlServer(self.meter, state_dir / SOCKET_NAME)
        self.p2 = (
            ScenarioBus(config, self.meter, self.control, state_dir, scenario.seed)
            if config.p2.enabled
            else None
        )
        self.p3 = ScenarioHeadEnd(
            config,
            self.meter,
            self.control,
            state_dir,
            mbus=P2MbusPort(self.p2.service) if self.p2 is not None else None,
            seed=scenario.seed,
        )
        self.gprs = ScenarioGprs(
            config,
            self.meter,
            self.p3,
            self.control,
            state_dir,
            seed=scenario.seed,
            record=pushes,
        )
        p1 = config.p1
        self.interval = timedelta(seconds=p1.interval_s)
        self.request = open_request_line(p1.request, p1.request_active_high)
        self.sink = open_p1_sink(p1.endpoint, state_dir, baudrate=p1.baudrate, pace=p1.pace)
        self.encoder = TelegramEncoder(config.meter.manufacturer, config.meter.identification)
        self.sent = 0
        self.unpowered = 0  # slots in a power failure: a dead meter sends nothing
        self.cut = 0  # telegrams cut off by a falling Request
        self.dispatched = 0
        self._first_telegram: datetime | None = None
        self._add_commands()

    def _add_commands(self) -> None:
        self.control.add_command("clock-set", self._clock_set, [CLOCK_SET_TIME])
        if isinstance(self.request, SimulatedRequestLine):
            self.control.add_command("request", self._set_request, [flag("raised")])
        self.control.ports["scenario"] = self.status
        self.control.ports["p1_line"] = self.sink.status

    def status(self) -> dict[str, Any]:
        return {
            "name": self.scenario.name,
            "start": self.scenario.start.isoformat(),
            "end": self.scenario.end.isoformat(),
            "paced": self.speed is not None,
            "events_dispatched": self.dispatched,
            "events": len(self.scenario.events),
            "telegrams_sent": self.sent,
            "telegrams_cut": self.cut,
            "slots_unpowered": self.unpowered,
            "pushes": len(self.gprs.records),
        }

    async def _clock_set(self, request: Mapping[str, Any]) -> object:
        """A P3-style clock set (0-0:1.0.0 attribute 2): events 4/5 and CAD beyond the time
        shift limit, 1-0:0.9.11 (P3 §5.3); a smaller shift just moves the clock."""
        new: datetime = request["time"]
        shift = abs((new - self.meter.clock.now()).total_seconds())
        self.meter.set_time(new, event=shift > TIME_SHIFT_LIMIT_S)
        return {"time": new.isoformat(), "shift_s": shift}

    async def _set_request(self, request: Mapping[str, Any]) -> object:
        assert isinstance(self.request, SimulatedRequestLine)
        self.request.set(request["raised"])
        return {"raised": request["raised"]}

    def check(self) -> None:
        """Every event names a command of the control socket with valid fields."""
        known = ", ".join(sorted(self.control.commands))
        for event in self.scenario.events:
            command = self.control.commands.get(event.request["cmd"])
            if command is None:
                raise ScenarioError(
                    f"event {event.index}: unknown command {event.request['cmd']!r}; known: {known}"
                )
            try:
                parse_fields(event.request, command.fields)
            except ValueError as exc:
                raise ScenarioError(f"event {event.index}: {exc}") from exc

    def close(self) -> None:
        self.meter.commit()
        self.store.close()

    async def run(self) -> None:
        """The timeline from start to end; the control socket serves meanwhile."""
        self.check()
        if self.p2 is not None:
            self.p2.start()
        await self.sink.open()
        try:
            await self.request.open()
            # Windows on the run, not part of it: the control socket and (--p3) P3 over TCP.
            windows = [
                asyncio.create_task(self.control.run(), name="the control socket"),
                asyncio.create_task(self.p3.serve(), name="P3 over TCP"),
            ]
            try:
                await self._timeline()
            finally:
                for window in windows:
                    window.cancel()
                    await self._stopped(window)
                await self.request.close()
                await self.gprs.close()
        finally:
            await self.sink.close()
            self.meter.commit()
        log.info("scenario %s done: %s", self.scenario.name, self.status())

    @staticmethod
    async def _stopped(window: asyncio.Task[None]) -> None:
        """A window on the run that could not be served (e.g. a path too long for a Unix
        socket, a P3 port in use) is reported; the run stands."""
        try:
            await window
        except asyncio.CancelledError:
            pass
        except OSError as exc:
            log.warning("%s could not be served: %s", window.get_name(), exc)

    async def _timeline(self) -> None:
        scenario, loop = self.scenario, asyncio.get_running_loop()
        events = deque(scenario.events)
        real_start, now, raised_before = loop.time(), scenario.start, False
        next_slot = scenario.start
        while True:
            await self.clock.set(now)
            # Metered up to `now` first: an action or a reading then happens at `now` exactly,
            # never at a point a synchronous caller could reach on its own (Meter._reachable).
            self._meter_to_now()
            while events and events[0].at <= now:
                await self._dispatch(events.popleft())
            if self.p2 is not None:
                await self.p2.step()
            self.p3.tick()
            self._meter_to_now()  # what the read-out or an activation logged, at its time
            await self.gprs.step()
            raised = self.request.is_raised()
            if raised and not raised_before:
                next_slot = now  # P1 §5.2: the first telegram as Request rises
            raised_before = raised
            if raised and next_slot == now:
                await self._slot()
                next_slot = now + self.interval
            self._meter_to_now()
            if now >= scenario.end:
                return
            due = [scenario.end, now + MAX_STEP]
            if events:
                due.append(events[0].at)
            due.extend(self._port_due_points(now))
            if raised or not isinstance(self.request, SimulatedRequestLine):
                # A line raised, or one only the reader moves (GPIO): every slot is due.
                due.append(next_slot if raised else now + self.interval)
            now = min(due)
            await self._pace(loop, real_start, now)

    def _port_due_points(self, now: datetime) -> list[datetime]:
        """The P2 master's next bus work and a scheduled calendar activation, on the runner's
        clock (they are planned on the meter's, which a clock-set moves off it)."""
        offset = self.meter.clock.now() - now
        planned = [self.p3.next_due(), self.gprs.next_due()]
        if self.p2 is not None:
            planned.append(self.p2.next_due())
        return [when - offset for when in planned if when is not None and when - offset > now]

    def _meter_to_now(self) -> None:
        """Integrate up to the clock and commit at once what was logged (events are never held;
        registers are checkpointed at the end)."""
        while not self.meter.catch_up(MAX_STEP):
            pass
        if self.meter.model.outbox:
            self.meter.commit()

    async def _pace(
        self, loop: asyncio.AbstractEventLoop, real_start: float, now: datetime
    ) -> None:
        if self.speed is None:
            await asyncio.sleep(0)  # the control socket gets its turn
            return
        target = real_start + (now - self.scenario.start).total_seconds() / self.speed
        await asyncio.sleep(max(0.0, target - loop.time()))

    async def _dispatch(self, event: ScenarioEvent) -> None:
        answer = await self.control.dispatch(json.dumps(event.request).encode())
        if not answer["ok"]:
            raise ScenarioError(f"{event.where}: refused: {answer['error']}")
        self.dispatched += 1
        log.info("%s: %s", event.where, answer["result"])

    async def _slot(self) -> None:
        if not self.meter.is_powered():
            self.unpowered += 1
            return
        reading = self.meter.publish()
        telegram = self.encoder.encode(reading)
        if await send_telegram(self.sink, self.request, telegram) is not Sent.WHOLE:
            self.cut += 1
            return
        self.sent += 1
        if self.capture is not None:
            self._record(telegram)

    def _record(self, telegram: bytes) -> None:
        """The telegram into the capture (twin/p1/capture.py), at its scenario time."""
        assert self.capture is not None
        now = self.clock.now()
        if self._first_telegram is None:
            self._first_telegram = now
            self.capture.write(header_line(f"scenario {self.scenario.name}", now.isoformat()))
            self.capture.write("\n")
        offset = (now - self._first_telegram).total_seconds()
        self.capture.write(telegram_line(CapturedTelegram(offset, telegram)) + "\n")


@contextlib.contextmanager
def scenario_runner(
    scenario: Scenario,
    state_dir: Path,
    *,
    speed: float | None = None,
    record: Path | None = None,
    pushes: Path | None = None,
) -> Iterator[ScenarioRunner]:
    """The one way a runner is built, for the check as for the run: on `state_dir`, writing
    the telegrams to `record` and the pushes to `pushes` (each made when given); its meter
    committed and its store closed on leaving."""
    with contextlib.ExitStack() as stack:
        capture, push_record = (
            stack.enter_context(path.open("w", encoding="utf-8")) if path else None
            for path in (record, pushes)
        )
        runner = ScenarioRunner(
            scenario, state_dir, speed=speed, capture=capture, pushes=push_record
        )
        try:
            yield runner
        finally:
            runner.close()


def check_scenario(scenario: Scenario) -> None:
    """Every event checked against the control commands a run serves, before any state
    directory is touched: on a throw-away meter in a temporary directory."""
    with (
        tempfile.TemporaryDirectory(prefix="dsmr-twin-scenario-") as scratch,
        scenario_runner(scenario, Path(scratch)) as runner,
    ):
        runner.check()
