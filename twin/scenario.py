"""Scenario files: a start, a seed, the meter's configuration and a timeline of events (TOML).

    name = "spring DST change"
    start = "2026-03-28T12:00:00+01:00"   # ISO time with offset: where the meter clock starts
    duration = "1d"                       # or end = "2026-03-29T12:00:00+02:00"
    seed = 7                              # the household's random stream

    [config.p1]                           # any section of the config file but clock and
    request = "simulated"                 # display; p2 and p3 in part

    [weather]                             # clouds over the PV per day, from local midnight
    "2026-03-29" = 0.9

    [[event]]
    at = "2026-03-29T01:55:00+01:00"      # or after = "13h55m" (from the start)
    cmd = "request"                       # any control command, with its fields
    raised = true

Validated like the configuration: an unknown key or a bad value is a ScenarioError naming it
(`event 3: 'seconds' must be ...`); the commands and their fields are checked against the
control socket's own declarations (twin/control_fields.py) before the scenario starts.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from twin.clock import AMSTERDAM, carryable, parse_meter_time
from twin.config import Config, ConfigError, config_from_mapping, read_toml

# What a scenario run serves: the meter, P1, P2 with the simulated gas meter on the instant
# in-process bus (twin/scenario_p2.py), P3's object model (twin/scenario_p3.py) and the
# control socket. The P3 TCP service and modem run on their own timing (pushes, sessions),
# which the scenario's stepped clock does not drive yet, and the display is for eyes. The
# clock is the scenario's (start, --speed).
NOT_IN_SCENARIOS = ("clock", "display")
RUN_ONLY: dict[str, dict[str, Any]] = {"display": {"device": "none"}}
# Sections a scenario may set in part: what it may set, and what its run always has.
PARTLY_IN_SCENARIOS: dict[str, tuple[tuple[str, ...], dict[str, Any]]] = {
    # P2 runs on the simulated bus without line time, stepped by the runner.
    "p2": (
        ("enabled", "read_delay_s", "install_window_s", "auto_key"),
        {"bus": "simulated", "realtime": False},
    ),
    # The meter's P3 identity and keys (P3 §3.2), so a scenario can wrap new keys with the
    # master key (a key change over P3), and its GPRS behaviour (wake-ups, pushes: P3 §8.3,
    # §9); the object model runs without a TCP service (unless --p3) and the modem is the
    # simulated one a `wakeup` event starts (twin/scenario_gprs.py).
    "p3": (
        (
            "system_title",
            "guek",
            "gak",
            "master_key",
            "gprs_mode",
            "push_destination",
            "wakeup_any_sender",
        ),
        {"endpoint": "none", "modem": "none"},
    ),
}
TOP_KEYS = ("name", "description", "start", "end", "duration", "seed", "config", "weather")
EVENT_KEYS = ("at", "after", "cmd")
_DURATION = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)?")
LONGEST = timedelta(days=3660)  # ten years: the model's range is 2000..2099 anyway


class ScenarioError(ConfigError):
    """A scenario that cannot run; the message names the key (and the event's index)."""


@dataclass(frozen=True, slots=True)
class ScenarioEvent:
    """One control command at one time: `request` is what goes to the control socket."""

    index: int  # 1-based, in file order (weather days follow the events)
    at: datetime
    request: Mapping[str, Any]

    @property
    def where(self) -> str:
        return f"event {self.index} ({self.request['cmd']!r} at {self.at.isoformat()})"


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    description: str
    start: datetime  # UTC
    end: datetime  # UTC
    seed: int
    config: Config
    events: tuple[ScenarioEvent, ...]  # in time order, file order within one time


def load_scenario(path: Path) -> Scenario:
    table = read_toml(path, ScenarioError)
    try:
        return scenario_from_mapping(table, default_name=path.stem)
    except ScenarioError as exc:
        raise ScenarioError(f"{path}: {exc}") from exc


def scenario_from_mapping(table: Mapping[str, Any], default_name: str = "scenario") -> Scenario:
    unknown = sorted(set(table) - set(TOP_KEYS) - {"event"})
    if unknown:
        raise ScenarioError(f"unknown key '{unknown[0]}' (allowed: {', '.join(TOP_KEYS)}, event)")
    start = _time(table, "start", required=True)
    assert start is not None
    end = _end(table, start)
    seed = table.get("seed", 1)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ScenarioError(f"'seed' must be a whole number, got {seed!r}")
    events = _events(table.get("event", []), start, end)
    weather = _weather(table.get("weather", {}), start, end, first_index=len(events) + 1)
    timeline = sorted(events + weather, key=lambda e: (e.at, e.index))
    return Scenario(
        name=_text(table, "name", default_name),
        description=_text(table, "description", ""),
        start=start,
        end=end,
        seed=seed,
        config=_config(table.get("config", {})),
        events=tuple(timeline),
    )


def _text(table: Mapping[str, Any], key: str, default: str) -> str:
    value = table.get(key, default)
    if not isinstance(value, str):
        raise ScenarioError(f"'{key}' must be a string")
    return value


def _time(table: Mapping[str, Any], key: str, *, required: bool = False) -> datetime | None:
    value = table.get(key)
    if value is None and not required:
        return None
    allowed = (
        "an ISO time with offset from 2000-01-01 to 2099-12-31, e.g. 2026-03-29T01:59:00+01:00"
    )
    parsed = parse_meter_time(value)  # a string, or a TOML offset date-time
    if parsed is None:
        raise ScenarioError(f"'{key}' = {value!r} is not allowed: expected {allowed}")
    return parsed


def parse_duration(text: object, shortest: timedelta = timedelta(seconds=1)) -> timedelta | None:
    """A duration such as "90s", "15m", "2h", "7d" or "1d12h30m", from `shortest` to ten
    years; None if `text` is none."""
    if not isinstance(text, str) or not text:
        return None
    match = _DURATION.fullmatch(text)
    if match is None:
        return None
    days, hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
    try:
        span = timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
    except OverflowError:  # beyond any timedelta, and so beyond LONGEST
        return None
    return span if shortest <= span <= LONGEST else None


def _end(table: Mapping[str, Any], start: datetime) -> datetime:
    if ("end" in table) == ("duration" in table):
        raise ScenarioError("give either 'end' (a time) or 'duration' (e.g. \"7d\"), not both")
    if "end" in table:
        end = _time(table, "end")
        assert end is not None
    else:
        span = parse_duration(table["duration"])
        if span is None:
            raise ScenarioError(
                f"'duration' = {table['duration']!r} is not allowed: expected e.g. \"90s\","
                ' "15m", "2h", "7d" or "1d12h" (1 s to ten years)'
            )
        end = start + span
    if not start < end or not carryable(end):
        raise ScenarioError(f"the end {end.isoformat()} must lie after the start, by 2099")
    return end


def _events(items: object, start: datetime, end: datetime) -> list[ScenarioEvent]:
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise ScenarioError("'event' must be an array of tables ([[event]])")
    events = []
    for index, item in enumerate(items, 1):
        try:
            events.append(_event(index, item, start, end))
        except ScenarioError as exc:
            raise ScenarioError(f"event {index}: {exc}") from exc
    return events


def _event(index: int, item: Mapping[str, Any], start: datetime, end: datetime) -> ScenarioEvent:
    if ("at" in item) == ("after" in item):
        raise ScenarioError("give either 'at' (a time) or 'after' (from the start, e.g. \"2h\")")
    if "at" in item:
        at = _time(item, "at")
        assert at is not None
    else:
        span = parse_duration(item["after"], shortest=timedelta(0))
        if span is None:
            raise ScenarioError(f"'after' = {item['after']!r} is not a duration such as \"2h\"")
        at = start + span
    if not start <= at <= end:
        raise ScenarioError(f"{at.isoformat()} lies outside the scenario's start and end")
    cmd = item.get("cmd")
    if not isinstance(cmd, str):
        raise ScenarioError("'cmd' is required: a control command such as 'power-failure'")
    request = {k: v for k, v in item.items() if k not in ("at", "after")}
    if cmd == "load" and request.pop("clear", None) is True:
        # TOML has no null: `clear = true` is `ctl load --clear` (watts null, the household).
        request.setdefault("watts", None)
    return ScenarioEvent(index, at, request)


def _weather(days: object, start: datetime, end: datetime, first_index: int) -> list[ScenarioEvent]:
    """[weather] "YYYY-MM-DD" = cloudiness: a `weather` command at that local midnight (or at
    the start, for the day the scenario starts in)."""
    if not isinstance(days, dict):
        raise ScenarioError("'weather' must be a table of \"YYYY-MM-DD\" = cloudiness (0..1)")
    events = []
    for offset, (day, cloudiness) in enumerate(sorted(days.items())):
        try:
            midnight = datetime.combine(date.fromisoformat(day), time(), AMSTERDAM)
        except ValueError as exc:
            raise ScenarioError(f"'weather.{day}': not a date YYYY-MM-DD") from exc
        day_start = parse_meter_time(midnight)
        if day_start is None:
            raise ScenarioError(f"'weather.{day}': not a day the meter clock can carry")
        at = max(day_start, start)
        if at > end:
            raise ScenarioError(f"'weather.{day}' lies after the scenario's end")
        request = {"cmd": "weather", "cloudiness": cloudiness}
        events.append(ScenarioEvent(first_index + offset, at, request))
    return events


def _config(table: object) -> Config:
    if not isinstance(table, dict):
        raise ScenarioError("'config' must be a table of configuration sections")
    for section in NOT_IN_SCENARIOS:
        if section in table:
            raise ScenarioError(
                f"'config.{section}' cannot be set in a scenario: its clock is the scenario's"
                " (start, --speed) and it runs no display"
            )
    merged = {**table, **RUN_ONLY}
    for section, (allowed, forced) in PARTLY_IN_SCENARIOS.items():
        given = table.get(section, {})
        if not isinstance(given, dict):
            raise ScenarioError(f"'config.{section}' must be a table")
        extra = sorted(set(given) - set(allowed))
        if extra:
            raise ScenarioError(
                f"'config.{section}.{extra[0]}' cannot be set in a scenario (allowed:"
                f" {', '.join(allowed)}): it runs {section.upper()} on its own clock"
            )
        merged[section] = {**given, **forced}
    try:
        return config_from_mapping(merged)
    except ConfigError as exc:
        raise ScenarioError(f"config: {exc}") from exc
