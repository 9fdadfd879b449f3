"""Shared helpers for the tests: fixtures on disk, models on a known clock."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from twin.config import Config, LoadConfig, PvConfig
from twin.meter.model import MeterModel
from twin.metering import program_from_config

FIXTURES = Path(__file__).parent / "fixtures"
AMS = ZoneInfo("Europe/Amsterdam")


def p1_fixture(name: str) -> bytes:
    """A stored telegram with CR LF line ends, as it travels on the wire."""
    text = (FIXTURES / "p1" / f"{name}.txt").read_text(encoding="ascii")
    return text.replace("\n", "\r\n").encode("ascii")


def amsterdam(*args: int) -> datetime:
    return datetime(*args, tzinfo=AMS)  # type: ignore[misc]


def steady_config(phases: int = 3, **kwargs: object) -> Config:
    """A household with no randomness in its power: no appliances, no PV (use an override)."""
    config = Config(load=LoadConfig(appliances=False), pv=PvConfig(enabled=False))
    return replace(config, meter=replace(config.meter, phases=phases), **kwargs)  # type: ignore[arg-type]


def model_at(start: datetime, config: Config | None = None, seed: int = 1) -> MeterModel:
    config = config or Config()
    return MeterModel(
        config,
        random.Random(seed),
        MeterModel.new_state(config, start),
        program_from_config(config),
    )
