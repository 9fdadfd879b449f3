"""The systemd units: `systemd-analyze verify` in a throwaway root, the hardening they promise,
and the Type=notify / watchdog contract played against the real twin.

`verify --root` resolves ExecStart= inside the root, so a scratch executable at the unit's
own path (/opt/dsmr-twin/venv/bin/dsmr-twin) lets the unchanged unit files be checked for real
without installing anything; a copy of the host's unit directory supplies the targets.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.deploy.conftest import (
    SYSTEMD_DIR,
    exec_start_binary,
    make_systemd_root,
    problems,
    systemd_analyze,
    verify_units,
)
from twin.app import TICK_S
from twin.cli_common import EXIT_CONFIG, EXIT_STATE_DIR_BUSY, EXIT_STORAGE
from twin.fleet.head import STOP_GRACE_S, WORKER_STALE_S
from twin.fleet.spec import resolve_spec
from twin.fleet.worker import BEAT_S

UNITS = ("dsmr-twin.service", "dsmr-twin@.service")
FLEET_UNIT = "dsmr-twin-fleet.service"
HARDWARE_GROUPS = {"dialout", "gpio", "i2c"}
# twin/app.py MeterLoop.alive(): the core counts as alive while it ticked in this window.
LIVENESS_WINDOW_S = 10 * TICK_S + 5


def settings(name: str) -> dict[str, list[str]]:
    """Key -> values of a unit file (systemd allows a key more than once)."""
    found: dict[str, list[str]] = {}
    for line in (SYSTEMD_DIR / name).read_text().splitlines():
        if line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def seconds(value: str) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(s|min|ms)?", value)
    assert match, f"unsupported time span {value!r}"
    scale = {"s": 1.0, None: 1.0, "min": 60.0, "ms": 0.001}[match.group(2)]
    return float(match.group(1)) * scale


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A throwaway root with the units installed and a scratch executable at ExecStart."""
    systemd_analyze()
    root = make_systemd_root(tmp_path / "root")
    for name in (*UNITS, FLEET_UNIT):
        text = (SYSTEMD_DIR / name).read_text()
        (root / "etc/systemd/system" / name).write_text(text)
        binary = root / exec_start_binary(text).lstrip("/")
        binary.parent.mkdir(parents=True, exist_ok=True)
        binary.write_text("#!/bin/sh\nexit 0\n")
        binary.chmod(0o755)
    return root


def test_both_units_verify_clean(root: Path) -> None:
    result = verify_units(
        root,
        "/etc/systemd/system/dsmr-twin.service",
        "dsmr-twin@lab-1.service",
        "dsmr-twin@meter_02.service",
    )
    assert result.returncode == 0, problems(result)
    assert problems(result) == []


def test_fleet_unit_verifies_clean(root: Path) -> None:
    result = verify_units(root, f"/etc/systemd/system/{FLEET_UNIT}")
    assert result.returncode == 0, problems(result)
    assert problems(result) == []


def test_verify_is_not_vacuous(root: Path) -> None:
    """The harness sees what it must: a bad key (rc 0, a warning) and a missing binary."""
    units = root / "etc/systemd/system"
    text = (units / "dsmr-twin@.service").read_text()
    (units / "dsmr-twin@.service").write_text(text.replace("WatchdogSec=", "WatchDogSec="))
    result = verify_units(root, "dsmr-twin@lab-1.service")
    assert any("WatchDogSec" in line for line in problems(result)), problems(result)

    binary = root / exec_start_binary(text).lstrip("/")
    binary.unlink()
    result = verify_units(root, "/etc/systemd/system/dsmr-twin.service")
    assert result.returncode != 0
    assert any("is not executable" in line for line in problems(result)), problems(result)


@pytest.mark.parametrize("name", ["dsmr-twin.service", "dsmr-twin@lab-1.service", FLEET_UNIT])
def test_hardening_exposure_stays_low(root: Path, name: str) -> None:
    """systemd's own score (0 best .. 10 worst): the units stay 'OK' (below 3.0)."""
    result = subprocess.run(
        [systemd_analyze(), "security", "--offline=yes", f"--root={root}", "--threshold=30", name],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr
    assert re.search(r"Overall exposure level for \S+: \d\.\d OK", result.stdout), result.stdout[
        -500:
    ]


@pytest.mark.parametrize("name", UNITS)
def test_unit_contract(name: str) -> None:
    unit = settings(name)
    assert unit["Type"] == ["notify"]
    assert unit["NotifyAccess"] == ["main"]
    assert unit["Restart"] == ["on-failure"]
    # A configuration error exits 2 (twin/cli.py): no restart loop on it. Failing storage (a
    # full or read-only SD card) and a busy state directory may pass: they are restarted...
    assert unit["RestartPreventExitStatus"] == [str(EXIT_CONFIG)]
    assert {EXIT_STORAGE, EXIT_STATE_DIR_BUSY}.isdisjoint({EXIT_CONFIG})
    # ...for as long as it takes: no start limit that would leave the meter stopped.
    assert unit["StartLimitIntervalSec"] == ["0"]
    assert "StartLimitBurst" not in unit
    assert 5 <= seconds(unit["RestartSec"][0]) <= 60
    # The watchdog outlasts the core's liveness window, and its ping (every WatchdogSec/2)
    # comes often enough that one late event-loop turn does not kill a healthy twin.
    watchdog = seconds(unit["WatchdogSec"][0])
    assert LIVENESS_WINDOW_S < watchdog <= 120
    assert seconds(unit["TimeoutStopSec"][0]) < watchdog
    assert unit["User"] == ["dsmr-twin"]
    assert unit["Group"] == ["dsmr-twin"]
    assert "DynamicUser" not in unit
    assert set(unit["SupplementaryGroups"][0].split()) >= HARDWARE_GROUPS
    # The twin needs /dev/ttyAMA*, /dev/gpiochip*, /dev/i2c-*: no private /dev, and nothing that
    # implies a DeviceAllow= list (ProtectClock= adds char-rtc, which closes the other devices).
    for closed in ("PrivateDevices", "ProtectClock", "DevicePolicy", "DeviceAllow"):
        assert closed not in unit, closed
    assert unit["ProtectSystem"] == ["strict"]
    assert unit["NoNewPrivileges"] == ["yes"]
    assert exec_start_binary((SYSTEMD_DIR / name).read_text()) == (
        "/opt/dsmr-twin/venv/bin/dsmr-twin"
    )


def test_template_gives_each_instance_its_own_config_and_state() -> None:
    single, template = settings("dsmr-twin.service"), settings("dsmr-twin@.service")
    assert single["StateDirectory"] == ["dsmr-twin"]
    assert template["StateDirectory"] == ["dsmr-twin/%i"]
    assert single["ExecStart"][0].endswith("run --config /etc/dsmr-twin/config.toml")
    assert template["ExecStart"][0].endswith("run --config /etc/dsmr-twin/%i.toml")
    assert template["SyslogIdentifier"] == ["dsmr-twin@%i"]


# --- the sd_notify contract, against the real twin ------------------------------------------


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        sock.settimeout(0.2)
        yield sock, path


def _receive_until(sock: socket.socket, wanted: str, deadline_s: float) -> list[str]:
    messages: list[str] = []
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        try:
            messages.extend(sock.recv(4096).decode().splitlines())
        except TimeoutError:
            continue
        if wanted in messages:
            return messages
    pytest.fail(f"no {wanted} within {deadline_s} s; got {messages}")


def _exec_args(name: str, config: Path) -> list[str]:
    """ExecStart's arguments with the config path swapped for a test file."""
    command = settings(name)["ExecStart"][0].split()
    assert command[1:3] == ["run", "--config"]
    return [*command[1:3], str(config), *command[4:]]


def test_twin_speaks_the_units_notify_protocol(
    tmp_path: Path, notify_socket: tuple[socket.socket, str]
) -> None:
    """As systemd starts it: READY=1, WATCHDOG=1 while metering, STOPPING=1 and exit 0 on
    SIGTERM (no restart), its state in $STATE_DIRECTORY."""
    sock, path = notify_socket
    config = tmp_path / "config.toml"
    # No P3: the default would listen on 4059, which parallel test runs would share.
    config.write_text(
        '[p1]\nendpoint = "pty://p1"\n[clock]\nspeed = 60.0\n[p3]\nendpoint = "none"\n'
    )
    state = tmp_path / "state"
    state.mkdir()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("DSMR_TWIN_")},
        "NOTIFY_SOCKET": path,
        "WATCHDOG_USEC": "400000",  # 0.4 s: pings every 0.2 s
        "STATE_DIRECTORY": str(state),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "twin", *_exec_args("dsmr-twin.service", config)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        messages = _receive_until(sock, "READY=1", 30)
        messages += _receive_until(sock, "WATCHDOG=1", 10)
        messages += _receive_until(sock, "WATCHDOG=1", 10)
        assert messages.count("WATCHDOG=1") >= 2
        assert (state / "meter.sqlite3").exists()
        assert (state / "control.sock").exists()
        process.send_signal(signal.SIGTERM)
        messages += _receive_until(sock, "STOPPING=1", 20)
        assert process.wait(timeout=20) == 0, process.stderr.read() if process.stderr else ""
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_bad_config_exits_with_the_status_the_unit_does_not_restart(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("[meter]\nphases = 2\n")
    result = subprocess.run(
        [sys.executable, "-m", "twin", *_exec_args("dsmr-twin.service", config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "STATE_DIRECTORY": str(tmp_path)},
    )
    prevent = settings("dsmr-twin.service")["RestartPreventExitStatus"][0]
    assert result.returncode == int(prevent), result.stderr
    assert "meter.phases" in result.stderr


# --- the fleet's unit -----------------------------------------------------------------------


def test_fleet_unit_contract() -> None:
    unit = settings(FLEET_UNIT)
    # The head speaks sd_notify for the fleet (twin/fleet/head.py); its workers report to the
    # head, never to systemd.
    assert unit["Type"] == ["notify"]
    assert unit["NotifyAccess"] == ["main"]
    # The watchdog outlasts a worker's staleness window (a few of its beats), and the ping
    # (every WatchdogSec/2) comes often enough that one late loop turn does not kill the fleet.
    assert BEAT_S < WORKER_STALE_S < seconds(unit["WatchdogSec"][0]) <= 120
    # Every meter's store opened before READY=1: a thousand take their time.
    assert seconds(unit["TimeoutStartSec"][0]) >= 120
    assert unit["Restart"] == ["on-failure"]
    assert unit["RestartPreventExitStatus"] == [str(EXIT_CONFIG)]
    assert unit["StartLimitIntervalSec"] == ["0"]
    # The head gives its workers 60 s to checkpoint their meters before it kills one.
    assert seconds(unit["TimeoutStopSec"][0]) > STOP_GRACE_S
    assert (unit["User"], unit["Group"]) == (["dsmr-twin"], ["dsmr-twin"])
    assert unit["StateDirectory"] == ["dsmr-twin/fleet"]
    assert unit["EnvironmentFile"] == ["/etc/dsmr-twin/fleet.env"]
    # Simulated meters only: no device at all.
    assert unit["PrivateDevices"] == ["yes"]
    assert unit["ProtectSystem"] == ["strict"]
    text = (SYSTEMD_DIR / FLEET_UNIT).read_text()
    assert exec_start_binary(text) == "/opt/dsmr-twin/venv/bin/dsmr-twin"
    # The seed from a file, never on the command line (the process list shows that).
    command = unit["ExecStart"][0].split()
    assert "--seed" not in command
    assert command[-1] == "$DSMR_TWIN_FLEET_ARGS"


def _fleet_command(tmp_path: Path, fleet_args: str) -> list[str]:
    """ExecStart as systemd runs it, its paths moved into tmp_path and $DSMR_TWIN_FLEET_ARGS
    split into words (systemd's rule for an unbraced $VAR)."""
    moved = {
        "/var/lib/dsmr-twin/fleet": str(tmp_path / "fleet"),
        "/etc/dsmr-twin/fleet.toml": str(tmp_path / "fleet.toml"),
        "/etc/dsmr-twin/fleet.seed": str(tmp_path / "fleet.seed"),
    }
    command = settings(FLEET_UNIT)["ExecStart"][0].split()
    assert command[-1] == "$DSMR_TWIN_FLEET_ARGS"
    return [
        sys.executable,
        "-m",
        "twin",
        *(moved.get(word, word) for word in command[1:-1]),
        *fleet_args.split(),
    ]


@pytest.mark.parametrize(
    ("fleet_args", "message"),
    [
        ("--count 3 --first 1 --workers 0", "--workers 0: expected 1 to"),
        # Options that disagree with the fleet made by the first run: a meter's address and
        # keys never move, so a restart cannot help either.
        ("--count 3 --first 5", "--first 5: the fleet"),
    ],
)
def test_fleet_options_the_unit_cannot_run_exit_with_the_status_it_does_not_restart(
    tmp_path: Path, fleet_args: str, message: str
) -> None:
    (tmp_path / "fleet.toml").write_text("[store]\nbackup_interval_s = 0\n")
    (tmp_path / "fleet.seed").write_text("unit seed\n")
    resolve_spec(tmp_path / "fleet", 3, "unit seed", None, None, first=1)
    result = subprocess.run(
        _fleet_command(tmp_path, fleet_args),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    prevent = settings(FLEET_UNIT)["RestartPreventExitStatus"][0]
    assert result.returncode == int(prevent), result.stderr
    assert message in result.stderr
