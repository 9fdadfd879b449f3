"""Fast-forward (`dsmr-twin ctl advance`): the running meter lives through a span of meter time
at the model's full speed, as if it had passed while powered, then goes on at its speed.

- The model integrates the span in steps of STEP meter time with a yield to the event loop
  after each, so `ctl`, P3 and P1 keep answering; what it logs and captures (load profile,
  daily and monthly values, events, 10-minute averages, M-Bus hourly rows) is handed to the
  store's writer in order, one commit per COMMIT_EVERY of meter time: nothing is lost and
  nothing is written twice.
- Parts of the twin that act at meter times of their own (the P2 master's hourly read of the
  simulated gas meter, a passive tariff calendar's activation) register a `Waypoint`: the
  step ends at their due time and they act there, at that meter time.
- Then the meter clock moves ahead by the span (`OffsetClock.pass_time`): time passed, the
  clock was not set, so no events 4/5 and no CAD/DNV bits (P3 §4.2.1, §4.2.5 are about a
  clock *adjustment*). Every waiter on the clock wakes and re-plans: P1 restarts its slot grid
  and sends the latest slot only (P1 §4.5 has no backlog), the P2 master reads at once and
  syncs the M-Bus clocks, the push scheduler runs the latest missed execution once (P3 §9.1.1,
  the rule it applies to any gap, twin/p3/gprs/push_triggers.py).

One advance at a time: a second request while one runs is refused (not queued), so an
operator never stacks spans they did not see the end of.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, Protocol

from twin.clock import TIME_MAX
from twin.control import ControlServer
from twin.control_fields import ControlError, FieldError, moment, number
from twin.metering import Meter

log = logging.getLogger(__name__)

MAX_DAYS = 400  # a span beyond a year and its billing cycle is a new meter, not a test
MAX_SPAN = timedelta(days=MAX_DAYS)
STEP = timedelta(hours=1)  # meter time integrated between yields (~0.3 ms of CPU)
COMMIT_EVERY = timedelta(days=1)  # meter time per commit handed to the writer


class Waypoint(Protocol):
    """Something that acts at meter times of its own while time passes."""

    def next_due(self, after: datetime) -> datetime | None:
        """The first meter time after `after` at which it acts, or None."""
        ...

    def reach(self, when: datetime, passed: timedelta) -> None:
        """Act at meter time `when` (the model is integrated up to it); `passed` is the meter
        time this advance has covered so far."""
        ...

    def finish(self, passed: timedelta) -> None:
        """The advance is over: `passed` of meter time went by (its own clocks follow)."""
        ...


class AdvanceBusyError(ControlError):
    """An advance is already running."""


def target_of(
    now: datetime, *, days: float | None, hours: float | None, until: datetime | None
) -> datetime:
    """The meter time an `advance` request ends at, checked: exactly one of the three, a span
    of more than nothing and at most MAX_DAYS, and no later than TIME_MAX (twin/clock.py)."""
    given = [
        name for name, v in (("days", days), ("hours", hours), ("until", until)) if v is not None
    ]
    if len(given) != 1:
        raise FieldError("give exactly one of 'days', 'hours' or 'until'")
    field = given[0]
    if until is not None:
        target = until
    else:
        amount = days if days is not None else hours
        assert amount is not None
        if not (math.isfinite(amount) and amount > 0):  # NaN and inf too: no span
            raise FieldError(f"'{field}' must be a number above 0; got {amount!r}")
        span = timedelta(days=amount) if field == "days" else timedelta(hours=amount)
        if span <= timedelta(0):  # below a microsecond, the meter clock's resolution
            raise FieldError(f"'{field}' must be at least a microsecond; got {amount!r}")
        if span > MAX_SPAN:
            raise FieldError(f"'{field}' must be at most {MAX_DAYS} days of meter time")
        target = now + span
    if target <= now:
        raise FieldError(f"'until' must be after the meter time {now.isoformat()}")
    if target - now > MAX_SPAN:
        raise FieldError(f"'until' must be at most {MAX_DAYS} days after {now.isoformat()}")
    if target > TIME_MAX:
        raise FieldError(
            f"'{field}' would take the meter clock to {target.isoformat()}, past"
            f" {TIME_MAX.isoformat()}, the last time every port can carry"
        )
    return target


class FastForward:
    """Runs `ctl advance` on one meter."""

    def __init__(self, meter: Meter, *, step: timedelta = STEP) -> None:
        self.meter = meter
        self.step = step
        self.waypoints: list[Waypoint] = []
        self.target: datetime | None = None  # while an advance runs

    def status(self) -> dict[str, object]:
        return {
            "running": self.target is not None,
            "target": self.target.isoformat() if self.target else None,
            "model_time": self.meter.model.time.isoformat(),
        }

    async def advance(self, target: datetime) -> dict[str, object]:
        """Live through the meter time up to `target`, then move the clock there."""
        if self.target is not None:
            raise AdvanceBusyError(
                f"an advance to {self.target.isoformat()} is running; wait for it"
            )
        self.target = target
        began = time.monotonic()
        start = self.meter.clock.now()
        self.meter.model.advance(start)
        self.meter.advancing = True
        try:
            await self._integrate(target)
        finally:
            # However it ends (cancelled at shutdown too), the clock follows the model, so the
            # meter never shows a time behind what it metered.
            passed = max(timedelta(0), self.meter.model.time - start)
            self.meter.advancing = False
            self._finish(passed)
            self.target = None
        await self.meter.publish_durable()  # everything metered meanwhile is on disk
        took = time.monotonic() - began
        days = passed / timedelta(days=1)
        log.info("advanced %.3f days of meter time in %.2f s", days, took)
        return {
            "from": start.isoformat(),
            "to": target.isoformat(),
            "days": round(days, 6),
            "seconds": round(took, 3),
            "days_per_s": round(days / took, 1) if took > 0 else None,
        }

    async def _integrate(self, target: datetime) -> None:
        model = self.meter.model
        start = model.time
        next_commit = start + COMMIT_EVERY
        reached: dict[int, datetime] = {}  # per waypoint: the due time it last acted at
        while model.time < target:
            end = min(target, model.time + self.step)
            dues = [
                (due, w)
                for w in self.waypoints
                if (due := w.next_due(model.time)) is not None and due != reached.get(id(w))
            ]
            end = min([end, *(due for due, _ in dues)])
            model.advance(end)
            for due, waypoint in dues:
                if due == end:
                    # Once per due time: a waypoint that could not act there (a calendar the
                    # twin cannot run) does not hold the span at that time.
                    reached[id(waypoint)] = due
                    waypoint.reach(end, end - start)
            if end >= next_commit:
                self.meter.submit()  # in order through the writer; not waited for
                next_commit = end + COMMIT_EVERY
            await asyncio.sleep(0)  # ctl, P3 and P1 answer between steps
        self.meter.submit()

    def _finish(self, passed: timedelta) -> None:
        if passed > timedelta(0):
            self.meter.clock.pass_time(passed)  # first: the meter's own time never lags
        for waypoint in self.waypoints:
            waypoint.finish(passed)


def add_advance_command(control: ControlServer, fast_forward: FastForward) -> None:
    """`advance` on the control socket: one of days, hours or until (checked here, the
    authority); answered when the span has been lived through and committed."""

    async def handle(request: Mapping[str, Any]) -> object:
        target = target_of(
            fast_forward.meter.clock.now(),
            days=request["days"],
            hours=request["hours"],
            until=request["until"],
        )
        return await fast_forward.advance(target)

    fields = [
        number("days", 0, MAX_DAYS, default=None),
        number("hours", 0, MAX_DAYS * 24, default=None),
        moment("until", default=None),
    ]
    control.add_command("advance", handle, fields)
    control.ports["advance"] = fast_forward.status
