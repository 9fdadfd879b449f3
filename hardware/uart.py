"""The real P1 data line: a UART (e.g. /dev/ttyAMA0) driving the open-collector stage.

P1 §5.1: 115200 baud, 8N1 (not 7E1: that would corrupt every byte for 8N1 readers). The
inversion and open collector are done by the transistor/opto stage (docs/wiring), not here.
pyserial opens and configures the port; the bytes are written in a worker thread, in chunks
with a cancel flag checked between them, so a telegram can be abandoned when Request falls.
"""

from __future__ import annotations

import array
import asyncio
import fcntl
import logging
import os
import select
import termios
import threading
from concurrent.futures import ThreadPoolExecutor

import serial

from hardware.pacing import P1_BAUDRATE
from hardware.ports import PortError

log = logging.getLogger(__name__)

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
        # Held around each chunk's hand-over and around abort_output's flush, so no chunk of an
        # abandoned telegram can reach the driver after its queue was dropped (a fragment after
        # a gap would go out on the wire once Request had fallen).
        self._handover = threading.Lock()
        self.telegrams_cut = 0  # writes abandoned before their last byte reached the driver
        self.bytes_cut = 0  # bytes of those never handed over, plus the driver's dropped queue

    @property
    def description(self) -> str:
        return f"uart {self.device} {self.baudrate} 8N1"

    def status(self) -> dict[str, object]:
        # The UART itself keeps the line speed: nothing to pace.
        return {
            "baudrate": self.baudrate,
            "paced": True,
            "telegrams_cut": self.telegrams_cut,
            "bytes_cut": self.bytes_cut,
        }

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
            while view:
                with self._handover:
                    if cancel.is_set():
                        break
                    try:
                        view = view[os.write(fd, view[:CHUNK]) :]  # non-blocking: never waits
                        continue
                    except BlockingIOError:
                        pass
                select.select([], [fd], [], POLL_S)
            if view:  # abandoned (Request fell): the rest never goes out
                self.telegrams_cut += 1
                self.bytes_cut += len(view)
            elif not cancel.is_set():
                # tcdrain: returns when the bytes have left, or at once after abort_output.
                port.flush()
        except (OSError, serial.SerialException) as exc:
            raise PortError(f"{self.description}: write failed: {exc}") from exc

    def abort_output(self) -> None:
        # P1 §4.3: stop at once. The worker stops at the next chunk; the driver's queue is
        # dropped (the UART's hardware FIFO, tens of bytes, may still leave: it is not counted,
        # nor is a pty's buffer, which TIOCOUTQ does not report).
        with self._handover:
            self._cancel.set()
            if self._serial is not None:
                try:
                    self.bytes_cut += _output_queued(self._serial.fileno())
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


def _output_queued(fd: int) -> int:
    """Bytes in the driver's output queue, not yet on the wire (TIOCOUTQ)."""
    count = array.array("i", [0])
    fcntl.ioctl(fd, termios.TIOCOUTQ, count)
    return count[0]
