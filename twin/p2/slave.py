"""Sans-IO twin of a wired DSMR 4.x gas meter (the M-Bus slave of P2).

Bytes in, bytes out: `receive(data, now)` returns the reply bytes for the bus and the events
for the rest of the twin. Nothing here waits or reads a clock; `now` is the caller's UTC time
and the meter's own clock is `now + offset` (changed by clock sync, or by `drift()`).

States (P2 §8.2, §6.5): UNCONFIGURED (address 0, no User key), ADDRESSED (address 1..250,
no key), KEYED (User key set: every response is mode 15 and commands must be encrypted).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from twin.p2 import commands as cmd
from twin.p2.crypto import NO_KEY, check_counter, unwrap_user_key
from twin.p2.errors import MbusError, ReplayError
from twin.p2.frames import Ack, Frame, Framer, Rejected, encode_frame
from twin.p2.headers import MODE_15, MODE_NONE, LongHeader
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
from twin.p2.records import Item
from twin.p2.slave_events import (
    AddressChanged,
    ClockSynchronised,
    DataSent,
    Ignored,
    KeyChanged,
    LinkReset,
    ReadoutSelected,
    SlaveEvent,
    SlaveOutput,
    StatusCleared,
)
from twin.p2.slave_state import GasMeterIdentity, SlaveSnapshot, SlaveState
from twin.p2.values import (
    PERMANENT,
    Config,
    Status,
    equipment_id_record,
    error_flags_record,
    meter_config_record,
    timestamp_record,
    valve_status_record,
    volume_record,
)

ACK = encode_frame(Ack())
MAX_DEVIATION = timedelta(seconds=60)  # P2 §6.2.1
MAX_COUNTER = 0xFFFFFFFF
MAX_ADDRESS = 250  # P2 §3.1.3: primary addresses 1..250 (0: unconfigured, §8.3.1)


class GasMeterSlave:
    """The gas meter's P2 protocol engine."""

    def __init__(self, identity: GasMeterIdentity, snapshot: SlaveSnapshot) -> None:
        self.identity = identity
        if snapshot.user_key == NO_KEY:  # P2 §6.5: all zeros means "no User key"
            snapshot = replace(snapshot, user_key=None)
        if not 0 <= snapshot.address <= MAX_ADDRESS:
            # P2 §3.1.3: at 254/255 it would answer broadcasts; refuse rather than do so.
            raise MbusError(f"{snapshot.address} is not a primary address (0..250)")
        self._s = snapshot
        self._framer = Framer()
        if snapshot.reading is not None:
            self.update(*snapshot.reading)

    @property
    def snapshot(self) -> SlaveSnapshot:
        """Current persistent state."""
        return self._s

    @property
    def state(self) -> SlaveState:
        """UNCONFIGURED, ADDRESSED or KEYED."""
        if self._s.user_key is not None:
            return SlaveState.KEYED
        return SlaveState.ADDRESSED if self._s.address else SlaveState.UNCONFIGURED

    def clock(self, now: datetime) -> datetime:
        """The meter's own clock reading at real time `now`."""
        return now + self._s.clock_offset

    def drift(self, delta: timedelta) -> None:
        """Let the meter's clock run off by `delta` (to simulate a bad crystal)."""
        self._s = replace(self._s, clock_offset=self._s.clock_offset + delta)

    def update(self, litres: int, capture_time: datetime) -> None:
        """Store the hourly value (register in dm3) and its UTC capture time (P2 §6.1).

        Raises `MbusError` for a negative register or a naive/out-of-range time, so a bad
        value is refused here rather than when the meter answers the bus.
        """
        volume_record(litres)
        timestamp_record(capture_time)
        self._s = replace(self._s, reading=(litres, capture_time))

    def set_status(self, flag: Status, on: bool = True) -> None:
        """Raise or clear status bits (battery low, fraud, errors ...) of 01 FD 17."""
        status = self._s.status | flag if on else self._s.status & ~flag
        self._s = replace(self._s, status=int(status))

    def set_valve(self, state: int) -> None:
        """DSMR 4.0 variant: the valve state reported in 89 40 FD 1A (0/1/2)."""
        valve_status_record(state)
        self._s = replace(self._s, valve_state=state)

    @property
    def mid_frame(self) -> bool:
        """Part of a frame was received: the line going idle now would drop it."""
        return bool(self._framer.pending)

    def timeout(self) -> None:
        """The line went idle mid-frame: drop the partial frame."""
        self._framer.reset()

    def receive(self, data: bytes, now: datetime) -> SlaveOutput:
        """Process received bytes; return the reply bytes and what happened."""
        reply = bytearray()
        events: list[SlaveEvent] = []
        for item in self._framer.feed(data):
            if isinstance(item, Rejected):
                events.append(Ignored(f"framing: {item.error}"))
            else:
                reply += self._frame(item, now, events)
        return SlaveOutput(bytes(reply), tuple(events))

    def _frame(self, frame: Frame, now: datetime, events: list[SlaveEvent]) -> bytes:
        if isinstance(frame, Ack) or frame.a != self._s.address:
            return b""  # not for us; P2 §3.1.3: addresses above 250 are never ours
        try:
            message = decode_message(frame, key=self._s.user_key, device=self.identity.device)
        except MbusError as error:
            # P2 §4.1 / §5.2: rejected means no further processing and no answer.
            events.append(Ignored(f"{type(error).__name__}: {error}"))
            return b""
        return self._dispatch(message, now, events)

    def _dispatch(self, message: Message, now: datetime, events: list[SlaveEvent]) -> bytes:
        if isinstance(message, SndNke):
            # P2 §6.3.2: SND_NKE also resets the read-out list.
            self._s = replace(self._s, selected=())
            events.append(LinkReset())
            return ACK
        if isinstance(message, ReqUd2):
            return self._respond(events)
        if isinstance(message, ReqUd1 | ReqSke):
            # P2 Table 5, "not used, but standard": E5 and RSP_SKE.
            return ACK if isinstance(message, ReqUd1) else encode_message(RspSke(self._s.address))
        if isinstance(message, SndUdPlain):
            return self._plain(message.records, events)
        if isinstance(message, SndUdClock | SndUdReadout):
            return self._control(message, now, events)
        events.append(Ignored(f"{type(message).__name__} is not a master request"))
        return b""

    def _plain(self, records: tuple[Item, ...], events: list[SlaveEvent]) -> bytes:
        command = cmd.plain_command(records)
        if isinstance(command, cmd.SetKey):
            return self._set_key(command.wire, events)
        if isinstance(command, cmd.SetAddress) and not 0 <= command.address <= MAX_ADDRESS:
            # P2 §3.1.3: "Address values higher than 250 shall be ignored by the slaves"; a
            # slave at 251..255 would answer broadcasts (254/255). Not executed, no E5.
            events.append(Ignored(f"set-address to {command.address}: not a primary address"))
            return b""
        if isinstance(command, cmd.SetAddress) and self.state is not SlaveState.KEYED:
            old = self._s.address
            self._s = replace(self._s, address=command.address)
            events.append(AddressChanged(old, command.address))
            return ACK
        # P2 §6.2.2: set-address is ignored once a User key is set.
        events.append(Ignored("CI 51 records are not an allowed command in this state"))
        return b""

    def _set_key(self, wire: bytes, events: list[SlaveEvent]) -> bytes:
        # P2 §6.5: always accepted unencrypted; the Default key only decrypts new User keys.
        user_key = unwrap_user_key(self.identity.default_key, wire)
        keyed = user_key != NO_KEY  # all zeros: back to unencrypted operation
        self._s = replace(self._s, user_key=user_key if keyed else None)
        events.append(KeyChanged(keyed))
        return ACK

    def _control(
        self, message: SndUdClock | SndUdReadout, now: datetime, events: list[SlaveEvent]
    ) -> bytes:
        keyed = self.state is SlaveState.KEYED
        if message.header.mode != (MODE_15 if keyed else MODE_NONE):
            # P2 §4.3.4, §6.5: encrypted once keyed; unencrypted only while no key is set.
            events.append(Ignored(f"mode {message.header.mode} not allowed in {self.state}"))
            return b""
        if isinstance(message, SndUdClock) and message.header.device != self.identity.device:
            events.append(Ignored("clock message for another Short ID"))
            return b""
        if not self._accept_counter(message.frame_counter, events):
            return b""
        if isinstance(message, SndUdClock):
            self._set_clock(message.time, now, events)
        else:
            self._run_controls(message.records, events)
        return ACK

    def _accept_counter(self, counter: int | None, events: list[SlaveEvent]) -> bool:
        if counter is None:
            return True  # unencrypted, allowed only while no key is set (checked above)
        try:
            check_counter(counter, self._s.frame_counter)
        except ReplayError as error:
            events.append(Ignored(str(error)))
            return False
        self._s = replace(self._s, frame_counter=counter)  # stored as validated (P2 §5.2)
        return True

    def _set_clock(self, new: datetime, now: datetime, events: list[SlaveEvent]) -> None:
        old = self.clock(now)
        exceeded = abs(new - old) > MAX_DEVIATION
        self._s = replace(self._s, clock_offset=new - now)
        if exceeded:
            self.set_status(Status.CLOCK_SYNC_ERROR)  # P2 §6.2.1
        events.append(ClockSynchronised(old, new, exceeded))

    def _run_controls(self, records: tuple[Item, ...], events: list[SlaveEvent]) -> None:
        for command in cmd.control_commands(records):
            if isinstance(command, cmd.ClearStatus):
                # P2 §6.2.3: permanent errors stay until the cause is gone.
                mask = command.mask & ~PERMANENT
                self._s = replace(self._s, status=self._s.status & ~mask)
                events.append(StatusCleared(mask))
            else:
                self._s = replace(self._s, selected=command.vifes)
                events.append(ReadoutSelected(command.vifes))

    def _respond(self, events: list[SlaveEvent]) -> bytes:
        keyed = self.state is SlaveState.KEYED
        counter: int | None = None
        if keyed:
            if self._s.frame_counter >= MAX_COUNTER:
                events.append(Ignored("frame counter exhausted; the meter stays silent"))
                return b""
            counter = self._s.frame_counter + 1  # P2 §5.2: +1 per message sent
        access = self._s.access_number
        header = LongHeader(self.identity.device, access, 0, MODE_15 if keyed else MODE_NONE)
        data = encode_message(
            RspUd(self._s.address, header, self._records(), counter), key=self._s.user_key
        )
        self._s = replace(
            self._s,
            access_number=(access + 1) & 0xFF,  # EN 13757-3 §5.9 via P2 §4.2.4
            frame_counter=self._s.frame_counter if counter is None else counter,
        )
        events.append(DataSent(access, counter))
        return data

    def _records(self) -> tuple[Item, ...]:
        """Default read-out list (P2 §6.3) in the order of P2 App. B1.3."""
        ident = self.identity
        out: list[Item] = [
            error_flags_record(self._status_byte()),
            equipment_id_record(ident.equipment_id),
        ]
        if self._s.reading is not None:
            litres, captured = self._s.reading
            out += [
                timestamp_record(captured),
                volume_record(litres, large_meter=ident.large_meter),
            ]
        config = Config.CLOCK | Config.CONVERTED_VOLUME
        if ident.dsmr40:
            out.append(valve_status_record(self._s.valve_state))
            config |= Config.VALVE
        out.append(meter_config_record(int(config)))
        texts = dict(ident.versions)
        out += [cmd.version_record(v, texts[v]) for v in self._s.selected if v in texts]
        return tuple(out)

    def _status_byte(self) -> int:
        # P2 §6.3.3: bit 7 is "reserved ... value = 0" for 4.2; a 4.0 meter used it for valves.
        mask = 0xFF if self.identity.dsmr40 else 0x7F
        return self._s.status & mask


__all__ = ["GasMeterIdentity", "GasMeterSlave", "SlaveSnapshot", "SlaveState"]
