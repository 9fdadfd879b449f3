"""The profile buffers and event logs in the store (P3 §5.5-§5.10, §6.3, §7.4, §8.6).

`insert_outbox` writes what the meter model logged, inside the store's commit transaction;
`ProfileTables` (a base of `Store`) reads the buffers back, oldest entry first, and clears them
for the reset () method of the profile generic objects. Each clear is one durable
transaction, like a commit.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from twin.clock import TIME_MAX
from twin.meter.events import Event, EventCode, EventLog
from twin.meter.model import Outbox
from twin.meter.profiles import (
    DAILY_PROFILE_ENTRIES,
    LOAD_PROFILE_ENTRIES,
    MBUS_HOURLY_ENTRIES,
    MONTHLY_PROFILE_ENTRIES,
    DailyProfileRow,
    LoadProfileRow,
    MbusHourRow,
)


@dataclass(frozen=True, slots=True)
class StoredEntry:
    """One entry of a profile whose columns the CS defines: row id (capture order), capture
    time, and the row's values as one encoded A-XDR structure."""

    id: int
    time: datetime
    entry: bytes


_PROFILE_TABLES = (  # fixed table names, for statements over every profile buffer
    "load_profile",
    "daily_profile",
    "monthly_profile",
    "mbus_hourly",
    "definable_profile",
)


def _ts(when: datetime) -> float:
    return when.timestamp()


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def insert_outbox(db: sqlite3.Connection, outbox: Outbox) -> None:
    """The outbox's events and profile rows, in the caller's transaction."""
    _insert_events(db, outbox.events)
    _insert_load_profile(db, outbox.load_profile)
    _insert_billing(db, "daily_profile", outbox.daily_profile, DAILY_PROFILE_ENTRIES)
    _insert_billing(db, "monthly_profile", outbox.monthly_profile, MONTHLY_PROFILE_ENTRIES)
    _insert_mbus_hourly(db, outbox.mbus_hourly)


def _insert_events(db: sqlite3.Connection, events: list[Event]) -> None:
    for event in events:
        db.execute(
            "INSERT INTO events (log, time, code) VALUES (?, ?, ?)",
            (event.log.name, _ts(event.when), event.code),
        )
    for log in {e.log for e in events}:
        db.execute(
            "DELETE FROM events WHERE log = ? AND id NOT IN"
            " (SELECT id FROM events WHERE log = ? ORDER BY id DESC LIMIT ?)",
            (log.name, log.name, log.capacity),
        )


def _insert_load_profile(db: sqlite3.Connection, rows: list[LoadProfileRow]) -> None:
    if not rows:
        return
    db.executemany(
        "INSERT OR REPLACE INTO load_profile (time, status, import_wh, export_wh)"
        " VALUES (?, ?, ?, ?)",
        [(_ts(r.time), r.status, r.import_wh, r.export_wh) for r in rows],
    )
    db.execute(
        "DELETE FROM load_profile WHERE time NOT IN"
        " (SELECT time FROM load_profile ORDER BY time DESC LIMIT ?)",
        (LOAD_PROFILE_ENTRIES,),
    )


def _insert_billing(
    db: sqlite3.Connection, table: str, rows: list[DailyProfileRow], capacity: int
) -> None:
    if not rows:
        return
    db.executemany(
        f"INSERT OR REPLACE INTO {table} (time, status, energy, mbus) VALUES (?, ?, ?, ?)",  # noqa: S608 - fixed table names
        [
            (
                _ts(r.time),
                r.status,
                json.dumps(r.energy_wh),
                json.dumps([(c, v, _ts(t) if t else None) for c, v, t in r.mbus]),
            )
            for r in rows
        ],
    )
    db.execute(
        f"DELETE FROM {table} WHERE time NOT IN"  # noqa: S608 - fixed table names
        f" (SELECT time FROM {table} ORDER BY time DESC LIMIT ?)",
        (capacity,),
    )


def _insert_mbus_hourly(db: sqlite3.Connection, rows: list[MbusHourRow]) -> None:
    db.executemany(
        "INSERT OR REPLACE INTO mbus_hourly (channel, time, status, value, capture)"
        " VALUES (?, ?, ?, ?, ?)",
        [
            (r.channel, _ts(r.time), r.status, r.value, _ts(r.capture) if r.capture else None)
            for r in rows
        ],
    )
    for channel in {r.channel for r in rows}:
        db.execute(
            "DELETE FROM mbus_hourly WHERE channel = ? AND time NOT IN (SELECT time FROM"
            " mbus_hourly WHERE channel = ? ORDER BY time DESC LIMIT ?)",
            (channel, channel, MBUS_HOURLY_ENTRIES),
        )


class ProfileTables:
    """Reading back and clearing the buffers; `Store` provides the connection."""

    _db: sqlite3.Connection

    def _write(self, write: Callable[[sqlite3.Connection], object]) -> None:
        raise NotImplementedError

    def events(self, log: EventLog, limit: int | None = None) -> list[Event]:
        """Entries of one log, oldest first (FIFO buffer order)."""
        rows = self._db.execute(
            "SELECT time, code FROM events WHERE log = ? ORDER BY id DESC LIMIT ?",
            (log.name, limit if limit is not None else log.capacity),
        ).fetchall()
        return [Event(_dt(t), int(c), log) for t, c in reversed(rows)]

    def load_profile(
        self, since: datetime | None = None, until: datetime | None = None
    ) -> list[LoadProfileRow]:
        rows = self._db.execute(
            "SELECT time, status, import_wh, export_wh FROM load_profile"
            " WHERE time >= ? AND time <= ? ORDER BY time",
            (_ts(since) if since else 0.0, _ts(until) if until else 1e12),
        ).fetchall()
        return [LoadProfileRow(_dt(t), s, i, e) for t, s, i, e in rows]

    def daily_profile(self) -> list[DailyProfileRow]:
        return self._billing_rows("daily_profile")

    def monthly_profile(self) -> list[DailyProfileRow]:
        return self._billing_rows("monthly_profile")

    def _billing_rows(self, table: str) -> list[DailyProfileRow]:
        rows = self._db.execute(
            f"SELECT time, status, energy, mbus FROM {table} ORDER BY time"  # noqa: S608
        ).fetchall()
        return [
            DailyProfileRow(
                _dt(t),
                s,
                tuple(json.loads(e)),
                tuple((c, v, _dt(ct) if ct else None) for c, v, ct in json.loads(m)),
            )
            for t, s, e, m in rows
        ]

    def mbus_hourly(self, channel: int) -> list[MbusHourRow]:
        """The hourly profile of one M-Bus channel (0-x:24.3.0), oldest first."""
        rows = self._db.execute(
            "SELECT time, status, value, capture FROM mbus_hourly WHERE channel = ? ORDER BY time",
            (channel,),
        ).fetchall()
        return [
            MbusHourRow(channel, _dt(t), s, v, _dt(c) if c is not None else None)
            for t, s, v, c in rows
        ]

    # ------------------------------------------------------------------ the definable profile

    def definable_entries(self) -> list[StoredEntry]:
        """0-1:94.31.6 entries in capture order: each row's values as encoded A-XDR."""
        rows = self._db.execute(
            "SELECT id, time, entry FROM definable_profile ORDER BY id"
        ).fetchall()
        return [StoredEntry(int(i), _dt(t), bytes(e)) for i, t, e in rows]

    def add_definable_entry(self, when: datetime, entry: bytes, drop: Iterable[int] = ()) -> None:
        """Store one captured entry and remove the entries `drop` it displaces, durably."""
        dropped = list(drop)

        def write(db: sqlite3.Connection) -> None:
            self._drop_entries(db, dropped)
            db.execute(
                "INSERT INTO definable_profile (time, entry) VALUES (?, ?)", (_ts(when), entry)
            )

        self._write(write)

    def drop_definable_entries(self, ids: Iterable[int]) -> None:
        dropped = list(ids)
        self._write(lambda db: self._drop_entries(db, dropped))

    @staticmethod
    def _drop_entries(db: sqlite3.Connection, ids: Iterable[int]) -> None:
        db.executemany("DELETE FROM definable_profile WHERE id = ?", [(i,) for i in ids])

    def drop_entries_after(self, when: datetime) -> None:
        """Remove the profile rows stamped after `when` and the events stamped after the last
        time the meter can carry, in one transaction: after a restart from a stored time no
        port could carry, they would sort after every new row and could never be shown."""
        after, limit = _ts(when), _ts(TIME_MAX)

        def write(db: sqlite3.Connection) -> None:
            for table in _PROFILE_TABLES:
                db.execute(f"DELETE FROM {table} WHERE time > ?", (after,))  # noqa: S608
            db.execute("DELETE FROM events WHERE time > ?", (limit,))

        self._write(write)

    # ------------------------------------------------------------------ reset () (class 7)

    def clear_load_profile(self) -> None:
        self._clear("DELETE FROM load_profile")

    def clear_daily_profile(self) -> None:
        self._clear("DELETE FROM daily_profile")

    def clear_monthly_profile(self) -> None:
        self._clear("DELETE FROM monthly_profile")

    def clear_mbus_hourly(self, channel: int) -> None:
        self._clear("DELETE FROM mbus_hourly WHERE channel = ?", channel)

    def clear_definable_profile(self) -> None:
        self._clear("DELETE FROM definable_profile")

    def clear_events(self, log: EventLog, when: datetime) -> None:
        """Empty one event log; "Event log cleared" (255) becomes its first entry (P3 §4.2.1:
        always the first entry in an event log, only stored in the affected log)."""

        def write(db: sqlite3.Connection) -> None:
            db.execute("DELETE FROM events WHERE log = ?", (log.name,))
            db.execute(
                "INSERT INTO events (log, time, code) VALUES (?, ?, ?)",
                (log.name, _ts(when), int(EventCode.EVENT_LOG_CLEARED)),
            )

        self._write(write)

    def _clear(self, statement: str, *parameters: object) -> None:
        self._write(lambda db: db.execute(statement, parameters))
