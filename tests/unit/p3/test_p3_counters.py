from __future__ import annotations

import pytest

from twin.p3.counters import BlockReservation
from twin.p3.errors import LocalP3Error


def test_reserves_ahead_in_blocks() -> None:
    persisted: list[int] = []
    counters = BlockReservation(10, persisted.append, block=3)
    values = [counters.next_invocation_counter() for _ in range(7)]
    assert values == list(range(10, 17))
    assert persisted == [13, 16, 19]  # each block recorded before its first use


def test_restart_from_persisted_limit_never_reuses() -> None:
    persisted: list[int] = []
    first = BlockReservation(0, persisted.append, block=100)
    used = {first.next_invocation_counter() for _ in range(5)}
    second = BlockReservation(persisted[-1], persisted.append, block=100)
    assert second.next_invocation_counter() not in used


def test_wraps_to_zero_at_maximum() -> None:
    persisted: list[int] = []
    counters = BlockReservation(2**32 - 2, persisted.append, block=10)
    assert [counters.next_invocation_counter() for _ in range(3)] == [2**32 - 2, 2**32 - 1, 0]
    assert persisted == [2**32, 10]


def test_bad_arguments() -> None:
    with pytest.raises(LocalP3Error):
        BlockReservation(-1, print)
    with pytest.raises(LocalP3Error):
        BlockReservation(0, print, block=0)
