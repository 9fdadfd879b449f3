"""P2 end to end: a twin process whose M-Bus is a pty, and a `dsmr-twin gasmeter` process on it.

The twin creates the pty pair (`[p2] bus = "pty://mbus"`: it keeps the master side and links
`STATE/mbus` to the slave side); the gas meter opens that link like a serial device at 2400
8E1 and starts unconfigured at address 0. The test installs it (`ctl mbus install`, as P3
slave_install would), keys it with the CLI (`ctl mbus key`, its Default key given to both), runs
several simulated days across the end of summer time, reads P1 with pyserial + dsmr_parser,
and takes the gas meter off the bus (stops its process) and back (starts it again).
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import serial
from dsmr_parser import telegram_specifications
from dsmr_parser.clients.telegram_buffer import TelegramBuffer
from dsmr_parser.parsers import TelegramParser

from hardware.mbus_pty import PtyBusLink
from twin.control import SOCKET_NAME, call
from twin.meter.events import EventLog
from twin.p2.messages import Message, ReqUd2, RspUd, SndNke, decode_message, encode_message
from twin.p2.readout import summarise
from twin.store import Store

SPEED = 21_600  # six meter hours per real second
# Summer time ends on 25 October 01:00 UTC, 75 meter hours (12.5 s) after the start: time
# enough to start both processes, install and key the gas meter before it.
START = "2026-10-22T00:00:00+02:00"
DST_CHANGE = datetime(2026, 10, 25, 1, 0, tzinfo=UTC)
DEFAULT_KEY = "00112233445566778899AABBCCDDEEFF"
EQUIPMENT_ID = "G0099000000000019"
COMM_ERROR_BIT = 1 << 16  # P3 §4.2.4: communication error M-Bus channel 1
WAIT_S = 30.0
FRAUD_BIT_G, BATTERY_BIT_G = 0x40, 0x04  # P2 §6.3.3 status byte
GAS_LINE = re.compile(r"0-1:24\.2\.1\((\d{12})([SW])\)\((\d{5}\.\d{3})\*m3\)")


def wait_until(check: Callable[[], Any], what: str, timeout_s: float = WAIT_S) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.1)
    if timeout_s < 1:
        return None  # a short look, the caller tries again
    raise AssertionError(f"timed out waiting for {what}")


class Processes:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.twin_dir, self.gas_dir = root / "twin", root / "gas"
        self.gas_log = root / "gas.log"
        config = root / "twin.toml"
        config.write_text(
            f'[clock]\nspeed = {SPEED}\nstart = "{START}"\n'
            '[p2]\nbus = "pty://mbus"\ninstall_window_s = 0\n'
            # P1 only while the test reads it: at this speed a telegram is due every 0.7 ms
            # and would crowd the twin's event loop for days of meter time.
            '[p1]\nrequest = "simulated"\n'
            # No P3: the default would listen on 4059, which parallel test runs would share.
            '[p3]\nendpoint = "none"\n'
            '[web]\nendpoint = "none"\n'  # nor the web console's 8059
        )
        self.twin = self._spawn(
            root / "twin.log", "run", "--config", str(config), "--state-dir", str(self.twin_dir)
        )
        wait_until((self.twin_dir / "control.sock").exists, "the control socket")
        wait_until((self.twin_dir / "mbus").exists, "the M-Bus pty link")
        self.gas: subprocess.Popen[str] | None = None

    @staticmethod
    def _spawn(log: Path, *args: str) -> subprocess.Popen[str]:
        # Logs go to files: a pipe nobody reads would block a process once it fills up.
        command = [sys.executable, "-m", "twin", *args]
        with log.open("a") as stderr:
            return subprocess.Popen(command, stderr=stderr, text=True)

    def start_gas(self) -> None:
        self.gas_log.write_text("")
        self.gas = self._spawn(
            self.gas_log,
            "gasmeter",
            "--port",
            str(self.twin_dir / "mbus"),
            "--state-dir",
            str(self.gas_dir),
            "--default-key",
            DEFAULT_KEY,
            "--equipment-id",
            EQUIPMENT_ID,
            "--speed",
            str(SPEED),
            "--seed",
            "7",
        )

    def wait_for_gas(self) -> None:
        """Until the gas meter process listens on the bus (it logs its link)."""
        gas = self.gas
        assert gas is not None

        def listening() -> bool:
            assert gas.poll() is None, self.gas_log.read_text()
            return " on M-Bus uart " in self.gas_log.read_text()

        wait_until(listening, "the gas meter to open its port")

    def stop_gas(self) -> None:
        assert self.gas is not None
        self.gas.send_signal(signal.SIGTERM)
        assert self.gas.wait(timeout=30) == 0
        self.gas = None

    def ctl(self, *args: str) -> str:
        return subprocess.run(
            [sys.executable, "-m", "twin", "ctl", "--state-dir", str(self.twin_dir), *args],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout

    def status(self) -> dict[str, Any]:
        # In-process over the control socket: polling with `ctl` processes would eat the CPU
        # the twin needs at this speed (a real 0.1 s is 24 meter minutes).
        request = {"cmd": "status"}
        return asyncio.run(call(self.twin_dir / SOCKET_NAME, request))

    def p2(self) -> dict[str, Any]:
        return self.status()["ports"]["p2"]  # type: ignore[no-any-return]

    def meter_time(self) -> datetime:
        return datetime.fromisoformat(self.status()["meter_time"])

    def mbus_events(self) -> list[tuple[datetime, int]]:
        store = Store.open(self.twin_dir)
        try:
            return [(e.when, e.code) for e in store.events(EventLog.MBUS)]
        finally:
            store.close()

    def alarm_register(self) -> int:
        store = Store.open(self.twin_dir)
        try:
            checkpoint = store.load()
            assert checkpoint is not None
            return checkpoint.state.alarm_register
        finally:
            store.close()

    def telegrams(self, count: int) -> list[str]:
        buffer = TelegramBuffer()
        found: list[str] = []
        deadline = time.monotonic() + WAIT_S
        with serial.Serial(str(self.twin_dir / "p1"), 115200, timeout=0.2) as port:
            while len(found) < count and time.monotonic() < deadline:
                buffer.append(port.read(4096).decode("ascii"))
                found.extend(buffer.get_all())
        assert len(found) >= count
        return found[:count]

    def close(self) -> None:
        for process in (self.gas, self.twin):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait(timeout=30)


@pytest.fixture
def procs() -> Iterator[Processes]:
    with tempfile.TemporaryDirectory(prefix="p2-e2e-") as root:  # short: socket path limit
        running = Processes(Path(root))
        try:
            yield running
        finally:
            running.close()


def test_a_gas_meter_process_on_a_pty_is_installed_keyed_read_and_missed(
    procs: Processes,
) -> None:
    procs.start_gas()
    procs.wait_for_gas()

    def installed() -> list[dict[str, Any]]:
        # As P3 slave_install would; again until the gas meter's process is up and answers.
        procs.ctl("mbus", "install")
        return wait_until(lambda: procs.p2()["channels"], "a scan", 0.5) or []

    channels = wait_until(installed, "installation on channel 1")
    assert (channels[0]["channel"], channels[0]["address"], channels[0]["id"]) == (1, 1, "00000019")
    assert channels[0]["key_status"] == 1  # User key generated at installation, not sent yet
    procs.ctl("mbus", "key", "--channel", "1", "--default-key", DEFAULT_KEY)
    wait_until(lambda: procs.p2()["channels"][0]["key_status"] == 4, "the key in use")
    keyed_at = procs.meter_time()
    assert keyed_at < DST_CHANGE

    # Several simulated days, across the end of summer time.
    wait_until(lambda: procs.meter_time() > keyed_at + timedelta(days=3), "three days")
    readings = procs.p2()["readings"]
    assert readings >= 60  # hourly

    parser = TelegramParser(telegram_specifications.V4, apply_checksum_validation=True)
    procs.ctl("request", "on")
    for text in procs.telegrams(3):
        telegram = parser.parse(text)
        device = telegram.MBUS_DEVICES[0]
        assert device.DEVICE_TYPE.value == 3
        assert device.EQUIPMENT_IDENTIFIER_GAS.value == EQUIPMENT_ID.encode().hex().upper()
        assert "0-1:24.1.0(003)" in text
        stamp, dst, _volume = GAS_LINE.search(text).groups()  # type: ignore[union-attr]
        assert dst == "W"  # winter time now
        assert stamp.endswith("0000")  # a whole hour
        age = telegram.P1_MESSAGE_TIMESTAMP.value - device.HOURLY_GAS_METER_READING.datetime
        # Read at HH:05 each hour; at this speed a real 0.1 s is 36 meter minutes, and a P1
        # telegram due every 0.5 ms crowds the twin's loop, so allow a few hours (the unit
        # tests pin the exact hour on a manual clock).
        assert timedelta(0) <= age <= timedelta(hours=4)
        assert device.HOURLY_GAS_METER_READING.value > 1234
    procs.ctl("request", "off")

    events = procs.mbus_events()
    recent = procs.p2()["channels"][0]["recent_syncs"]
    syncs = [datetime.fromisoformat(t) for t in recent]
    assert any(DST_CHANGE <= t < DST_CHANGE + timedelta(minutes=30) for t in syncs)
    assert [code for _, code in events][:1] == [105]

    # Off the bus: communication error 100 and its alarm bit; back on: 101.
    procs.stop_gas()
    wait_until(lambda: 100 in [c for _, c in procs.mbus_events()], "event 100")
    assert procs.alarm_register() & COMM_ERROR_BIT
    procs.start_gas()
    procs.wait_for_gas()
    wait_until(lambda: 101 in [c for _, c in procs.mbus_events()], "event 101")
    codes = [c for _, c in procs.mbus_events()]
    assert codes.index(101) > codes.index(100)
    assert procs.twin.poll() is None


async def test_a_gasmeter_process_is_driven_over_its_own_control_socket() -> None:
    with tempfile.TemporaryDirectory(prefix="p2-gas-") as name:  # short: socket path limit
        root = Path(name)
        bus = PtyBusLink(root / "mbus")  # the E meter's end; the gas meter opens the link
        await bus.open()
        log = root / "gas.log"
        gas = Processes._spawn(
            log, "gasmeter", "--port", str(root / "mbus"), "--state-dir", str(root / "gas")
        )
        try:
            await _drive_standalone_gas_meter(root / "gas", bus, gas, log)
        finally:
            if gas.poll() is None:
                gas.kill()
                gas.wait(timeout=30)
            await bus.close()


async def _exchange(bus: PtyBusLink, request: Message) -> bytes:
    bus.discard_input()
    await bus.send(encode_message(request))
    reply = b""
    while data := await bus.receive(0.5):  # the whole answer, or nothing in 0.5 s
        reply += data
    return reply


async def _drive_standalone_gas_meter(
    state: Path, bus: PtyBusLink, gas: subprocess.Popen[str], log: Path
) -> None:
    socket = state / SOCKET_NAME

    async def ctl(**request: Any) -> Any:
        return await call(socket, {"cmd": "gas", **request})

    deadline = time.monotonic() + WAIT_S
    while not socket.exists() or " on M-Bus uart " not in log.read_text():
        assert gas.poll() is None, log.read_text()
        assert time.monotonic() < deadline, log.read_text()
        await asyncio.sleep(0.05)
    status = await call(socket, {"cmd": "status"})
    assert (status["kind"], status["state"], status["address"]) == ("gasmeter", "unconfigured", 0)
    assert status["attached"] is True

    drifted = await ctl(fraud=True, clock_drift_s=120)
    assert drifted["status"] & FRAUD_BIT_G
    assert abs(datetime.fromisoformat(drifted["clock"]) - datetime.now(UTC)) > timedelta(
        seconds=100
    )
    answer = decode_message(await _exchange(bus, ReqUd2(0)))
    assert isinstance(answer, RspUd)
    assert summarise(answer.records).status & FRAUD_BIT_G  # P2 §6.3.3 bit 6 on the wire

    assert (await ctl(attached=False))["attached"] is False
    assert await _exchange(bus, SndNke(0)) == b""  # off the bus: nothing answers
    await ctl(attached=True)
    assert await _exchange(bus, SndNke(0)) == b"\xe5"

    def run_ctl(*args: str) -> str:
        command = [sys.executable, "-m", "twin", "ctl", "--state-dir", str(state), *args]
        return subprocess.run(
            command, capture_output=True, text=True, timeout=30, check=True
        ).stdout

    printed = await asyncio.to_thread(run_ctl, "status")
    assert "gas meter G0099000000000019" in printed
    battery = json.loads(await asyncio.to_thread(run_ctl, "gas", "--battery-low", "on"))
    assert battery["status"] & BATTERY_BIT_G
    gas.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(gas.wait, 30) == 0
    assert not socket.exists()
