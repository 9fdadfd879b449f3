"""Backups of the database and `store restore`: real SQLite files in a real state directory."""

from __future__ import annotations

import asyncio
import random
import stat
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.support import amsterdam, steady_config
from twin.cli import main
from twin.cli_common import EXIT_STORAGE
from twin.clock import ManualClock
from twin.config import P3Config
from twin.metering import Meter
from twin.p2.aio.gasmeter import STATE_SETTING as P2_SLAVE_SETTING
from twin.p2.aio.master_store import STATE_SETTING as P2_MASTER_SETTING
from twin.p2.headers import ShortId
from twin.p2.master_state import Channel, MasterSnapshot
from twin.p2.persist import master_to_json, slave_to_json
from twin.p2.slave_state import SlaveSnapshot
from twin.p3.keys import COUNTER_BLOCK, KeyStore
from twin.state_lock import StateDirBusyError, StateLock
from twin.store import Store, StoreError
from twin.store_backup import (
    P3_MAX_FRAMES_PER_S,
    BackupService,
    check_file,
    list_backups,
    restore,
    seconds_until_due,
    take_backup,
)

START = amsterdam(2026, 11, 23, 12, 0)


async def _metered(state_dir: Path, hours: float, load_w: float = 1000) -> dict[str, int]:
    """A meter that ran `hours` at `load_w` from START; its committed registers."""
    store = Store.open(state_dir)
    checkpoint = store.load()
    clock = ManualClock(checkpoint.state.time if checkpoint else START)
    meter = Meter(steady_config(), clock, store, random.Random(1))
    meter.act(lambda m, now: m.set_load_override(now, load_w))
    await clock.set(clock.now() + timedelta(hours=hours))
    meter.publish()  # commits first
    store.close()
    return _registers(state_dir)


def _registers(state_dir: Path) -> dict[str, int]:
    store = Store.open(state_dir)
    checkpoint = store.load()
    store.close()
    assert checkpoint is not None
    return dict(checkpoint.state.energy_nj)


def _use_counters(state_dir: Path, count: int) -> int:
    """Hand out `count` P3 invocation counters as a running twin would; the last one."""
    store = Store.open(state_dir)
    keys = KeyStore(store, P3Config(), block=100)
    last = 0
    for _ in range(count):
        last = keys.counters.next_invocation_counter()
    store.close()
    return last


def _p2_counters(state_dir: Path, slave: int, channel: int) -> None:
    store = Store.open(state_dir)
    store.put_setting(
        P2_SLAVE_SETTING, {"slave": slave_to_json(SlaveSnapshot(frame_counter=slave))}
    )
    snapshot = MasterSnapshot(7, (Channel(1, 5, ShortId(12345678, "TWN"), frame_counter=channel),))
    store.put_setting(P2_MASTER_SETTING, {"master": master_to_json(snapshot)})
    store.close()


def _setting(state_dir: Path, key: str) -> object:
    store = Store.open(state_dir)
    try:
        return store.setting(key)
    finally:
        store.close()


async def test_backups_are_sound_private_copies_and_only_the_newest_are_kept(
    tmp_path: Path,
) -> None:
    await _metered(tmp_path, 0.25)
    now = datetime.now(UTC)
    store = Store.open(tmp_path)  # online: the twin's own connection stays open meanwhile
    taken = [take_backup(tmp_path, 2, now + timedelta(minutes=m)) for m in range(3)]
    store.put_setting("after", 1)
    store.close()
    kept = list_backups(tmp_path)
    assert [b.path for b in kept] == [b.path for b in taken[1:]]
    assert not taken[0].path.exists()
    assert stat.S_IMODE((tmp_path / "backups").stat().st_mode) == 0o700
    for backup in kept:
        assert stat.S_IMODE(backup.path.stat().st_mode) == 0o600
        assert check_file(backup.path) == ""
        assert not Path(f"{backup.path}-wal").exists()  # one self-contained file


async def test_restore_round_trip_loses_the_tail_but_moves_every_nonce_counter_past_it(
    tmp_path: Path,
) -> None:
    before = await _metered(tmp_path, 0.25)
    _use_counters(tmp_path, 250)
    _p2_counters(tmp_path, slave=40, channel=39)
    backup_limit = int(_setting(tmp_path, "p3_invocation_counter_limit"))  # type: ignore[arg-type]
    backup = take_backup(tmp_path, 5, datetime.now(UTC) - timedelta(seconds=100))
    # The tail the restore will lose: more metering, more counters used, then the damage.
    assert (await _metered(tmp_path, 0.25)) != before
    last_used = _use_counters(tmp_path, 5000)
    _p2_counters(tmp_path, slave=90, channel=89)
    (tmp_path / "meter.sqlite3").write_bytes(b"")

    done = restore(tmp_path, None, datetime.now(UTC))

    assert done.backup.path == backup.path
    assert 100 <= done.tail_s < 200
    assert _registers(tmp_path) == before  # the tail is lost, and said so
    assert done.moved_aside[0].parent.name == "damaged"
    assert done.moved_aside[0].stat().st_size == 0  # the replaced file is kept, not deleted
    limit = int(_setting(tmp_path, "p3_invocation_counter_limit"))  # type: ignore[arg-type]
    assert limit >= backup_limit + COUNTER_BLOCK + int(P3_MAX_FRAMES_PER_S * done.tail_s)
    assert _use_counters(tmp_path, 1) > last_used
    slave = _setting(tmp_path, P2_SLAVE_SETTING)
    master = _setting(tmp_path, P2_MASTER_SETTING)
    assert slave["slave"]["frame_counter"] > 90 + 100 * 100  # type: ignore[index]
    assert master["master"]["channels"][0]["frame_counter"] > 89 + 100 * 100  # type: ignore[index]
    assert set(done.counters) == {
        "p3 invocation counter",
        "gas meter frame counter",
        "M-Bus channel 1 frame counter",
    }


async def test_restore_skips_a_damaged_backup_and_refuses_while_a_twin_runs(
    tmp_path: Path,
) -> None:
    await _metered(tmp_path, 0.25)
    now = datetime.now(UTC)
    good = take_backup(tmp_path, 5, now - timedelta(minutes=2))
    bad = take_backup(tmp_path, 5, now - timedelta(minutes=1))
    bad.path.write_bytes(b"\x00" * 4096)
    lock = StateLock.acquire(tmp_path)
    with pytest.raises(StateDirBusyError, match="in use by another twin"):
        restore(tmp_path, None, now)
    lock.release()
    assert restore(tmp_path, None, now).backup.path == good.path


async def test_restore_refuses_when_the_counter_space_would_wrap(tmp_path: Path) -> None:
    await _metered(tmp_path, 0.25)
    store = Store.open(tmp_path)
    store.put_setting("p3_invocation_counter_limit", 2**32 - 10)
    store.close()
    take_backup(tmp_path, 5, datetime.now(UTC))
    database = (tmp_path / "meter.sqlite3").read_bytes()
    with pytest.raises(StoreError, match="without wrapping"):
        restore(tmp_path, None, datetime.now(UTC))
    assert (tmp_path / "meter.sqlite3").read_bytes() == database  # nothing replaced


async def test_store_commands_check_back_up_and_restore(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = await _metered(tmp_path, 0.25)
    state = ["--state-dir", str(tmp_path)]
    assert main(["store", "check", *state]) == 0
    assert main(["store", "backup", *state]) == 0
    assert len(list_backups(tmp_path)) == 1
    (tmp_path / "meter.sqlite3").write_bytes(b"")
    capsys.readouterr()
    assert main(["store", "check", *state]) == EXIT_STORAGE
    assert "empty" in capsys.readouterr().out
    assert main(["store", "restore", *state]) == 0
    assert "lost: up to" in capsys.readouterr().out
    assert main(["store", "check", *state]) == 0
    assert _registers(tmp_path) == before


def test_the_next_backup_is_due_an_interval_after_the_newest() -> None:
    now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    assert seconds_until_due(None, now, 3600) == 0
    assert seconds_until_due(now - timedelta(minutes=10), now, 3600) == 3000
    assert seconds_until_due(now - timedelta(hours=5), now, 3600) == 0


async def test_the_backup_service_backs_up_in_a_thread_and_survives_a_failure(
    tmp_path: Path,
) -> None:
    await _metered(tmp_path, 0.25)
    service = BackupService(tmp_path, 3600, 3)
    task = asyncio.create_task(service.run())
    ticks = 0
    while not list_backups(tmp_path):  # the loop keeps turning while the copy runs
        ticks += 1
        await asyncio.sleep(0.01)
        assert ticks < 1000
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert service.status()["backups"] == 1
    blocked = BackupService(tmp_path / "blocked", 3600, 3)
    (tmp_path / "blocked").mkdir()
    (tmp_path / "blocked" / "backups").write_text("a file where the directory goes")
    assert await blocked.backup_now() is None
    assert "cannot back up" in str(blocked.status()["last_error"])


async def test_a_running_twin_takes_its_first_backup_at_start(tmp_path: Path) -> None:
    from twin.app import build
    from twin.config import DisplayConfig, P1Config

    config = replace(
        steady_config(), p1=P1Config(endpoint="tcp://127.0.0.1:0"), display=DisplayConfig("none")
    )
    twin = build(config, tmp_path)
    stop = asyncio.Event()
    running = asyncio.create_task(twin.supervisor.run(stop))
    for _ in range(500):
        if list_backups(tmp_path):
            break
        await asyncio.sleep(0.01)
    stop.set()
    await running
    twin.store.close()
    assert len(list_backups(tmp_path)) == 1
    assert check_file(list_backups(tmp_path)[0].path) == ""
