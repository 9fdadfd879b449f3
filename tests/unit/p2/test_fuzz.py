"""Fuzzing the P2 state machines (the cases are in tests/unit/p2/fuzz.py).

Random bytes, mutated and truncated frames from the key-up exchange and the published vectors
(tests/fixtures/p2), frames under a wrong User key and replayed frames, at the keyed gas-meter
slave and at the master: only typed events, never an exception, and a good exchange right
after every case. About 2 300 cases here; bench/bench_p2_fuzz.py runs 10^5.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.p2 import fuzz
from twin.p2.master import MbusMaster
from twin.p2.master_events import Reading
from twin.p2.slave import GasMeterSlave

CASES = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FEW = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
EDITS = st.lists(st.tuples(st.integers(0, 300), st.integers(0, 255)), min_size=1, max_size=4)
CUTS = st.none() | st.integers(0, 300)
NOISE = st.binary(max_size=6)
FRAME = st.integers(0, len(fuzz.FRAMES) - 1)
KEYS = st.binary(min_size=16, max_size=16)


@CASES
@given(st.binary(max_size=300))
def test_slave_random_bytes(data: bytes) -> None:
    fuzz.slave_bytes(data)


@CASES
@given(FRAME, EDITS, CUTS, st.booleans(), NOISE)
def test_slave_mutated_frames(
    index: int, edits: list[tuple[int, int]], cut: int | None, repair: bool, noise: bytes
) -> None:
    fuzz.slave_mutated(index, edits, cut, repair, noise)


@FEW
@given(KEYS, st.integers(-3600, 3600))
def test_slave_wrong_key(key: bytes, seconds: int) -> None:
    fuzz.slave_wrong_key(key, seconds)


@FEW
@given(st.integers(-3600, 3600))
def test_slave_replayed_command(seconds: int) -> None:
    fuzz.slave_replay(seconds)


@CASES
@given(st.binary(max_size=300))
def test_master_random_answers(data: bytes) -> None:
    events = fuzz.master_answer(data)
    assert not any(isinstance(e, Reading) for e in events)


@CASES
@given(FRAME, EDITS, CUTS, st.booleans(), NOISE)
def test_master_mutated_answers(
    index: int, edits: list[tuple[int, int]], cut: int | None, repair: bool, noise: bytes
) -> None:
    fuzz.master_mutated(index, edits, cut, repair, noise)


@FEW
@given(KEYS)
def test_master_wrong_key(key: bytes) -> None:
    fuzz.master_wrong_key(key)


@FEW
@given(st.integers(0, 5))
def test_master_replayed_answer(repeat: int) -> None:
    fuzz.master_replay(repeat)


@CASES
@given(st.integers(0, 0xFFFFFFFF))
def test_master_forged_frame_counter(counter: int) -> None:
    fuzz.master_forged_counter(counter)


def test_a_broken_promise_is_caught() -> None:
    # The harness can fail: the meter moved to address 9, so the read on address 1 is lost.
    moved = GasMeterSlave(fuzz.IDENTITY, replace(fuzz.KEYED.slave, address=9))
    with pytest.raises(fuzz.FuzzError, match="no reading"):
        fuzz.master_still_reads(MbusMaster(fuzz.KEYED.master), moved)
