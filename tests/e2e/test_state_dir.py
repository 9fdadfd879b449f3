"""The state directory at start-up, with real processes: one twin per directory (the lock),
and a damaged or unwritable database refused with the exit status of "storage failing"."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.test_twin_process import RunningTwin
from twin.cli_common import EXIT_CONFIG, EXIT_STATE_DIR_BUSY, EXIT_STORAGE

DATABASE = "meter.sqlite3"


@pytest.fixture
def state_dir() -> Iterator[Path]:
    # Short path: the control socket path must fit in sockaddr_un.
    with tempfile.TemporaryDirectory(prefix="twin-sd-") as path:
        yield Path(path)


def _run(
    state_dir: Path, *args: str, prefix: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            *prefix,
            sys.executable,
            "-m",
            "twin",
            "run",
            "--state-dir",
            str(state_dir),
            "--p3",
            "none",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_second_twin_on_the_same_state_directory_exits_naming_the_holder(
    state_dir: Path,
) -> None:
    first = RunningTwin(state_dir, "--speed", "60", "--p1", "pty://p1")
    try:
        second = _run(state_dir, "--p1", "pty://p1-second")
        assert second.returncode == EXIT_STATE_DIR_BUSY, second.stderr
        assert f"PID {first.process.pid}" in second.stderr
        assert not (state_dir / "p1-second").exists()  # it stopped before opening any port
        assert first.process.poll() is None
        assert first.kill(signal.SIGTERM) == 0
    finally:
        if first.process.poll() is None:
            first.kill(signal.SIGKILL)
    # The lock dies with its holder: the next twin starts.
    again = RunningTwin(state_dir, "--speed", "60", "--p1", "pty://p1")
    assert again.kill(signal.SIGTERM) == 0


def _new_meter(state_dir: Path) -> None:
    running = RunningTwin(state_dir, "--speed", "60", "--p1", "pty://p1")
    assert running.kill(signal.SIGTERM) == 0


def test_an_empty_database_is_refused_not_replaced_by_a_new_meter(state_dir: Path) -> None:
    _new_meter(state_dir)
    (state_dir / DATABASE).write_bytes(b"")
    result = _run(state_dir, "--p1", "pty://p1")
    assert result.returncode == EXIT_STORAGE, result.stderr
    assert "is empty" in result.stderr
    assert "store restore" in result.stderr
    assert "Traceback" not in result.stderr
    assert (state_dir / DATABASE).stat().st_size == 0  # nothing overwritten


def test_a_page_of_garbage_is_a_clear_error_and_nothing_is_overwritten(state_dir: Path) -> None:
    _new_meter(state_dir)
    path = state_dir / DATABASE
    db = sqlite3.connect(path)
    page_size = db.execute("PRAGMA page_size").fetchone()[0]
    db.close()
    with path.open("r+b") as file:  # page 2 and on: the schema's tables, not the header
        file.seek(page_size)
        file.write(os.urandom(page_size))
    damaged = path.read_bytes()
    result = _run(state_dir, "--p1", "pty://p1")
    assert result.returncode == EXIT_STORAGE, result.stderr
    assert "damaged" in result.stderr
    assert "Traceback" not in result.stderr
    assert path.read_bytes() == damaged


def test_a_brand_new_state_directory_is_a_new_meter_and_a_config_error_is_not_storage(
    state_dir: Path,
) -> None:
    config = state_dir / "twin.toml"
    config.write_text("[meter]\nphases = 2\n")
    assert _run(state_dir / "new", "--config", str(config)).returncode == EXIT_CONFIG
    assert EXIT_CONFIG != EXIT_STORAGE


def test_a_read_only_state_directory_is_a_clear_error(state_dir: Path) -> None:
    _new_meter(state_dir)
    readonly = state_dir / "ro"
    shutil.copytree(state_dir, readonly, ignore=shutil.ignore_patterns("ro", "*.sock", "p1"))
    files = sorted(p for p in readonly.rglob("*") if p.is_file())
    for path in [*readonly.rglob("*"), readonly]:
        path.chmod(0o555 if path.is_dir() else 0o444)
    before = {p: p.read_bytes() for p in files}
    # Root writes anywhere: as root, the twin runs in a new user namespace, where it keeps its
    # uid but loses CAP_DAC_OVERRIDE, so the modes above hold as on a read-only card.
    prefix = ("unshare", "--user") if os.geteuid() == 0 else ()
    try:
        result = _run(readonly, "--p1", "pty://p1", prefix=prefix)
    finally:  # so that the temporary directory can be removed without root
        for path in [readonly, *readonly.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
    assert result.returncode == EXIT_STORAGE, result.stderr
    assert "not writable" in result.stderr
    assert "Traceback" not in result.stderr
    assert {p: p.read_bytes() for p in sorted(p for p in readonly.rglob("*") if p.is_file())} == (
        before
    )
