"""The real P1 data line: a UART (e.g. /dev/ttyAMA0) driving the open-collector stage.

P1 §5.1: 115200 baud, 8N1 (not 7E1: that would corrupt every byte for 8N1 readers). The
inversion and open collector are done by the transistor/opto stage (docs/wiring), not here.
pyserial opens and configures the port; the bytes are written in a worker thread, in chunks
with a cancel flag checked between them, so a telegram can be abandoned when Request falls.
"""

from __future__ import annotations

import asyncio
import logging
import os
import select
import threading
from concurrent.futures import ThreadPoolExecutor

import serial

from hardware.ports import PortError

log = logging.getLogger(__name__)

P1_BAUDRATE = 115200  # P1 §5.1
CHUNK = 256  # about 22 ms of line time: the granularity at which a write is abandoned
POLL_S = 0.05  # how often a worker waiting for room checks the cancel flag


class UartSink:
    """P1 output on the serial device `device` (a tty path; a pty slave works for tests)."""

    def __init__(self, device: str, baudrate: int = P1_BAUDRATE) -> None:
        self.device = device
        self.baudrate = baudrate
        self._serial: serial.Serial | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._cancel = threading.Event()

    @property
    def description(self) -> str:
        return f"uart {self.device} {self.baudrate} 8N1"

    async def open(self) -> None:
        try:
            self._serial = serial.Serial(
                port=self.device,
                baudrate=self.baudrate,
                bytesize=serial.EIGHTBITS,
                parity=serial.PARITY_NONE,
                stopbits=serial.STOPBITS_ONE,
                timeout=0,
                exclusive=True,
            )
        except (serial.SerialException, OSError, ValueError) as exc:
            raise PortError(f"cannot open {self.description}: {exc}") from exc
        os.set_blocking(self._serial.fileno(), False)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="p1-uart")
        log.info("P1 on %s", self.description)

    async def write(self, data: bytes) -> None:
        if self._serial is None or self._executor is None:
            raise PortError(f"{self.description} is not open")
        cancel = self._cancel = threading.Event()
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._executor, self._write_all, self._serial, data, cancel)
        except asyncio.CancelledError:
            cancel.set()
            raise

    def _write_all(self, port: serial.Serial, data: bytes, cancel: threading.Event) -> None:
        """Worker thread: hand `data` to the driver chunk by chunk, then wait until it is out."""
        fd = port.fileno()
        view = memoryview(data)
        try:
            while view and not cancel.is_set():
                try:
                    view = view[os.write(fd, view[:CHUNK]) :]
                except BlockingIOError:
                    select.select([], [fd], [], POLL_S)
            if not cancel.is_set():
                # tcdrain: returns when the bytes have left, or at once after abort_output.
                port.flush()
        except (OSError, serial.SerialException) as exc:
            raise PortError(f"{self.description}: write failed: {exc}") from exc

    def abort_output(self) -> None:
        # P1 §4.3: stop at once. The worker stops at the next chunk; the driver's queue is
        # dropped (a FIFO's worth, tens of bytes, may still leave the UART: it is past the driver).
        self._cancel.set()
        if self._serial is not None:
            try:
                self._serial.reset_output_buffer()
            except (OSError, serial.SerialException) as exc:
                log.warning("%s: cannot drop queued output: %s", self.description, exc)

    async def close(self) -> None:
        self._cancel.set()
        executor, self._executor = self._executor, None
        if executor is not None:
            await asyncio.get_running_loop().run_in_executor(None, executor.shutdown)
        port, self._serial = self._serial, None
        if port is not None:
            port.close()
