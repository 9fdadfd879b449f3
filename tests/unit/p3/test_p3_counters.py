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


def test_the_next_block_is_wanted_ahead_and_used_once_reported_durable() -> None:
    persisted: list[int] = []
    counters = BlockReservation(1, persisted.append, block=10)
    assert counters.wanted_ahead() == 11  # nothing reserved: the first block is wanted
    counters.reserved(11)  # the owner made it durable without waiting on it here
    assert [counters.next_invocation_counter() for _ in range(4)] == [1, 2, 3, 4]
    assert counters.wanted_ahead() is None  # more than half a block left (5..10)
    assert counters.next_invocation_counter() == 5
    assert counters.wanted_ahead() == 21  # half a block left: the next one, contiguous
    counters.reserved(21)
    assert [counters.next_invocation_counter() for _ in range(12)] == list(range(6, 18))
    assert persisted == []  # every counter handed out lay below a limit reported durable


def test_a_limit_not_reported_durable_is_never_used() -> None:
    persisted: list[int] = []
    counters = BlockReservation(1, persisted.append, block=10)
    assert counters.wanted_ahead() == 11  # asked for, never reported durable
    assert counters.next_invocation_counter() == 1
    assert persisted == [11]  # so the first counter waited for its own reservation
    counters.reserved(5)  # a stale, lower report changes nothing
    assert [counters.next_invocation_counter() for _ in range(10)] == list(range(2, 12))
    assert persisted == [11, 21]


def test_nothing_is_wanted_ahead_of_an_exhausted_counter() -> None:
    counters = BlockReservation(2**32 - 3, print, block=10)
    assert counters.wanted_ahead() == 2**32  # the last block is clipped to the space
    counters.reserved(2**32)
    assert counters.wanted_ahead() is None
    for _ in range(3):
        counters.next_invocation_counter()
    assert counters.exhausted
    assert counters.wanted_ahead() is None
