"""The stores of a process share a few writer threads: each store's writes stay in order and a
store's fault (a stuck write, a failing disk) stays its own."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from twin.app import build
from twin.config import Config
from twin.fleet.spec import FleetSpec
from twin.store import Store, StoreError, setting_write
from twin.store_writer import STALLED_AFTER_S, WriterPool, _Job


@pytest.fixture
def pool() -> Iterator[WriterPool]:
    writers = WriterPool(size=1)
    yield writers
    writers.stop()


def _append(value: int) -> Callable[[sqlite3.Connection], object]:
    return lambda db: db.execute(
        "INSERT INTO events (log, time, code) VALUES ('order', ?, ?)", (value, value)
    )


def _written(store: Store) -> list[int]:
    rows = store._db.execute("SELECT code FROM events WHERE log = 'order' ORDER BY id")
    return [int(row[0]) for row in rows]


def test_each_store_writes_in_its_own_order_under_one_shared_thread(
    tmp_path: Path, pool: WriterPool
) -> None:
    stores = [Store.open(tmp_path / f"m{i}", pool) for i in range(4)]
    futures = [store.writer.submit(_append(n)) for n in range(200) for store in stores]
    for future in futures:
        future.result(10)
    for store in stores:
        assert _written(store) == list(range(200))
        store.close()
    assert pool.threads() == 1


def test_a_stores_futures_complete_in_order_and_a_callback_may_write_again(
    tmp_path: Path,
) -> None:
    pool = WriterPool(size=2)
    stores = [Store.open(tmp_path / f"m{i}", pool) for i in range(3)]
    completed: dict[int, list[int]] = {i: [] for i in range(3)}
    futures = []
    for n in range(100):
        for i, store in enumerate(stores):
            future = store.writer.submit(_append(n))
            future.add_done_callback(lambda _f, i=i, n=n: completed[i].append(n))
            futures.append(future)
    # A callback (it runs in a pool thread) that queues another write of its store.
    again = threading.Event()
    stores[0].writer.submit(_append(100)).add_done_callback(
        lambda _f: stores[0].writer.submit(_append(101)).add_done_callback(lambda _g: again.set())
    )
    for future in futures:
        future.result(10)
    assert again.wait(10)
    assert all(done == list(range(100)) for done in completed.values())
    assert _written(stores[0]) == list(range(102))
    for store in stores:
        store.close()
    pool.stop()


def test_a_stuck_write_of_one_store_holds_no_other_store(tmp_path: Path, pool: WriterPool) -> None:
    stuck, healthy = Store.open(tmp_path / "stuck", pool), Store.open(tmp_path / "ok", pool)
    disk = threading.Event()
    stuck.writer.submit(lambda db: disk.wait(10))  # a frozen file system under one store
    try:
        began = time.monotonic()
        healthy.put_setting("after", 1)  # the other store's write is made meanwhile
        assert time.monotonic() - began < STALLED_AFTER_S + 1.0
        assert healthy.setting("after") == 1
        assert stuck.writer.stalled()
        assert not healthy.writer.stalled()
        with pytest.raises(StoreError, match="a write is stuck"):  # its own typed error
            stuck.put_setting("after", 1)
        assert pool.threads() == 2  # a spare while the stuck write holds one
    finally:
        disk.set()
    _until(lambda: not stuck.writer.stalled())  # the frozen write ends
    stuck.put_setting("later", 2)  # recovered: in order behind the stuck write
    assert stuck.setting("later") == 2
    _until(lambda: pool.threads() == 1)  # the spare goes once nothing is stuck
    stuck.close()
    healthy.close()


def test_a_store_queued_with_one_that_then_sticks_is_served(
    tmp_path: Path, pool: WriterPool
) -> None:
    stores = [Store.open(tmp_path / f"m{i}", pool) for i in range(3)]
    stores[0].put_setting("warm", 1)  # the pool's thread is idle now
    disk = threading.Event()
    try:
        # Both queued before the idle thread wakes: it takes the one that sticks.
        stores[1].writer.submit(lambda db: disk.wait(10))
        written = stores[2].writer.submit(setting_write("after", 1))
        written.result(STALLED_AFTER_S + 1.0)
        assert stores[2].setting("after") == 1
    finally:
        disk.set()
    for store in stores:
        store.close()


def test_stores_ready_before_the_idle_thread_wakes_need_no_spare(
    tmp_path: Path, pool: WriterPool
) -> None:
    stores = [Store.open(tmp_path / f"m{i}", pool) for i in range(3)]
    stores[0].put_setting("warm", 1)
    _until(lambda: pool._idle == 1)  # the pool's one thread waits for work
    with pool.lock:  # it cannot wake while the test holds the pool's lock
        for n, store in enumerate(stores):
            store.writer._jobs.append(_Job(_append(n), None))
            store.writer._wake()
        # Three stores ready, the thread woken but not awake yet, nothing being written:
        # the watcher looks again later (a spare is for stuck writes).
        wait = pool._spare_needed_in()
        assert wait is not None
        assert wait > 0
    for store in stores:
        store.put_setting("after", 1)
        store.close()


def test_a_failing_disk_under_one_store_fails_no_other_store(
    tmp_path: Path, pool: WriterPool
) -> None:
    failing, healthy = Store.open(tmp_path / "bad", pool), Store.open(tmp_path / "ok", pool)
    disk_ok = threading.Event()

    def on_a_failing_disk(db: sqlite3.Connection) -> None:
        if not disk_ok.is_set():
            raise sqlite3.OperationalError("disk I/O error")  # what SQLite raises for EIO
        _append(1)(db)

    first = failing.writer.submit(on_a_failing_disk)
    second = failing.writer.submit(_append(2))
    _until(lambda: failing.writer.failed_attempts >= 1)
    for n in range(20):  # the other store commits while this one retries
        healthy.put_setting("n", n)
    assert healthy.setting("n") == 19
    assert healthy.writer.status()["fault"] is None
    assert "disk I/O error" in str(failing.writer.status()["fault"])
    with pytest.raises(StoreError, match="disk I/O error"):
        failing.put_setting("refused", 1)
    assert not first.done()
    assert not second.done()
    disk_ok.set()
    failing.writer.submit(_append(3)).result(10)  # a new write is a reason to retry at once
    assert first.done()
    assert second.done()
    assert _written(failing) == [1, 2, 3]
    assert failing.writer.status()["fault"] is None
    failing.close()
    healthy.close()


def test_a_store_closed_on_a_failing_disk_fails_its_own_writes_only(
    tmp_path: Path, pool: WriterPool
) -> None:
    failing, healthy = Store.open(tmp_path / "bad", pool), Store.open(tmp_path / "ok", pool)

    def full(db: sqlite3.Connection) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    lost = failing.writer.submit(full)
    _until(lambda: failing.writer.failed_attempts >= 1)
    assert failing.writer.close(1.0)
    with pytest.raises(Exception, match="disk is full"):
        lost.result(1)
    healthy.put_setting("still", True)
    assert healthy.setting("still") is True
    healthy.close()


def test_fifty_meters_in_one_process_share_a_few_writer_threads(tmp_path: Path) -> None:
    fleet = FleetSpec(50, b"pool seed", "tcp://127.1.0.1:4059", "none", seeded=True)
    before = threading.active_count()
    twins = []
    try:
        for index in fleet.indices:
            config = fleet.meter_config(Config(), fleet.identity(index))
            twins.append(build(config, tmp_path / f"{index:04d}"))
        for twin in twins:
            twin.meter.commit()
        assert threading.active_count() - before <= 3  # not one per meter
    finally:
        for twin in twins:
            twin.store.close()


def _until(condition: Callable[[], bool], within_s: float = 5.0) -> None:
    deadline = time.monotonic() + within_s
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.01)
