"""The real twin process served on P3 (TCP, loopback) to independent clients: dlms-cosem
21.3.2 as management client 1 with HLS-GMAC suite 0 (keys from `dsmr-twin keys show --json`)
and as public client 16, gurux-dlms's GXDLMSSecureClient, and raw sockets for bad input.

One twin runs for the module (start-up costs seconds); tests that restart it run last.
Its history is made first at high speed, so the load profile holds rows before P3 opens.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.keywrap import aes_key_wrap
from dlms_cosem import dlms_data, utils
from dlms_cosem.clients.dlms_client import DataResultError, HLSError
from dlms_cosem.cosem.capture_object import CaptureObject
from dlms_cosem.cosem.selective_access import RangeDescriptor
from dsmr_parser.objects import Telegram
from gurux_dlms.objects import GXDLMSRegister

from tests.support import P1_FIELDS, REGISTERS, dsmr_twin, free_port, read_telegram
from tests.unit.p3 import tcp_peers
from tests.unit.p3.lean_client import LeanSession
from twin.control import SOCKET_NAME, ControlError, call
from twin.meter.events import EventCode, EventLog
from twin.metering import TARIFF_SETTING
from twin.p3.dlms.cosem import AttributeRef
from twin.p3.keys import COUNTER_SETTING
from twin.p3.objects.base import obis_bytes
from twin.store import Store

logging.getLogger("dlms_cosem").setLevel(logging.ERROR)  # 21.3.2 logs every APDU

A = tcp_peers.attribute
M = tcp_peers.method
STARTUP_S = 30.0
RUN = (sys.executable, "-m", "twin", "run", "--p1", "pty://p1", "--web", "none")


class Twin:
    def __init__(
        self, state_dir: Path, port: int, *extra: str, listening: bool = True, speed: int = 60
    ) -> None:
        self.state_dir, self.port = state_dir, port
        self._keys: tuple[bytes, bytes, bytes] | None = None
        self.log = (state_dir / "twin.log").open("a")
        command = [sys.executable, "-m", "twin", "run", "--state-dir", str(state_dir)]
        command += ["--speed", str(speed), "--p1", "pty://p1", "--web", "none"]
        if listening:  # else the endpoint is in the config file: `--p3` drops its [p3] keys
            command += ["--p3", f"tcp://127.0.0.1:{port}"]
        self.process = subprocess.Popen([*command, *extra], stderr=self.log)
        deadline = time.monotonic() + STARTUP_S
        while not self._up(listening):
            assert self.process.poll() is None, (state_dir / "twin.log").read_text()
            assert time.monotonic() < deadline, "the twin did not come up"
            time.sleep(0.05)
        self._wait_idle()

    def _up(self, listening: bool) -> bool:
        if not listening:
            with socket.socket(socket.AF_UNIX) as probe:
                return probe.connect_ex(str(self.state_dir / SOCKET_NAME)) == 0
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port)):
            return True
        return False

    def _wait_idle(self) -> None:
        # The probe connection above must be gone before a client connects (nb_of_sim_conn 1).
        for _ in range(200):
            if self.p3_status()["active"] is None:
                return
            time.sleep(0.02)

    def cli(self, *args: str) -> str:
        return dsmr_twin(*args)

    def ctl(self, *args: str) -> str:
        return self.cli("ctl", "--state-dir", str(self.state_dir), *args)

    def status(self) -> dict[str, Any]:
        # The control socket directly (what `ctl status --json` prints), without a process.
        request = call(self.state_dir / SOCKET_NAME, {"cmd": "status"})
        return asyncio.run(request)  # type: ignore[no-any-return]

    def p3_status(self) -> dict[str, Any]:
        return self.status()["ports"]["p3"]  # type: ignore[no-any-return]

    def keys(self, *, fresh: bool = False) -> tuple[bytes, bytes, bytes]:
        """GUEK, GAK, master key as `dsmr-twin keys show --json` prints them (cached)."""
        if fresh or self._keys is None:
            shown = json.loads(
                self.cli("keys", "show", "--json", "--state-dir", str(self.state_dir))
            )
            self._keys = tuple(bytes.fromhex(shown[k]) for k in ("guek", "gak", "master_key"))  # type: ignore[assignment]
        assert self._keys is not None
        return self._keys

    def telegram(self) -> Telegram:
        telegram = read_telegram(self.state_dir / "p1", timeout_s=30)
        if telegram is None:
            raise AssertionError(f"no P1 telegram: {self.status()['ports']['p1']}")
        return telegram

    def stop(self, signum: int = signal.SIGTERM) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signum)
            self.process.wait(30)
        self.log.close()


@pytest.fixture(scope="module")
def state_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="p3-e2e-") as path:  # short: sockaddr_un
        yield Path(path)


@pytest.fixture(scope="module")
def twin(state_dir: Path) -> Iterator[Twin]:
    start = datetime.now(UTC) - timedelta(days=10)
    config = state_dir / "twin.toml"
    config.write_text(f'[clock]\nstart = "{start.isoformat(timespec="seconds")}"\n')
    options = ("--state-dir", str(state_dir), "--config", str(config), "--speed", "100000")
    # No P3 (not the default 4059: parallel runs would share it).
    history = subprocess.Popen([*RUN, *options, "--p3", "none"], stderr=subprocess.DEVNULL)
    # Two days of meter time (still in the past, about 2 s): load profile rows exist.
    deadline = time.monotonic() + STARTUP_S
    while _meter_time(state_dir) < start + timedelta(days=2):
        assert history.poll() is None, "the history run ended"
        assert time.monotonic() < deadline, "the history run is too slow"
        time.sleep(0.05)
    history.send_signal(signal.SIGTERM)
    history.wait(30)
    running = Twin(state_dir, free_port(), "--config", str(config))
    running.ctl("load", "--watts", "0")  # registers stand still: P1, ctl and P3 agree exactly
    yield running
    running.stop(signal.SIGKILL)


def _meter_time(state_dir: Path) -> datetime:
    """The meter time of the twin running in `state_dir` (datetime.min while it starts)."""
    try:
        status = asyncio.run(call(state_dir / SOCKET_NAME, {"cmd": "status"}))
    except ControlError:  # no control socket yet
        return datetime.min.replace(tzinfo=UTC)
    return datetime.fromisoformat(status["meter_time"])


class Session(tcp_peers.AssociatedSession):
    """A dlms-cosem management (client 1) session with the twin's current keys."""

    counter = 1  # client frame counters only need +1 within an AA (P3 §3.2.3)

    def __init__(self, twin: Twin, guek: bytes | None = None, gak: bytes | None = None) -> None:
        keys = twin.keys()
        self.guek, self.gak = guek or keys[0], gak or keys[1]
        Session.counter += 1000
        self.client = tcp_peers.management_client(
            twin.port, self.guek, self.gak, invocation_counter=Session.counter
        )


def value(client: Any, interface: int, obis: str, index: int, access: Any = None) -> Any:
    return utils.parse_as_dlms_data(client.get(A(interface, obis, index), access))


def octet(text: bytes) -> bytes:
    return dlms_data.OctetStringData(text).to_bytes()


# ---- reads ----------------------------------------------------------------------------------


def test_keys_show_prints_the_head_end_keys(twin: Twin) -> None:
    shown = json.loads(twin.cli("keys", "show", "--json", "--state-dir", str(twin.state_dir)))
    assert set(shown) >= {"system_title", "guek", "gak", "master_key"}
    assert all(len(bytes.fromhex(v)) in (8, 16) for v in shown.values())
    mode = os.stat(twin.state_dir / "meter.sqlite3").st_mode
    assert mode & 0o007 == 0  # keys live in the database: not world-readable


def test_management_reads_clock_registers_profiles_logs_and_mbus(twin: Twin) -> None:
    status = twin.status()
    telegram = twin.telegram()
    with Session(twin) as client:
        clock = value(client, 8, "0-0:1.0.0", 2)
        registers = {code: value(client, 3, code, 2) for code in REGISTERS}
        assert value(client, 3, "1-0:1.8.1", 3) == [0, 30]  # Wh, scaler 0 (P3 §6.2)
        whole = value(client, 7, "1-0:99.1.0", 2)
        entries = value(client, 7, "1-0:99.1.0", 7)
        start, end = whole[1][0], whole[-2][0]
        clock_column = CaptureObject(A(8, "0-0:1.0.0", 2))
        from_, to = (_dt(start), _dt(end))
        ranged = value(client, 7, "1-0:99.1.0", 2, RangeDescriptor(clock_column, from_, to))
        standard_log = value(client, 7, "0-0:99.98.0", 2)
        mbus_setup = [value(client, 72, "0-1:24.1.0", i) for i in (5, 6, 7, 9)]
        mbus_value = value(client, 4, "0-1:24.2.1", 2)
    meter_time = datetime.fromisoformat(status["meter_time"])
    assert abs((_dt(clock) - meter_time).total_seconds()) < 600  # speed 60: < 10 s real
    for code in REGISTERS:
        assert registers[code] == round(status[code] * 1000), code  # same as ctl status
        assert round(getattr(telegram, P1_FIELDS[code]).value * 1000) == registers[code]
    assert len(whole) == entries >= 100  # 15-min rows of the three days made at high speed
    assert ranged == whole[1:-1]  # P3 §6.3: range selection on the clock column
    assert isinstance(standard_log, list)
    assert len(mbus_setup) == 4
    assert mbus_value is not None


def _dt(raw: bytes) -> datetime:
    """A DLMS date-time (deviation in minutes, local = UTC - deviation) as UTC."""
    year = int.from_bytes(raw[0:2], "big")
    deviation = int.from_bytes(raw[9:11], "big", signed=True)
    local = datetime(year, raw[2], raw[3], raw[5], raw[6], raw[7])
    offset = 0 if deviation == -0x8000 else -deviation
    return (local - timedelta(minutes=offset)).replace(tzinfo=UTC)


def test_gurux_client_reads_an_energy_register(twin: Twin) -> None:
    guek, gak, _ = twin.keys()
    peer = tcp_peers.gurux_management(twin.port, guek, gak)
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # gurux prints on every decrypt
            peer.associate()
            energy = peer.read(GXDLMSRegister("1.0.1.8.1.255"), 2)
            peer.release()
    finally:
        peer.close()
    assert energy == round(twin.status()["1-0:1.8.1"] * 1000)


def test_public_client_reads_only_what_p3_allows(twin: Twin) -> None:
    client = tcp_peers.public_client(twin.port)
    client.connect()
    client.associate()
    try:
        assert len(value(client, 8, "0-0:1.0.0", 2)) == 12
        assert value(client, 1, "0-0:42.0.0", 2)  # logical device name: P column R
        for interface, obis in ((3, "1-0:1.8.1"), (7, "1-0:99.1.0"), (64, "0-0:43.0.0")):
            with pytest.raises(DataResultError, match="READ_WRITE_DENIED"):
                client.get(A(interface, obis, 2))  # P3 §2.1.1, §2.2
    finally:
        client.release_association()
        client.disconnect()


# ---- writes ---------------------------------------------------------------------------------


def test_set_clock_message_and_tariff_times(twin: Twin) -> None:
    # Forward by an hour. (Setting the clock back stalls P1 until the old slot time comes
    # round again: a P1 service issue, reported.)
    now = datetime.fromisoformat(twin.status()["meter_time"]).replace(microsecond=0)
    new_time = now + timedelta(hours=1)
    local = new_time + timedelta(hours=1)  # winter time, deviation -60 (P3 §5.3)
    raw_time = local.year.to_bytes(2, "big") + bytes(
        [local.month, local.day, 0xFF, local.hour, local.minute, local.second, 0, 0xFF, 0xC4, 0]
    )
    calendar = obis_bytes("0-0:13.0.0")
    with Session(twin) as client:
        assert client.set(A(8, "0-0:1.0.0", 2), octet(raw_time)).result.value == 0
        text = b"P3 says hello"
        assert client.set(A(1, "0-0:96.13.0", 2), octet(text)).result.value == 0
        # The day profile table is longer than one 1024-byte PDU: SET with block transfer,
        # which dlms-cosem 21.3.2 does not do; LeanSession carries on its association.
        lean = LeanSession(client, *twin.keys()[:2])
        days = lean.get(AttributeRef(20, calendar, 9))
        moved = days.replace(b"\x09\x04\x07\x00", b"\x09\x04\x06\x00")  # 07:00 -> 06:00
        assert moved != days
        assert lean.set(AttributeRef(20, calendar, 9), moved) == 0
        assert lean.action(AttributeRef(20, calendar, 1), b"\x0f\x00") == 0  # activate
        active = lean.get(AttributeRef(20, calendar, 5))
        lean.hand_back()
    assert b"\x09\x04\x06\x00" in active
    meter_time = datetime.fromisoformat(twin.status()["meter_time"])
    assert abs((meter_time - new_time).total_seconds()) < 600
    assert twin.telegram().TEXT_MESSAGE.value == text.hex().upper()  # P1 0-0:96.13.0
    store = Store.open(twin.state_dir)
    try:
        assert store.setting(TARIFF_SETTING)["normal_start"] == "06:00"
        codes = [e.code for e in store.events(EventLog.STANDARD)]
        assert {EventCode.CLOCK_ADJUSTED_OLD, EventCode.CLOCK_ADJUSTED_NEW} <= set(codes)
        assert EventCode.TARIFF_TIMES_ACTIVATED in codes
    finally:
        store.close()


# ---- negative -------------------------------------------------------------------------------


def _fails(twin: Twin, **keys: bytes) -> None:
    session = Session(twin, **keys)
    session.client.connect()
    try:
        with pytest.raises(Exception):  # noqa: B017, PT011 - rejected AARE or no answer
            session.client.associate()
    finally:
        with contextlib.suppress(Exception):
            session.client.disconnect()


def _raw(twin: Twin, data: bytes) -> bytes:
    """Send bytes on a fresh connection; what comes back before the meter closes."""
    with socket.create_connection(("127.0.0.1", twin.port), timeout=5) as sock:
        sock.sendall(data)
        sock.settimeout(2)
        out = b""
        with contextlib.suppress(TimeoutError, ConnectionResetError):
            while chunk := sock.recv(65536):
                out += chunk
                if len(out) >= 8 and len(out) >= 8 + int.from_bytes(out[6:8], "big"):
                    break
        return out


def _wait_idle(twin: Twin) -> None:
    for _ in range(200):
        if twin.p3_status()["active"] is None:
            return
        time.sleep(0.02)
    raise AssertionError("P3 connection still open")


def test_bad_keys_bad_counters_bad_bytes_then_a_good_session(twin: Twin) -> None:
    guek, gak, _ = twin.keys()
    failed_before = twin.p3_status()["failed_logins"]
    _fails(twin, gak=bytes(16))  # wrong GAK
    _fails(twin, guek=bytes(16))  # wrong GUEK
    # wrong challenge response: f(StoC) computed over another challenge
    session = Session(twin)
    connection = session.client.dlms_connection
    good_reply = connection.get_hls_reply
    connection.get_hls_reply = lambda: good_reply()[:-1] + b"\x00"
    session.client.connect()
    with pytest.raises(HLSError):
        session.client.associate()
    session.client.disconnect()
    _wait_idle(twin)
    # Each is counted; event 46 is logged once for the burst (twin.p3.server.logins), and three
    # failures stay below the lock-out threshold, so the sessions below get in.
    assert twin.p3_status()["failed_logins"] >= failed_before + 3

    # skipped and repeated frame counters: silent release (P3 §3.2.3), nothing sent
    # (dlms-cosem 21.3.2 loops forever on a closed socket, so the lean client is used.)
    for jump in (+1, -1):
        session = Session(twin)
        client = session.__enter__()
        lean = LeanSession(client, guek, gak)
        lean.get(AttributeRef(8, obis_bytes("0-0:1.0.0"), 2))
        lean.ic += jump
        with pytest.raises((ConnectionResetError, OSError)):
            lean.get(AttributeRef(8, obis_bytes("0-0:1.0.0"), 2))
        client.disconnect()
    # malformed, truncated and oversized APDUs, and garbage framing
    assert _raw(twin, tcp_peers.wrap(b"\x60\x03\xa1", source=16))  # truncated AARQ: an answer
    assert _raw(twin, tcp_peers.wrap(b"\xc0\x01", source=16)) != b""  # GET outside an AA
    oversized = _raw(twin, tcp_peers.wrap(b"\xc0" + bytes(1500), source=16))
    assert oversized == b"" or oversized[8] == 0xD8  # pdu-too-long ExceptionResponse
    assert _raw(twin, b"\x00\x02" + bytes(30)) == b""  # not a wrapper version 1: closed

    # a second connection is refused while a session runs, which goes on
    with Session(twin) as client:
        with socket.create_connection(("127.0.0.1", twin.port), timeout=5) as second:
            assert tcp_peers.closed_by_peer(second)
        assert value(client, 3, "1-0:1.8.1", 2) == round(twin.status()["1-0:1.8.1"] * 1000)
        fraud_log = value(client, 7, "0-0:99.98.1", 2)
        session_log = value(client, 7, "0-0:99.98.4", 2)
    # P3 §4.2.1: 46 failed login attempt; 73 retrieve meter readings E, logged at the release
    # of the earlier sessions that read the energy registers (P3 §5.10).
    assert EventCode.FAILED_LOGIN in [row[1] for row in fraud_log]
    assert 73 in [row[1] for row in session_log]
    # The counter column carries the number of readings of that session (P3 §5.10, §8.7).
    assert all(row[2] >= 1 for row in session_log if row[1] == 73)
    store = Store.open(twin.state_dir)
    try:
        assert EventCode.FAILED_LOGIN in [e.code for e in store.events(EventLog.FRAUD)]
    finally:
        store.close()
    assert twin.process.poll() is None  # no crash; the meter keeps metering


def test_global_key_transfer_then_only_the_new_keys_work(twin: Twin) -> None:
    old_guek, old_gak, master = twin.keys()
    new_guek, new_gak = os.urandom(16), os.urandom(16)
    key_data = (
        b"\x01\x02"  # array of 2 key_data (Blue Book class 64 method 2)
        + b"\x02\x02\x16\x02"
        + octet(aes_key_wrap(master, new_gak))
        + b"\x02\x02\x16\x00"
        + octet(aes_key_wrap(master, new_guek))
    )
    with Session(twin) as client:
        # P3 §5.1 footnote 4: the ACK still comes under the old keys
        assert client.action(M(64, "0-0:43.0.0", 2), key_data) is None
        client.dlms_connection.global_encryption_key = new_guek
        client.dlms_connection.global_authentication_key = new_gak
        assert len(value(client, 8, "0-0:1.0.0", 2)) == 12  # next message: new keys
    assert twin.keys(fresh=True)[:2] == (new_guek, new_gak)
    _fails(twin, guek=old_guek, gak=old_gak)
    with Session(twin) as client:
        assert len(value(client, 8, "0-0:1.0.0", 2)) == 12


# ---- GPRS -----------------------------------------------------------------------------------


def test_triggered_mode_sms_wakeup_push_and_session() -> None:
    with tempfile.TemporaryDirectory(prefix="p3-gprs-") as path, socket.socket() as head_end:
        head_end.bind(("127.0.0.1", 0))
        head_end.listen()
        head_end.settimeout(20)
        state_dir, port = Path(path), free_port()
        config = state_dir / "twin.toml"
        destination = f"127.0.0.1:{head_end.getsockname()[1]}"
        config.write_text(
            f'[p2]\nenabled = false\n[p3]\nendpoint = "tcp://127.0.0.1:{port}"\n'
            f'gprs_mode = "triggered"\npush_destination = "{destination}"\n'
        )
        twin = Twin(state_dir, port, "--config", str(config), listening=False)
        try:
            assert not twin._up(listening=True)  # GPRS CS §3.1: no PDP context until woken
            answer = json.loads(twin.ctl("wakeup", "--sms", "+31612345678"))
            assert answer["accepted"] is True
            pushed, _ = head_end.accept()
            with pushed:
                pushed.settimeout(10)
                message = pushed.recv(4096)
            # P3 §9.3: equipment identifier ',' logical name of the message handler
            assert message == b"E0099000000000018," + obis_bytes("0-0:2.3.0")
            with Session(twin) as client:
                assert len(value(client, 8, "0-0:1.0.0", 2)) == 12
                # P3 §8.4 from the simulated modem's +CSQ/+COPS (signal_dbm -71, test PLMN)
                assert value(client, 1, "0-1:94.31.4", 2) == [-71, 1, bytearray(b"00101")]
            deadline = time.monotonic() + 10
            while twin._up(listening=True):  # session over: socket and PDP context closed
                assert time.monotonic() < deadline
                time.sleep(0.05)
            status = twin.p3_status()
            assert (status["gprs_mode"], status["wakeup_sessions"]) == ("triggered", 1)
            # the wake-up came through the AT dialogue of the simulated modem (+CMTI, AT+CMGR)
            modem = twin.status()["ports"]["modem"]
            assert (modem["simulated"], modem["up"], modem["pdp_active"]) == (True, True, False)
            assert modem["recent_wakeups"][-1]["sender"] == "+31612345678"
        finally:
            twin.stop(signal.SIGKILL)


# ---- restarts (last: they stop the module's twin) -------------------------------------------


def test_counter_and_configuration_survive_restart_and_kill_9(twin: Twin) -> None:
    seen: list[int] = []

    def meter_counter() -> int:
        with Session(twin) as client:
            value(client, 8, "0-0:1.0.0", 2)
            return int(client.dlms_connection.meter_invocation_counter)

    seen.append(meter_counter())
    keys = twin.keys()
    twin.stop(signal.SIGTERM)
    for signum in (signal.SIGKILL, signal.SIGTERM):
        twin.__init__(twin.state_dir, twin.port, "--config", str(twin.state_dir / "twin.toml"))  # type: ignore[misc]
        seen.append(meter_counter())
        assert twin.keys(fresh=True) == keys
        assert twin.telegram().TEXT_MESSAGE.value == b"P3 says hello".hex().upper()
        twin.stop(signum)
    assert seen == sorted(set(seen))  # strictly increasing: never a reused nonce
    store = Store.open(twin.state_dir)
    try:
        assert store.setting(COUNTER_SETTING) > seen[-1]
        assert store.setting(TARIFF_SETTING)["normal_start"] == "06:00"
    finally:
        store.close()
