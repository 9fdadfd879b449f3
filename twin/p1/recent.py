"""The last telegrams the P1 service put on the line, for the operators' views (the web
console): bounded, in memory, newest last. Each keeps its bytes, its CRC (P1 §6.2: the four
hex digits after "!"), the meter time of its slot, the real time it went out and how it ended
(P1 §4.3: a telegram cut by Request falling is "aborted").
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import datetime

RECENT_TELEGRAMS = 10  # a minute and a half at the 10 s cadence: enough to compare a few


@dataclass(frozen=True, slots=True)
class SentTelegram:
    slot: datetime  # meter time the telegram carries (0-0:1.0.0)
    sent_at: datetime  # real (host) time the write began, UTC
    data: bytes
    outcome: str  # "sent" | "aborted" (Request fell, P1 §4.3) | "timed-out"

    @property
    def crc(self) -> str:
        """The CRC as written after "!" (P1 §6.2), "" if the telegram has none."""
        _, bang, tail = self.data.rpartition(b"!")
        return tail.strip().decode("ascii", "replace") if bang else ""

    def to_json(self) -> dict[str, object]:
        return {
            "slot": self.slot.isoformat(),
            "sent_at": self.sent_at.isoformat(timespec="milliseconds"),
            "crc": self.crc,
            "outcome": self.outcome,
            "bytes": len(self.data),
            "text": self.data.decode("ascii", "replace"),
        }


class RecentTelegrams:
    """A ring of the last `size` telegrams; `count` grows with every one (a change marker)."""

    def __init__(self, size: int = RECENT_TELEGRAMS) -> None:
        self._ring: deque[SentTelegram] = deque(maxlen=size)
        self.count = 0

    def add(self, slot: datetime, data: bytes, outcome: str, sent_at: datetime) -> None:
        self._ring.append(SentTelegram(slot, sent_at, data, outcome))
        self.count += 1

    def newest_first(self) -> list[SentTelegram]:
        return list(reversed(self._ring))
