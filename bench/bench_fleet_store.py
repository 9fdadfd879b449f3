"""The fleet's store layout (issue 12 item 6): one SQLite database per meter, or one per worker.

    python bench/bench_fleet_store.py --meters 1000 --rounds 5 --kill-after-s 3

The write pattern of a fleet worker's meters, for `--meters` meters in one process, in three
layouts on the same disk (`--dir`, default a temporary directory under the current one: /tmp
may be a tmpfs, where fsync costs nothing):

- per-meter: what the fleet runs. Each meter's own `twin.store.Store` (WAL, synchronous=FULL,
  its writes made by the process's shared writer threads), written through the store's own
  calls: checkpoint commits (`Store.submit_commit`, the registers' record, an empty outbox),
  P3 invocation counter reservations (`StoreWriter.submit(setting_write(...))`, what
  `put_setting_async` queues) and event appends (`Store.submit_commit` with one event in the
  outbox).
- shared: one database for all the worker's meters, the same tables keyed by meter, the same
  pragmas (`twin.store._set_pragmas`) and one `twin.store_writer.StoreWriter`: one
  transaction per meter commit, as each meter commits today.
- shared, grouped: the shared database with every meter's write of a round in one transaction
  (a group-committing writer the twin does not have; the upper bound of the shared layout).

Each burst phase submits one write per meter at once (a worker's meters all checkpointing, all
reserving counters, an outage's power-down events), waits until every one is durable, and
repeats `--rounds` times; the spread phase writes one checkpoint at a time, meter after meter,
each durable before the next (an idle fleet's checkpoints seldom meet). Printed per layout and
phase: commits/s, process CPU (all threads) per commit, the descriptors and threads the layout
holds open, and its disk use; then how large one meter's WAL grows (`--wal-commits`).

kill -9 (`--kill-after-s`): a child process writes checkpoints in a loop, one sequence number
per meter, and reports each number once its commit is durable (what the twin may publish);
`--kill-after-s` after its first report it is killed with SIGKILL. Then every database is
opened as a restarting worker opens it (per-meter: `Store.open` with its quick_check, per
meter) and each meter's stored number is compared with the last one reported: lower means a
published value lost.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, wait
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from twin.fleet.worker import raise_open_file_limit
from twin.meter.events import Event, EventCode
from twin.meter.model import Outbox
from twin.meter.state import MeterState
from twin.p3.keys import COUNTER_SETTING
from twin.store import DATABASE, Store, _set_pragmas, setting_write
from twin.store_writer import MeterCommit, StoreWriter

START = datetime(2026, 12, 7, tzinfo=UTC)
SHARED_DATABASE = "worker.sqlite3"
# "spread": one checkpoint at a time, meter after meter (an idle fleet's checkpoints, 30 s
# apart per meter, rarely meet); the others: every meter's write at once (a burst).
PHASES = ("spread", "checkpoint", "counter", "event")
EVENTS_KEPT = 500  # the twin keeps at most a log's capacity of events; bounded like it

SHARED_SCHEMA = """
CREATE TABLE IF NOT EXISTS meter_state (
    meter INTEGER PRIMARY KEY, record TEXT NOT NULL, meter_time REAL NOT NULL,
    real_time REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT, meter INTEGER NOT NULL, log TEXT NOT NULL,
    time REAL NOT NULL, code INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_log ON events (meter, log, id);
CREATE TABLE IF NOT EXISTS settings (
    meter INTEGER NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (meter, key)
);
"""


def state(seq: int) -> MeterState:
    """A meter's registers at sequence number `seq` (carried in its meter time)."""
    return MeterState(time=START + timedelta(seconds=seq))


def seq_of(meter_time: float) -> int:
    return round(meter_time - START.timestamp())


def power_down(seq: int) -> Outbox:
    return Outbox(events=[Event.of(START + timedelta(seconds=seq), EventCode.POWER_DOWN)])


# ---------------------------------------------------------------------- the layouts


class PerMeter:
    """What the fleet runs: each meter's own Store."""

    name = "per-meter"

    def __init__(self, root: Path, meters: int) -> None:
        self.stores = [Store.open(root / f"{m:04d}") for m in range(1, meters + 1)]

    def submit(self, phase: str, seq: int) -> list[Future[None]]:
        if phase == "counter":
            write = setting_write(COUNTER_SETTING, seq * 1000)
            return [s.writer.submit(write) for s in self.stores]
        outbox = power_down if phase == "event" else lambda _seq: Outbox()
        return [s.submit_commit(state(seq), outbox(seq)) for s in self.stores]

    def one_by_one(self, seq: int) -> None:
        for store in self.stores:
            store.commit(state(seq), Outbox())

    def close(self) -> None:
        for store in self.stores:
            store.close()

    @staticmethod
    def stored(root: Path, meters: int) -> dict[int, int]:
        found = {}
        for m in range(1, meters + 1):
            store = Store.open(root / f"{m:04d}")
            checkpoint = store.load()
            found[m] = -1 if checkpoint is None else seq_of(checkpoint.state.time.timestamp())
            store.close()
        return found


def _connect_shared(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    _set_pragmas(db)
    return db


def _no_commit(db: sqlite3.Connection, commit: MeterCommit) -> None:
    raise AssertionError("the shared layout queues its own writes")


class Shared:
    """One database and one writer for every meter of the worker."""

    name = "shared"
    grouped = False

    def __init__(self, root: Path, meters: int) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.path = root / SHARED_DATABASE
        self.meters = meters
        db = _connect_shared(self.path)
        db.executescript(SHARED_SCHEMA)
        db.close()
        self.reader = _connect_shared(self.path)  # as each Store keeps a reading connection
        self.writer = StoreWriter(lambda: _connect_shared(self.path), _no_commit, self.path)

    def submit(self, phase: str, seq: int) -> list[Future[None]]:
        writes = [self._write(phase, m, seq) for m in range(1, self.meters + 1)]
        if not self.grouped:
            return [self.writer.submit(w) for w in writes]

        def all_of_them(db: sqlite3.Connection) -> None:
            for write in writes:
                write(db)

        return [self.writer.submit(all_of_them)]

    def one_by_one(self, seq: int) -> None:
        for meter in range(1, self.meters + 1):
            self.writer.submit(self._write("checkpoint", meter, seq)).result()

    def _write(self, phase: str, meter: int, seq: int) -> Callable[[sqlite3.Connection], None]:
        if phase == "counter":
            value = json.dumps(seq * 1000)
            return lambda db: _put_setting(db, meter, COUNTER_SETTING, value)
        record = json.dumps(state(seq).to_record(), separators=(",", ":"))
        events = power_down(seq).events if phase == "event" else []

        def write(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT OR REPLACE INTO meter_state VALUES (?, ?, ?, ?)",
                (meter, record, state(seq).time.timestamp(), time.time()),
            )
            for event in events:
                db.execute(
                    "INSERT INTO events (meter, log, time, code) VALUES (?, ?, ?, ?)",
                    (meter, event.log.name, event.when.timestamp(), event.code),
                )
                db.execute(
                    "DELETE FROM events WHERE meter = ? AND log = ? AND id NOT IN (SELECT id"
                    " FROM events WHERE meter = ? AND log = ? ORDER BY id DESC LIMIT ?)",
                    (meter, event.log.name, meter, event.log.name, EVENTS_KEPT),
                )

        return write

    def close(self) -> None:
        self.writer.close(10.0)
        self.reader.close()

    @staticmethod
    def stored(root: Path, meters: int) -> dict[int, int]:
        db = _connect_shared(root / SHARED_DATABASE)
        assert db.execute("PRAGMA quick_check").fetchone()[0] == "ok"
        rows = dict(db.execute("SELECT meter, meter_time FROM meter_state").fetchall())
        db.close()
        return {m: seq_of(rows[m]) if m in rows else -1 for m in range(1, meters + 1)}


def _put_setting(db: sqlite3.Connection, meter: int, key: str, value: str) -> None:
    db.execute("INSERT OR REPLACE INTO settings VALUES (?, ?, ?)", (meter, key, value))


class SharedGrouped(Shared):
    name = "shared, grouped"
    grouped = True


LAYOUTS: dict[str, type[PerMeter] | type[Shared]] = {
    "per-meter": PerMeter,
    "shared": Shared,
    "grouped": SharedGrouped,
}


# ---------------------------------------------------------------------- measuring


@dataclass
class Figures:
    layout: str
    phase: str
    commits: int
    wall_s: float
    cpu_s: float

    def row(self) -> str:
        return (
            f"| {self.layout} | {self.phase} | {self.commits / self.wall_s:,.0f} |"
            f" {1e6 * self.cpu_s / self.commits:,.0f} µs |"
        )


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def disk_bytes(root: Path) -> int:
    return sum(p.stat().st_blocks * 512 for p in root.rglob("*") if p.is_file())


def measure(kind: str, root: Path, meters: int, rounds: int) -> tuple[list[Figures], str]:
    fds, threads = open_fds(), threading.active_count()
    opened = time.perf_counter()
    layout = LAYOUTS[kind](root, meters)
    open_s = time.perf_counter() - opened
    held = f"{open_fds() - fds} fds, {threading.active_count() - threads} threads"
    figures = []
    seq = 0
    try:
        for phase in PHASES:
            wall, cpu = time.perf_counter(), time.process_time()
            for _ in range(rounds):
                seq += 1
                if phase == "spread":
                    layout.one_by_one(seq)
                    continue
                futures = layout.submit(phase, seq)
                wait(futures)
                for future in futures:
                    future.result()
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            figures.append(Figures(layout.name, phase, rounds * meters, wall, cpu))
    finally:
        layout.close()
    kib = disk_bytes(root) / 1024
    return figures, f"| {layout.name} | {open_s:.2f} s | {held} | {kib / meters:,.0f} KiB |"


def wal_growth(root: Path, commits: int) -> str:
    """One meter's WAL over `commits` checkpoints (SQLite resets a WAL after a checkpoint but
    keeps its file at the largest size it reached: wal_autocheckpoint, 1000 pages)."""
    store = Store.open(root)
    wal = Path(f"{store.path}-wal")
    largest = 0
    for seq in range(1, commits + 1):
        store.commit(state(seq), Outbox())
        largest = max(largest, wal.stat().st_size)
    store.close()
    return (
        f"one meter's WAL after {commits} checkpoints: {largest / 1024:,.0f} KiB at most"
        f" ({largest / 1024 / commits:.1f} KiB per commit), database {DATABASE}"
        f" {store.path.stat().st_size / 1024:,.0f} KiB"
    )


# ---------------------------------------------------------------------- kill -9


def child(kind: str, root: Path, meters: int) -> None:
    """Checkpoints in a loop; reports `meter seq` on stdout once each one is durable."""
    layout = LAYOUTS[kind](root, meters)
    seq = 0
    out = sys.stdout
    while True:
        seq += 1
        futures = layout.submit("checkpoint", seq)
        wait(futures)
        out.write(f"{seq}\n")  # every meter's `seq` is durable: it may be published
        out.flush()


@contextmanager
def reported(command: list[str]) -> Iterator[tuple[subprocess.Popen[str], list[int]]]:
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    seen: list[int] = []

    def read() -> None:
        assert process.stdout is not None
        seen.extend(int(line) for line in process.stdout)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        yield process, seen
    finally:
        process.kill()
        process.wait()
        reader.join(5)


def kill_trial(kind: str, root: Path, meters: int, after_s: float) -> str:
    command = [sys.executable, __file__, "--child", kind, "--dir", str(root)]
    command += ["--meters", str(meters)]
    with reported(command) as (process, seen):
        deadline = time.monotonic() + 300
        while not seen and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)  # the child has opened (made) its databases: writing from now
        time.sleep(after_s)
        process.send_signal(signal.SIGKILL)
        process.wait()
    published = seen[-1] if seen else 0
    wal_files = len(list(root.rglob("*-wal")))  # left by the killed process
    reopened = time.perf_counter()
    stored = LAYOUTS[kind].stored(root, meters)
    reopen_s = time.perf_counter() - reopened
    lost = sum(1 for s in stored.values() if s < published)
    ahead = sum(1 for s in stored.values() if s > published)
    return (
        f"| {LAYOUTS[kind].name} | {published} | {lost} | {ahead} | {reopen_s:.2f} s |"
        f" {wal_files} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--meters", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5, help="writes per meter and phase")
    parser.add_argument("--layouts", default="per-meter,shared,grouped")
    parser.add_argument("--kill-after-s", type=float, default=0.0, help="0: no kill -9 trial")
    parser.add_argument(
        "--wal-commits", type=int, default=1200, help="checkpoints of one meter (0: none)"
    )
    parser.add_argument("--dir", type=Path, help="where the databases go (a real disk)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    raise_open_file_limit()
    if args.child:
        child(args.child, args.dir, args.meters)
        return
    kinds = args.layouts.split(",")
    with tempfile.TemporaryDirectory(prefix="bench-fleet-store-", dir=args.dir or ".") as tmp:
        print(f"{args.meters} meters, {args.rounds} writes per meter and phase, in {tmp}")
        print("| layout | phase | commits/s | CPU per commit |\n|---|---|---|---|")
        held = []
        for kind in kinds:
            figures, holding = measure(kind, Path(tmp) / kind, args.meters, args.rounds)
            held.append(holding)
            for figure in figures:
                print(figure.row(), flush=True)
        print("\n| layout | open | held open | disk per meter |\n|---|---|---|---|")
        print("\n".join(held))
        if args.wal_commits:
            print("\n" + wal_growth(Path(tmp) / "wal", args.wal_commits))
        if args.kill_after_s > 0:
            print(
                "\n| layout, kill -9 | last published | meters behind it (lost) |"
                " meters ahead | reopen | -wal files |\n|---|---|---|---|---|---|"
            )
            for kind in kinds:
                trial = Path(tmp) / f"kill-{kind}"
                print(kill_trial(kind, trial, args.meters, args.kill_after_s), flush=True)


if __name__ == "__main__":
    main()
