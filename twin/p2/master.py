"""Sans-IO M-Bus master of the E meter (P2 §4.3, §5.2, §6, §8.3).

One exchange at a time (M-Bus is half duplex). Requests are queued; each call returns the
bytes to send now. The caller feeds received bytes to `receive()` and calls `timeout()` when
the answer window (330 bit times + 50 ms, EN 13757-2) passed without a frame. Both
return a `MasterOutput` with the next bytes to send and the events. Both take the meter time
`now`: a clock job that waited in the queue sets the G meter to the time its frame is sent,
not to the time it was queued (P2 §6.2.1: the E meter sets the G meter's clock to its own).

The master never sends a valve command (DSMR 4.2.2, P2 §9): there is no API for one.
"""

from __future__ import annotations

from collections import deque
from dataclasses import replace
from datetime import datetime

from twin.p2 import commands as cmd
from twin.p2.crypto import NO_KEY
from twin.p2.errors import MbusError
from twin.p2.frames import Ack, Frame, Framer, Rejected
from twin.p2.headers import MODE_15, MODE_NONE, LongHeader, ShortHeader
from twin.p2.master_events import (
    CommandAcknowledged,
    DeviceInstalled,
    MasterEvent,
    MasterOutput,
    MbusEvent,
    MbusEventKind,
    Reading,
    ResponseRejected,
    ScanFinished,
)
from twin.p2.master_state import Channel, Job, MasterSnapshot, Op, check_response
from twin.p2.messages import (
    Message,
    ReqUd2,
    RspUd,
    SndNke,
    SndUdClock,
    SndUdPlain,
    SndUdReadout,
    decode_message,
    encode_message,
)
from twin.p2.readout import summarise
from twin.p2.values import Status, key_records

MAX_CHANNELS = 4  # P2 §1.2: at most 4 M-Bus devices
NON_PERMANENT = cmd.CLEAR_MASK
_RISING = (
    (Status.POWER_LOW, MbusEventKind.REPLACE_BATTERY),
    (Status.FRAUD_ATTEMPT, MbusEventKind.FRAUD_ATTEMPT),
    (Status.PERMANENT_ERROR, MbusEventKind.PERMANENT_ERROR),
    # P3 §4.2.1 event 104 only "in case of a large time adjustment": the G meter flags a clock
    # that was more than 60 s off when it was set (P2 §6.2.1), seen at the next read.
    (Status.CLOCK_SYNC_ERROR, MbusEventKind.CLOCK_ADJUSTED),
)


class MbusMaster:
    """The E meter's P2 protocol engine."""

    def __init__(self, snapshot: MasterSnapshot, *, retries: int = 2) -> None:
        self._acc = snapshot.access_number
        self._channels = {c.number: c for c in snapshot.channels}
        self._retries = retries
        self._framer = Framer()
        self._queue: deque[Job] = deque()
        self._current: Job | None = None
        self._wire = b""
        self._attempts = 0
        self._installed = 0
        self._now: datetime | None = None  # meter time of the receive()/timeout() call

    @property
    def snapshot(self) -> MasterSnapshot:
        """Current persistent state."""
        channels = tuple(self._channels[n] for n in sorted(self._channels))
        return MasterSnapshot(self._acc, channels)

    @property
    def busy(self) -> bool:
        """True while an exchange waits for its answer."""
        return self._current is not None

    def channel(self, number: int) -> Channel | None:
        """Channel `number` (1..4) if a device is installed there."""
        return self._channels.get(number)

    # --- requests ---------------------------------------------------------------------------

    def scan(self) -> bytes:
        """Start the installation scan on address 0 (P2 §8.3.1, Fig. 6)."""
        self._installed = 0
        return self._enqueue(Job(Op.PROBE))

    def read(self, channel: int) -> bytes:
        """Hourly read-out: REQ_UD2 (P2 §4.3.2)."""
        return self._enqueue(Job(Op.READ, channel))

    def reset(self, channel: int) -> bytes:
        """SND_NKE to the channel (also restores its read-out list, P2 §6.3.2)."""
        return self._enqueue(Job(Op.RESET, channel))

    def sync_clock(self, channel: int, now: datetime) -> bytes:
        """Set the G meter's clock to `now` (UTC), encrypted once keyed (P2 §6.2.1)."""
        return self._enqueue(Job(Op.CLOCK, channel, when=now))

    def clear_status(self, channel: int) -> bytes:
        """Clear the non-permanent status bits (P2 §6.2.3)."""
        return self._enqueue(Job(Op.CLEAR, channel))

    def transfer_key(self, channel: int, wrapped: bytes, user_key: bytes, now: datetime) -> bytes:
        """Forward a P3 `transfer_key` octet string and adopt `user_key` (P2 §6.5.1).

        `wrapped` is the User key encrypted with the Default key, most significant byte first
        as P3 carries it; P2 sends it reversed. After the E5 the master reads the meter (to
        learn its frame counter) and syncs its clock encrypted (P2 Fig. 8).
        """
        if len(wrapped) != 16 or len(user_key) != 16:
            raise MbusError("wrapped and User keys are 16 bytes")
        return self._enqueue(Job(Op.KEY, channel, wire=wrapped[::-1], user_key=user_key, when=now))

    # --- bus input --------------------------------------------------------------------------

    def receive(self, data: bytes, now: datetime | None = None) -> MasterOutput:
        """Bytes from the bus; the first complete frame answers the pending request."""
        self._now = now
        events: list[MasterEvent] = []
        for item in self._framer.feed(data):
            job = self._current
            if job is None:
                continue  # unsolicited: slaves only speak when asked (P2 §3.1.5)
            if isinstance(item, Rejected):
                # Noise or a collision; the answer may still follow, else timeout() retries.
                events.append(ResponseRejected(job.channel, f"garbled: {item.error}"))
                continue
            send = self._answer(job, item, events)
            self._framer.reset()  # anything after the answer predates our next request
            return MasterOutput(send, tuple(events))
        return MasterOutput(b"", tuple(events))

    def timeout(self, now: datetime | None = None) -> MasterOutput:
        """No (complete) answer arrived in time."""
        self._now = now
        self._framer.reset()
        events: list[MasterEvent] = []
        send = self._failed("no answer", events) if self._current else b""
        return MasterOutput(send, tuple(events))

    # --- queue ------------------------------------------------------------------------------

    def _enqueue(self, job: Job) -> bytes:
        self._queue.append(job)
        self._now = None  # the job itself carries the time of this call
        return b"" if self._current else self._next()

    def _next(self) -> bytes:
        self._current = None
        while self._queue:
            job = self._queue.popleft()
            if job.when is not None and self._now is not None and self._now > job.when:
                job = replace(job, when=self._now)  # sent now: the clock is set to now
            message = self._build(job)
            if message is not None:
                self._current, self._attempts = job, 1 + self._retries
                self._wire = self._encode(job, message)
                return self._wire
        return b""

    def _take_acc(self) -> int:
        acc, self._acc = self._acc, (self._acc + 1) & 0xFF
        return acc

    def _build(self, job: Job) -> Message | None:
        if job.op is Op.PROBE:
            return SndNke(0)
        if job.op is Op.SET_ADDRESS:
            return SndUdPlain(0, cmd.set_address_records(job.address))
        if job.op is Op.IDENTIFY:
            return ReqUd2(job.address)
        ch = self._channels.get(job.channel)
        if ch is None:
            return None
        return self._channel_message(job, ch)

    def _channel_message(self, job: Job, ch: Channel) -> Message:
        counter = ch.frame_counter + 1 if ch.user_key else None  # P2 §5.2, Fig. 4
        mode = MODE_15 if ch.user_key else MODE_NONE
        if job.op is Op.RESET:
            return SndNke(ch.address)
        if job.op is Op.READ:
            return ReqUd2(ch.address)
        if job.op is Op.KEY:
            return SndUdPlain(ch.address, key_records(job.wire))
        if job.op is Op.CLOCK:
            if job.when is None:
                raise MbusError("a clock job needs the time to set")
            header = LongHeader(ch.device, self._take_acc(), 0, mode)
            return SndUdClock(ch.address, header, job.when, counter)
        header_short = ShortHeader(self._take_acc(), 0, mode)
        return SndUdReadout(ch.address, header_short, (cmd.clear_status_record(),), counter)

    def _encode(self, job: Job, message: Message) -> bytes:
        ch = self._channels.get(job.channel)
        key = ch.user_key if ch else None
        return encode_message(message, key=key, device=ch.device if ch else None)

    # --- answers ----------------------------------------------------------------------------

    def _answer(self, job: Job, frame: Frame, events: list[MasterEvent]) -> bytes:
        if job.op in (Op.IDENTIFY, Op.READ):
            ch = self._channels.get(job.channel)
            try:
                message = decode_message(frame, key=ch.user_key if ch else None)
            except MbusError as error:
                return self._failed(f"{type(error).__name__}: {error}", events)
            if not isinstance(message, RspUd):
                return self._failed(f"expected RSP_UD, got {type(message).__name__}", events)
            return self._response(job, message, events)
        if not isinstance(frame, Ack):
            return self._failed(f"expected E5, got {frame!r}", events)
        return self._acknowledged(job, events)

    def _acknowledged(self, job: Job, events: list[MasterEvent]) -> bytes:
        if job.op is Op.PROBE:
            return self._found_device(events)
        if job.op is Op.SET_ADDRESS:
            self._queue.appendleft(Job(Op.IDENTIFY, job.channel, job.address))
            return self._next()
        ch = self._channels[job.channel]
        if ch.user_key and job.op in (Op.CLOCK, Op.CLEAR):
            ch = replace(ch, frame_counter=ch.frame_counter + 1)  # validated by the G meter
        if job.op is Op.KEY:
            keyed = job.user_key if job.user_key != NO_KEY else None
            ch = replace(ch, user_key=keyed)
            follow_up = [Job(Op.READ, ch.number), Job(Op.CLOCK, ch.number, when=job.when)]
            self._queue.extendleft(reversed(follow_up))
        self._channels[ch.number] = replace(ch, comm_ok=True)
        if job.op is not Op.RESET:
            events.append(CommandAcknowledged(ch.number, job.op.value))
        self._comm_ok(ch, events)
        return self._next()

    def _found_device(self, events: list[MasterEvent]) -> bytes:
        free = [n for n in range(1, MAX_CHANNELS + 1) if n not in self._channels]
        if not free:
            events.append(ScanFinished(self._installed))
            return self._next()
        used = {c.address for c in self._channels.values()}
        # P2 §8.3.1 only asks for "an unused device address"; prefer address = channel.
        address = free[0] if free[0] not in used else min(set(range(1, 251)) - used)
        self._queue.appendleft(Job(Op.SET_ADDRESS, free[0], address))
        return self._next()

    def _response(self, job: Job, message: RspUd, events: list[MasterEvent]) -> bytes:
        if job.op is Op.IDENTIFY:
            return self._identified(job, message, events)
        ch = self._channels[job.channel]
        problem = check_response(ch, message)
        if problem:
            return self._failed(problem, events)
        summary = summarise(message.records)
        counter = message.frame_counter
        events.append(
            Reading(
                ch.number,
                ch.device,
                summary.volume_m3,
                summary.capture_time,
                summary.status,
                counter,
                summary.equipment_id,
            )
        )
        self._status_events(ch, summary.status, events)
        self._comm_ok(ch, events)
        ch = replace(ch, status=summary.status, comm_ok=True)
        self._channels[ch.number] = replace(ch, frame_counter=counter or ch.frame_counter)
        if summary.status & NON_PERMANENT:  # P2 §6.2.3: clear after reading
            self._queue.appendleft(Job(Op.CLEAR, ch.number))
        return self._next()

    def _identified(self, job: Job, message: RspUd, events: list[MasterEvent]) -> bytes:
        if message.address != job.address:
            return self._failed("RSP_UD from another address", events)
        device = message.header.device
        ch = Channel(job.channel, job.address, device, frame_counter=message.frame_counter or 0)
        self._channels[ch.number] = ch
        self._installed += 1
        events.append(DeviceInstalled(ch.number, ch.address, device))
        events.append(MbusEvent(ch.number, MbusEventKind.NEW_DEVICE))
        self._queue.appendleft(Job(Op.PROBE))  # keep scanning address 0
        return self._next()

    def _status_events(self, ch: Channel, status: int, events: list[MasterEvent]) -> None:
        rising = status & ~ch.status
        events.extend(MbusEvent(ch.number, kind) for flag, kind in _RISING if rising & flag)

    def _comm_ok(self, ch: Channel, events: list[MasterEvent]) -> None:
        if not ch.comm_ok:
            events.append(MbusEvent(ch.number, MbusEventKind.COMMUNICATION_OK))

    def _failed(self, reason: str, events: list[MasterEvent]) -> bytes:
        job = self._current
        if job is None:
            return b""
        events.append(ResponseRejected(job.channel, reason))
        self._attempts -= 1
        if self._attempts > 0:
            return self._wire  # the same frame again (same FC: the meter may have missed it)
        if job.op in (Op.PROBE, Op.SET_ADDRESS, Op.IDENTIFY):
            events.append(ScanFinished(self._installed))
            return self._next()
        ch = self._channels.get(job.channel)
        if ch is not None and ch.user_key and job.op in (Op.CLOCK, Op.CLEAR) and not job.resynced:
            # P2 §5.2: a keyed meter that ignores a command may hold a newer frame counter;
            # "the E-meter shall issue a REQ_UD2" to learn it, then the command is retried.
            self._queue.extendleft([replace(job, resynced=True), Job(Op.READ, ch.number)])
        elif ch is not None:
            if ch.comm_ok:
                events.append(MbusEvent(ch.number, MbusEventKind.COMMUNICATION_ERROR))
            self._channels[ch.number] = replace(ch, comm_ok=False)
        return self._next()


__all__ = ["Channel", "MasterSnapshot", "MbusMaster", "Op"]
