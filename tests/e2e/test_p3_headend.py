"""The real twin process driven over P3 (TCP, loopback) the way a head-end drives a meter: it
configures the chapter 9 pushes and receives them on its own TCP listener, defines a load
profile, resets the meter to factory setting and logs in with HLS 3. The object logic has unit
tests; these prove the wiring in the running process (GPRS controller, push runner, object
ticks, P2 master, association release).

One twin runs for the module, without a history, at SPEED meter seconds per real second (the
15-minute captures of the definable profile come every 1.5 s, an hourly M-Bus read every 6 s).
The factory reset comes last: it puts back every setting the other tests wrote.
"""

from __future__ import annotations

import contextlib
import io
import json
import signal
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any, TypeVar

import pytest
from dlms_cosem.cosem.selective_access import EntryDescriptor
from gurux_dlms.enums import Authentication
from gurux_dlms.objects import GXDLMSRegister

from tests.e2e.test_p3_process import (
    REGISTERS,
    Session,
    Twin,
    _dt,
    _wait_idle,
    free_port,
    value,
)
from tests.unit.p3 import tcp_peers
from twin.p3.objects import values as v
from twin.p3.objects.base import obis_bytes

A = tcp_peers.attribute
M = tcp_peers.method
SPEED = 600
WAIT_S = 30.0  # generous deadline for anything the twin does in the background
SCHEDULER_SETUP, ALARM_SETUP = "0-0:25.9.0", "0-1:25.9.0"
DEFINABLE = "0-1:94.31.6"
T = TypeVar("T")


@pytest.fixture(scope="module")
def meter() -> Iterator[Twin]:
    with tempfile.TemporaryDirectory(prefix="p3-he-") as path:  # short: sockaddr_un
        running = Twin(Path(path), free_port(), speed=SPEED)
        running.ctl("load", "--watts", "2000")  # the energy registers move
        yield running
        running.stop(signal.SIGKILL)


class HeadEnd:
    """The head-end's TCP listener for push messages (GPRS CS §3 step 2a-2c: the meter
    connects, sends the message and closes)."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(WAIT_S)

    @property
    def destination(self) -> bytes:
        return f"127.0.0.1:{self.sock.getsockname()[1]}".encode()

    def message(self) -> bytes:
        pushed, _ = self.sock.accept()
        with pushed:
            pushed.settimeout(WAIT_S)
            out = b""
            while chunk := pushed.recv(4096):
                out += chunk
        return out


@pytest.fixture
def head_end() -> Iterator[HeadEnd]:
    listener = HeadEnd()
    with listener.sock:
        yield listener


def until(check: Callable[[], T | None], what: str, timeout: float = WAIT_S) -> T:
    """Poll `check` until it gives a true value (or fail after `timeout` real seconds)."""
    deadline = time.monotonic() + timeout
    while not (result := check()):
        assert time.monotonic() < deadline, what
        time.sleep(0.05)
    return result


def ok_set(client: Any, interface: int, obis: str, index: int, data: v.Data) -> None:
    assert client.set(A(interface, obis, index), v.encode(data)).result.value == 0, obis


def set_destination(client: Any, setup: str, head_end: HeadEnd) -> None:
    """send_destination_and_method: {transport TCP, "host:port", message type A-XDR}."""
    destination = v.struct(v.enum_(0), v.octets(head_end.destination), v.enum_(128))
    ok_set(client, 40, setup, 3, destination)


def pushes(meter: Twin, setup: str) -> dict[str, Any]:
    return meter.p3_status()["pushes"].get(setup, {})  # type: ignore[no-any-return]


def local_time(raw: bytes) -> datetime:
    """The local wall time of a DLMS date-time (what the push scheduler's times mean)."""
    year = int.from_bytes(raw[0:2], "big")
    return datetime(year, raw[2], raw[3], raw[5], raw[6], raw[7])


# ---- pushes (P3 chapter 9) ------------------------------------------------------------------


def schedule_soon(client: Any) -> None:
    """execution_time of the push scheduler a little after the meter's time, any date (P3
    §9.1.1); further ahead again if the meter's clock passed it before the write landed."""
    margin = timedelta(minutes=5)  # 0.5 s at SPEED
    while True:
        at = local_time(value(client, 8, "0-0:1.0.0", 2)) + margin
        moment = v.octets(bytes([at.hour, at.minute, at.second, 0]))
        any_date = v.octets(b"\xff\xff\xff\xff\xff")
        ok_set(client, 22, "0-0:15.0.4", 4, v.array([v.struct(moment, any_date)]))
        if local_time(value(client, 8, "0-0:1.0.0", 2)) < at:
            return
        margin *= 2


def test_push_scheduler_sends_equipment_id_and_scheduler_name(
    meter: Twin, head_end: HeadEnd
) -> None:
    with Session(meter) as client:
        equipment = bytes(value(client, 1, "0-0:96.1.1", 2))
        set_destination(client, SCHEDULER_SETUP, head_end)
        schedule_soon(client)
    message = head_end.message()
    # P3 §9.3 example 1: equipment identifier ',' logical name of the push scheduler
    assert message == equipment + b"," + bytes.fromhex("00000F0004FF")
    until(lambda: pushes(meter, SCHEDULER_SETUP).get("sent"), "scheduler push not counted")
    status = json.loads(meter.ctl("status", "--json"))["ports"]["p3"]
    assert status["pushes"][SCHEDULER_SETUP]["sent"] >= 1
    assert status["pushes"][SCHEDULER_SETUP]["failed"] == 0
    with Session(meter) as client:  # once is enough: no daily repeat while the module runs
        ok_set(client, 22, "0-0:15.0.4", 4, v.array([]))


def test_alarm_from_the_gas_meter_is_pushed_with_the_alarm_register(
    meter: Twin, head_end: HeadEnd
) -> None:
    with Session(meter) as client:
        equipment = bytes(value(client, 1, "0-0:96.1.1", 2))
        set_destination(client, ALARM_SETUP, head_end)
        # Acknowledge what is there (the gas meter's installation set "new M-Bus device"),
        # then push the alarm setup by its method: the controller compares the register
        # monitor's value before it plans that push, so the cleared register is seen.
        ok_set(client, 1, "0-0:97.98.0", 2, v.u32(0))
        assert client.action(M(40, ALARM_SETUP, 1), v.encode(v.i8(0))) is None
    assert head_end.message() == equipment + b"," + bytes(4)

    meter.ctl("gas", "--fraud", "on")
    try:
        with Session(meter) as client:
            # M-Bus client setup capture (): the master reads the gas meter now (P3 §7.1)
            assert client.action(M(72, "0-1:24.1.0", 3), v.encode(v.i8(0))) is None
        message = head_end.message()
    finally:
        meter.ctl("gas", "--fraud", "off")
    fraud_channel_1 = 1 << 20  # P3 §4.2.4: byte 3 bit 4, fraud attempt M-Bus channel 1
    # P3 §9.3 example 2: equipment identifier ',' the alarm register (4 bytes, MSB first)
    assert message == equipment + b"," + fraud_channel_1.to_bytes(4, "big")
    with Session(meter) as client:
        assert value(client, 1, "0-0:97.98.0", 2) == fraud_channel_1

    # P3 §9.1.2: "the comparing of the monitored value is done everytime the meter is powered
    # up": the alarm still active after a short power failure (0.1 s here) goes out again.
    failures = meter.status()["power_failures"]
    meter.ctl("power-failure", "--seconds", "60")
    head, comma, alarms = head_end.message().partition(b",")
    assert (head, comma, len(alarms)) == (equipment, b",", 4)
    assert meter.status()["power_failures"] == failures + 1
    with Session(meter) as client:  # (the power-up may be an alarm too: P3 §4.2.4 bit 2)
        assert value(client, 1, "0-0:97.98.0", 2) == int.from_bytes(alarms, "big")
    assert int.from_bytes(alarms, "big") & fraud_channel_1
    stats = until(lambda: (s := pushes(meter, ALARM_SETUP)).get("sent", 0) >= 3 and s, "sent")
    assert stats["failed"] == 0


# ---- definable load profile (P3 §8.6) -------------------------------------------------------


class Entries(EntryDescriptor):  # type: ignore[misc]
    """Entry selection (access selector 2): dlms-cosem 21.3.2 decodes one but cannot encode
    it. From entry 1 to 0 (the last) and every column: the whole buffer."""

    def to_bytes(self) -> bytes:
        descriptor = v.struct(
            v.u32(self.from_entry),
            v.u32(self.to_entry),
            v.u16(self.from_selected_value),
            v.u16(self.to_selected_value),
        )
        return bytes([self.ACCESS_DESCRIPTOR]) + v.encode(descriptor)


def _column(interface: int, obis: str) -> v.Data:
    return v.struct(v.u16(interface), v.octets(obis_bytes(obis)), v.i8(2), v.u16(0))


def test_definable_load_profile_captures_every_quarter_and_on_request(meter: Twin) -> None:
    columns = [(8, "0-0:1.0.0"), (3, "1-0:1.8.1"), (3, "1-0:1.8.2"), (3, "1-0:32.24.0")]
    with Session(meter) as client:
        ok_set(client, 7, DEFINABLE, 3, v.array([_column(*c) for c in columns]))
        ok_set(client, 7, DEFINABLE, 4, v.u32(900))
        # Every request ticks the object model too: a quarter passes every 1.5 s here.
        until(lambda: value(client, 7, DEFINABLE, 7) >= 3, "no automatic captures")
        rows = value(client, 7, DEFINABLE, 2, Entries(from_entry=1))
    assert all(len(row) == len(columns) for row in rows)
    rows.sort(key=lambda row: _dt(row[0]))
    times = [_dt(row[0]) for row in rows]
    assert {local_time(row[0]).minute % 15 for row in rows} == {0}
    assert all(local_time(row[0]).second == 0 for row in rows)
    assert all(b - a == timedelta(minutes=15) for a, b in pairwise(times))
    for index in (1, 2):  # energy: never down; at 2 kW, ~500 Wh more each quarter
        assert all(a[index] <= b[index] for a, b in pairwise(rows))
    totals = [row[1] + row[2] for row in rows]
    assert all(b > a for a, b in pairwise(totals))
    assert all(isinstance(row[3], int) and row[3] > 0 for row in rows)  # average voltage L1

    with Session(meter) as client:
        ok_set(client, 7, DEFINABLE, 4, v.u32(0))  # no automatic captures; empties the buffer
        assert value(client, 7, DEFINABLE, 7) == 0
        before = _dt(value(client, 8, "0-0:1.0.0", 2))
        assert client.action(M(7, DEFINABLE, 2), v.encode(v.i8(0))) is None  # capture ()
        after = _dt(value(client, 8, "0-0:1.0.0", 2))
        [row] = value(client, 7, DEFINABLE, 2, Entries(from_entry=1))
    assert before <= _dt(row[0]) <= after
    assert row[1] + row[2] >= totals[-1]


# ---- HLS 3 and the factory reset (P3 §8.3, §8.5) --------------------------------------------


def md5_read(meter: Twin, secret: bytes) -> int:
    """1-0:1.8.1 read by gurux as management client 1 logged in with HLS 3 (MD5)."""
    guek, gak, _ = meter.keys()
    md5 = Authentication.HIGH_MD5
    peer = tcp_peers.gurux_management(meter.port, guek, gak, authentication=md5, secret=secret)
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # gurux prints on every decrypt
            peer.associate()
            energy = peer.read(GXDLMSRegister("1.0.1.8.1.255"), 2)
            peer.release()
    finally:
        peer.close()
    return int(energy)


def test_hls3_md5_once_the_configuration_object_enables_it(meter: Twin) -> None:
    shown = json.loads(meter.cli("keys", "show", "--json", "--state-dir", str(meter.state_dir)))
    secret = bytes.fromhex(shown["hls_secret"])
    failed = meter.p3_status()["failed_logins"]
    with pytest.raises(Exception):  # noqa: B017, PT011 - gurux raises on the refusing AARE
        md5_read(meter, secret)  # factory setting: HLS 5 only on P3 (P3 §8.3)
    _wait_idle(meter)
    assert meter.p3_status()["failed_logins"] == failed + 1
    with Session(meter) as client:
        # GPRS mode 1; flags: bit 1 (factory default), 4 (HLS 3 on P3) and 6 (HLS 5 on P3)
        ok_set(client, 1, "0-1:94.31.3", 2, v.struct(v.enum_(1), v.bits("0100101000000000")))
    energy = md5_read(meter, secret)
    assert 0 < energy <= round(meter.status()["1-0:1.8.1"] * 1000)
    assert meter.p3_status()["failed_logins"] == failed + 1


def test_meter_reset_to_factory_setting_after_the_release(meter: Twin, head_end: HeadEnd) -> None:
    keys = meter.keys()  # as `keys show` printed them before
    with Session(meter) as client:
        ok_set(client, 1, "0-0:96.1.3", 2, v.octets(b"Meterkast, Dorpsstraat 1"))
        ok_set(client, 1, "0-0:96.13.0", 2, v.octets(b"reset follows"))
        set_destination(client, ALARM_SETUP, head_end)
        energy = {code: value(client, 3, code, 2) for code in REGISTERS}
        reset = M(9, "0-1:94.31.5", 1)
        assert client.action(reset, v.encode(v.u16(1))) is None  # execute (script 1)
        # P3 §8.5: carried out after the release, so this association still sees its writes
        assert value(client, 1, "0-0:96.1.3", 2) == b"Meterkast, Dorpsstraat 1"
    assert meter.keys(fresh=True) == keys  # keys are no setting: the head-end keeps its access
    with Session(meter) as client:
        location = value(client, 1, "0-0:96.1.3", 2)
        message = value(client, 1, "0-0:96.13.0", 2)
        destination = value(client, 40, ALARM_SETUP, 3)
        after = {code: value(client, 3, code, 2) for code in REGISTERS}
        capture_objects = value(client, 7, DEFINABLE, 3)
    assert (location, message) == (b"", b"")
    assert destination[1] == b""  # the alarm push is disabled again
    assert len(capture_objects) == 1  # the definable profile holds the clock only
    assert all(after[code] >= energy[code] for code in REGISTERS)  # metrological: kept
