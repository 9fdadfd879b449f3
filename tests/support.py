"""Shared helpers for the tests: fixtures on disk, models on a known clock."""

from __future__ import annotations

import random
import socket
import subprocess
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import serial
from dsmr_parser import telegram_specifications
from dsmr_parser.clients.telegram_buffer import TelegramBuffer
from dsmr_parser.objects import Telegram
from dsmr_parser.parsers import TelegramParser

from twin.config import Config, LoadConfig, P2Config, PvConfig, WebConfig
from twin.meter.model import MeterModel
from twin.meter.state import FailureRecord, MbusReading, MeterReading
from twin.meter.tariff import Tariff
from twin.metering import program_from_config

FIXTURES = Path(__file__).parent / "fixtures"
REGISTERS = ("1-0:1.8.1", "1-0:1.8.2", "1-0:2.8.1", "1-0:2.8.2")
# The energy registers as dsmr_parser names them in a parsed telegram.
P1_FIELDS = {
    "1-0:1.8.1": "ELECTRICITY_USED_TARIFF_1",
    "1-0:1.8.2": "ELECTRICITY_USED_TARIFF_2",
    "1-0:2.8.1": "ELECTRICITY_DELIVERED_TARIFF_1",
    "1-0:2.8.2": "ELECTRICITY_DELIVERED_TARIFF_2",
}
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
    # No web console: a test never binds a fixed port (tests/unit/test_web.py binds port 0).
    config = Config(
        load=LoadConfig(appliances=False),
        pv=PvConfig(enabled=False),
        p2=P2Config(enabled=False),
        web=WebConfig(endpoint="none"),
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


def free_port() -> int:
    """A TCP port on loopback that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def dsmr_twin(*args: str) -> str:
    """Run the `dsmr-twin` command as an operator would; its standard output."""
    return subprocess.run(
        [sys.executable, "-m", "twin", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout


def read_telegram(link: Path, timeout_s: float) -> Telegram | None:
    """The first whole P1 telegram on a pty link, parsed by dsmr_parser with its CRC checked."""
    parser = TelegramParser(telegram_specifications.V4, apply_checksum_validation=True)
    buffer = TelegramBuffer()
    deadline = time.monotonic() + timeout_s
    with serial.Serial(str(link), 115200, timeout=0.1) as port:
        while time.monotonic() < deadline:
            buffer.append(port.read(4096).decode("ascii"))
            for text in buffer.get_all():
                return parser.parse(text)
    return None
