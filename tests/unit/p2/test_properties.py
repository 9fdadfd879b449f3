"""Property tests: encoder/decoder round trips, and no foreign exception on any input."""

from __future__ import annotations

import contextlib
from datetime import datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.p2.strategies import (
    BYTE,
    COUNTERS,
    KEYS,
    RECORD_LISTS,
    SHORT_IDS,
    UTC_TIMES,
    long_headers,
    short_headers,
)
from tests.unit.p2.vectors import ALL, USER_KEY
from twin.p2.errors import MbusError
from twin.p2.frames import Framer, LongFrame, decode_frame, encode_frame
from twin.p2.headers import MODE_15, MODE_NONE, LongHeader, ShortHeader, ShortId
from twin.p2.messages import (
    Message,
    RspUd,
    SndUdClock,
    SndUdPlain,
    SndUdReadout,
    decode_message,
    encode_message,
)
from twin.p2.records import Item, Record, decode_records
from twin.p2.values import interpret

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
GAS = ShortId(23456789, "NET")


def _counter(mode: int, counter: int) -> int | None:
    return counter if mode == MODE_15 else None


@FAST
@given(BYTE, long_headers(), RECORD_LISTS, COUNTERS, KEYS)
def test_rsp_ud_round_trip(
    address: int, header: LongHeader, records: tuple[Item, ...], counter: int, key: bytes
) -> None:
    message = RspUd(address, header, records, _counter(header.mode, counter))
    data = encode_message(message, key=key)
    assert decode_message(data, key=key) == message


@FAST
@given(short_headers(), RECORD_LISTS, COUNTERS, KEYS, SHORT_IDS)
def test_readout_round_trip(
    header: ShortHeader, records: tuple[Item, ...], counter: int, key: bytes, device: ShortId
) -> None:
    message = SndUdReadout(1, header, records, _counter(header.mode, counter))
    data = encode_message(message, key=key, device=device)
    assert decode_message(data, key=key, device=device) == message


@FAST
@given(BYTE, st.sampled_from([MODE_NONE, MODE_15]).flatmap(long_headers), UTC_TIMES, COUNTERS)
def test_clock_round_trip(address: int, header: LongHeader, when: datetime, counter: int) -> None:
    message = SndUdClock(address, header, when, _counter(header.mode, counter))
    assert decode_message(encode_message(message, key=USER_KEY), key=USER_KEY) == message


@FAST
@given(BYTE, RECORD_LISTS, st.booleans())
def test_plain_round_trip(address: int, records: tuple[Item, ...], fcb: bool) -> None:
    message = SndUdPlain(address, records, fcb)
    assert decode_message(encode_message(message)) == message


def _decode_all_ways(data: bytes) -> None:
    """Decode `data` as a frame, a message (with and without key) and as records."""
    for kwargs in ({}, {"key": USER_KEY, "device": GAS}, {"key": USER_KEY, "iv_version": 0x40}):
        with contextlib.suppress(MbusError):
            decode_message(data, **kwargs)  # type: ignore[arg-type]
    try:
        items = decode_records(data)
    except MbusError:
        return
    for item in items:
        if isinstance(item, Record):
            with contextlib.suppress(MbusError):
                interpret(item)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_raise_only_mbus_errors(data: bytes) -> None:
    _decode_all_ways(data)
    Framer().feed(data)  # the framer never raises at all


@settings(max_examples=150, deadline=None)
@given(
    st.sampled_from([0x08, 0x53, 0x73]),
    st.sampled_from([0x72, 0x5A, 0x6C, 0x51]),
    st.binary(max_size=250),
)
def test_random_bodies_in_valid_frames_raise_only_mbus_errors(c: int, ci: int, body: bytes) -> None:
    _decode_all_ways(encode_frame(LongFrame(c, 1, ci, body)))


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(sorted(ALL)), st.data())
def test_bit_flips_in_vectors_raise_only_mbus_errors(name: str, data: st.DataObject) -> None:
    frame = bytearray(ALL[name])
    index = data.draw(st.integers(0, len(frame) - 1))
    frame[index] ^= 1 << data.draw(st.integers(0, 7))
    _decode_all_ways(bytes(frame))


def test_every_truncation_of_every_vector_is_an_mbus_error() -> None:
    for name, frame in ALL.items():
        for size in range(len(frame)):
            try:
                decode_message(frame[:size], key=USER_KEY)
            except MbusError:
                continue
            raise AssertionError(f"{name}[:{size}] decoded")  # pragma: no cover


def _messages() -> st.SearchStrategy[Message]:
    return st.builds(RspUd, BYTE, long_headers(MODE_15), RECORD_LISTS, COUNTERS) | st.builds(
        SndUdPlain, BYTE, RECORD_LISTS
    )


@FAST
@given(_messages(), st.data())
def test_truncations_and_chunked_framing_of_generated_frames(
    message: Message, data: st.DataObject
) -> None:
    wire = encode_message(message, key=USER_KEY)
    size = data.draw(st.integers(0, len(wire) - 1))
    try:
        decode_message(wire[:size], key=USER_KEY)
        raise AssertionError("a truncated frame decoded")  # pragma: no cover
    except MbusError:
        pass
    framer = Framer()
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=5)))
    pieces = [wire[a:b] for a, b in zip([0, *cuts], [*cuts, len(wire)], strict=True)]
    frames = [item for piece in pieces for item in framer.feed(piece)]
    assert frames == [decode_frame(wire)]
    garbage = data.draw(st.binary(max_size=8))
    assert framer.feed(wire + garbage)[0] == decode_frame(wire)
