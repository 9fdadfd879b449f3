"""Which M-Bus channels want their clock set, and when each one last was (P2 §6.2.1).

P2 §6.2.1 / MAIN use case 14 ask for a sync after installation and key change, at least
daily, after every E-meter clock change (DST included) and after every communication restart.
The P2 service marks channels here and syncs each one once it answers; a channel is done when
the G meter acknowledges the sync.
"""

from __future__ import annotations

from collections import deque
from datetime import datetime, timedelta

SYNC_INTERVAL = timedelta(hours=24)  # P2 §6.2.1 / MAIN use case 14: at least daily
RECENT_SYNCS = 32


class ClockSyncs:
    """`wanted` channels, the `last` sync per channel (persisted) and a log of recent ones."""

    def __init__(self, last: dict[int, datetime]) -> None:
        self.last = last
        self.wanted: set[int] = set()
        # Recent clock synchronisations (channel, meter time), for ctl status and tests.
        self.log: deque[tuple[int, datetime]] = deque(maxlen=RECENT_SYNCS)

    def want(self, channel: int) -> None:
        self.wanted.add(channel)

    def want_if_stale(self, channel: int, now: datetime) -> None:
        """The daily sync: wanted when the last one is `SYNC_INTERVAL` old (or never was)."""
        last = self.last.get(channel)
        if last is None or now - last >= SYNC_INTERVAL:
            self.wanted.add(channel)

    def done(self, channel: int, now: datetime) -> None:
        """The G meter acknowledged a sync at meter time `now`."""
        self.last[channel] = now
        self.log.append((channel, now))

    def forget(self, channel: int) -> None:
        self.last.pop(channel, None)
