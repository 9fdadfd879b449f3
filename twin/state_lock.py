"""One twin per state directory: an exclusive `flock` on a lock file that records the PID.

Two processes on one database could each reserve the same block of DLMS invocation counters
and so reuse an AES-GCM nonce (P3 §3.2.3: an invocation counter is never used twice under one
key). `dsmr-twin run` and `dsmr-twin store restore` hold this lock for their lifetime; the
kernel drops it when the holder exits, however it exits, so a stale lock file is harmless.
"""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path

from twin.store import STATE_DIR_MODE, StoreError, not_writable, owned_like_state_dir

LOCK_FILE = "twin.lock"
LOCK_MODE = 0o640  # operators may read who holds it


class StateDirBusyError(StoreError):
    """Another process holds the state directory."""


class StateLock:
    """The held lock; `release` (or the process's exit) frees it."""

    def __init__(self, fd: int, path: Path) -> None:
        self._fd = fd
        self.path = path

    @classmethod
    def acquire(cls, state_dir: Path, purpose: str = "run") -> StateLock:
        path = state_dir / LOCK_FILE
        try:
            state_dir.mkdir(parents=True, exist_ok=True, mode=STATE_DIR_MODE)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, LOCK_MODE)
        except OSError as exc:
            if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
                raise StoreError(not_writable(state_dir, exc)) from exc
            raise StoreError(f"cannot lock the state directory {state_dir}: {exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise StateDirBusyError(
                f"the state directory {state_dir} is in use by another twin (PID {holder});"
                f" stop it first, {purpose} refuses to share it"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        owned_like_state_dir(path, state_dir)
        return cls(fd, path)

    def release(self) -> None:
        # The file stays: unlinking it could let a third process lock a new file while a
        # second one still waits on the old one.
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _holder(fd: int) -> str:
    """The PID the holder wrote, or 'unknown' if it has not written it yet."""
    text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    return text if text.isdigit() else "unknown"
