"""Fuzz cases for the P2 state machines, shared by the Hypothesis tests and bench/bench_p2_fuzz.py.

Each case feeds hostile input to a keyed gas-meter slave or to the E meter's master (random
bytes, mutated valid frames with or without a repaired checksum, frames under a wrong key,
replayed frames) and checks what the ports promise: the state machine raises nothing, reports
only its typed events, and a good exchange works right after (the line having gone idle in
between, as it does on a wire). A failed check raises `FuzzError`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import get_args

from twin.p2.crypto import wrap_user_key
from twin.p2.frames import LONG_START, SHORT_START, checksum
from twin.p2.master import MasterSnapshot, MbusMaster
from twin.p2.master_events import MasterEvent, Reading, ResponseRejected
from twin.p2.messages import ReqUd2, RspUd, decode_message, encode_message
from twin.p2.slave import GasMeterIdentity, GasMeterSlave, SlaveSnapshot
from twin.p2.slave_events import Ignored, SlaveEvent

NOW = datetime(2026, 1, 15, 7, 5, tzinfo=UTC)
CAPTURE = datetime(2026, 1, 15, 7, 0, tzinfo=UTC)
USER_KEY = bytes(range(16))  # P2 App. B
DEFAULT_KEY = bytes.fromhex("00112233445566778899AABBCCDDEEFF")  # P2 App. B
IDENTITY = GasMeterIdentity(12345678, "TWN", "G0099000012345678", DEFAULT_KEY)
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "p2"
SLAVE_EVENTS = get_args(SlaveEvent)
MASTER_EVENTS = get_args(MasterEvent)


class FuzzError(AssertionError):
    """A state machine broke a promise; the message says which and how."""


def _check(condition: bool, what: str) -> None:
    if not condition:
        raise FuzzError(what)


def _fixtures() -> tuple[bytes, ...]:
    frames = []
    for path in sorted(FIXTURES.glob("*.hex")):
        lines = path.read_text(encoding="utf-8").splitlines()
        frames.append(bytes.fromhex(" ".join(ln for ln in lines if not ln.startswith("#"))))
    return tuple(frames)


@dataclass(frozen=True, slots=True)
class Keyed:
    """Snapshots of an installed, keyed pair, and the frames it exchanged getting there."""

    master: MasterSnapshot
    slave: SlaveSnapshot
    frames: tuple[bytes, ...]  # every frame on the bus, both ways: material to mutate


def _keyed() -> Keyed:
    slave = GasMeterSlave(IDENTITY, SlaveSnapshot(access_number=7))
    slave.update(1_234_567, CAPTURE)
    master = MbusMaster(MasterSnapshot(access_number=0x40))
    frames: list[bytes] = []
    wrapped = wrap_user_key(DEFAULT_KEY, USER_KEY)[::-1]  # as P3 carries it
    steps = (
        master.scan,
        lambda: master.transfer_key(1, wrapped, USER_KEY, NOW),  # then a read and a sync
        lambda: master.read(1),
    )
    for step in steps:
        wire = step()
        while wire:
            reply = slave.receive(wire, NOW).reply
            frames += [wire, reply] if reply else [wire]
            wire = (master.receive(reply, NOW) if reply else master.timeout(NOW)).send
    channel = master.channel(1)
    _check(channel is not None and channel.user_key == USER_KEY, "set-up did not key the pair")
    return Keyed(master.snapshot, slave.snapshot, tuple(frames) + _fixtures())


KEYED = _keyed()
FRAMES = KEYED.frames


def mutate(frame: bytes, edits: list[tuple[int, int]], cut: int | None, repair: bool) -> bytes:
    """`frame` with bytes replaced (position modulo the length), then possibly truncated.

    `repair` recomputes the checksum, so the mutation reaches the message decoder instead of
    stopping at the link layer's checksum.
    """
    data = bytearray(frame)
    for position, value in edits:
        data[position % len(data)] = value
    if repair and len(data) >= 6 and data[0] == LONG_START:
        data[-2] = checksum(bytes(data[4:-2]))
    elif repair and len(data) == 5 and data[0] == SHORT_START:
        data[3] = checksum(bytes(data[1:3]))
    return bytes(data if cut is None else data[: cut % (len(data) + 1)])


# --- the gas-meter slave --------------------------------------------------------------------


def fresh_slave() -> GasMeterSlave:
    return GasMeterSlave(IDENTITY, KEYED.slave)


def _slave_events(slave: GasMeterSlave, data: bytes) -> tuple[bytes, tuple[SlaveEvent, ...]]:
    try:
        out = slave.receive(data, NOW)
    except Exception as exc:  # the promise under test: nothing escapes
        raise FuzzError(f"slave raised {type(exc).__name__}: {exc} on {data.hex()}") from exc
    _check(isinstance(out.reply, bytes), "slave reply is not bytes")
    for event in out.events:
        _check(isinstance(event, SLAVE_EVENTS), f"slave reported {event!r}")
    return out.reply, out.events


def slave_still_answers(slave: GasMeterSlave) -> None:
    """After the line went idle, REQ_UD2 to its address gets a good RSP_UD under its key."""
    slave.timeout()
    before = slave.snapshot
    reply, _ = _slave_events(slave, encode_message(ReqUd2(before.address)))
    try:
        message = decode_message(reply, key=before.user_key)
    except Exception as exc:
        raise FuzzError(f"no good answer after the case: {type(exc).__name__}: {exc}") from exc
    _check(isinstance(message, RspUd), "the answer is no RSP_UD")
    assert isinstance(message, RspUd)
    _check(message.address == before.address, "answer from another address")
    if before.user_key is not None:
        _check(message.frame_counter == before.frame_counter + 1, "frame counter not +1")


def slave_bytes(data: bytes) -> None:
    """Any bytes, in one go."""
    slave = fresh_slave()
    _slave_events(slave, data)
    slave_still_answers(slave)


def slave_mutated(
    index: int, edits: list[tuple[int, int]], cut: int | None, repair: bool, prefix: bytes
) -> None:
    """A mutated frame from the key-up exchange or the published vectors, after noise."""
    slave = fresh_slave()
    _slave_events(slave, prefix + mutate(FRAMES[index % len(FRAMES)], edits, cut, repair))
    slave_still_answers(slave)


def slave_wrong_key(key: bytes, seconds: int) -> None:
    """A clock sync from a master that holds another User key: ignored, nothing changes."""
    slave = fresh_slave()
    channel = MbusMaster(KEYED.master).channel(1)
    assert channel is not None
    wrong = key if key != USER_KEY else bytes(16)
    impostor = MbusMaster(replace(KEYED.master, channels=(replace(channel, user_key=wrong),)))
    before = slave.snapshot
    reply, events = _slave_events(slave, impostor.sync_clock(1, NOW + timedelta(seconds=seconds)))
    _check(reply == b"" and slave.snapshot == before, "a wrong-key command was obeyed")
    _check(any(isinstance(e, Ignored) for e in events), "the rejection was not reported")
    slave_still_answers(slave)


def slave_replay(seconds: int) -> None:
    """An encrypted command the slave obeyed, sent again: refused (P2 §5.2), state kept."""
    slave = fresh_slave()
    master = MbusMaster(KEYED.master)
    command = master.sync_clock(1, NOW + timedelta(seconds=seconds))
    reply, _ = _slave_events(slave, command)
    _check(reply == b"\xe5", "the fresh command was not acknowledged")
    before = slave.snapshot
    reply, events = _slave_events(slave, command)
    _check(reply == b"" and slave.snapshot == before, "a replayed command was obeyed")
    _check(any(isinstance(e, Ignored) for e in events), "the replay was not reported")
    slave_still_answers(slave)


# --- the E meter's master -------------------------------------------------------------------


def _master_events(master: MbusMaster, data: bytes | None) -> tuple[bytes, list[MasterEvent]]:
    try:
        out = master.receive(data, NOW) if data is not None else master.timeout(NOW)
    except Exception as exc:
        raise FuzzError(f"master raised {type(exc).__name__}: {exc}") from exc
    for event in out.events:
        _check(isinstance(event, MASTER_EVENTS), f"master reported {event!r}")
    return out.send, list(out.events)


def master_still_reads(master: MbusMaster, slave: GasMeterSlave | None = None) -> None:
    """The line went idle (timeouts until the master gives up), then a read works."""
    for _ in range(10):
        if not master.busy:
            break
        _master_events(master, None)
    _check(not master.busy, "the master never gave up waiting")
    slave = slave or fresh_slave()
    send, events = master.read(1), []
    while send:
        reply = slave.receive(send, NOW).reply
        send, more = _master_events(master, reply or None)
        events += more
    _check(any(isinstance(e, Reading) for e in events), f"no reading after the case: {events}")


def master_answer(data: bytes) -> list[MasterEvent]:
    """Whatever `data` is, as the answer to an hourly read."""
    master = MbusMaster(KEYED.master)
    _check(bool(master.read(1)), "the read was not sent")
    _, events = _master_events(master, data)
    master_still_reads(master)
    return events


def master_mutated(
    index: int, edits: list[tuple[int, int]], cut: int | None, repair: bool, prefix: bytes
) -> None:
    master_answer(prefix + mutate(FRAMES[index % len(FRAMES)], edits, cut, repair))


def master_wrong_key(key: bytes) -> None:
    """An RSP_UD from the right meter under another User key: rejected, not read."""
    wrong = key if key != USER_KEY else bytes(16)
    slave = GasMeterSlave(IDENTITY, replace(KEYED.slave, user_key=wrong))
    reply = slave.receive(encode_message(ReqUd2(1)), NOW).reply
    events = master_answer(reply)
    _check(not any(isinstance(e, Reading) for e in events[:1]), "a wrong-key answer was read")
    _check(any(isinstance(e, ResponseRejected) for e in events), "no rejection reported")


def master_replay(repeat: int) -> None:
    """An RSP_UD the master accepted, replayed `repeat` reads later: rejected (P2 §5.2)."""
    slave = fresh_slave()
    master = MbusMaster(KEYED.master)
    old = slave.receive(master.read(1), NOW).reply
    _, events = _master_events(master, old)
    _check(any(isinstance(e, Reading) for e in events), "the fresh answer was not read")
    for _ in range(repeat % 3):
        reply = slave.receive(master.read(1), NOW).reply
        _master_events(master, reply)
    _check(bool(master.read(1)), "the read was not sent")
    _, events = _master_events(master, old)
    _check(not any(isinstance(e, Reading) for e in events), "a replayed answer was read")
    _check(any(isinstance(e, ResponseRejected) for e in events), "the replay was not reported")
    master_still_reads(master, slave)


def master_forged_counter(counter: int) -> None:
    """A genuine RSP_UD whose clear frame counter (mode 15, P2 §5.2) was changed, checksum
    repaired: never read, the counter never adopted, the meter still read afterwards."""
    slave = fresh_slave()
    master = MbusMaster(KEYED.master)
    genuine = slave.receive(master.read(1), NOW).reply
    forged = bytearray(genuine)
    forged[-6:-2] = counter.to_bytes(4, "little")  # 04 FD 08 <FC> CS 16
    forged[-2] = checksum(bytes(forged[4:-2]))
    channel = master.channel(1)
    assert channel is not None
    _, events = _master_events(master, bytes(forged))
    if bytes(forged) != genuine:
        _check(not any(isinstance(e, Reading) for e in events), f"forged FC {counter} read")
        after = master.channel(1)
        _check(after is not None and after.frame_counter == channel.frame_counter, "FC adopted")
    master_still_reads(master, slave)
