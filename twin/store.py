"""The meter's memory: one SQLite database (WAL, synchronous=FULL) in the state directory.

A commit is durable when its future completes (`commit` waits for it): registers, event log
entries and profile rows go in one transaction. The meter commits before it publishes
anything, so no value that was ever shown on P1, P3 or `ctl status` can come back lower after
a crash. Every write goes through the store's writer (twin/store_writer.py: a few threads that
the stores of a process share), in order; reads use the event loop's own connection and see
what is committed, also while a write is stuck (WAL).

Opening never turns an existing meter into a new one: a database that is empty, damaged or not
a twin's is refused with a message (restore it with `dsmr-twin store restore`); only a state
directory without a database starts a new meter, and that database appears atomically (built
under another name and renamed), so a crash while creating it cannot leave an empty one.

The database holds the meter's secrets (P3 keys, HLS secret, the gas meter's Default key, the
M-Bus User keys): it and its -wal/-shm files are for the service user only (0600), although
operators in the service's group reach the control socket in the same directory.
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import sqlite3
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twin.meter.model import Outbox
from twin.meter.state import MeterState
from twin.store_profiles import ProfileTables, StoredEntry, insert_outbox
from twin.store_writer import MeterCommit, StoreWriteError, StoreWriter, WriterPool

__all__ = ["Checkpoint", "Store", "StoreError", "StoreUnavailableError", "StoredEntry"]

DATABASE = "meter.sqlite3"
DATABASE_MODE = 0o600  # it holds keys: the service user only (and root)
STATE_DIR_MODE = 0o750  # the twin's group (operators: ctl, logs) may enter it
SIDE_FILES = ("-wal", "-shm")  # SQLite gives them the database file's mode
BACKUP_DIR = "backups"  # twin/store_backup.py
SCHEMA_VERSION = 1
# How long a write the caller must see durable (settings, clears) may hold the event loop
# before it is given up with a StoreError; a stalled or faulted store refuses at once.
WRITE_WAIT_S = 2.0
STALL_POLL_S = 0.05  # how often a waiting writer's caller checks whether the store stalled
# At shutdown, how long the writer may take to write what is queued.
CLOSE_WAIT_S = 1.0
# A WAL file keeps the size it grew to before its checkpoint: SQLite's default (1000 pages,
# 4 MB) held by each of a fleet's 1000 stores is 4 GB of disk (docs/benchmarks.md, "Fleet
# store"). A checkpoint every 64 pages (a checkpoint commit writes about one) bounds each WAL
# to about 260 KiB; the size limit trims one that a large transaction grew, at its next reset.
WAL_CHECKPOINT_PAGES = 64
WAL_SIZE_LIMIT = 256 * 1024

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


class StoreUnavailableError(StoreError):
    """The storage cannot take a write now (a stuck or failing write, a locked database, an
    I/O error): worth trying again later, unlike a damaged or foreign database."""


# OS errors of a disk that may come back (not a permission or a missing path).
TRANSIENT_ERRNOS = frozenset({errno.EIO, errno.ENOSPC, errno.EDQUOT, errno.EBUSY, errno.EAGAIN})


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """The last committed state and when (meter time, host wall-clock time) it was committed."""

    state: MeterState
    real_time: float


class Store(ProfileTables):
    """The meter's database; the profile buffers' methods come from `ProfileTables`."""

    def __init__(
        self, connection: sqlite3.Connection, path: Path, pool: WriterPool | None = None
    ) -> None:
        self._db = connection
        self.path = path
        self.writer = StoreWriter(lambda: _connect(path), _write_commit, path, pool)

    @classmethod
    def open(cls, state_dir: Path, pool: WriterPool | None = None) -> Store:
        """The meter's store; its writes are made by `pool` (default: the process's own)."""
        path = state_dir / DATABASE
        try:
            state_dir.mkdir(parents=True, exist_ok=True, mode=STATE_DIR_MODE)
            if not path.exists():
                _refuse_to_start_anew(path, state_dir)
                _create_database(path, state_dir)
        except (OSError, sqlite3.Error) as exc:
            raise _open_error(state_dir, exc) from exc
        check_database_file(path)
        if not os.access(state_dir, os.W_OK) or not os.access(path, os.W_OK):
            denied = PermissionError(errno.EACCES, os.strerror(errno.EACCES))
            raise StoreError(not_writable(state_dir, denied))
        restrict_database(path)
        try:
            db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise _open_error(state_dir, exc) from exc
        try:
            _check_integrity(db, path)
            _set_pragmas(db)
            store = cls(db, path, pool)
            store._check_version()
            # Tables added since the database was made (CREATE ... IF NOT EXISTS).
            db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            db.close()
            raise _open_error(state_dir, exc) from exc
        except StoreError:
            db.close()
            raise
        return store

    def _check_version(self) -> None:
        found = self._meta("schema_version")
        if found is None:
            # Every twin database gets its version when it is created (`_create_database`).
            raise StoreError(f"{self.path} is not a dsmr-twin database (no schema version)")
        if int(found) != SCHEMA_VERSION:
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
            raise self._unavailable()
        self.wait_written(self.writer.submit(write))

    def wait_written(self, future: Future[None]) -> None:
        """Wait until a submitted write is durable, as `_write` does: a store that turns out
        stalled, or a write not made within WRITE_WAIT_S, raises StoreError (the write is
        taken back if it has not started)."""
        deadline = time.monotonic() + WRITE_WAIT_S
        while not future.done():
            wait([future], STALL_POLL_S)
            if not future.done() and (self.writer.stalled() or time.monotonic() > deadline):
                self.writer.withdraw(future)
                raise self._unavailable()
        if future.cancelled():  # taken back by another waiter that gave up
            raise self._unavailable()
        try:
            future.result()
        except StoreWriteError as exc:
            raise StoreUnavailableError(str(exc)) from exc

    def _unavailable(self) -> StoreUnavailableError:
        return StoreUnavailableError(
            f"storage unavailable: {self.writer.fault or 'a write is stuck'}"
        )

    # ------------------------------------------------------------------ meta and settings

    def _meta(self, key: str) -> str | None:
        try:
            row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        except sqlite3.Error as exc:  # no meta table: someone else's database
            raise StoreError(f"{self.path} is not a dsmr-twin database: {exc}") from exc
        return None if row is None else str(row[0])

    def _set_meta(self, key: str, value: str) -> None:
        self._write(
            lambda db: db.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value)
            )
        )

    def setting(self, key: str) -> Any:
        return read_setting(self._db, key)

    def put_setting(self, key: str, value: Any) -> None:
        """Durable when it returns (the P3 invocation counter reservation relies on it)."""
        self._write(setting_write(key, value))

    def queue_setting(self, key: str, value: Any) -> Future[None]:
        """Queue a setting, in order with every other write, without waiting; durable when the
        future is (the writer retries a failing write until it succeeds)."""
        return self.writer.submit(setting_write(key, value))

    async def put_setting_async(self, key: str, value: Any) -> None:
        """Durable when it returns, awaited without holding the event loop (a port that must
        persist before it answers, and does so often: the P2 master and gas meter). A
        stalled or faulted store refuses at once with StoreError, as `put_setting` does."""
        if self.writer.stalled():
            raise self._unavailable()
        future = self.writer.submit(setting_write(key, value))
        try:
            # Shielded: a cancelled caller leaves the queued write in order, not half-known.
            await asyncio.shield(asyncio.wrap_future(future))
        except StoreWriteError as exc:
            raise StoreUnavailableError(str(exc)) from exc

    # ------------------------------------------------------------------ state

    def load(self) -> Checkpoint | None:
        row = self._db.execute("SELECT record, real_time FROM meter_state WHERE id = 1").fetchone()
        if row is None:
            return None
        try:
            return Checkpoint(MeterState.from_record(json.loads(row[0])), float(row[1]))
        except (ValueError, KeyError, TypeError) as exc:
            raise StoreError(f"{self.path}: the stored meter state is damaged: {exc!r}") from exc

    def submit_commit(
        self, state: MeterState, outbox: Outbox, settings: Mapping[str, Any] | None = None
    ) -> Future[None]:
        """Queue the registers, the outbox and `settings` as one transaction; durable when
        the future is.

        The state is serialized here, on the caller's (the event loop's) thread: the model
        never leaves it. The outbox is handed over and must not be touched afterwards.
        """
        record = json.dumps(state.to_record(), separators=(",", ":"))
        texts = {key: json.dumps(value) for key, value in (settings or {}).items()}
        commit = MeterCommit(record, state.time.timestamp(), outbox, texts)
        return self.writer.submit_commit(commit)

    def commit(self, state: MeterState, outbox: Outbox) -> None:
        """Write the registers and everything in the outbox in one durable transaction."""
        self.submit_commit(state, outbox).result()


def read_setting(db: sqlite3.Connection, key: str) -> Any:
    """A setting as stored (JSON), None if there is none."""
    row = db.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
    return None if row is None else json.loads(row[0])


def setting_write(key: str, value: Any) -> Callable[[sqlite3.Connection], object]:
    """The write that stores a setting (for the writer, or a connection of one's own)."""
    text = json.dumps(value)
    return lambda db: db.execute(
        "INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)", (key, text)
    )


def _set_pragmas(db: sqlite3.Connection) -> None:
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("PRAGMA busy_timeout=5000")
    db.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_PAGES}")
    db.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")


def _connect(path: Path) -> sqlite3.Connection:
    """The store's write connection (used by one pool thread at a time)."""
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    _set_pragmas(db)
    return db


def _write_commit(db: sqlite3.Connection, commit: MeterCommit) -> None:
    db.execute(
        "INSERT OR REPLACE INTO meter_state (id, record, meter_time, real_time)"
        " VALUES (1, ?, ?, ?)",
        (commit.record, commit.meter_time, time.time()),
    )
    insert_outbox(db, commit.outbox)
    for key, text in commit.settings.items():
        db.execute("INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)", (key, text))


# ---------------------------------------------------------------------- opening and checking

RESTORE_HINT = "`dsmr-twin store restore` brings back the last good backup"


def _open_error(state_dir: Path, exc: OSError | sqlite3.Error) -> StoreError:
    """A busy or failing disk (SQLite's OperationalError: locked, I/O error; an OS error that
    may pass) is StoreUnavailableError; a damaged or unusable database or directory StoreError."""
    transient = isinstance(exc, sqlite3.OperationalError) or (
        isinstance(exc, OSError) and exc.errno in TRANSIENT_ERRNOS
    )
    return (StoreUnavailableError if transient else StoreError)(_cannot_open(state_dir, exc))


def _cannot_open(state_dir: Path, exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return not_writable(state_dir, exc)
    if isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.OperationalError):
        return f"{state_dir / DATABASE} is damaged ({exc}); {RESTORE_HINT}"
    return f"cannot open the store in {state_dir}: {exc}"


def not_writable(state_dir: Path, exc: OSError) -> str:
    """The message for a state directory the twin cannot write."""
    return (
        f"the state directory {state_dir} is not writable ({exc.strerror}): a read-only or"
        " failing SD card, or files that belong to another user (they must belong to the"
        " service user)"
    )


def check_database_file(path: Path) -> None:
    """Refuse an existing database file that cannot be a meter's: never start anew over it."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise StoreError(_cannot_open(path.parent, exc)) from exc
    if size == 0:
        raise StoreError(
            f"{path} is empty (0 bytes): the meter's registers are lost from it; {RESTORE_HINT}"
            " (or move the file away to start a new meter)"
        )


def _check_integrity(db: sqlite3.Connection, path: Path) -> None:
    """SQLite's quick_check (every page and index, not the cross-checks of integrity_check):
    a damaged page is found at start, not at the first write that reaches it."""
    if problems := quick_check(db):
        raise StoreError(f"{path} is damaged ({problems}); {RESTORE_HINT}")


def quick_check(db: sqlite3.Connection) -> str:
    """'' for a sound database, else what SQLite's quick_check found."""
    rows = [str(row[0]) for row in db.execute("PRAGMA quick_check").fetchall()]
    return "" if rows == ["ok"] else "; ".join(rows[:3])


def _refuse_to_start_anew(path: Path, state_dir: Path) -> None:
    """No database, but traces of one: a new meter here would hide a lost one. (A stale -wal
    would even be replayed into the new database.)"""
    wal = Path(f"{path}-wal")
    if wal.exists():
        raise StoreError(f"{path} is missing but {wal} is there; {RESTORE_HINT}")
    backups = state_dir / BACKUP_DIR
    if backups.is_dir() and any(backups.iterdir()):
        raise StoreError(
            f"{path} is missing but {backups} holds backups; {RESTORE_HINT} (or move"
            f" {backups} away to start a new meter)"
        )


def _create_database(path: Path, state_dir: Path) -> None:
    """A new, empty twin database at `path`, appearing there at once and complete."""
    building = path.with_name(path.name + ".new")
    for leftover in (building, *(Path(f"{building}{s}") for s in SIDE_FILES)):
        leftover.unlink(missing_ok=True)  # a crash during an earlier creation
    os.close(os.open(building, os.O_CREAT | os.O_EXCL | os.O_RDWR, DATABASE_MODE))
    db = sqlite3.connect(building, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")  # kept in the file header
        db.executescript(_SCHEMA)
        db.execute(
            "INSERT INTO meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
        )
    finally:
        db.close()  # the last connection checkpoints and removes the -wal file
    replace_durably(building, path)
    owned_like_state_dir(path, state_dir)


def replace_durably(source: Path, target: Path) -> None:
    """Rename `source` over `target` after both data and rename are on the disk."""
    fd = os.open(source, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(source, target)
    directory = os.open(target.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def restrict_database(path: Path) -> None:
    """The database and its -wal/-shm files to the service user only (a twin upgraded from
    0640 tightens them at its next start)."""
    for file in (path, *(Path(f"{path}{suffix}") for suffix in SIDE_FILES)):
        try:
            if file.stat().st_mode & 0o777 != DATABASE_MODE:
                file.chmod(DATABASE_MODE)
        except FileNotFoundError:
            continue
        except PermissionError as exc:
            raise StoreError(not_writable(path.parent, exc)) from exc


def owned_like_state_dir(path: Path, state_dir: Path) -> None:
    """A file root made (`store restore`, `keys show` under sudo) goes to the state
    directory's owner, or the service could no longer open it."""
    if os.geteuid() != 0:
        return
    owner = state_dir.stat()
    if path.stat().st_uid != owner.st_uid:
        os.chown(path, owner.st_uid, owner.st_gid)
