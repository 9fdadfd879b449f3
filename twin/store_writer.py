"""The stores' writers: each store's writes are made in submission order, one transaction each,
by a small pool of threads that every store of the process shares.

Storage waits (fsync, a full disk, a frozen file system) happen in the pool, never on the event
loop: the loop hands over a job and goes on; whoever must know a write is durable waits for its
future. A job that fails stays at the head of its store's queue and is retried until it
succeeds, so a full disk loses nothing and later writes never overtake earlier ones. The fault
is logged once with its cause, and once more when the store recovers.

One pool, many stores: a fleet worker hosts hundreds of meters, and a thread per store (each
with its stack, its wake-ups and the kernel's scheduling of it) cost more than the writes. A
store is served by one pool thread at a time, which keeps its order; a failing store waits for
its retry off the pool (the threads serve the others meanwhile); a write that hangs (a frozen
file system) holds its thread, and once it has run for STALLED_AFTER_S with work of other
stores waiting, the pool starts a spare thread, which ends when it finds nothing to do. So a
store's fault stays its own: its own typed error, its own `stalled()`, never the others' wait.

Meter commits coalesce at the tail: while one waits for its turn, a newer one replaces its
state record and appends its outbox behind the first one's. During a long fault the queue
stays short and every row and event is still written, in order.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import os
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
# The pool's threads (beyond them, a spare per stuck write). Two, so one store's slow fsync
# does not delay the next store's write, and the disk may take two flushes at once.
POOL_THREADS = 2

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


class WriterPool:
    """Threads that make the writes of many stores, each store's in order (see the module)."""

    def __init__(self, size: int = POOL_THREADS) -> None:
        self.size = size
        mutex = threading.Lock()
        # One lock for the pool and its writers' queues; a condition for each kind of waiter,
        # so a submission wakes one pool thread, not every thread and closer.
        self.lock = threading.Condition(mutex)  # the pool threads wait for work here
        self.settled = threading.Condition(mutex)  # closers wait for their store here
        self._spare_watch = threading.Condition(mutex)  # the watcher waits here
        self._ready: deque[StoreWriter] = deque()
        self._retries: list[tuple[float, int, StoreWriter]] = []  # heap: (due, order, writer)
        self._order = itertools.count()
        self._serving: set[StoreWriter] = set()
        self._threads = 0
        self._idle = 0
        self._watching = False
        self._stopped = False

    def threads(self) -> int:
        """Pool threads alive now (a spare for each stuck write beyond `size`)."""
        with self.lock:
            return self._threads

    def stop(self) -> None:
        """End the threads once they are idle (tests; a process's pool lives as long)."""
        with self.lock:
            self._stopped = True
            self.lock.notify_all()
            self._spare_watch.notify_all()

    # ------------------------------------------------------------------ the writers' side

    def make_ready(self, writer: StoreWriter) -> None:
        """`writer` has a job to run (the pool's lock is held)."""
        writer.state = _READY
        self._ready.append(writer)
        # Idle threads count down only once they wake: while there are as many as stores
        # ready, each ready store has a thread coming.
        if self._idle >= len(self._ready):
            self.lock.notify()
        elif self._threads < self.size:
            self._start_thread()
        else:
            self._watch()

    def requeue(self, writer: StoreWriter) -> None:
        """`writer` has more jobs, told by the thread that served it and now takes the next
        ready store (the lock is held): nobody else needs waking."""
        writer.state = _READY
        self._ready.append(writer)

    def retry_later(self, writer: StoreWriter) -> None:
        """`writer` failed: try again after RETRY_S, or at its next job (the lock is held)."""
        writer.state = _RETRYING
        writer.retry_turn = next(self._order)
        heapq.heappush(self._retries, (time.monotonic() + RETRY_S, writer.retry_turn, writer))
        self.lock.notify()  # an idle thread takes the retry's due time into its wait

    # ------------------------------------------------------------------ the pool threads

    def _start_thread(self) -> None:
        self._threads += 1
        name = f"dsmr-twin.store-{next(self._order)}"
        threading.Thread(target=self._serve, name=name, daemon=True).start()

    def _serve(self) -> None:
        while True:
            with self.lock:
                writer = self._next_writer()
                if writer is None:
                    return
                job = writer.begin()
                self._serving.add(writer)
            outcome = writer.run(job)
            with self.lock:
                self._serving.discard(writer)
                done = writer.end(job, outcome)
            # Outside the lock (a future's callbacks may submit again), and before the store
            # goes back to the pool: its futures complete in order, as its writes were made.
            for future, error in done:
                _resolve(future, error)
            with self.lock:
                if writer.state == _SERVING:
                    writer.next_turn()

    def _next_writer(self) -> StoreWriter | None:
        """The next store to serve, waiting for one; None: this thread ends (a spare that
        found nothing to do, or a stopped pool)."""
        while True:
            now = time.monotonic()
            while self._retries and self._retries[0][0] <= now:
                _due, turn, writer = heapq.heappop(self._retries)
                if writer.state == _RETRYING and writer.retry_turn == turn:
                    writer.state = _READY
                    self._ready.append(writer)
            if self._ready:
                return self._ready.popleft()
            # A spare ends when it finds nothing to do, unless a write still holds a thread.
            if self._threads - self._stuck(now) > self.size or self._stopped:
                self._threads -= 1
                return None
            timeout = self._retries[0][0] - now if self._retries else None
            self._idle += 1
            try:
                self.lock.wait(timeout)
            finally:
                self._idle -= 1

    # ------------------------------------------------------------------ stuck writes

    def _watch(self) -> None:
        """Work waits and no thread is idle: have the watcher look whether the busy ones are
        stuck (started on the first such moment; it sleeps while nothing waits)."""
        if not self._watching:
            self._watching = True
            threading.Thread(
                target=self._watch_stuck, name="dsmr-twin.store-watch", daemon=True
            ).start()
        self._spare_watch.notify()

    def _watch_stuck(self) -> None:
        with self.lock:
            while not self._stopped:
                wait = self._spare_needed_in()
                if wait == 0.0:
                    self._start_thread()
                    continue
                self._spare_watch.wait(wait)
            self._watching = False

    def _spare_needed_in(self) -> float | None:
        """0: start a spare now (work waits and every thread's write has run for longer than
        a healthy one takes); else how long until that could be so (None: until woken)."""
        now = time.monotonic()
        due = self._retries[0][0] if self._retries else None  # a failing store's retry
        waiting = len(self._ready) + (due is not None and due <= now)
        if waiting <= self._idle:  # the idle threads take what waits
            return due - now if due is not None and not self._idle else None
        if self._threads < self.size:
            return 0.0
        if not self._serving or len(self._serving) < self._threads - self._idle:
            return STALLED_AFTER_S  # a thread is waking or between jobs: it comes
        youngest = max(w.started_at for w in self._serving)
        return max(0.0, youngest + STALLED_AFTER_S - now)

    def _stuck(self, now: float) -> int:
        """Threads whose write has run for longer than a healthy one takes."""
        return sum(1 for w in self._serving if now - w.started_at > STALLED_AFTER_S)


_IDLE, _READY, _SERVING, _RETRYING = "idle", "ready", "serving", "retrying"


@dataclass(slots=True)
class _Outcome:
    error: Exception | None = None
    storage: bool = False  # a storage fault (retried), not a bug in the write


class StoreWriter:
    """One store's queue of write jobs, made in order by the pool's threads, each in one
    transaction on the store's own write connection."""

    def __init__(
        self,
        connect: Connect,
        write_commit: Callable[[sqlite3.Connection, MeterCommit], None],
        path: Path,
        pool: WriterPool | None = None,
    ) -> None:
        self._connect = connect
        self._write_commit = write_commit
        self.path = path
        self._pool = pool or shared_pool()
        self._lock = self._pool.lock
        self._db: sqlite3.Connection | None = None  # opened by the pool at the first job
        self._jobs: deque[_Job] = deque()
        self._running: _Job | None = None
        self.started_at = 0.0
        self.state = _IDLE  # guarded by the pool's lock, as everything the pool reads
        self.retry_turn = -1
        self._closing = False
        self.failed_attempts = 0
        self.fault: str | None = None
        self.fault_since: float | None = None

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
                self._wake()
                return tail.future
        return self._enqueue(_Job(None, commit))

    def _enqueue(self, job: _Job) -> Future[None]:
        with self._lock:
            if self._closing:
                raise StoreWriteError(f"{self.path} is closed")
            self._jobs.append(job)
            self._wake()
        return job.future

    def _wake(self) -> None:
        """A new or merged job: serve this store, a failing one at once (a reason to retry)."""
        if self.state in (_IDLE, _RETRYING):
            self._pool.make_ready(self)

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
        """A fault, or a job of this store running for longer than any healthy write takes."""
        with self._lock:
            running = self._running is not None
            since = self.started_at
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
            if self.state == _RETRYING:  # one last attempt now, then what fails is dropped
                self._pool.make_ready(self)
            elif self.state == _IDLE:
                self._close_connection()
            if self._pool.settled.wait_for(lambda: self.state == _IDLE, timeout_s):
                return True
            pending = len(self._jobs)
        log.error(
            "%d writes to %s not made before shutdown (%s)",
            pending,
            self.path,
            self.fault or "storage stalled",
        )
        return False

    # ------------------------------------------------------------------ in a pool thread

    def begin(self) -> _Job:
        """The pool hands this store to a thread (the pool's lock is held)."""
        self.state = _SERVING
        self._running, self.started_at = self._jobs[0], time.monotonic()
        return self._running

    def run(self, job: _Job) -> _Outcome:
        """Make one job, without the pool's lock (this is where storage waits)."""
        try:
            if self._db is None:
                self._db = self._connect()
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            if job.commit is not None:
                self._write_commit(db, job.commit)
            elif job.write is not None:
                job.write(db)
            db.execute("COMMIT")
        except sqlite3.Error as exc:  # storage: retried until it succeeds
            _roll_back(self._db)
            return _Outcome(exc, storage=True)
        except Exception as exc:  # a bug in the write itself: retrying cannot help
            _roll_back(self._db)
            log.exception("write to %s refused by the writer", self.path)
            return _Outcome(exc)
        return _Outcome()

    def end(self, job: _Job, outcome: _Outcome) -> list[tuple[Future[None], Exception | None]]:
        """After a job (the pool's lock is held): the futures to complete, with their errors
        (the caller completes them after the lock, then calls `next_turn`), or a retry."""
        self._running = None
        if outcome.storage and isinstance(outcome.error, sqlite3.Error):
            return self._failed(outcome.error)
        if outcome.error is None:
            self._recovered()
        self._jobs.popleft()
        return [(job.future, outcome.error)]

    def next_turn(self) -> None:
        """The next job to the pool, or rest (the pool's lock is held, by the thread that
        made the last job and takes the next ready store right after)."""
        if self._jobs:
            self._pool.requeue(self)
            return
        self.state = _IDLE
        if self._closing:
            self._close_connection()
        self._pool.settled.notify_all()

    def _failed(self, exc: sqlite3.Error) -> list[tuple[Future[None], Exception | None]]:
        cause = f"write to {self.path} failed: {exc}"
        self.failed_attempts += 1
        if self.fault is None:
            self.fault_since = time.monotonic()
            log.error(
                "storage fault: %s; retrying every %.0f s, nothing is discarded", cause, RETRY_S
            )
        self.fault = cause
        if not self._closing:
            self._pool.retry_later(self)
            return []
        # Shutting down on a fault: what cannot be written now stays unwritten (a restart
        # records the gap as downtime, PDN/DNV rows in the load profile).
        log.error("%d writes to %s not made at shutdown: %s", len(self._jobs), self.path, cause)
        lost: list[tuple[Future[None], Exception | None]] = [
            (job.future, StoreWriteError(cause)) for job in self._jobs
        ]
        self._jobs.clear()
        return lost

    def _close_connection(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

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


_shared: WriterPool | None = None
_shared_lock = threading.Lock()


def shared_pool() -> WriterPool:
    """The process's pool, which every store not given one shares (made at the first store;
    its threads start at the first write)."""
    global _shared  # noqa: PLW0603 - one pool per process, as one event loop per process
    with _shared_lock:
        if _shared is None:
            _shared = WriterPool()
        return _shared


def _forget_shared_pool() -> None:
    """A forked child has none of its parent's threads: it makes a pool of its own."""
    global _shared  # noqa: PLW0603
    _shared = None


os.register_at_fork(after_in_child=_forget_shared_pool)


def _resolve(future: Future[None], error: Exception | None) -> None:
    if future.cancelled():  # nobody cancels a started job's future; be sure anyway
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)


def _roll_back(db: sqlite3.Connection | None) -> None:
    """End a failed transaction, so the retry can begin a new one. SQLite may have rolled it
    back itself (a full disk at COMMIT); then there is nothing left to end."""
    if db is not None and db.in_transaction:
        with contextlib.suppress(sqlite3.Error):  # the retry meets the same fault and logs it
            db.execute("ROLLBACK")
