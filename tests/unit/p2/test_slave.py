"""The gas-meter slave, driven with frames from our own codec (P2 §4-§6, §8)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.p2.vectors import DEFAULT_KEY, USER_KEY
from twin.p2 import commands as cmd
from twin.p2.crypto import NO_KEY
from twin.p2.errors import DecryptionError, MbusError
from twin.p2.frames import Ack, LongFrame, ShortFrame, encode_frame
from twin.p2.headers import MODE_15, MODE_NONE, LongHeader, ShortHeader, ShortId
from twin.p2.messages import (
    Message,
    ReqSke,
    ReqUd1,
    ReqUd2,
    RspSke,
    RspUd,
    SndNke,
    SndUdClock,
    SndUdPlain,
    SndUdReadout,
    decode_message,
    encode_message,
)
from twin.p2.records import Record
from twin.p2.slave import GasMeterIdentity, GasMeterSlave, SlaveSnapshot, SlaveState
from twin.p2.slave_events import (
    AddressChanged,
    ClockSynchronised,
    DataSent,
    Ignored,
    KeyChanged,
    LinkReset,
    ReadoutSelected,
    StatusCleared,
)
from twin.p2.values import (
    EquipmentId,
    ErrorFlags,
    MeterConfig,
    Status,
    Timestamp,
    ValveStatus,
    Volume,
    interpret,
)

NOW = datetime(2009, 6, 18, 11, 5, tzinfo=UTC)
CAPTURE = datetime(2009, 6, 18, 11, 0, tzinfo=UTC)
IDENTITY = GasMeterIdentity(23456789, "NET", "XXXXX110123456789", DEFAULT_KEY)
DEVICE = IDENTITY.device


def _slave(**snapshot: object) -> GasMeterSlave:
    slave = GasMeterSlave(IDENTITY, SlaveSnapshot(access_number=0xF6, **snapshot))  # type: ignore[arg-type]
    slave.update(391, CAPTURE)
    return slave


def _send(
    slave: GasMeterSlave, message: Message, **kwargs: object
) -> tuple[bytes, tuple[object, ...]]:
    out = slave.receive(encode_message(message, **kwargs), NOW)  # type: ignore[arg-type]
    return out.reply, out.events


def _read(slave: GasMeterSlave, address: int, key: bytes | None = None) -> RspUd:
    reply, _ = _send(slave, ReqUd2(address))
    message = decode_message(reply, key=key)
    assert isinstance(message, RspUd)
    return message


def _values(message: RspUd) -> list[object]:
    return [interpret(r) for r in message.records if isinstance(r, Record)]


def _keyed(address: int = 5) -> GasMeterSlave:
    slave = _slave(address=address)
    reply, events = _send(slave, SndUdPlain(address, cmd.set_key_records(DEFAULT_KEY, USER_KEY)))
    assert reply == encode_frame(Ack())
    assert events == (KeyChanged(keyed=True),)
    return slave


def test_unconfigured_meter_answers_on_address_0_in_clear() -> None:
    slave = _slave()
    assert slave.state is SlaveState.UNCONFIGURED
    reply, events = _send(slave, SndNke(0))
    assert (reply, events) == (b"\xe5", (LinkReset(),))
    message = _read(slave, 0)
    assert message.header == LongHeader(DEVICE, 0xF6, 0, MODE_NONE)
    assert message.frame_counter is None
    # the same values as P2 App. B1.3
    assert _values(message) == [
        ErrorFlags(0),
        EquipmentId("XXXXX110123456789"),
        Timestamp(CAPTURE, 1),
        Volume(Decimal("0.391"), 1, True),
        MeterConfig(0x05),
    ]
    assert _read(slave, 0).header.access_number == 0xF7  # ACC +1 per response


def test_set_address_then_only_the_new_address_is_answered() -> None:
    slave = _slave()
    reply, events = _send(slave, SndUdPlain(0, cmd.set_address_records(5)))
    assert (reply, events) == (b"\xe5", (AddressChanged(0, 5),))
    assert slave.state is SlaveState.ADDRESSED
    assert _send(slave, SndNke(0)) == (b"", ())
    assert _send(slave, SndNke(5))[0] == b"\xe5"


@pytest.mark.parametrize("invalid", [251, 252, 253, 254, 255])
def test_set_address_outside_1_to_250_is_ignored_unanswered(invalid: int) -> None:
    # P2 §3.1.3: primary addresses are 1..250 and "higher than 250 shall be ignored".
    slave = _slave(address=5)
    record = Record(0x01, 0x7A, bytes([invalid]))  # address_record() refuses to build it
    reply, events = _send(slave, SndUdPlain(5, (record,)))
    assert reply == b""
    assert len(events) == 1
    assert isinstance(events[0], Ignored)
    assert slave.snapshot.address == 5
    assert slave.state is SlaveState.ADDRESSED
    for address in (invalid, 254, 255):
        assert _send(slave, ReqUd2(address)) == (b"", ())
    assert _read(slave, 5).address == 5


def test_a_slave_cannot_be_built_at_a_non_primary_address() -> None:
    with pytest.raises(MbusError, match="primary address"):
        GasMeterSlave(IDENTITY, SlaveSnapshot(address=255))  # P2 §3.1.3: would answer broadcasts


def test_secondary_addressing_and_baud_switching_are_ignored() -> None:
    # P2 §3.1.3 "Secondary addressing (A=253) is not allowed"; §3.1.4 the baud rate is fixed
    # "at all times and in any situation" (EN 13757-2 would switch on CI B8..BF).
    slave = _slave(address=5)
    select = LongFrame(0x53, 253, 0x52, bytes.fromhex("89674523FFFFFFFF"))  # EN 13757-3 select
    assert slave.receive(encode_frame(select), NOW).reply == b""
    assert _send(slave, ReqUd2(253)) == (b"", ())
    for ci in range(0xB8, 0xC0):  # set baud rate 300 .. 38400 Bd
        out = slave.receive(encode_frame(LongFrame(0x53, 5, ci)), NOW)
        assert out.reply == b""
        assert len(out.events) == 1
        assert isinstance(out.events[0], Ignored)
    assert _read(slave, 5).address == 5  # still there, at 2400 Bd


def test_key_change_switches_to_mode_15_with_a_meter_owned_counter() -> None:
    slave = _keyed()
    assert slave.state is SlaveState.KEYED
    first = _read(slave, 5, USER_KEY)
    second = _read(slave, 5, USER_KEY)
    assert first.header.mode == MODE_15
    assert (first.frame_counter, second.frame_counter) == (1, 2)
    assert _values(first)[1] == EquipmentId("XXXXX110123456789")
    _, events = _send(slave, ReqUd2(5))
    assert events == (DataSent(0xF8, 3),)


def test_set_address_is_refused_once_keyed() -> None:
    slave = _keyed()
    reply, events = _send(slave, SndUdPlain(5, cmd.set_address_records(9)))
    assert reply == b""
    assert isinstance(events[0], Ignored)
    assert slave.snapshot.address == 5


def test_zero_key_unkeys_but_never_resets_the_counter() -> None:
    slave = _keyed()
    _read(slave, 5, USER_KEY)
    reply, events = _send(slave, SndUdPlain(5, cmd.set_key_records(DEFAULT_KEY, NO_KEY)))
    assert (reply, events) == (b"\xe5", (KeyChanged(keyed=False),))
    assert _read(slave, 5).header.mode == MODE_NONE
    _send(slave, SndUdPlain(5, cmd.set_key_records(DEFAULT_KEY, USER_KEY)))
    assert _read(slave, 5, USER_KEY).frame_counter == 2


def test_key_wrapped_with_a_wrong_default_key_yields_a_different_user_key() -> None:
    slave = _slave(address=5)
    _send(slave, SndUdPlain(5, cmd.set_key_records(USER_KEY, USER_KEY)))
    reply, _ = _send(slave, ReqUd2(5))
    with pytest.raises(DecryptionError):
        decode_message(reply, key=USER_KEY)


@pytest.mark.parametrize(
    ("drift", "flagged"), [(timedelta(seconds=59), False), (timedelta(seconds=61), True)]
)
def test_clear_clock_sync_before_keys(drift: timedelta, flagged: bool) -> None:
    slave = _slave(address=5)
    slave.drift(drift)
    message = SndUdClock(5, LongHeader(DEVICE, 0x10), NOW)
    reply, events = _send(slave, message)
    assert reply == b"\xe5"
    assert events == (ClockSynchronised(NOW + drift, NOW, flagged),)
    assert slave.clock(NOW) == NOW
    status = _values(_read(slave, 5))[0]
    assert status == ErrorFlags(Status.CLOCK_SYNC_ERROR if flagged else 0)


def test_clock_sync_once_keyed_must_be_encrypted_fresh_and_for_us() -> None:
    slave = _keyed()
    counter = _read(slave, 5, USER_KEY).frame_counter
    assert counter == 1
    later = NOW + timedelta(hours=1)
    plain = SndUdClock(5, LongHeader(DEVICE, 0x10), later)
    assert _send(slave, plain)[0] == b""
    header = LongHeader(DEVICE, 0x11, mode=MODE_15)
    other = LongHeader(ShortId(11111111, "NET"), 0x11, mode=MODE_15)
    assert _send(slave, SndUdClock(5, other, later, 2), key=USER_KEY)[0] == b""
    encrypted = SndUdClock(5, header, later, counter + 1)
    reply, events = _send(slave, encrypted, key=USER_KEY)
    assert reply == b"\xe5"
    assert isinstance(events[0], ClockSynchronised)
    assert events[0].deviation_exceeded
    replay, events = _send(slave, encrypted, key=USER_KEY)
    assert replay == b""
    assert "replayed" in str(events)
    assert _read(slave, 5, USER_KEY).frame_counter == counter + 2


def test_status_bits_and_clear_status_keep_permanent_errors() -> None:
    slave = _keyed()
    slave.set_status(Status.POWER_LOW)
    slave.set_status(Status.FRAUD_ATTEMPT)
    assert _values(_read(slave, 5, USER_KEY))[0] == ErrorFlags(0x44)
    clear = SndUdReadout(5, ShortHeader(0x20, mode=MODE_15), (cmd.clear_status_record(),), 2)
    reply, events = _send(slave, clear, key=USER_KEY, device=DEVICE)
    assert reply == b"\xe5"
    assert events == (StatusCleared(0x73),)
    assert _values(_read(slave, 5, USER_KEY))[0] == ErrorFlags(Status.POWER_LOW)
    slave.set_status(Status.POWER_LOW, on=False)
    assert _values(_read(slave, 5, USER_KEY))[0] == ErrorFlags(0)


def test_readout_selection_adds_versions_until_snd_nke() -> None:
    slave = _keyed()
    select = (cmd.select_readout_record(0x0C), cmd.select_readout_record(0x0E))
    readout = SndUdReadout(5, ShortHeader(0x20, mode=MODE_15), select, 1)
    assert _send(slave, readout, key=USER_KEY, device=DEVICE)[1] == (ReadoutSelected((0x0C, 0x0E)),)
    extra = _read(slave, 5, USER_KEY).records[-2:]
    assert extra == (
        cmd.version_record(0x0C, "dsmr=4.2.2\r\n"),
        cmd.version_record(0x0E, "met=FW1\r\n"),
    )
    _send(slave, SndNke(5))
    assert len(_read(slave, 5, USER_KEY).records) == 5


def test_clear_readout_command_needs_no_key_only_while_unkeyed() -> None:
    slave = _slave(address=5)
    readout = SndUdReadout(5, ShortHeader(0x20), (cmd.select_readout_record(0x0C),))
    assert _send(slave, readout)[0] == b"\xe5"
    keyed = _keyed()
    assert _send(keyed, readout)[0] == b""


def test_dsmr40_variant_sends_version_40_and_the_valve_block() -> None:
    identity = GasMeterIdentity(23456789, "NET", "XXXXX110123456789", DEFAULT_KEY, dsmr40=True)
    slave = GasMeterSlave(identity, SlaveSnapshot(address=1))
    slave.update(391, CAPTURE)
    slave.set_status(Status.VALVE_ALARM_40)
    message = _read(slave, 1)
    assert message.header.device.version == 0x40
    values = _values(message)
    assert ValveStatus(1) in values
    assert values[-1] == MeterConfig(0x07)
    assert values[0] == ErrorFlags(0x80)


def test_large_meter_uses_vif_14_and_42_meter_masks_bit_7() -> None:
    identity = GasMeterIdentity(1, "LGB", "XXXXX000000000001", DEFAULT_KEY, large_meter=True)
    slave = GasMeterSlave(identity, SlaveSnapshot(address=1))
    slave.update(314_127_439, CAPTURE)
    slave.set_status(Status.VALVE_ALARM_40)
    values = _values(_read(slave, 1))
    assert Volume(Decimal("314127.43"), 1, True) in values
    assert values[0] == ErrorFlags(0)


def test_unused_standard_requests() -> None:
    slave = _slave(address=5)
    assert _send(slave, ReqUd1(5))[0] == b"\xe5"
    assert decode_message(_send(slave, ReqSke(5))[0]) == RspSke(5)


def test_byte_by_byte_noise_and_foreign_frames() -> None:
    slave = _slave(address=5)
    request = encode_message(ReqUd2(5))
    replies = b"".join(slave.receive(bytes([b]), NOW).reply for b in b"\x00\x01" + request)
    message = decode_message(replies)
    assert isinstance(message, RspUd)
    assert slave.receive(encode_frame(ShortFrame(0x5B, 6)), NOW).reply == b""
    rsp = slave.receive(encode_message(message), NOW)
    assert rsp.reply == b""
    assert isinstance(rsp.events[0], Ignored)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.binary(max_size=40), max_size=6))
def test_slave_never_raises_on_random_input(chunks: list[bytes]) -> None:
    slave = _keyed(address=0)
    for chunk in chunks:
        out = slave.receive(chunk, NOW)
        assert isinstance(out.reply, bytes)


def test_bad_configuration_is_refused_up_front() -> None:
    with pytest.raises(MbusError):
        GasMeterIdentity(23456789, "NET", "too short", DEFAULT_KEY)
    with pytest.raises(MbusError):
        GasMeterIdentity(23456789, "NET", "XXXXX110123456789", DEFAULT_KEY[:8])
    with pytest.raises(MbusError):
        GasMeterIdentity(123456789, "NET", "XXXXX110123456789", DEFAULT_KEY)
    slave = _slave()
    with pytest.raises(MbusError):
        slave.update(1, datetime(2020, 1, 1))
    with pytest.raises(MbusError):
        slave.update(-1, CAPTURE)
    with pytest.raises(MbusError):
        slave.set_valve(7)


def test_snapshot_round_trip_and_all_zero_key() -> None:
    slave = _keyed()
    _read(slave, 5, USER_KEY)
    again = GasMeterSlave(IDENTITY, slave.snapshot)
    assert again.state is SlaveState.KEYED
    assert _read(again, 5, USER_KEY).frame_counter == 2
    unkeyed = GasMeterSlave(IDENTITY, SlaveSnapshot(address=3, user_key=NO_KEY))
    assert unkeyed.state is SlaveState.ADDRESSED
