"""The E meter's M-Bus master paired with gas-meter slaves over an in-memory bus."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.unit.p2.vectors import DEFAULT_KEY, USER_KEY
from twin.p2.crypto import wrap_user_key
from twin.p2.master import MasterSnapshot, MbusMaster
from twin.p2.master_events import (
    CommandAcknowledged,
    DeviceInstalled,
    MasterEvent,
    MbusEvent,
    MbusEventKind,
    Reading,
    ResponseRejected,
    ScanFinished,
    event_code,
)
from twin.p2.messages import SndUdClock, SndUdPlain, SndUdReadout, decode_message
from twin.p2.persist import master_from_json, master_to_json
from twin.p2.records import Record
from twin.p2.slave import GasMeterIdentity, GasMeterSlave, SlaveSnapshot, SlaveState
from twin.p2.values import Status

NOW = datetime(2024, 3, 1, 12, 5, tzinfo=UTC)
CAPTURE = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
P3_WRAPPED = wrap_user_key(DEFAULT_KEY, USER_KEY)[::-1]  # P3 carries it MSB first


def _meter(ident: int, dsmr40: bool = False) -> GasMeterSlave:
    equipment = f"XXXXX{ident:012d}"
    identity = GasMeterIdentity(ident, "NET", equipment, DEFAULT_KEY, dsmr40=dsmr40)
    slave = GasMeterSlave(identity, SlaveSnapshot(access_number=ident & 0xFF))
    slave.update(12_785_123, CAPTURE)
    return slave


@dataclass
class Bus:
    """Wired M-Bus in memory: what the master sends reaches every slave, and back."""

    master: MbusMaster
    slaves: list[GasMeterSlave] = field(default_factory=list)
    sent: list[bytes] = field(default_factory=list)

    def run(self, send: bytes) -> list[MasterEvent]:
        events: list[MasterEvent] = []
        while send:
            self.sent.append(send)
            reply = b"".join(s.receive(send, NOW).reply for s in self.slaves)
            out = self.master.receive(reply) if reply else self.master.timeout()
            events += out.events
            send = out.send
        return events


def _installed(*slaves: GasMeterSlave) -> Bus:
    bus = Bus(MbusMaster(MasterSnapshot(access_number=0x40)))
    for slave in slaves:
        bus.slaves.append(slave)
        bus.run(bus.master.scan())
    return bus


def _readings(events: list[MasterEvent]) -> list[Reading]:
    return [e for e in events if isinstance(e, Reading)]


def _codes(events: list[MasterEvent]) -> list[int]:
    return [e.code for e in events if isinstance(e, MbusEvent)]


def test_event_codes() -> None:
    assert event_code(1, MbusEventKind.COMMUNICATION_ERROR) == 100
    assert event_code(2, MbusEventKind.NEW_DEVICE) == 115
    assert event_code(4, MbusEventKind.PERMANENT_ERROR) == 136
    with pytest.raises(ValueError, match="channel"):
        event_code(5, MbusEventKind.FRAUD_ATTEMPT)


def test_scan_installs_devices_in_order_on_channels() -> None:
    first, second = _meter(11111111), _meter(22222222)
    bus = Bus(MbusMaster(MasterSnapshot()), [first])
    events = bus.run(bus.master.scan())
    assert events[0] == DeviceInstalled(1, 1, first.identity.device)
    assert _codes(events) == [105]
    assert events[-1] == ScanFinished(1)
    assert (first.state, first.snapshot.address) == (SlaveState.ADDRESSED, 1)
    bus.slaves.append(second)
    events = bus.run(bus.master.scan())
    assert DeviceInstalled(2, 2, second.identity.device) in events
    assert _codes(events) == [115]
    assert [c.device for c in bus.master.snapshot.channels] == [
        first.identity.device,
        second.identity.device,
    ]


def test_scan_without_devices_probes_three_times() -> None:
    bus = Bus(MbusMaster(MasterSnapshot()))
    events = bus.run(bus.master.scan())
    assert events[-1] == ScanFinished(0)
    assert bus.sent == [bytes.fromhex("1040004016")] * 3


def test_hourly_read_in_clear() -> None:
    meter = _meter(12345678)
    bus = _installed(meter)
    (reading,) = _readings(bus.run(bus.master.read(1)))
    assert reading == Reading(
        1, meter.identity.device, Decimal("12785.123"), CAPTURE, 0, None, "XXXXX000012345678"
    )


def test_key_transfer_then_encrypted_read_and_clock_sync() -> None:
    meter = _meter(12345678)
    meter.drift(timedelta(minutes=5))
    bus = _installed(meter)
    events = bus.run(bus.master.transfer_key(1, P3_WRAPPED, USER_KEY, NOW))
    assert meter.state is SlaveState.KEYED
    assert events[0] == CommandAcknowledged(1, "key")
    assert _readings(events)[0].frame_counter == 1
    assert _codes(events) == []
    assert CommandAcknowledged(1, "clock") in events
    assert meter.clock(NOW) == NOW
    assert bus.master.channel(1).frame_counter == 2  # type: ignore[union-attr]
    events = bus.run(bus.master.read(1))
    (reading,) = _readings(events)
    assert reading.frame_counter == 3
    # The clock was 5 minutes off: the G meter flagged it (P2 §6.2.1), so event 104 now.
    assert _codes(events) == [104]
    assert reading.status == Status.CLOCK_SYNC_ERROR  # the 5-minute drift was reported
    clears = [decode_message(f, key=USER_KEY, device=meter.identity.device) for f in bus.sent]
    assert any(isinstance(m, SndUdReadout) for m in clears)  # and cleared (P2 §6.2.3)


def test_status_events_fire_on_rising_bits_and_non_permanent_bits_get_cleared() -> None:
    meter = _meter(12345678)
    bus = _installed(meter)
    meter.set_status(Status.POWER_LOW)
    meter.set_status(Status.FRAUD_ATTEMPT)
    events = bus.run(bus.master.read(1))
    assert _codes(events) == [102, 103]
    assert CommandAcknowledged(1, "clear_status") in events
    assert meter.snapshot.status == Status.POWER_LOW
    assert _codes(bus.run(bus.master.read(1))) == []
    meter.set_status(Status.PERMANENT_ERROR)
    assert _codes(bus.run(bus.master.read(1))) == [106]


def test_communication_error_and_recovery() -> None:
    meter = _meter(12345678)
    bus = _installed(meter)
    bus.slaves.clear()
    events = bus.run(bus.master.read(1))
    assert _codes(events) == [100]
    assert sum(isinstance(e, ResponseRejected) for e in events) == 3
    assert _codes(bus.run(bus.master.read(1))) == []  # logged once, not per hour
    bus.slaves.append(meter)
    assert _codes(bus.run(bus.master.read(1))) == [101]


def test_stale_frame_counter_is_resynchronised_with_req_ud2() -> None:
    meter = _meter(12345678)
    bus = _installed(meter)
    bus.run(bus.master.transfer_key(1, P3_WRAPPED, USER_KEY, NOW))
    for _ in range(3):  # responses the E meter never saw
        meter.receive(bytes.fromhex("105B015C16"), NOW)
    events = bus.run(bus.master.sync_clock(1, NOW))
    # three silent attempts, then REQ_UD2 learns the counter and the command is retried
    assert sum(isinstance(e, ResponseRejected) for e in events) == 3
    assert CommandAcknowledged(1, "clock") in events
    assert _codes(events) == []  # a small correction is no event (P3 §4.2.1)
    assert bus.master.channel(1).frame_counter == meter.snapshot.frame_counter  # type: ignore[union-attr]


def test_replayed_response_is_rejected() -> None:
    meter = _meter(12345678)
    bus = _installed(meter)
    bus.run(bus.master.transfer_key(1, P3_WRAPPED, USER_KEY, NOW))
    old = meter.receive(bytes.fromhex("105B015C16"), NOW).reply
    bus.run(bus.master.read(1))
    bus.slaves.clear()
    send = bus.master.read(1)
    out = bus.master.receive(old)
    assert send
    assert isinstance(out.events[0], ResponseRejected)
    assert "frame counter" in out.events[0].reason


def test_dsmr40_valve_block_is_discarded_and_no_valve_command_is_ever_sent() -> None:
    meter = _meter(40404040, dsmr40=True)
    meter.set_status(Status.VALVE_ALARM_40)
    bus = _installed(meter)
    (reading,) = _readings(bus.run(bus.master.read(1)))
    assert reading.status == 0  # bit 7 ignored (P2 §9)
    assert reading.volume_m3 == Decimal("12785.123")
    for frame in bus.sent:
        message = decode_message(frame)
        if isinstance(message, SndUdPlain):
            vifes = [r.vifes for r in message.records if isinstance(r, Record)]
            assert (0x1F,) not in vifes  # 01 FD 1F valve control (DSMR 4.0 only)


def test_unsolicited_and_unexpected_frames() -> None:
    master = MbusMaster(MasterSnapshot())
    assert master.receive(b"\xe5").events == ()
    send = master.scan()
    out = master.receive(bytes.fromhex("105B015C16"))
    assert isinstance(out.events[0], ResponseRejected)
    assert out.send == send  # retried
    assert master.busy


@dataclass
class LossyBus(Bus):
    """A bus that drops whole transmissions (either direction) as `drops` dictates."""

    drops: list[bool] = field(default_factory=list)

    def _lost(self) -> bool:
        return self.drops.pop(0) if self.drops else False

    def run(self, send: bytes) -> list[MasterEvent]:
        events: list[MasterEvent] = []
        while send:
            self.sent.append(send)
            replies = [] if self._lost() else [s.receive(send, NOW).reply for s in self.slaves]
            reply = b"" if self._lost() else b"".join(replies)
            out = self.master.receive(reply) if reply else self.master.timeout()
            events += out.events
            send = out.send
        return events


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.sampled_from(["read", "clock", "clear"]), min_size=1, max_size=6),
    st.lists(st.booleans(), max_size=40),
)
@example(["clock", "read"], [False, True])  # command executed, its E5 lost
@example(["read", "clear"], [True, False, False, True])  # request lost, then answer lost
def test_frame_counters_converge_over_a_lossy_bus(ops: list[str], drops: list[bool]) -> None:
    meter = _meter(12345678)
    clean = _installed(meter)
    clean.run(clean.master.transfer_key(1, P3_WRAPPED, USER_KEY, NOW))
    bus = LossyBus(clean.master, [meter], drops=drops)
    master = bus.master
    for op in ops:
        if op == "read":
            bus.run(master.read(1))
        elif op == "clock":
            bus.run(master.sync_clock(1, NOW))
        else:
            bus.run(master.clear_status(1))
        channel = master.channel(1)
        assert channel is not None
        assert channel.frame_counter <= meter.snapshot.frame_counter  # the G meter owns it
    bus.drops.clear()
    (reading,) = _readings(bus.run(bus.master.read(1)))
    channel = bus.master.channel(1)
    assert channel is not None
    assert reading.frame_counter == channel.frame_counter == meter.snapshot.frame_counter
    assert channel.comm_ok


def test_a_queued_clock_sync_sets_the_time_its_frame_is_sent() -> None:
    bus = _installed(_meter(12345678))
    read = bus.master.read(1)
    assert bus.master.sync_clock(1, NOW) == b""  # queued behind the read-out
    later = NOW + timedelta(minutes=7)  # a fast meter clock moved on meanwhile
    reply = b"".join(s.receive(read, later).reply for s in bus.slaves)
    message = decode_message(bus.master.receive(reply, later).send)
    assert isinstance(message, SndUdClock)
    assert message.time == later  # P2 §6.2.1: the G meter gets the E meter's time


def test_a_forged_clear_frame_counter_is_rejected_and_not_adopted() -> None:
    # Mode 15 has no MAC and its frame counter travels in clear (P2 §5.2): changing its high
    # bytes only changes IV bytes 9-11 and 13-15, so the 2F 2F check still passes and only the
    # equipment ID's characters come out different. Adopting that counter would make every
    # genuine answer after it look replayed (a lasting denial of service from one bad frame).
    meter = _meter(12345678)
    bus = _installed(meter)
    bus.run(bus.master.transfer_key(1, P3_WRAPPED, USER_KEY, NOW))
    genuine = meter.receive(bytes.fromhex("105B015C16"), NOW).reply
    forged = bytearray(genuine)
    forged[-4] ^= 0x4F  # the FC's most significant byte, clear, just before CS and 16
    forged[-2] = sum(forged[4:-2]) & 0xFF  # a valid checksum: the link layer cannot tell
    before = bus.master.channel(1)
    assert before is not None
    assert bus.master.read(1)
    out = bus.master.receive(bytes(forged), NOW)
    assert not [e for e in out.events if isinstance(e, Reading)]
    assert any(isinstance(e, ResponseRejected) and "equipment" in e.reason for e in out.events)
    assert bus.master.channel(1).frame_counter == before.frame_counter  # type: ignore[union-attr]
    while bus.master.busy:
        bus.master.timeout(NOW)
    assert _readings(bus.run(bus.master.read(1)))  # the genuine meter is still read


def test_the_learned_equipment_id_is_kept_through_a_restart() -> None:
    meter = _meter(12345678)
    bus = _installed(meter)
    channel = bus.master.channel(1)
    assert channel is not None
    assert channel.equipment_id == "XXXXX000012345678"  # learned when it was installed
    saved = master_to_json(bus.master.snapshot)
    assert master_from_json(saved) == bus.master.snapshot
    del saved["channels"][0]["equipment_id"]  # state saved before the ID was kept
    assert master_from_json(saved).channels[0].equipment_id is None
