"""Image transfer 0-0:44.0.0 (class 18 v0), P3 §5.12 and the Blue Book image transfer process.

- The image is kept in a file under the state directory; received-block bookkeeping and the
  status are persisted attributes, so a transfer survives a restart.
- Verification starts by itself once the last block arrived (P3 §5.12 step 5): the first four
  bytes of the image are the CRC32 of the rest (big endian, "calculated over the firmware image
  data only, excluding the hash value itself"). Success logs event 17 (firmware ready).
- Activation is accepted only in status 3 and completes when the association ends (§5.12:
  "immediately after the current application association has ended"): the service calls
  `association_released`; then events 18 (activated) and 20 (self check OK) are logged.
DSMR 4.2.2 has no image activation schedule object.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from datetime import datetime
from enum import IntEnum
from pathlib import Path
from typing import ClassVar

from twin.meter.events import EventCode
from twin.meter.model import MeterModel
from twin.p3.dlms.cosem import DataAccessResult
from twin.p3.objects.base import CosemObject, ObjectError, Request
from twin.p3.objects.env import Env
from twin.p3.objects.simple import Stored
from twin.p3.objects.values import (
    Data,
    Tag,
    ValueTypeError,
    array,
    bits,
    boolean,
    enum_,
    octets,
    struct,
    u32,
)

BLOCK_SIZE = 512  # fits one block with its header in the 1024-byte PDU (P3 §2.1.3)
MAX_IMAGE = 8 * 1024 * 1024
IMAGE_FILE = "p3-image.bin"
CRC_LENGTH = 4


class Status(IntEnum):
    NOT_INITIATED = 0
    INITIATED = 1
    VERIFICATION_INITIATED = 2
    VERIFICATION_SUCCESSFUL = 3
    VERIFICATION_FAILED = 4
    ACTIVATION_INITIATED = 5
    ACTIVATION_SUCCESSFUL = 6
    ACTIVATION_FAILED = 7


VERIFIED = frozenset(
    {
        Status.VERIFICATION_SUCCESSFUL,
        Status.ACTIVATION_INITIATED,
        Status.ACTIVATION_SUCCESSFUL,
        Status.ACTIVATION_FAILED,
    }
)


class ImageTransfer(CosemObject):
    class_id: ClassVar[int] = 18

    def __init__(self, env: Env, firmware: Stored) -> None:
        rights = dict.fromkeys(range(1, 8), "/R/") | {5: "/RW/"}
        super().__init__("0-0:44.0.0", rights, dict.fromkeys(range(1, 5), "/X/"))
        self.env, self.firmware = env, firmware
        a = env.attrs
        self.enabled = Stored(a, "image.enabled", boolean(True))
        self.status = Stored(a, "image.status", enum_(Status.NOT_INITIATED))
        self.identifier = Stored(a, "image.identifier", octets(b""))
        self.size = Stored(a, "image.size", u32(0))
        self.received = Stored(a, "image.received", bits(""))
        self.path: Path = env.state_dir / IMAGE_FILE

        self.getters: dict[int, Callable[[], Data]] = {
            2: lambda: u32(BLOCK_SIZE),
            3: self.received.get,
            4: lambda: u32(self._first_missing()),
            5: self.enabled.get,
            6: self.status.get,
            7: self._to_activate,
        }

    def read(self, index: int, request: Request) -> Data:
        getter = self.getters.get(index)
        return super().read(index, request) if getter is None else getter()

    def write(self, index: int, value: Data, request: Request) -> None:
        self.enabled.set(value)

    def invoke(self, index: int, parameters: Data | None, request: Request) -> Data | None:
        if not self.enabled.get().boolean():
            raise ObjectError(DataAccessResult.TEMPORARY_FAILURE, "image transfer disabled")
        if parameters is None:
            raise ValueTypeError("image transfer methods need a parameter")
        try:
            if index == 1:
                self._initiate(parameters)
            elif index == 2:
                self._block(parameters, request)
            elif index == 3:
                self._verify(request)
            else:
                self._activate()
        except OSError as err:  # the image file under the state directory
            raise ObjectError(DataAccessResult.HARDWARE_FAULT, str(err)) from err
        return None

    # ------------------------------------------------------------------ steps

    def _state(self) -> Status:
        return Status(self.status.get().integer())

    def _set_state(self, status: Status) -> None:
        self.status.set(enum_(status))

    def _blocks(self) -> int:
        return -(-self.size.get().integer() // BLOCK_SIZE)

    def _first_missing(self) -> int:
        flags = str(self.received.get().value)
        return flags.find("0") if "0" in flags else len(flags)

    def _to_activate(self) -> Data:
        if self._state() not in VERIFIED:
            return array([])  # reset at initiate (P3 §5.12 step 2), empty until verified
        image = self.path.read_bytes()
        info = struct(self.size.get(), self.identifier.get(), octets(image[:CRC_LENGTH]))
        return array([info])

    def _initiate(self, parameters: Data) -> None:
        """Method 1: {image_identifier octet-string, image_size double-long-unsigned}."""
        identifier, size = _two(parameters)
        total = size.integer()
        if size.tag is not Tag.DOUBLE_LONG_UNSIGNED or not CRC_LENGTH < total <= MAX_IMAGE:
            raise ValueTypeError("image size")
        self.identifier.set(octets(identifier.octets()[:48]))
        self.size.set(u32(total))
        self.path.write_bytes(bytes(total))
        self.received.set(bits("0" * self._blocks()))
        self._set_state(Status.INITIATED)

    def _block(self, parameters: Data, request: Request) -> None:
        """Method 2: {image_block_number, image_block_value}; verify after the last block."""
        if self._state() not in (Status.INITIATED, Status.VERIFICATION_FAILED):
            raise ObjectError(DataAccessResult.OTHER_REASON, "no transfer initiated")
        number, value = _two(parameters)
        block, data = number.integer(), value.octets()
        flags = list(str(self.received.get().value))
        expected = min(BLOCK_SIZE, self.size.get().integer() - block * BLOCK_SIZE)
        if not 0 <= block < len(flags) or len(data) != expected:
            raise ObjectError(DataAccessResult.OTHER_REASON, f"block {block} out of range")
        with self.path.open("r+b") as f:
            f.seek(block * BLOCK_SIZE)
            f.write(data)
        flags[block] = "1"
        self.received.set(bits("".join(flags)))
        if "0" not in flags:
            self._verify(request)

    def _verify(self, request: Request) -> None:
        """Method 3 (and automatically after the last block): CRC32 check (P3 §5.12)."""
        if self._state() in (Status.VERIFICATION_SUCCESSFUL, Status.ACTIVATION_INITIATED):
            return
        if self._state() is Status.NOT_INITIATED or self._first_missing() < self._blocks():
            raise ObjectError(DataAccessResult.OTHER_REASON, "image incomplete")
        image = self.path.read_bytes()
        ok = int.from_bytes(image[:CRC_LENGTH], "big") == zlib.crc32(image[CRC_LENGTH:])
        self._set_state(Status.VERIFICATION_SUCCESSFUL if ok else Status.VERIFICATION_FAILED)
        if not ok:
            raise ObjectError(DataAccessResult.OTHER_REASON, "CRC32 mismatch")
        self.env.meter.act(lambda m, now: m.log_event(now, EventCode.FIRMWARE_READY))

    def _activate(self) -> None:
        """Method 4: only at status 3; completes after the association (P3 §5.12 step 7)."""
        if self._state() is not Status.VERIFICATION_SUCCESSFUL:
            raise ObjectError(DataAccessResult.OTHER_REASON, "image not verified")
        self._set_state(Status.ACTIVATION_INITIATED)

    def association_released(self) -> None:
        if self._state() is not Status.ACTIVATION_INITIATED:
            return
        self.firmware.set(self.identifier.get())
        self._set_state(Status.ACTIVATION_SUCCESSFUL)

        def log(m: MeterModel, now: datetime) -> None:
            m.log_event(now, EventCode.FIRMWARE_ACTIVATED)
            m.log_event(now, EventCode.SELFCHECK_AFTER_FIRMWARE_OK)

        self.env.meter.act(log)


def _two(parameters: Data) -> tuple[Data, Data]:
    items = parameters.items
    if len(items) != 2:
        raise ValueTypeError("a structure of two elements is required")
    return items[0], items[1]
