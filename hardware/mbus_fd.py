"""Non-blocking reads and writes on a file descriptor, for the M-Bus pty and UART links.

Both links hand the event loop the raw descriptor (a pty master, or pyserial's fd set
non-blocking), so waiting costs no thread; every OS error becomes a `PortError` naming the
link (`what`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os

from hardware.ports import PortError

READ_CHUNK = 4096


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


async def wait_fd(fd: int, *, write: bool, timeout_s: float | None) -> bool:
    """Wait until `fd` is readable (or writable); False on timeout."""
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()
    if write:
        loop.add_writer(fd, _resolve, ready)
    else:
        loop.add_reader(fd, _resolve, ready)
    try:
        async with asyncio.timeout(timeout_s):
            await ready
    except TimeoutError:
        return False
    finally:
        if write:
            loop.remove_writer(fd)
        else:
            loop.remove_reader(fd)
    return True


async def write_all(fd: int, data: bytes, what: str) -> None:
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view) :]
        except BlockingIOError:
            await wait_fd(fd, write=True, timeout_s=None)
        except OSError as exc:
            raise PortError(f"{what}: write failed: {exc}") from exc


async def read_some(fd: int, timeout_s: float | None, what: str) -> bytes:
    loop = asyncio.get_running_loop()
    deadline = None if timeout_s is None else loop.time() + timeout_s
    ready = False
    while True:
        try:
            data = os.read(fd, READ_CHUNK)
        except BlockingIOError:
            data = None
        except OSError as exc:
            raise PortError(f"{what}: read failed: {exc}") from exc
        if data:
            return data
        if data == b"" and ready:
            # Readable yet nothing to read: the device hung up (a USB adapter pulled out).
            raise PortError(f"{what}: the line hung up")
        # Otherwise b"" is no data, not end of file: pyserial sets VMIN=0, VTIME=0.
        remaining = None if deadline is None else deadline - loop.time()
        if remaining is not None and remaining <= 0:
            return b""
        ready = await wait_fd(fd, write=False, timeout_s=remaining)
        if not ready:
            # A busy event loop may run the timeout before the reader callback: look once
            # more, so an answer that did arrive in time is not reported as missing.
            return _read_now(fd, what)


def _read_now(fd: int, what: str) -> bytes:
    try:
        return os.read(fd, READ_CHUNK)
    except BlockingIOError:
        return b""
    except OSError as exc:
        raise PortError(f"{what}: read failed: {exc}") from exc


def drain(fd: int) -> None:
    with contextlib.suppress(BlockingIOError, OSError):
        while os.read(fd, READ_CHUNK):
            pass
