"""The control socket as an authority: every field typed and bounded, the socket itself hardened.

All over the real Unix socket of a real ControlServer on a real store; the meter keeps metering.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import socket
import tempfile
import threading
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from tests.support import amsterdam, steady_config
from twin import cli
from twin.clock import ManualClock
from twin.config import Config
from twin.control import ControlServer, call
from twin.metering import Meter
from twin.p1.telegram import TelegramEncoder
from twin.store import Store


class Running:
    """A ControlServer for a three-phase 230 V, 100 A meter (69 kW) on a real socket."""

    def __init__(self, config: Config | None = None, idle_timeout_s: float = 5.0) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="twin-"))  # Unix socket paths are short
        self.path = self.dir / "control.sock"
        self.clock = ManualClock(amsterdam(2026, 11, 23, 12, 0))
        self.meter = Meter(
            config or steady_config(), self.clock, Store.open(self.dir), random.Random(1)
        )
        self.server = ControlServer(self.meter, self.path, idle_timeout_s=idle_timeout_s)

    async def request(self, request: dict[str, Any]) -> dict[str, Any]:
        """One raw request line (json.dumps writes NaN and Infinity as the CLI would)."""
        return await self.line(json.dumps(request).encode() + b"\n")

    async def line(self, raw: bytes) -> dict[str, Any]:
        reader, writer = await asyncio.open_unix_connection(str(self.path))
        try:
            writer.write(raw)
            await writer.drain()
            answer = await asyncio.wait_for(reader.readline(), 5)
        finally:
            writer.close()
        assert answer, f"the twin closed without answering {raw[:60]!r}"
        parsed: dict[str, Any] = json.loads(answer)
        return parsed


@contextlib.asynccontextmanager
async def running(
    config: Config | None = None, idle_timeout_s: float = 5.0
) -> AsyncIterator[Running]:
    run = Running(config, idle_timeout_s)
    task = asyncio.create_task(run.server.run())
    for _ in range(500):
        if run.path.exists():
            break
        await asyncio.sleep(0.01)
    try:
        yield run
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


BAD_FIELDS = [
    # --watts nan stopped metering; 1e30 made 1-0:1.8.1 2.3e27 kWh for good (issue 10).
    ({"cmd": "load", "watts": float("nan")}, "watts"),
    ({"cmd": "load", "watts": float("inf")}, "watts"),
    ({"cmd": "load", "watts": 1e30}, "watts"),
    ({"cmd": "load", "watts": 1e9}, "watts"),  # 150 kW showed as 50.000 kW (issue 9)
    ({"cmd": "load", "watts": -69_001}, "watts"),
    ({"cmd": "load", "watts": "3000"}, "watts"),
    ({"cmd": "load", "watts": True}, "watts"),
    ({"cmd": "load"}, "watts"),
    ({"cmd": "power-failure", "seconds": float("nan")}, "seconds"),
    ({"cmd": "power-failure", "seconds": float("inf")}, "seconds"),
    ({"cmd": "power-failure", "seconds": 1e308}, "seconds"),
    ({"cmd": "power-failure", "seconds": 0}, "seconds"),
    ({"cmd": "power-failure", "seconds": [1]}, "seconds"),
    ({"cmd": "sag", "phase": 1, "seconds": float("nan")}, "seconds"),
    ({"cmd": "sag", "phase": 1, "seconds": 1e308}, "seconds"),
    ({"cmd": "sag", "phase": 1.5}, "phase"),
    ({"cmd": "sag", "phase": True}, "phase"),
    ({"cmd": "swell", "phase": 4}, "phase"),
    ({"cmd": "swell", "phase": "1"}, "phase"),
    ({"cmd": "tamper", "code": 1e400}, "code"),
    ({"cmd": "tamper", "code": 40.0}, "code"),
    ({"cmd": "tamper", "code": 48}, "code"),
    ({"cmd": "admin", "state": 3}, "state"),
    ({"cmd": "admin", "state": False}, "state"),
    ({"cmd": "weather", "cloudiness": 1.5}, "cloudiness"),
    ({"cmd": "weather", "cloudiness": float("nan")}, "cloudiness"),
    ({"cmd": "weather"}, "cloudiness"),
    ({"cmd": "message", "code": 12345678}, "code"),
    ({"cmd": "message", "code": "123456789"}, "code"),
    ({"cmd": "message", "code": "12a"}, "code"),
    ({"cmd": "message", "text": "é"}, "text"),
    ({"cmd": "message", "text": "x" * 1025}, "text"),
    ({"cmd": "message", "text": None}, "text"),
    ({"cmd": "status", "verbose": True}, "verbose"),  # no field goes unchecked
]


@pytest.mark.parametrize(("request_", "field"), BAD_FIELDS)
async def test_a_bad_field_is_a_typed_error_naming_the_field_and_range(
    request_: dict[str, Any], field: str
) -> None:
    async with running() as run:
        before = (await run.request({"cmd": "status"}))["result"]
        answer = await run.request(request_)
        assert answer["ok"] is False
        assert answer["kind"] == "field"
        assert f"'{field}'" in answer["error"]
        # Nothing changed, and the meter goes on metering.
        after = (await run.request({"cmd": "status"}))["result"]
        assert after["load_override_w"] == before["load_override_w"]
        assert after["power_failures"] == before["power_failures"]
        assert after["message"] == before["message"]


async def test_the_range_is_named_and_the_meter_keeps_metering() -> None:
    async with running() as run:
        answer = await run.request({"cmd": "load", "watts": float("nan")})
        assert "a number from -69000 to 69000" in answer["error"]
        assert (await run.request({"cmd": "load", "watts": 3000}))["ok"]
        await run.clock.advance(3600)
        status = (await run.request({"cmd": "status"}))["result"]
        assert status["1-0:1.8.2"] == 3.0


async def test_the_full_capacity_of_the_meter_is_accepted_and_fits_p1() -> None:
    # DSMR-M 4.3.38: a polyphase meter carries Imax >= 100 A; 3 x 100 A x 230 V = 69 kW.
    async with running() as run:
        assert (await run.request({"cmd": "load", "watts": 69_000}))["ok"]
        reading = run.meter.publish()
        telegram = TelegramEncoder("TWN", "X").encode(reading).decode()
        assert "1-0:1.7.0(69.000*kW)" in telegram
        assert "1-0:21.7.0(23.000*kW)" in telegram


async def test_capacity_follows_the_configured_meter() -> None:
    config = steady_config(phases=1)
    config = replace(config, meter=replace(config.meter, max_current_a=80.0))
    async with running(config) as run:
        answer = await run.request({"cmd": "load", "watts": 18_401})
        assert "a number from -18400 to 18400" in answer["error"]
        answer = await run.request({"cmd": "sag", "phase": 2})
        assert answer["kind"] == "field"
        assert "a whole number from 1 to 1" in answer["error"]


async def test_the_spec_example_message_code_is_accepted() -> None:
    # P1 §5.13 example: 0-0:96.13.1(3031203631203831) is "01 61 81" (8 characters).
    async with running() as run:
        answer = await run.request({"cmd": "message", "code": "01 61 81", "text": "Hallo"})
        assert answer["ok"], answer
        telegram = TelegramEncoder("TWN", "X").encode(run.meter.publish()).decode()
        assert "0-0:96.13.1(3031203631203831)\r\n" in telegram


@pytest.mark.parametrize(
    ("raw", "kind"),
    [
        (b'{"cmd": "st\xffatus"}\n', "encoding"),
        (b"{not json\n", "syntax"),
        (b"[" * 40_000 + b"\n", "syntax"),
        (b'{"cmd": "load", "watts": 1' + b"0" * 5000 + b"}\n", "syntax"),
        (b"[1, 2]\n", "request"),
        (b'{"cmd": 7}\n', "request"),
        (b'{"cmd": "nope"}\n', "request"),
    ],
)
async def test_bad_lines_get_a_typed_answer(raw: bytes, kind: str) -> None:
    async with running() as run:
        answer = await run.line(raw)
        assert answer["ok"] is False
        assert answer["kind"] == kind, answer
        assert (await run.request({"cmd": "status"}))["ok"]


async def test_an_over_long_line_is_answered_then_the_connection_closes() -> None:
    async with running() as run:
        reader, writer = await asyncio.open_unix_connection(str(run.path))
        writer.write(b'{"cmd": "message", "text": "' + b"x" * 200_000 + b'"}\n')
        answer = json.loads(await asyncio.wait_for(reader.readline(), 5))
        assert answer["kind"] == "too-long"
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()
        assert (await run.request({"cmd": "status"}))["ok"]


async def test_an_idle_connection_is_closed_after_the_read_timeout() -> None:
    async with running(idle_timeout_s=0.2) as run:
        reader, writer = await asyncio.open_unix_connection(str(run.path))
        # The server ends the connection by itself; the guard only keeps a failure short.
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()


def _mute_twin(path: Path) -> threading.Thread:
    """A listener that accepts one request and hangs up without answering."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(1)

    def serve() -> None:
        connection, _ = listener.accept()
        connection.recv(1000)
        connection.close()
        listener.close()

    thread = threading.Thread(target=serve)
    thread.start()
    return thread


def test_ctl_reports_a_twin_that_hangs_up_without_a_traceback(
    capsys: pytest.CaptureFixture[str],
) -> None:
    state = Path(tempfile.mkdtemp(prefix="twin-"))
    thread = _mute_twin(state / "control.sock")
    code = cli.main(["ctl", "--state-dir", str(state), "status"])
    thread.join(5)
    assert code != 0
    err = capsys.readouterr().err
    assert "closed the connection without answering" in err
    assert "Traceback" not in err


async def test_call_reports_a_twin_that_hangs_up() -> None:
    state = Path(tempfile.mkdtemp(prefix="twin-"))
    thread = _mute_twin(state / "control.sock")
    from twin.control import ControlError

    with pytest.raises(ControlError, match="without answering"):
        await call(state / "control.sock", {"cmd": "status"})
    await asyncio.to_thread(thread.join, 5)


EXTENSION_BAD_FIELDS = [
    # gas clock drift 1e308 overflowed timedelta inside the handler; NaN broke the gas clock.
    ({"cmd": "gas", "clock_drift_s": float("nan")}, "'clock_drift_s' must be"),
    ({"cmd": "gas", "clock_drift_s": 1e308}, "'clock_drift_s' must be"),
    ({"cmd": "gas", "clock_drift_s": True}, "'clock_drift_s' must be"),
    ({"cmd": "gas", "battery_low": 1}, "'battery_low' must be"),
    ({"cmd": "gas", "fraud": "on"}, "'fraud' must be"),
    ({"cmd": "gas", "attached": None}, "'attached' must be"),
    ({"cmd": "mbus", "action": "install", "channel": 1.0}, "'channel' must be"),
    ({"cmd": "mbus", "action": "deinstall", "channel": 5}, "'channel' must be"),
    ({"cmd": "mbus", "action": "reboot"}, "'action' must be"),
    ({"cmd": "mbus", "action": "key", "default_key": 5}, "'default_key' must be"),
    ({"cmd": "mbus", "action": "key", "default_key": "00" * 15}, "'default_key' must be"),
    (
        {"cmd": "mbus", "action": "key", "default_key": "00" * 16, "user_key": "xy"},
        "'user_key' must be",
    ),
    ({"cmd": "request", "raised": 1}, "'raised' must be"),
    ({"cmd": "request"}, "'raised' is required"),
    ({"cmd": "wakeup", "kind": "fax", "sender": "+31612345678"}, "'kind' must be"),
    ({"cmd": "wakeup", "kind": "sms", "sender": "1" * 21}, "'sender' must be"),
    ({"cmd": "wakeup", "kind": "sms", "sender": 'a"b'}, "'sender' must be"),
    ({"cmd": "wakeup", "kind": "sms", "sender": ""}, "'sender' must be"),
    ({"cmd": "button", "press": "double"}, "'press' must be"),
    ({"cmd": "screenshot", "path": "/tmp/x.png"}, "unknown field 'path'"),
]


async def test_the_commands_of_every_port_check_their_fields(tmp_path: Path) -> None:
    from twin.app import build
    from twin.config import P1Config, P3Config

    config = replace(
        Config(),
        p1=P1Config(request="simulated"),
        p3=P3Config(endpoint="tcp://127.0.0.1:0"),
    )
    twin = build(config, tmp_path)
    try:
        for request, error in EXTENSION_BAD_FIELDS:
            answer = await twin.control.dispatch(json.dumps(request).encode())
            assert answer["ok"] is False, request
            assert answer.get("kind") == "field", (request, answer)
            assert error in answer["error"], (request, answer)
        good = {"cmd": "gas", "clock_drift_s": 120, "battery_low": True}
        answer = await twin.control.dispatch(json.dumps(good).encode())
        assert answer["ok"], answer
        assert (await twin.control.dispatch(b'{"cmd": "request", "raised": true}'))["ok"]
    finally:
        twin.store.close()
