"""Backups of the meter's database and the way back from a damaged one.

Backups: SQLite's online backup API copies the live database (WAL: readers never block the
meter's writes) into `backups/` in the state directory, `meter-YYYYmmddTHHMMSSZ.sqlite3` by the
host's UTC time, each checked (quick_check) before it is renamed into place, the oldest beyond
`[store] backup_keep` deleted. The copy runs in a worker thread with its own connection, so the
event loop only waits for the thread's result. The backups hold the keys too: directory 0700,
files 0600.

Restore (`dsmr-twin store restore`, only while no twin runs: it takes the state-directory lock)
puts the newest good backup (or a named one) in place; the database it replaces is moved to
`damaged/`, never deleted. A restore loses the tail: whatever the meter counted, logged and
published after that backup is gone, so registers may come back lower than a value P1 or P3
already showed. What must never come back lower are the counters that make nonces (a reused
AES-GCM nonce under the same key gives away the keystream): the DLMS server invocation counter
(P3 §3.2.3) and the M-Bus frame counters (P2 §5.2). Each is moved past anything the lost tail
could have used: the reserved-ahead block plus the most frames the twin can send per second
times the length of the tail (from the backup to the last write of the replaced database, or
to now if there is none).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from twin.state_lock import StateLock
from twin.store import (
    BACKUP_DIR,
    DATABASE,
    DATABASE_MODE,
    SCHEMA_VERSION,
    SIDE_FILES,
    StoreError,
    owned_like_state_dir,
    quick_check,
    read_setting,
    replace_durably,
    setting_write,
)

log = logging.getLogger(__name__)

DAMAGED_DIR = "damaged"
BACKUP_DIR_MODE = 0o700  # the copies hold the keys
_NAME = re.compile(r"meter-(\d{8}T\d{6}Z)\.sqlite3")
_STAMP = "%Y%m%dT%H%M%SZ"

COUNTER_SPACE = 2**32  # P3 §3.2.3 and P2 §5.2: 32-bit frame/invocation counters
# Upper bounds of frames sent per second, with room to spare: the P3 server answers at most
# ~2400 GET/s on a desktop (docs/benchmarks.md), one invocation counter each; the M-Bus at
# 2400 baud carries fewer than 20 frames/s (EN 13757-2), and the simulated bus only talks on
# the hourly schedule and on commands.
P3_MAX_FRAMES_PER_S = 10_000
P2_MAX_FRAMES_PER_S = 100
P2_MARGIN = 1000


@dataclass(frozen=True, slots=True)
class Backup:
    path: Path
    taken: datetime  # host UTC time


def backup_dir(state_dir: Path) -> Path:
    return state_dir / BACKUP_DIR


def list_backups(state_dir: Path) -> list[Backup]:
    """The backups, oldest first."""
    found = []
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        for path in backup_dir(state_dir).iterdir():
            if match := _NAME.fullmatch(path.name):
                taken = datetime.strptime(match.group(1), _STAMP).replace(tzinfo=UTC)
                found.append(Backup(path, taken))
    return sorted(found, key=lambda b: b.taken)


def take_backup(state_dir: Path, keep: int, now: datetime) -> Backup:
    """Copy the live database into backups/ (blocking: call it from a worker thread)."""
    directory = backup_dir(state_dir)
    target = directory / f"meter-{now.astimezone(UTC).strftime(_STAMP)}.sqlite3"
    partial = directory / f".{target.name}.partial"
    try:
        directory.mkdir(mode=BACKUP_DIR_MODE, exist_ok=True)
        owned_like_state_dir(directory, state_dir)
        partial.unlink(missing_ok=True)
        os.close(os.open(partial, os.O_CREAT | os.O_EXCL | os.O_RDWR, DATABASE_MODE))
        source = sqlite3.connect(state_dir / DATABASE)
        try:
            copy = sqlite3.connect(partial)
            try:
                source.backup(copy)  # one step: one read transaction, a consistent copy
                copy.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
                problems = quick_check(copy)
            finally:
                copy.close()
        finally:
            source.close()
        if problems:
            raise StoreError(f"the backup of {state_dir / DATABASE} failed its check: {problems}")
        replace_durably(partial, target)
        owned_like_state_dir(target, state_dir)
    except (OSError, sqlite3.Error) as exc:
        with contextlib.suppress(OSError):  # a half-written copy is never mistaken for one
            partial.unlink(missing_ok=True)
        raise StoreError(f"cannot back up {state_dir / DATABASE} to {directory}: {exc}") from exc
    for old in list_backups(state_dir)[:-keep]:
        old.path.unlink(missing_ok=True)
    return Backup(target, now)


def check_file(path: Path) -> str:
    """'' if `path` is a sound twin database of this schema with a meter state, else why not."""
    if not path.exists():
        return "missing"
    if path.stat().st_size == 0:
        return "empty (0 bytes)"
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            return _check_contents(db)
        finally:
            db.close()
    except sqlite3.Error as exc:
        return f"damaged ({exc})"


def _check_contents(db: sqlite3.Connection) -> str:
    problems = quick_check(db)
    if problems:
        return f"damaged ({problems})"
    version = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    if version is None or int(version[0]) != SCHEMA_VERSION:
        return f"schema {version and version[0]}, not {SCHEMA_VERSION}"
    if db.execute("SELECT 1 FROM meter_state WHERE id = 1").fetchone() is None:
        return "no meter state in it"
    return ""


# ---------------------------------------------------------------------------------- restore


@dataclass(frozen=True, slots=True)
class Restored:
    backup: Backup
    moved_aside: list[Path]
    tail_s: float
    counters: dict[str, tuple[int, int]]  # what -> (in the backup, after the restore)


def restore(state_dir: Path, source: Path | None, now: datetime) -> Restored:
    """Put the newest good backup (or `source`) in place of the database; the twin must not run."""
    lock = StateLock.acquire(state_dir, purpose="restore")
    try:
        backup = _choose(state_dir, source)
        database = state_dir / DATABASE
        tail_s = max(0.0, _last_write(database, now).timestamp() - backup.taken.timestamp())
        building = state_dir / f"{DATABASE}.restoring"
        building.unlink(missing_ok=True)
        os.close(os.open(building, os.O_CREAT | os.O_EXCL | os.O_RDWR, DATABASE_MODE))
        try:
            with backup.path.open("rb") as src, building.open("wb") as dst:
                while chunk := src.read(1 << 20):
                    dst.write(chunk)
            counters = advance_counters(building, tail_s)
        except BaseException:
            building.unlink(missing_ok=True)
            raise
        moved = _move_aside(database, state_dir / DAMAGED_DIR, now)
        replace_durably(building, database)
        owned_like_state_dir(database, state_dir)
        return Restored(backup, moved, tail_s, counters)
    except (OSError, sqlite3.Error) as exc:
        raise StoreError(f"restore in {state_dir} failed: {exc}") from exc
    finally:
        lock.release()


def _choose(state_dir: Path, source: Path | None) -> Backup:
    if source is not None:
        problem = check_file(source)
        if problem:
            raise StoreError(f"{source} cannot be restored: {problem}")
        match = _NAME.fullmatch(source.name)
        # A copy of unknown age: its own modification time is when it was written.
        taken = (
            datetime.strptime(match.group(1), _STAMP).replace(tzinfo=UTC)
            if match
            else datetime.fromtimestamp(source.stat().st_mtime, UTC)
        )
        return Backup(source, taken)
    for backup in reversed(list_backups(state_dir)):
        problem = check_file(backup.path)
        if not problem:
            return backup
        log.warning("backup %s skipped: %s", backup.path.name, problem)
    raise StoreError(f"no usable backup in {backup_dir(state_dir)}")


def _last_write(database: Path, now: datetime) -> datetime:
    """When the replaced database was last written (the tail ends there), or now."""
    times = [
        p.stat().st_mtime
        for p in (database, *(Path(f"{database}{s}") for s in SIDE_FILES))
        if p.exists()
    ]
    if not times:
        return now
    return min(now, datetime.fromtimestamp(max(times), UTC))


def _move_aside(database: Path, damaged: Path, now: datetime) -> list[Path]:
    """Keep the replaced database and its -wal/-shm files for inspection, never delete them."""
    moved = []
    stamp = now.astimezone(UTC).strftime(_STAMP)
    for suffix in ("", *SIDE_FILES):
        path = Path(f"{database}{suffix}")
        if path.exists():
            damaged.mkdir(mode=BACKUP_DIR_MODE, exist_ok=True)
            target = damaged / f"meter-{stamp}.sqlite3{suffix}"
            os.replace(path, target)
            moved.append(target)
    return moved


def advance_counters(path: Path, tail_s: float) -> dict[str, tuple[int, int]]:
    """Move each nonce counter in the database at `path` past what `tail_s` seconds of a
    running twin could have used after it was written (one transaction)."""
    # Imported here: the twin imports this module at every start, P2/P3 only when configured.
    from twin.p2.aio.gasmeter import STATE_SETTING as P2_SLAVE_SETTING
    from twin.p2.aio.master_store import STATE_SETTING as P2_MASTER_SETTING
    from twin.p3.keys import COUNTER_BLOCK, COUNTER_SETTING

    # A block of P3 counters may have been reserved and used entirely in the tail.
    p3_margin = COUNTER_BLOCK + int(P3_MAX_FRAMES_PER_S * tail_s) + 1
    p2_margin = P2_MARGIN + int(P2_MAX_FRAMES_PER_S * tail_s) + 1
    changes: dict[str, tuple[int, int]] = {}

    def advance(name: str, value: Any, margin: int) -> int:
        return _advanced(changes, name, int(value), margin)

    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("BEGIN IMMEDIATE")
        limit = read_setting(db, COUNTER_SETTING)
        if limit is not None:
            advanced = advance("p3 invocation counter", limit, p3_margin)
            setting_write(COUNTER_SETTING, advanced)(db)
        slave = read_setting(db, P2_SLAVE_SETTING)
        if isinstance(slave, dict) and isinstance(slave.get("slave"), dict):
            state = slave["slave"]
            state["frame_counter"] = advance(
                "gas meter frame counter", state.get("frame_counter", 0), p2_margin
            )
            setting_write(P2_SLAVE_SETTING, slave)(db)
        master = read_setting(db, P2_MASTER_SETTING)
        if isinstance(master, dict) and isinstance(master.get("master"), dict):
            for channel in master["master"].get("channels", []):
                name = f"M-Bus channel {channel.get('number')} frame counter"
                channel["frame_counter"] = advance(name, channel["frame_counter"], p2_margin)
            setting_write(P2_MASTER_SETTING, master)(db)
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    finally:
        db.close()
    return changes


def _advanced(changes: dict[str, tuple[int, int]], name: str, value: int, margin: int) -> int:
    new = value + margin
    if new >= COUNTER_SPACE:
        # Wrapping would reuse counters under the same key: that takes a new key first
        # (P3 §3.2.3: the CS changes the GUEK before the counter wraps).
        raise StoreError(
            f"the {name} ({value}) cannot be moved past the {margin} the lost tail may have"
            f" used without wrapping: restore a newer backup, or install new keys after it"
        )
    changes[name] = (value, new)
    return new


# ------------------------------------------------------------------------- periodic backups


def seconds_until_due(newest: datetime | None, now: datetime, interval_s: float) -> float:
    """How long until the next backup: at once without one, else `interval_s` after it."""
    if newest is None:
        return 0.0
    return max(0.0, interval_s - (now - newest).total_seconds())


class BackupService:
    """Takes a backup every `interval_s` real seconds (the first at once if the newest is
    older than that), in a worker thread."""

    def __init__(
        self,
        state_dir: Path,
        interval_s: float,
        keep: int,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.state_dir = state_dir
        self.interval_s = interval_s
        self.keep = keep
        self.wall = wall
        self.taken = 0
        self.last_error = ""

    async def run(self) -> None:
        while True:
            backups = list_backups(self.state_dir)
            newest = backups[-1].taken if backups else None
            await asyncio.sleep(seconds_until_due(newest, self.wall(), self.interval_s))
            if await self.backup_now() is None:
                # Not fatal to the meter: tried again after a while (a full card may recover).
                await asyncio.sleep(self.retry_s)

    @property
    def retry_s(self) -> float:
        return min(self.interval_s, 600.0)

    async def backup_now(self) -> Backup | None:
        """A backup in a worker thread; None (and the reason logged) if it failed."""
        started = time.monotonic()
        try:
            backup = await asyncio.to_thread(take_backup, self.state_dir, self.keep, self.wall())
        except StoreError as exc:
            self.last_error = str(exc)
            log.warning("%s; next try in %d s", exc, self.retry_s)
            return None
        self.taken += 1
        self.last_error = ""
        log.info("backup %s taken in %.1f s", backup.path.name, time.monotonic() - started)
        return backup

    def status(self) -> dict[str, object]:
        backups = list_backups(self.state_dir)
        return {
            "backups": len(backups),
            "newest": backups[-1].taken.isoformat() if backups else None,
            "taken": self.taken,
            "last_error": self.last_error,
        }
