"""M-Bus objects (P3 §7) through the MbusPort, security setup (§5.1) through the KeyService,
and the communication objects (§3.1, §8.4, §9) with their persisted settings."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from dlms_cosem import time as dlms_time
from dlms_cosem.clients.dlms_client import ActionError

from tests.unit.p3.objects.conftest import Twin, make_twin, method, read, ref, write
from twin.meter.state import MbusReading
from twin.p3.dlms.cosem import ActionResult
from twin.p3.objects import KeyId, WrappedKey
from twin.p3.objects import values as v
from twin.p3.service import inactivity_time_out_s
from twin.ports import MbusDevice, PortResult

CAPTURE = datetime(2026, 11, 23, 19, 0, tzinfo=UTC)


def test_master_value_follows_the_model(twin: Twin) -> None:
    twin.meter.act(
        lambda m, _n: m.set_mbus_value(MbusReading(1, 3, "G0012345678901234", 1234567, CAPTURE))
    )
    client = twin.management()
    assert read(client, 4, "0-1:24.2.1", 2) == 1234567
    assert read(client, 4, "0-1:24.2.1", 3) == [-3, 14]  # m3, scaler -3
    when, _ = dlms_time.datetime_from_bytes(bytes(read(client, 4, "0-1:24.2.1", 5)))
    assert when == CAPTURE
    assert bytes(read(client, 1, "0-1:96.1.0", 2)) == b"G0012345678901234"
    assert read(client, 72, "0-1:24.1.0", 9) == 3  # device type from the reading
    # the hourly profile's first entry comes at the next whole hour (test_mbus_hourly.py)
    assert read(client, 7, "0-1:24.3.0", 2) == []
    assert read(client, 7, "0-1:24.3.0", 8) == 240
    daily_columns = read(client, 7, "1-0:99.2.0", 3)
    assert [bytes(c[1]).hex() for c in daily_columns[6:8]] == ["0001180201ff"] * 2


def test_client_setup_short_id_from_the_port(twin: Twin) -> None:
    twin.mbus.devices[2] = MbusDevice(
        9, 0x12345678, 0x2C2D, 66, 3, configuration=15, encryption_key_status=4
    )
    client = twin.management()
    assert read(client, 72, "0-2:24.1.0", 5) == 9
    assert read(client, 72, "0-2:24.1.0", 6) == 0x12345678
    assert read(client, 72, "0-2:24.1.0", 7) == 0x2C2D
    assert read(client, 72, "0-2:24.1.0", 13) == 15
    assert read(client, 72, "0-2:24.1.0", 14) == 4
    assert bytes(read(client, 72, "0-2:24.1.0", 2)) == bytes([0, 2, 24, 6, 0, 255])
    assert read(client, 72, "0-2:24.1.0", 4) == 3600
    assert write(client, 72, "0-2:24.1.0", 5, v.encode(v.u8(12))) == 0
    assert read(client, 72, "0-2:24.1.0", 5) == 12
    assert write(client, 72, "0-2:24.1.0", 5, v.encode(v.u16(12))) == 12


def test_client_setup_methods_call_the_port(twin: Twin) -> None:
    client = twin.management()
    client.action(method(72, "0-3:24.1.0", 1), v.encode(v.u8(5)))
    client.action(method(72, "0-3:24.1.0", 2), v.encode(v.i8(0)))
    key = bytes(range(16))
    client.action(method(72, "0-3:24.1.0", 7), v.encode(v.octets(key)))
    client.action(method(72, "0-3:24.1.0", 8), v.encode(v.octets(key + b"\x00" * 8)))
    assert twin.mbus.calls == [
        ("install", 3, 5),
        ("deinstall", 3, None),
        ("set_key", 3, key),
        ("transfer_key", 3, key + b"\x00" * 8),
    ]


def test_without_an_mbus_port_methods_fail_temporarily(tmp_path: Path) -> None:
    twin = make_twin(tmp_path, mbus=False)
    outcome = twin.objects.action(1, ref(72, "0-1:24.1.0", 1), v.encode(v.u8(0)))
    assert outcome.result is ActionResult.TEMPORARY_FAILURE
    assert read(twin.management(), 72, "0-2:24.1.0", 9) == 0  # no device on channel 2
    twin.meter.store.close()


def test_security_setup_reads_and_forwards_to_the_key_service(twin: Twin) -> None:
    client = twin.management()
    assert read(client, 64, "0-0:43.0.0", 2) == 3
    assert read(client, 64, "0-0:43.0.0", 3) == 0
    assert bytes(read(client, 64, "0-0:43.0.0", 5)) == bytes.fromhex("4B464D1020000001")
    wrapped = bytes(range(24))
    keys = v.array(
        [v.struct(v.enum_(2), v.octets(wrapped)), v.struct(v.enum_(0), v.octets(wrapped[::-1]))]
    )
    client.action(method(64, "0-0:43.0.0", 2), v.encode(keys))
    client.action(method(64, "0-0:43.0.0", 1), v.encode(v.enum_(3)))
    assert twin.keys.calls == [
        (
            "transfer",
            [
                WrappedKey(KeyId.AUTHENTICATION, wrapped),
                WrappedKey(KeyId.GLOBAL_UNICAST_ENCRYPTION, wrapped[::-1]),
            ],
        ),
        ("activate", 3),
    ]
    twin.keys.answer = PortResult.TYPE_UNMATCHED
    with pytest.raises(ActionError, match="TYPE_UNMATCHED"):
        client.action(method(64, "0-0:43.0.0", 2), v.encode(keys))
    bad = v.encode(v.array([v.struct(v.enum_(7), v.octets(wrapped))]))
    assert (
        twin.objects.action(1, ref(64, "0-0:43.0.0", 2), bad).result is ActionResult.TYPE_UNMATCHED
    )


def test_change_hls_secret_goes_to_the_key_service(twin: Twin) -> None:
    wrapped = bytes(24)
    outcome = twin.objects.action(1, ref(15, "0-0:40.0.0", 2), v.encode(v.octets(wrapped)))
    assert outcome.result is ActionResult.SUCCESS
    assert twin.keys.calls == [("secret", wrapped)]
    assert (
        twin.objects.action(16, ref(15, "0-0:40.0.0", 2), b"\x09\x00").result
        is ActionResult.READ_WRITE_DENIED
    )


def test_communication_settings(twin: Twin) -> None:
    client = twin.management()
    assert read(client, 41, "0-0:25.0.0", 2) == 4059
    assert read(client, 41, "0-0:25.0.0", 5) == 1  # nb_of_sim_conn (P3 Table 3-1 note 2)
    assert inactivity_time_out_s(twin.objects) == 300  # as the P3 service reads it
    assert write(client, 41, "0-0:25.0.0", 6, v.encode(v.u16(120))) == 0
    assert inactivity_time_out_s(twin.objects) == 120
    assert write(client, 41, "0-0:25.0.0", 2, v.encode(v.u16(1))) == 3  # port: read only
    assert write(client, 45, "0-0:25.4.0", 2, v.encode(v.octets(b"internet.dsmr"))) == 0
    assert bytes(read(client, 45, "0-0:25.4.0", 2)) == b"internet.dsmr"
    assert read(client, 1, "0-1:94.31.4", 2) == [-71, 3, bytearray(b"20408")]
    assert read(client, 40, "0-1:25.9.0", 3) == [0, bytearray(b""), 128]
    push = twin.objects.action(1, ref(40, "0-0:25.9.0", 1), v.encode(v.i8(0)))
    assert push.result is ActionResult.TEMPORARY_FAILURE
    assert read(client, 28, "0-0:2.2.0", 2) == 200


def test_deinstall_drops_written_short_id(twin: Twin) -> None:
    client = twin.management()
    assert write(client, 72, "0-1:24.1.0", 5, v.encode(v.u8(7))) == 0
    client.action(method(72, "0-1:24.1.0", 2), v.encode(v.i8(0)))
    assert read(client, 72, "0-1:24.1.0", 5) == 0  # P3 §7.1: primary_address set to 0
