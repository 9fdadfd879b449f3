from __future__ import annotations

import pytest

from twin.p3.dlms.errors import CounterExhaustedError, LocalP3Error
from twin.p3.server.counters import BlockReservation


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


def test_never_wraps_refuses_once_exhausted_until_restarted() -> None:
    persisted: list[int] = []
    counters = BlockReservation(2**32 - 2, persisted.append, block=10)
    assert [counters.next_invocation_counter() for _ in range(2)] == [2**32 - 2, 2**32 - 1]
    for _ in range(2):
        with pytest.raises(CounterExhaustedError):
            counters.next_invocation_counter()
    assert counters.exhausted
    assert persisted == [2**32]
    counters.restart(1)  # a new GUEK is installed
    assert not counters.exhausted
    assert counters.next_invocation_counter() == 1
    assert persisted == [2**32, 11]  # the new block is durable before its first use


def test_an_exhausted_limit_survives_a_restart() -> None:
    counters = BlockReservation(2**32, print)
    assert counters.exhausted
    with pytest.raises(CounterExhaustedError):
        counters.next_invocation_counter()


def test_bad_arguments() -> None:
    with pytest.raises(LocalP3Error):
        BlockReservation(-1, print)
    with pytest.raises(LocalP3Error):
        BlockReservation(2**32 + 1, print)
    with pytest.raises(LocalP3Error):
        BlockReservation(0, print, block=0)
