"""What the web console shows of a twin, offered through the twin's control server.

A console (twin/web/server.py, in the twin or in `dsmr-twin fleet web` for many) reads every
view with control requests: the meter's status and the display's frame are `status` and
`screenshot` (exactly what `dsmr-twin ctl` gets); the power chart, the load profile, the event
logs and the P1 telegrams are `console-views`, read from the model, the store and the P1
service's ring, never from hardware; the controls it may offer are `console-controls`. Each view
is rebuilt only when what it shows can have changed, so an open page costs little
(docs/benchmarks.md).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from twin.clock import floor_to
from twin.meter.events import Event, EventCode, EventLog
from twin.meter.model import PowerStep
from twin.meter.profiles import LoadProfileRow

if TYPE_CHECKING:
    from twin.parts import Twin

CHART_SPAN = timedelta(hours=1)  # of meter time, as the chart
PROFILE_SPAN = timedelta(days=3)  # of 15-minute load profile rows: 288 bars
EVENTS_SHOWN = 25  # newest entries per log
# The controls the page offers: the `ctl` injections. Read-only views come from the sections;
# `mbus` (key transfer) and `advance` (long-running) stay with the CLI.
WEB_COMMANDS = (
    "power-failure",
    "sag",
    "swell",
    "message",
    "load",
    "tamper",
    "admin",
    "weather",
    "clock-drift",
    "request",
    "gas",
    "wakeup",
    "button",
)
# P3 §4.2.1: the M-Bus events, 100 + 10 x (channel - 1) + offset.
MBUS_EVENTS = (
    "Communication error M-Bus channel {}",
    "Communication ok M-Bus channel {}",
    "Replace battery M-Bus channel {}",
    "Fraud attempt M-Bus channel {}",
    "Clock adjusted M-Bus channel {}",
    "New M-Bus device discovered channel {}",
    "Permanent error from M-Bus device channel {}",
)


def event_name(code: int) -> str:
    """The P3 §4.2.1 name of an event code, in words."""
    if 100 <= code <= 136 and code % 10 <= 6:
        return MBUS_EVENTS[code % 10].format((code - 100) // 10 + 1)
    try:
        return EventCode(code).name.replace("_", " ").capitalize()
    except ValueError:
        return f"event {code}"


def _events_json(events: Iterable[Event]) -> list[dict[str, Any]]:
    return [
        {"time": e.when.isoformat(), "code": e.code, "name": event_name(e.code)}
        for e in reversed(list(events))  # newest first
    ]


def power_chart(steps: Iterable[PowerStep], now: datetime) -> dict[str, Any]:
    """The power steps of the last CHART_SPAN of meter time up to `now`: per phase the net
    import and export, and the generation (PV) in all. The step in force at the span's start
    is kept, starting there, so the chart has no hole at its left edge."""
    start = now - CHART_SPAN
    shown: list[PowerStep] = []
    for step in steps:
        if step.time <= start:
            shown = [step]
        elif step.time <= now:
            shown.append(step)
    rows = []
    for step in shown:
        net = [c - g for c, g in zip(step.consumed, step.generated, strict=True)]
        rows.append(
            {
                "t": max(step.time, start).isoformat(),
                "import_w": [round(max(n, 0.0)) for n in net],
                "export_w": [round(max(-n, 0.0)) for n in net],
                "pv_w": round(sum(step.generated)),
            }
        )
    return {"from": start.isoformat(), "to": now.isoformat(), "steps": rows}


def profile_bars(rows: Sequence[LoadProfileRow]) -> list[dict[str, Any]]:
    """The energy of each 15-minute period: the load profile captures the +A and -A totals
    at the end of each period (P3 §6.3, 1-0:99.1.0), so a period's energy is the difference
    to the entry before it (the first entry only starts the count)."""
    return [
        {
            "t": row.time.isoformat(),
            "import_wh": row.import_wh - before.import_wh,
            "export_wh": row.export_wh - before.export_wh,
            "status": row.status,
        }
        for before, row in itertools.pairwise(rows)
    ]


class Views:
    """The views a twin offers any console through its control server: `console-views` (the
    power chart, load profile, event logs and telegrams) and `console-controls` (the controls
    with their declared fields). A view is rebuilt only when what it shows can have changed."""

    def __init__(self, twin: Twin) -> None:
        self.twin = twin
        self.events_dirty = True  # set when new events are committed
        self._cache: dict[str, tuple[object, Any]] = {}

    def register(self) -> None:
        """Add the two commands to the twin's control server (they take no fields)."""
        self.twin.meter.on_events.append(self._on_events)
        self.twin.control.add_command("console-views", self._views_command)
        self.twin.control.add_command("console-controls", self._controls_command)

    def _on_events(self) -> None:
        self.events_dirty = True

    async def _views_command(self, request: Mapping[str, Any]) -> object:
        return self.views()

    async def _controls_command(self, request: Mapping[str, Any]) -> object:
        return self.controls()

    def views(self) -> dict[str, Any]:
        model = self.twin.meter.model
        now = model.time
        views: dict[str, Any] = {
            "power": self._cached(
                "power",
                (model.power_trace[-1] if model.power_trace else None, floor_to(now, 60)),
                lambda: power_chart(model.power_trace, now),
            ),
            "profile": self._cached(
                "profile", (floor_to(now, 900), self.twin.clock.steps), self._profile
            ),
        }
        if self.events_dirty:
            self.events_dirty = False
            self._cache.pop("events", None)
        views["events"] = self._cached("events", None, self._events)
        telegrams = self.twin.telegrams
        if telegrams is not None:
            views["telegrams"] = self._cached(
                "telegrams",
                telegrams.count,
                lambda: [t.to_json() for t in telegrams.newest_first()],
            )
        return views

    def controls(self) -> list[dict[str, Any]]:
        """The controls offered, with their declared fields (the page draws its forms from
        them; the control server checks every request against the same declarations)."""
        offered = self.twin.control.commands
        return [
            {"cmd": name, "fields": [f.describe() for f in offered[name].fields]}
            for name in WEB_COMMANDS
            if name in offered
        ]

    def _cached(self, name: str, key: object, build: Callable[[], Any]) -> Any:
        cached = self._cache.get(name)
        if cached is not None and cached[0] == key:
            return cached[1]
        value = build()
        self._cache[name] = (key, value)
        return value

    def _profile(self) -> list[dict[str, Any]]:
        since = self.twin.meter.model.time - PROFILE_SPAN - timedelta(minutes=15)
        return profile_bars(self.twin.store.load_profile(since=since))

    def _events(self) -> dict[str, Any]:
        store = self.twin.store
        return {log.name.lower(): _events_json(store.events(log, EVENTS_SHOWN)) for log in EventLog}
