"""The real twin as a process: P1 through a pty read by dsmr_parser, control over the socket,
kill -9 and SIGTERM restarts against the SQLite state."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import termios
import time
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path

import pytest
import serial
from dsmr_parser import telegram_specifications
from dsmr_parser.clients.telegram_buffer import TelegramBuffer
from dsmr_parser.objects import Telegram
from dsmr_parser.parsers import TelegramParser

from tests.e2e.crash_loop import CrashLoop
from tests.support import REGISTERS, free_port
from twin.store import Store

STARTUP_S = 20.0
CRASH_ROUNDS = 20  # about 3 s each; the benchmark runs hundreds


class RunningTwin:
    def __init__(self, state_dir: Path, *args: str) -> None:
        self.state_dir = state_dir
        if "--p3" not in args:  # P3 is on by default (loopback 4059): never bind it in tests
            args = (*args, "--p3", "none")
        if "--web" not in args:  # nor the web console's (loopback 8059)
            args = (*args, "--web", "none")
        command = [sys.executable, "-m", "twin", "run", "--state-dir", str(state_dir), *args]
        self.process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
        self._wait_for_control()

    def _wait_for_control(self) -> None:
        # A killed twin leaves its socket file behind: wait until a new one answers.
        deadline = time.monotonic() + STARTUP_S
        while True:
            with socket.socket(socket.AF_UNIX) as probe:
                try:
                    probe.connect(str(self.state_dir / "control.sock"))
                    return
                except OSError:
                    pass
            if self.process.poll() is not None:
                raise AssertionError(f"twin exited: {self.process.stderr.read()}")  # type: ignore[union-attr]
            if time.monotonic() > deadline:
                raise AssertionError("the control socket did not answer")
            time.sleep(0.05)

    def _wait_for(self, path: Path) -> None:
        deadline = time.monotonic() + STARTUP_S
        while not path.exists():
            if self.process.poll() is not None:
                raise AssertionError(f"twin exited: {self.process.stderr.read()}")  # type: ignore[union-attr]
            if time.monotonic() > deadline:
                raise AssertionError(f"{path} did not appear")
            time.sleep(0.05)

    def ctl(self, *args: str) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "twin", "ctl", "--state-dir", str(self.state_dir), *args],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        return result.stdout

    def status(self) -> dict[str, object]:
        return json.loads(self.ctl("status", "--json"))  # type: ignore[no-any-return]

    def telegrams(self, count: int) -> list[Telegram]:
        """Read `count` telegrams through the pty as a P1 reader would, CRC checked."""
        link = self.state_dir / "p1"
        self._wait_for(link)
        parser = TelegramParser(telegram_specifications.V4, apply_checksum_validation=True)
        buffer = TelegramBuffer()
        found: list[Telegram] = []
        deadline = time.monotonic() + 30
        with serial.Serial(str(link), 115200, timeout=0.2) as port:
            while len(found) < count and time.monotonic() < deadline:
                buffer.append(port.read(4096).decode("ascii"))
                found.extend(parser.parse(t) for t in buffer.get_all())
        assert len(found) >= count, f"only {len(found)} telegrams"
        return found[:count]

    def kill(self, signum: int) -> int:
        self.process.send_signal(signum)
        return self.process.wait(timeout=30)


@pytest.fixture
def state_dir() -> Iterator[Path]:
    # Short path: the control socket path must fit in sockaddr_un.
    with tempfile.TemporaryDirectory(prefix="twin-e2e-") as path:
        yield Path(path)


@pytest.fixture
def twin(state_dir: Path) -> Iterator[RunningTwin]:
    # Speed 60: a 10 s slot is 167 ms of real time, wide enough for a loaded CI machine.
    # No P3: the default would listen on 4059, which parallel test runs would share.
    running = RunningTwin(state_dir, "--speed", "60", "--p1", "pty://p1", "--p3", "none")
    yield running
    if running.process.poll() is None:
        running.kill(signal.SIGKILL)


def test_p1_telegrams_through_a_pty_are_accepted_by_dsmr_parser(twin: RunningTwin) -> None:
    telegrams = twin.telegrams(3)
    spec_fields = {entry["value_name"] for entry in telegram_specifications.V4["objects"]}
    for telegram in telegrams:
        present = {name for name, _ in telegram}
        # Every DSMR 4.2.2 field of the V4 specification, gas on channel 1 included.
        mbus_fields = {"DEVICE_TYPE", "EQUIPMENT_IDENTIFIER_GAS", "HOURLY_GAS_METER_READING"}
        assert spec_fields - mbus_fields <= present
        assert mbus_fields <= {name for name, _ in telegram.MBUS_DEVICES[0]}
        assert telegram.P1_MESSAGE_HEADER.value == "42"
        assert telegram.MBUS_DEVICES[0].DEVICE_TYPE.value == 3
    times = [t.P1_MESSAGE_TIMESTAMP.value for t in telegrams]
    assert [(b - a).total_seconds() for a, b in pairwise(times)] == [10.0, 10.0]


def test_p1_pty_is_a_115200_line_paced_in_real_time(twin: RunningTwin) -> None:
    link = twin.state_dir / "p1"
    twin._wait_for(link)
    fd = os.open(link, os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK)
    try:
        speeds = termios.tcgetattr(fd)[4:6]
    finally:
        os.close(fd)
    assert speeds == [termios.B115200, termios.B115200]  # P1 §5.1, as a reader's tcgetattr sees
    line = twin.status()["ports"]["p1_line"]  # type: ignore[index]
    assert {k: line[k] for k in ("baudrate", "paced")} == {"baudrate": 115200, "paced": True}
    assert {"telegrams_cut", "bytes_cut"} <= set(line)


def test_ctl_status_and_commands(twin: RunningTwin) -> None:
    twin.ctl("load", "--watts", "4000")
    twin.ctl("message", "--code", "1234", "--text", "Hallo P1")
    status = twin.status()
    assert set(REGISTERS) <= set(status)
    assert status["tariff"] in (1, 2)
    assert status["power_failures"] == 0
    assert "p3" not in status["ports"]  # type: ignore[operator]  # --p3 none
    telegram = twin.telegrams(1)[0]
    assert telegram.TEXT_MESSAGE.value == "48616C6C6F205031"  # hex of "Hallo P1"
    assert str(telegram.CURRENT_ELECTRICITY_USAGE.value) == "4.000"
    assert "1-0:1.8.1" in twin.ctl("status")


def test_kill_9_at_random_moments_loses_no_published_value_event_or_counter(
    state_dir: Path,
) -> None:
    """Crash loop at speed 3600 with P1, P3, control and tamper readers (tests/e2e/crash_loop.py
    says what each restart must show); bench/bench_crash_loop.py runs hundreds of rounds."""
    loop = CrashLoop(state_dir, seed=20261207, cli_share=0.0)  # the CLI checks the last
    try:
        for _ in range(CRASH_ROUNDS):
            loop.round()
        loop.round_start_only()
    finally:
        loop.close()
    assert loop.restarts == CRASH_ROUNDS + 1
    # Every reader had its turn, so each kind of published value was checked.
    assert {"p1", "p3", "status", "tamper"} <= set(loop.seen.reads), loop.seen.reads


def test_sigterm_checkpoints_and_exits_cleanly(twin: RunningTwin) -> None:
    twin.ctl("load", "--watts", "2000")
    before = twin.status()
    assert twin.kill(signal.SIGTERM) == 0
    store = Store.open(twin.state_dir)
    try:
        checkpoint = store.load()
    finally:
        store.close()  # its writer thread and connections go before the directory does
    assert checkpoint is not None
    for code in REGISTERS:
        assert checkpoint.state.wh(code) / 1000 >= float(before[code])  # type: ignore[arg-type]


def test_start_up_log_says_where_each_port_is_and_how_to_reach_it(state_dir: Path) -> None:
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    log = state_dir / "twin.log"
    command = [sys.executable, "-m", "twin", "run", "--state-dir", str(state_dir)]
    command += ["--p3", endpoint, "--p1", "pty://p1"]
    with log.open("w") as stderr:
        process = subprocess.Popen(command, stderr=stderr)
    try:
        deadline = time.monotonic() + STARTUP_S
        while "control socket" not in log.read_text():
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    text = log.read_text()
    assert f"P1 telegrams: pty {state_dir / 'p1'}" in text
    assert f"P3 DLMS/COSEM: {endpoint}" in text
    assert f"dsmr-twin keys show --state-dir {state_dir}" in text
    assert f"control socket {state_dir / 'control.sock'}" in text
    assert f"dsmr-twin ctl --state-dir {state_dir} status" in text


def test_bad_config_key_stops_start_up_with_a_clear_message(state_dir: Path) -> None:
    config = state_dir / "twin.toml"
    config.write_text("[meter]\nphase = 3\n")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "twin",
            "run",
            "--config",
            str(config),
            "--state-dir",
            str(state_dir),
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env={**os.environ},
    )
    assert result.returncode == 2
    assert "unknown key 'meter.phase'" in result.stderr
    assert not (state_dir / "meter.sqlite3").exists()  # nothing started


def test_ctl_screenshot_saves_the_display_as_png(twin: RunningTwin) -> None:
    from PIL import Image

    twin.ctl("button", "--press", "long")  # service mode
    path = twin.state_dir / "shot.png"
    twin.ctl("screenshot", str(path))
    with Image.open(path) as image:
        assert image.size == (128, 64)
        lit = bin(int.from_bytes(image.convert("1").tobytes(), "big")).count("1")
        assert lit > 200  # flags, symbols and a register value are drawn


def test_systemd_gets_ready_watchdog_pings_and_stopping(state_dir: Path) -> None:
    """Type=notify with WatchdogSec: the real process reads $NOTIFY_SOCKET/$WATCHDOG_USEC."""
    address = state_dir / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as systemd:
        systemd.bind(str(address))
        systemd.settimeout(STARTUP_S)
        environment = {**os.environ, "NOTIFY_SOCKET": str(address), "WATCHDOG_USEC": "200000"}
        command = [sys.executable, "-m", "twin", "run", "--state-dir", str(state_dir)]
        # P3 on a free port of its own: a fixed default port could be another test's.
        command += ["--speed", "60", "--p3", f"tcp://127.0.0.1:{free_port()}"]
        process = subprocess.Popen(command, stderr=subprocess.DEVNULL, env=environment)
        try:
            assert systemd.recv(64) == b"READY=1"
            started = time.monotonic()
            pings = [systemd.recv(64) for _ in range(5)]
            elapsed = time.monotonic() - started
        finally:
            process.send_signal(signal.SIGTERM)
            assert process.wait(30) == 0
        assert pings == [b"WATCHDOG=1"] * 5
        assert elapsed < 5 * 0.2  # every WatchdogSec / 2 (0.1 s), a loaded machine allowed
        messages = []
        systemd.settimeout(0.2)
        with contextlib.suppress(TimeoutError):
            while True:
                messages.append(systemd.recv(64))
        assert messages[-1] == b"STOPPING=1"
