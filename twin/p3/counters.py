"""A `CounterReservation` that reserves invocation counters in blocks (ARCHITECTURE.md layer
6: "a counter used in a nonce/IV is reserved ahead in the store before use").

`persist(limit)` must durably record that every counter below `limit` may have been used
before it returns; after a restart the store starts again at the last persisted limit, so no
counter is ever handed out twice for the same key, at the cost of skipping part of a block.
The I/O lives in the injected callable, so this class stays sans-IO.
"""

from __future__ import annotations

from collections.abc import Callable

from twin.p3.errors import LocalP3Error
from twin.p3.security import MAX_INVOCATION_COUNTER

_SPACE = MAX_INVOCATION_COUNTER + 1


class BlockReservation:
    def __init__(self, start: int, persist: Callable[[int], None], block: int = 1000) -> None:
        if not 0 <= start <= MAX_INVOCATION_COUNTER or block < 1:
            raise LocalP3Error(f"bad reservation start={start} block={block}")
        self._next = start
        self._limit = start  # nothing reserved yet
        self._persist = persist
        self._block = block

    def next_invocation_counter(self) -> int:
        if self._next == _SPACE:
            # P3 §3.2.3: "The E-Meter resets the Frame Counter to zero when the Frame Counter
            # reaches the maximum value" (the CS must have changed the GUEK before that).
            self._next = self._limit = 0
        if self._next >= self._limit:
            limit = min(self._next + self._block, _SPACE)
            # Taken as reserved only once persisted: a failed persist (storage fault) must
            # not leave a block in memory that the disk does not know of.
            self._persist(limit)
            self._limit = limit
        value = self._next
        self._next += 1
        return value
