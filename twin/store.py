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
from pathlib import Path
from typing import Any

from twin.meter.model import Outbox
from twin.meter.state import MeterState
from twin.store_profiles import ProfileTables, StoredEntry, insert_outbox

__all__ = ["Checkpoint", "Store", "StoreError", "StoredEntry"]

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
CREATE TABLE IF NOT EXISTS mbus_hourly (
    channel INTEGER NOT NULL,
    time REAL NOT NULL,
    status INTEGER NOT NULL,
    value INTEGER NOT NULL,
    capture REAL,
    PRIMARY KEY (channel, time)
);
CREATE TABLE IF NOT EXISTS definable_profile (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time REAL NOT NULL,
    entry BLOB NOT NULL
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


class Store(ProfileTables):
    """The meter's database; the profile buffers' methods come from `ProfileTables`."""

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
                (record, state.time.timestamp(), time.time()),
            )
            insert_outbox(db, outbox)
