"""Shared helpers for the tests: fixtures on disk, models on a known clock."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from twin.config import Config, LoadConfig, P2Config, PvConfig
from twin.meter.model import MeterModel
from twin.meter.state import FailureRecord, MbusReading, MeterReading
from twin.meter.tariff import Tariff
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
    # P2 off: the model's own gas stand-in delivers the hourly gas values.
    config = Config(
        load=LoadConfig(appliances=False), pv=PvConfig(enabled=False), p2=P2Config(enabled=False)
    )
    return replace(config, meter=replace(config.meter, phases=phases), **kwargs)  # type: ignore[arg-type]


def model_at(start: datetime, config: Config | None = None, seed: int = 1) -> MeterModel:
    config = config or Config()
    return MeterModel(
        config,
        random.Random(seed),
        MeterModel.new_state(config, start),
        program_from_config(config),
    )


def spec_example_reading() -> MeterReading:
    """The values of the DSMR 4.2.2 P1 §5.13 example telegram."""

    def utc(*args: int) -> datetime:
        return datetime(*args, tzinfo=UTC)  # type: ignore[misc]

    return MeterReading(
        time=utc(2010, 12, 9, 10, 30, 20),  # 101209113020W
        powered=True,
        phases=3,
        energy_wh=dict.fromkeys(("1-0:1.8.1", "1-0:1.8.2", "1-0:2.8.1", "1-0:2.8.2"), 123456789),
        tariff=Tariff.NORMAL,
        import_w=1193,
        export_w=0,
        import_w_phase=(1111, 2222, 3333),
        export_w_phase=(4444, 5555, 6666),
        current_a=(1, 2, 3),
        voltage_v=(230.0, 230.0, 230.0),
        failures_any=4,
        failures_long=2,
        failure_log=(
            FailureRecord(utc(2010, 12, 8, 14, 24, 15), 240),
            FailureRecord(utc(2010, 12, 8, 14, 10, 4), 301),
        ),
        sags=(2, 1, 0),
        swells=(0, 3, 0),
        message_code="01 61 81",
        message_text="0123456789:;<=>?" * 5,
        admin_state=2,
        mbus=(MbusReading(1, 3, "2222ABCD123456789", 12785123, utc(2010, 12, 9, 10, 0, 0)),),
        load_override_w=None,
        equipment_id="K8EG004046395507",
    )
