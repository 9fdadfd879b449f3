"""The meter's memory: one SQLite database (WAL, synchronous=FULL) in the state directory.

A commit is durable when `commit` returns: registers, event log entries and profile rows go
in one transaction. The meter commits before it publishes anything, so no value that was ever
shown on P1, P3 or `ctl status` can come back lower after a crash.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from twin.meter.events import Event, EventLog
from twin.meter.model import Outbox
from twin.meter.profiles import (
    DAILY_PROFILE_ENTRIES,
    LOAD_PROFILE_ENTRIES,
    MONTHLY_PROFILE_ENTRIES,
    DailyProfileRow,
    LoadProfileRow,
)
from twin.meter.state import MeterState

DATABASE = "meter.sqlite3"
DATABASE_MODE = 0o640
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS meter_state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    record TEXT NOT NULL,
    meter_time REAL NOT NULL,
    real_time REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    log TEXT NOT NULL,
    time REAL NOT NULL,
    code INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_log ON events (log, id);
CREATE TABLE IF NOT EXISTS load_profile (
    time REAL PRIMARY KEY,
    status INTEGER NOT NULL,
    import_wh INTEGER NOT NULL,
    export_wh INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS daily_profile (
    time REAL PRIMARY KEY,
    status INTEGER NOT NULL,
    energy TEXT NOT NULL,
    mbus TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS monthly_profile (
    time REAL PRIMARY KEY,
    status INTEGER NOT NULL,
    energy TEXT NOT NULL,
    mbus TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class StoreError(RuntimeError):
    """The state directory or database cannot be used."""


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """The last committed state and when (meter time, host wall-clock time) it was committed."""

    state: MeterState
    real_time: float


def _ts(when: datetime) -> float:
    return when.timestamp()


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


class Store:
    def __init__(self, connection: sqlite3.Connection, path: Path) -> None:
        self._db = connection
        self.path = path

    @classmethod
    def open(cls, state_dir: Path) -> Store:
        try:
            state_dir.mkdir(parents=True, exist_ok=True, mode=0o750)
            path = state_dir / DATABASE
            # The database holds keys: owner and group only. SQLite gives its -wal and -shm
            # files the mode of the database file, so create that one with the right mode.
            os.close(os.open(path, os.O_CREAT | os.O_RDWR, DATABASE_MODE))
            db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA busy_timeout=5000")
            db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open the store in {state_dir}: {exc}") from exc
        store = cls(db, path)
        store._check_version()
        return store

    def _check_version(self) -> None:
        found = self._meta("schema_version")
        if found is None:
            self._set_meta("schema_version", str(SCHEMA_VERSION))
        elif int(found) != SCHEMA_VERSION:
            raise StoreError(f"{self.path} has schema {found}; this twin reads {SCHEMA_VERSION}")

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise StoreError(f"write to {self.path} failed: {exc}") from exc

    # ------------------------------------------------------------------ meta and settings

    def _meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def _set_meta(self, key: str, value: str) -> None:
        with self._transaction() as db:
            db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def setting(self, key: str) -> Any:
        row = self._db.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def put_setting(self, key: str, value: Any) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)",
                (key, json.dumps(value)),
            )

    # ------------------------------------------------------------------ state

    def load(self) -> Checkpoint | None:
        row = self._db.execute("SELECT record, real_time FROM meter_state WHERE id = 1").fetchone()
        if row is None:
            return None
        return Checkpoint(MeterState.from_record(json.loads(row[0])), float(row[1]))

    def commit(self, state: MeterState, outbox: Outbox) -> None:
        """Write the registers and everything in the outbox in one durable transaction."""
        record = json.dumps(state.to_record(), separators=(",", ":"))
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO meter_state (id, record, meter_time, real_time)"
                " VALUES (1, ?, ?, ?)",
                (record, _ts(state.time), time.time()),
            )
            self._insert_events(db, outbox.events)
            self._insert_load_profile(db, outbox.load_profile)
            self._insert_billing(db, "daily_profile", outbox.daily_profile, DAILY_PROFILE_ENTRIES)
            self._insert_billing(
                db, "monthly_profile", outbox.monthly_profile, MONTHLY_PROFILE_ENTRIES
            )

    @staticmethod
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

    @staticmethod
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

    @staticmethod
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

    # ------------------------------------------------------------------ reading back

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
