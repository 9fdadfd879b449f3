"""The internal push triggers of P3 §9.1, evaluated through the object model. Sans-IO.

- Push scheduler 0-0:15.0.4 (single action scheduler, class 22, §9.1.1): when the meter clock
  passes an execution_time, executed_script runs (script 1 of 0-0:10.0.108 -> push setup
  0-0:25.9.0). `poll` looks at the span since the previous poll, so a slow poll or an
  accelerated clock misses nothing; after a long gap (the clock set forward by P3, a restart)
  only the latest missed execution runs, once. A clock set backwards restarts the span.
- Register monitor 0-0:16.1.0 (class 21, §9.1.2): when the monitored value (the alarm
  register 0-0:97.98.0) crosses a threshold upwards, that threshold's action_up script runs
  (script 2 -> 0-1:25.9.0); downwards, its action_down. At power-up the previous value is
  taken as not above any threshold, so alarms still active after a power down trigger again
  ("the comparing of the monitored value is done everytime the meter is powered up").

`poll` returns `Firing`s; `execute` runs one through the script table's execute method
(0-0:10.0.108 method 1, P3 §9.2) exactly as the CS would invoke it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from twin.p3.dlms.cosem import ActionResult, AttributeRef
from twin.p3.gprs.push import ln_text
from twin.p3.gprs.push_time import Pattern, parse_execution_time
from twin.p3.objects.base import obis_bytes
from twin.p3.objects.settings import read_data
from twin.p3.objects.values import Data, Tag, ValueTypeError, encode, u16
from twin.p3.server.association import MANAGEMENT_CLIENT
from twin.p3.server.interfaces import CosemObjects

log = logging.getLogger(__name__)

SCRIPT_TABLE = obis_bytes("0-0:10.0.108")
SCHEDULER = obis_bytes("0-0:15.0.4")
MONITOR = obis_bytes("0-0:16.1.0")
CSD_SMS_SCRIPT = 3  # P3 §9.2: script 3 invokes the push of the CSD/SMS setup


@dataclass(frozen=True, slots=True)
class Script:
    """script ::= structure {script_logical_name, script_selector} (Blue Book class 9)."""

    table: bytes
    selector: int


@dataclass(frozen=True, slots=True)
class Firing:
    """A trigger that fired: the script to execute, when it fired, and which object fired."""

    script: Script
    at: datetime
    source: bytes


def parse_script(value: Data) -> Script:
    table, selector = value.items
    return Script(table.octets(), selector.integer())


def execute(objects: CosemObjects, script: Script) -> ActionResult:
    """Execute `script` through the script table's method 1 (P3 §9.2), as the CS would."""
    if script.selector == 0:
        return ActionResult.SUCCESS  # Blue Book class 9: script 0 is the null script
    ref = AttributeRef(9, script.table, 1)
    return objects.action(MANAGEMENT_CLIENT.sap, ref, encode(u16(script.selector))).result


class PushTriggers:
    """Scheduler and register monitor state between polls."""

    def __init__(self, objects: CosemObjects) -> None:
        self.objects = objects
        self._last_poll: datetime | None = None
        self._above: dict[int, bool] | None = None  # per threshold; None = just powered up
        self._definition: Data | None = None

    def power_up(self, now: datetime) -> None:
        """The meter (re)started: executions missed while off are not caught up; the register
        monitor compares afresh (P3 §9.1.2)."""
        self._last_poll = now
        self._above = None

    def poll(self, now: datetime) -> list[Firing]:
        last, self._last_poll = self._last_poll, now
        firings: list[Firing] = []
        if last is not None and now > last:
            firings += self._scheduler(last, now)
        firings += self._monitor(now)
        return firings

    def next_execution(self, now: datetime) -> datetime | None:
        """The scheduler's next execution_time after `now`, for the caller's sleep."""
        patterns = self._execution_times()
        moments = [m for p in patterns if (m := p.earliest(now)) is not None]
        return min(moments, default=None)

    # ---- single action scheduler ------------------------------------------------------------
    def _execution_times(self) -> list[Pattern]:
        value = read_data(self.objects, AttributeRef(22, SCHEDULER, 4))
        if value is None:
            return []
        try:
            return [
                parse_execution_time(e.items[0].octets(), e.items[1].octets())
                for e in value.expect(Tag.ARRAY).items
            ]
        except (ValueTypeError, ValueError, IndexError) as exc:  # PatternError is a ValueError
            log.warning("push scheduler execution_time unusable: %s", exc)
            return []

    def _scheduler(self, last: datetime, now: datetime) -> list[Firing]:
        moments = [m for p in self._execution_times() if (m := p.latest(now, last)) is not None]
        if not moments:
            return []
        script = self._script(AttributeRef(22, SCHEDULER, 2))
        return [] if script is None else [Firing(script, max(moments), SCHEDULER)]

    def _script(self, ref: AttributeRef) -> Script | None:
        value = read_data(self.objects, ref)
        try:
            return None if value is None else parse_script(value)
        except (ValueTypeError, ValueError) as exc:
            log.warning("%s attr %d is not a script: %s", ln_text(ref.obis), ref.index, exc)
            return None

    # ---- register monitor -------------------------------------------------------------------
    def _monitor(self, now: datetime) -> list[Firing]:
        read = self.objects
        definition = read_data(read, AttributeRef(21, MONITOR, 3))
        thresholds = read_data(read, AttributeRef(21, MONITOR, 2))
        actions = read_data(read, AttributeRef(21, MONITOR, 4))
        if definition is None or thresholds is None or actions is None:
            return []
        try:
            class_id, ln, index = definition.items
            monitored = read_data(
                read, AttributeRef(class_id.integer(), ln.octets(), index.integer())
            )
            if monitored is None:
                return []
            value = monitored.integer()
            limits = [t.integer() for t in thresholds.items]
            scripts = [(parse_script(a.items[0]), parse_script(a.items[1])) for a in actions.items]
        except (ValueTypeError, ValueError, IndexError) as exc:
            log.warning("register monitor unusable: %s", exc)
            return []
        if definition != self._definition:
            self._definition, self._above = definition, None
        before = self._above or {}
        self._above = {i: value > limit for i, limit in enumerate(limits)}
        firings = []
        for i, above in self._above.items():
            if above == before.get(i, False) or i >= len(scripts):
                continue
            up, down = scripts[i]
            script = up if above else down
            if script.selector != 0:
                firings.append(Firing(script, now, MONITOR))
        return firings
