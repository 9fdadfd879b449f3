"""The store's writer: one thread owns the write connection and commits in submission order.

Storage waits (fsync, a full disk, a frozen file system) happen here, never on the event loop:
the loop hands over a job and goes on; whoever must know a write is durable waits for its
future. A job that fails stays at the head of the queue and is retried until it succeeds, so a
full disk loses nothing and later writes never overtake earlier ones. The fault is logged once
with its cause, and once more when the store recovers.

Meter commits coalesce at the tail: while one waits for its turn, a newer one replaces its
state record and appends its outbox behind the first one's. During a long fault the queue
stays short and every row and event is still written, in order.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

from twin.meter.model import Outbox

log = logging.getLogger(__name__)

RETRY_S = 1.0  # between attempts at a failing job (a new job wakes the writer earlier)
# A job that has run this long means the storage is stalled (a frozen file system).
STALLED_AFTER_S = 0.5

Write = Callable[[sqlite3.Connection], object]
Connect = Callable[[], sqlite3.Connection]


class StoreWriteError(RuntimeError):
    """A write that cannot be made now (disk full, I/O error, stalled storage)."""


@dataclass(slots=True)
class MeterCommit:
    """The registers as a serialized record, and what the model logged since the last one."""

    record: str
    meter_time: float
    outbox: Outbox
    # Settings (key -> JSON text) that belong with what the outbox logged, in the same
    # transaction (the counter values of communication log entries).
    settings: dict[str, str] = field(default_factory=dict)

    def absorb(self, later: MeterCommit) -> None:
        self.record, self.meter_time = later.record, later.meter_time
        self.outbox.extend(later.outbox)
        self.settings |= later.settings


@dataclass(slots=True)
class _Job:
    write: Write | None  # None for a meter commit (`commit`)
    commit: MeterCommit | None
    future: Future[None] = field(default_factory=Future)


class StoreWriter:
    """A thread that runs write jobs, each in one transaction, strictly in order."""

    def __init__(
        self,
        connect: Connect,
        write_commit: Callable[[sqlite3.Connection, MeterCommit], None],
        path: Path,
    ) -> None:
        self._connect = connect
        self._write_commit = write_commit
        self.path = path
        self._jobs: deque[_Job] = deque()
        self._lock = threading.Condition()
        self._running: _Job | None = None
        self._started_at = 0.0
        self._closing = False
        self._submissions = 0  # each new or merged job: a reason to retry a failing one at once
        self.failed_attempts = 0
        self.fault: str | None = None
        self.fault_since: float | None = None
        self._thread = threading.Thread(target=self._serve, name="dsmr-twin.store", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ the loop's side

    def submit(self, write: Write) -> Future[None]:
        """Queue one transaction; its future completes when it is durable."""
        return self._enqueue(_Job(write, None))

    def submit_commit(self, commit: MeterCommit) -> Future[None]:
        """Queue a meter commit, merged into the last queued one if that has not started."""
        with self._lock:
            tail = self._jobs[-1] if self._jobs else None
            if tail is not None and tail.commit is not None and tail is not self._running:
                tail.commit.absorb(commit)
                self._submissions += 1
                self._lock.notify_all()
                return tail.future
        return self._enqueue(_Job(None, commit))

    def _enqueue(self, job: _Job) -> Future[None]:
        with self._lock:
            if self._closing:
                raise StoreWriteError(f"{self.path} is closed")
            self._jobs.append(job)
            self._submissions += 1
            self._lock.notify_all()
        return job.future

    def withdraw(self, future: Future[None]) -> bool:
        """Take a queued job back before it starts (a caller that gave up waiting)."""
        with self._lock:
            for job in self._jobs:
                if job.future is future and job is not self._running:
                    self._jobs.remove(job)
                    future.cancel()
                    return True
        return False

    def stalled(self) -> bool:
        """A fault, or a job running for longer than any healthy write takes."""
        with self._lock:
            running = self._running is not None
            since = self._started_at
        return self.fault is not None or (running and time.monotonic() - since > STALLED_AFTER_S)

    def last_queued(self) -> Future[None] | None:
        """The future of the last queued write (None: nothing queued): in order, so everything
        queued so far is durable when it is."""
        with self._lock:
            return self._jobs[-1].future if self._jobs else None

    def pending(self) -> int:
        with self._lock:
            return len(self._jobs)

    def status(self) -> dict[str, object]:
        """For `ctl status`."""
        return {
            "fault": self.fault,
            "fault_since_s": None
            if self.fault_since is None
            else round(time.monotonic() - self.fault_since, 1),
            "stalled": self.stalled(),
            "pending_writes": self.pending(),
            "failed_attempts": self.failed_attempts,
        }

    def close(self, timeout_s: float) -> bool:
        """Write what is queued (waiting at most `timeout_s`) and stop; False if some was not."""
        with self._lock:
            self._closing = True
            self._lock.notify_all()
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            log.error(
                "%d writes to %s not made before shutdown (%s)",
                self.pending(),
                self.path,
                self.fault or "storage stalled",
            )
            return False
        return True

    # ------------------------------------------------------------------ the writer thread

    def _serve(self) -> None:
        db = self._connect()
        try:
            while True:
                job = self._next_job()
                if job is None:
                    return
                self._run(db, job)
        finally:
            db.close()

    def _next_job(self) -> _Job | None:
        with self._lock:
            while not self._jobs:
                if self._closing:
                    return None
                self._lock.wait()
            self._running, self._started_at = self._jobs[0], time.monotonic()
            return self._running

    def _run(self, db: sqlite3.Connection, job: _Job) -> None:
        try:
            db.execute("BEGIN IMMEDIATE")
            if job.commit is not None:
                self._write_commit(db, job.commit)
            elif job.write is not None:
                job.write(db)
            db.execute("COMMIT")
        except sqlite3.Error as exc:  # storage: retried until it succeeds
            _roll_back(db)
            self._failed(job, exc)
            return
        except Exception as exc:  # a bug in the write itself: retrying cannot help
            _roll_back(db)
            log.exception("write to %s refused by the writer", self.path)
            self._finish(job, exc)
            return
        self._recovered()
        self._finish(job, None)

    def _finish(self, job: _Job, error: Exception | None) -> None:
        with self._lock:
            self._jobs.popleft()
            self._running = None
        if job.future.cancelled():  # nobody cancels a queued job's future; be sure anyway
            return
        if error is None:
            job.future.set_result(None)
        else:
            job.future.set_exception(error)

    def _failed(self, job: _Job, exc: sqlite3.Error) -> None:
        cause = f"write to {self.path} failed: {exc}"
        self.failed_attempts += 1
        if self.fault is None:
            self.fault_since = time.monotonic()
            log.error(
                "storage fault: %s; retrying every %.0f s, nothing is discarded", cause, RETRY_S
            )
        self.fault = cause
        with self._lock:
            self._running = None
            if self._closing:
                # Shutting down on a fault: what cannot be written now stays unwritten (a
                # restart records the gap as downtime, PDN/DNV rows in the load profile).
                log.error(
                    "%d writes to %s not made at shutdown: %s", len(self._jobs), self.path, cause
                )
                while self._jobs:
                    future = self._jobs.popleft().future
                    if not future.cancelled():
                        future.set_exception(StoreWriteError(cause))
                return
            # Wait before retrying, unless a new job (or close) arrives: a sign to try again.
            seen = self._submissions
            self._lock.wait_for(lambda: self._submissions != seen or self._closing, RETRY_S)

    def _recovered(self) -> None:
        if self.fault is None:
            return
        since = self.fault_since or time.monotonic()
        log.warning(
            "storage recovered after %.1f s (%s); the pending writes are made",
            time.monotonic() - since,
            self.fault,
        )
        self.fault, self.fault_since = None, None


def _roll_back(db: sqlite3.Connection) -> None:
    """End a failed transaction, so the retry can begin a new one. SQLite may have rolled it
    back itself (a full disk at COMMIT); then there is nothing left to end."""
    if db.in_transaction:
        with contextlib.suppress(sqlite3.Error):  # the retry meets the same fault and logs it
            db.execute("ROLLBACK")
