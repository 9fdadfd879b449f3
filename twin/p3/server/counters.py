"""A `CounterReservation` that reserves invocation counters in blocks, ahead in the store:
the counter is part of the GCM IV (P3 §3.2.3 "Frame Counters"), which must never repeat under
one key (NIST SP 800-38D §8), not even after a crash.

`persist(limit)` must durably record that every counter below `limit` may have been used
before it returns; after a restart the store starts again at the last persisted limit, so no
counter is ever handed out twice for the same key, at the cost of skipping part of a block.
The I/O lives in the injected callable, so this class stays sans-IO.

Reserving ahead: `wanted_ahead()` names the next block's limit once half of the running block
is used, so its owner can make it durable without holding anyone up (a write in the
background) and report it with `reserved(limit)`. Until that report the counter behaves as
before: a counter at or above the last reported limit first waits for `persist`. No counter is
ever handed out that is not below a limit known to be on disk.
"""

from __future__ import annotations

from collections.abc import Callable

from twin.p3.dlms.errors import CounterExhaustedError, LocalP3Error
from twin.p3.dlms.security import MAX_INVOCATION_COUNTER

_SPACE = MAX_INVOCATION_COUNTER + 1


class BlockReservation:
    def __init__(self, start: int, persist: Callable[[int], None], block: int = 1000) -> None:
        # start == 2^32: the persisted limit of an exhausted counter (see below).
        if not 0 <= start <= _SPACE or block < 1:
            raise LocalP3Error(f"bad reservation start={start} block={block}")
        self._next = start
        self._limit = start  # nothing reserved yet
        self._persist = persist
        self._block = block

    @property
    def exhausted(self) -> bool:
        return self._next == _SPACE

    def wanted_ahead(self) -> int | None:
        """The limit to make durable now, in the background, or None while more than half a
        block is left (or no counter is left to reserve)."""
        if self._limit >= _SPACE or self._limit - self._next > self._block // 2:
            return None
        return min(self._limit + self._block, _SPACE)

    def reserved(self, limit: int) -> None:
        """`limit` is durable (a reservation made ahead): counters below it may be used."""
        if self._limit < limit <= _SPACE:
            self._limit = limit

    def next_invocation_counter(self) -> int:
        if self.exhausted:
            # P3 §3.2.3 says the meter "resets the Frame Counter to zero when [it] reaches the
            # maximum value", trusting the CS to have changed the GUEK before a value comes
            # round again. Wrapping under the same GUEK would reuse an AES-GCM IV (NIST SP
            # 800-38D §8), so the twin refuses instead; the owner restarts the counter when a
            # new GUEK is installed (twin.p3.keys).
            raise CounterExhaustedError("server invocation counter exhausted for this GUEK")
        if self._next >= self._limit:
            limit = min(self._next + self._block, _SPACE)
            # Taken as reserved only once persisted: a failed persist (storage fault) must
            # not leave a block in memory that the disk does not know of.
            self._persist(limit)
            self._limit = limit
        value = self._next
        self._next += 1
        return value

    def restart(self, start: int) -> None:
        """Count again from `start`: only for a new key (nothing was used with it yet)."""
        if not 0 <= start <= MAX_INVOCATION_COUNTER:
            raise LocalP3Error(f"bad restart {start}")
        self._next = self._limit = start
