"""The meter's memory: one SQLite database (WAL, synchronous=FULL) in the state directory.

A commit is durable when its future completes (`commit` waits for it): registers, event log
entries and profile rows go in one transaction. The meter commits before it publishes
anything, so no value that was ever shown on P1, P3 or `ctl status` can come back lower after
a crash. Every write goes through one writer thread (twin/store_writer.py), in order; reads use
the event loop's own connection and see what is committed, also while a write is stuck (WAL).
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import Future, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twin.meter.model import Outbox
from twin.meter.state import MeterState
from twin.store_profiles import ProfileTables, StoredEntry, insert_outbox
from twin.store_writer import MeterCommit, StoreWriteError, StoreWriter

__all__ = ["Checkpoint", "Store", "StoreError", "StoredEntry"]

DATABASE = "meter.sqlite3"
DATABASE_MODE = 0o640
SCHEMA_VERSION = 1
# How long a write the caller must see durable (settings, clears) may hold the event loop
# before it is given up with a StoreError; a stalled or faulted store refuses at once.
WRITE_WAIT_S = 2.0
STALL_POLL_S = 0.05  # how often a waiting writer's caller checks whether the store stalled
# At shutdown, how long the writer may take to write what is queued.
CLOSE_WAIT_S = 1.0

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
        self.writer = StoreWriter(lambda: _connect(path), _write_commit, path)

    @classmethod
    def open(cls, state_dir: Path) -> Store:
        try:
            state_dir.mkdir(parents=True, exist_ok=True, mode=0o750)
            path = state_dir / DATABASE
            # The database holds keys: owner and group only. SQLite gives its -wal and -shm
            # files the mode of the database file, so create that one with the right mode.
            os.close(os.open(path, os.O_CREAT | os.O_RDWR, DATABASE_MODE))
            db = _connect(path)
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
        self.writer.close(CLOSE_WAIT_S)
        self._db.close()

    def _write(self, write: Callable[[sqlite3.Connection], object]) -> None:
        """One durable transaction, made by the writer; returns when it is on disk.

        A faulted or stalled store refuses at once; a write that is not made before the
        store turns out stalled (or within WRITE_WAIT_S) is taken back if it has not
        started, so the event loop never waits long on storage.
        """
        if self.writer.stalled():
            raise StoreError(f"storage unavailable: {self.writer.fault or 'a write is stuck'}")
        future = self.writer.submit(write)
        deadline = time.monotonic() + WRITE_WAIT_S
        while not future.done():
            wait([future], STALL_POLL_S)
            if not future.done() and (self.writer.stalled() or time.monotonic() > deadline):
                self.writer.withdraw(future)
                raise StoreError(f"storage unavailable: {self.writer.fault or 'a write is stuck'}")
        try:
            future.result()
        except StoreWriteError as exc:
            raise StoreError(str(exc)) from exc

    # ------------------------------------------------------------------ meta and settings

    def _meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def _set_meta(self, key: str, value: str) -> None:
        self._write(
            lambda db: db.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value)
            )
        )

    def setting(self, key: str) -> Any:
        row = self._db.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def put_setting(self, key: str, value: Any) -> None:
        """Durable when it returns (the P3 invocation counter reservation relies on it)."""
        self._write(_setting_write(key, value))

    async def put_setting_async(self, key: str, value: Any) -> None:
        """Durable when it returns, awaited without holding the event loop (a port that must
        persist before it answers, and does so often: the P2 master and gas meter). A
        stalled or faulted store refuses at once with StoreError, as `put_setting` does."""
        if self.writer.stalled():
            raise StoreError(f"storage unavailable: {self.writer.fault or 'a write is stuck'}")
        future = self.writer.submit(_setting_write(key, value))
        try:
            # Shielded: a cancelled caller leaves the queued write in order, not half-known.
            await asyncio.shield(asyncio.wrap_future(future))
        except StoreWriteError as exc:
            raise StoreError(str(exc)) from exc

    # ------------------------------------------------------------------ state

    def load(self) -> Checkpoint | None:
        row = self._db.execute("SELECT record, real_time FROM meter_state WHERE id = 1").fetchone()
        if row is None:
            return None
        return Checkpoint(MeterState.from_record(json.loads(row[0])), float(row[1]))

    def submit_commit(self, state: MeterState, outbox: Outbox) -> Future[None]:
        """Queue the registers and the outbox as one transaction; durable when the future is.

        The state is serialized here, on the caller's (the event loop's) thread: the model
        never leaves it. The outbox is handed over and must not be touched afterwards.
        """
        record = json.dumps(state.to_record(), separators=(",", ":"))
        return self.writer.submit_commit(MeterCommit(record, state.time.timestamp(), outbox))

    def commit(self, state: MeterState, outbox: Outbox) -> None:
        """Write the registers and everything in the outbox in one durable transaction."""
        self.submit_commit(state, outbox).result()


def _setting_write(key: str, value: Any) -> Callable[[sqlite3.Connection], object]:
    text = json.dumps(value)
    return lambda db: db.execute(
        "INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)", (key, text)
    )


def _connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("PRAGMA busy_timeout=5000")
    return db


def _write_commit(db: sqlite3.Connection, commit: MeterCommit) -> None:
    db.execute(
        "INSERT OR REPLACE INTO meter_state (id, record, meter_time, real_time)"
        " VALUES (1, ?, ?, ?)",
        (commit.record, commit.meter_time, time.time()),
    )
    insert_outbox(db, commit.outbox)
