"""The push setups of P3 §9.3 (class 40) as the push machinery reads them, and the message a
push sends. Sans-IO: everything is read through the object model as the management client
reads it (`CosemObjects`), so what the CS wrote is what the meter does.

- `read_settings`: push_object_list, send_destination_and_method, communication_window,
  randomisation_start_interval, number_of_retries, repetition_delay of one setup; the spec's
  defaults when the object model has no such object (a lab model).
- `push_message`: "The objectlist values are sent as octet string separated by a comma (,)"
  (P3 §9.3 examples 1 and 2): an octet-string as its bytes, an integer as its big-endian
  A-XDR bytes (the 4-byte alarm register of example 2), anything else as its A-XDR encoding.
- The CSD/SMS setup lists "the OBIS code of CSD wakeup (auto answer) or ... SMS wake (message
  handler)": one setup serves both wake-ups, so a list element naming the logical name of
  auto answer or message handler stands for the object that actually triggered (P3 §9.3: "the
  logical name of the triggering object"). Every other element is read as configured.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from twin.p3.dlms.cosem import AttributeRef
from twin.p3.gprs.push_time import ALWAYS, RetryPlan, Windows, parse_windows
from twin.p3.objects.base import obis_bytes, obis_text
from twin.p3.objects.settings import read_data
from twin.p3.objects.values import Data, Tag, ValueTypeError, encode
from twin.p3.server.interfaces import CosemObjects

log = logging.getLogger(__name__)

PUSH_SCHEDULER = obis_bytes("0-0:25.9.0")
PUSH_ALARM = obis_bytes("0-1:25.9.0")
PUSH_CSD_SMS = obis_bytes("0-2:25.9.0")
EQUIPMENT_ID = obis_bytes("0-0:96.1.1")
AUTO_ANSWER = obis_bytes("0-0:2.2.0")  # CSD trigger (P3 §9.1.3)
MESSAGE_HANDLER = obis_bytes("0-0:2.3.0")  # SMS trigger (P3 §9.1.4)
WAKEUP_OBJECTS = {(28, AUTO_ANSWER), (60, MESSAGE_HANDLER)}
SEPARATOR = b","


class PushConfigError(ValueError):
    """A push setup attribute that cannot be used as written (logged; the push is skipped)."""


def ln_text(ln: bytes) -> str:
    """6-byte logical name as 'A-B:C.D.E' (F = 255 left out), for logs and `ctl status`."""
    return obis_text(ln) if len(ln) == 6 else ln.hex()


@dataclass(frozen=True, slots=True)
class Capture:
    """capture_object_definition {class_id, logical_name, attribute_index, data_index}."""

    class_id: int
    logical_name: bytes
    attribute: int
    data_index: int = 0

    @property
    def ref(self) -> AttributeRef:
        return AttributeRef(self.class_id, self.logical_name, self.attribute)


@dataclass(frozen=True, slots=True)
class PushSettings:
    setup: bytes
    objects: tuple[Capture, ...]
    destination: str  # "host:port"; "" = no message
    windows: Windows
    randomisation_s: int
    retry: RetryPlan


def default_settings(setup: bytes) -> PushSettings:
    """The push_object_list the spec gives each setup (P3 §9.3), nothing else configured."""
    second = {
        PUSH_SCHEDULER: Capture(22, obis_bytes("0-0:15.0.4"), 1),
        PUSH_ALARM: Capture(1, obis_bytes("0-0:97.98.0"), 2),
    }.get(setup, Capture(28, AUTO_ANSWER, 1))
    objects = (Capture(1, EQUIPMENT_ID, 2), second)
    return PushSettings(setup, objects, "", ALWAYS, 0, RetryPlan(0, timedelta(0)))


def read_settings(objects: CosemObjects, setup: bytes) -> PushSettings:
    """Attributes 2-7 of push setup `setup`; the defaults if the model has no such object.
    Raises PushConfigError for values of the wrong shape."""
    values = [read_data(objects, AttributeRef(40, setup, index)) for index in range(2, 8)]
    if all(v is None for v in values):
        return default_settings(setup)
    if any(v is None for v in values):
        raise PushConfigError(f"push setup {ln_text(setup)} is only partly readable")
    try:
        return _parse(setup, [v for v in values if v is not None])
    except (ValueTypeError, ValueError, IndexError) as exc:  # PatternError is a ValueError
        raise PushConfigError(f"push setup {ln_text(setup)}: {exc}") from exc


def _parse(setup: bytes, values: Sequence[Data]) -> PushSettings:
    items, method, window, random_s, retries, delay = values
    captures = tuple(_capture(item) for item in items.expect(Tag.ARRAY).items)
    destination = method.items[1].octets().decode("ascii", "replace")
    pairs = [(e.items[0].octets(), e.items[1].octets()) for e in window.expect(Tag.ARRAY).items]
    retry = RetryPlan(retries.integer(), timedelta(seconds=delay.integer()))
    return PushSettings(
        setup, captures, destination, parse_windows(pairs), random_s.integer(), retry
    )


def _capture(item: Data) -> Capture:
    class_id, ln, attribute, data_index = item.items
    if len(ln.octets()) != 6:
        raise ValueError(f"logical name {ln.octets().hex()} is not 6 bytes")
    return Capture(class_id.integer(), ln.octets(), attribute.integer(), data_index.integer())


def parse_destination(text: str) -> tuple[str, int] | None:
    """send_destination "host:port" (IPv6 hosts in brackets); None if it is not one."""
    host, sep, port = text.strip().rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) <= 65535:
        return None
    return host.strip("[]"), int(port)


def value_octets(value: Data) -> bytes:
    """One push_object_list value as the octet string the message carries (P3 §9.3)."""
    if value.tag is Tag.OCTET_STRING:
        return value.octets()
    if value.tag is Tag.VISIBLE_STRING:
        return str(value.value).encode("ascii", "replace")
    raw = encode(value)
    if value.tag in (Tag.ARRAY, Tag.STRUCTURE, Tag.BIT_STRING, Tag.NULL):
        return raw
    return raw[1:]  # a fixed-size scalar: its A-XDR bytes without the tag, big-endian


def push_message(values: Sequence[bytes]) -> bytes:
    """The values joined by ',' (P3 §9.3); empty when the list is (no message is sent)."""
    return SEPARATOR.join(values)


def read_message(
    objects: CosemObjects,
    settings: PushSettings,
    *,
    trigger: bytes | None = None,
    equipment_id: bytes = b"",
) -> bytes:
    """The message of `settings` with the values read now. `trigger`: the wake-up object that
    caused the push (see the module note); `equipment_id`: used when 0-0:96.1.1 cannot be
    read (a lab object model)."""
    return push_message([_value(objects, c, trigger, equipment_id) for c in settings.objects])


def _value(
    objects: CosemObjects, capture: Capture, trigger: bytes | None, equipment: bytes
) -> bytes:
    wakeup = (capture.class_id, capture.logical_name) in WAKEUP_OBJECTS
    if wakeup and capture.attribute == 1 and trigger in (AUTO_ANSWER, MESSAGE_HANDLER):
        return trigger
    value = read_data(objects, capture.ref)
    if value is None:
        if capture.attribute == 1:
            return capture.logical_name
        if capture.logical_name == EQUIPMENT_ID:
            return equipment
        log.warning(
            "push value %s attr %d unreadable; sent empty",
            ln_text(capture.logical_name),
            capture.attribute,
        )
        return b""
    if capture.data_index > 0 and value.tag in (Tag.ARRAY, Tag.STRUCTURE):
        items = value.items
        value = items[capture.data_index - 1] if capture.data_index <= len(items) else value
    return value_octets(value)


# ---- jobs ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Trigger:
    """A push method invocation: which setup, when (meter time), and the wake-up object or
    trigger that caused it (None when the CS invoked the method itself)."""

    setup: bytes
    at: datetime
    source: bytes | None = None


@dataclass(frozen=True, slots=True)
class Job:
    """A planned push: `at` is the randomised start (meter time, P3 §9.3)."""

    trigger: Trigger
    at: datetime

    @property
    def setup(self) -> bytes:
        return self.trigger.setup


class PushQueue:
    """Planned pushes in start order; one per setup (a trigger for a setup that is already
    waiting to start adds nothing: that push will carry the same message)."""

    def __init__(self) -> None:
        self._jobs: list[Job] = []

    def add(self, job: Job) -> bool:
        if any(j.setup == job.setup for j in self._jobs):
            return False
        self._jobs.append(job)
        self._jobs.sort(key=lambda j: j.at)
        return True

    def due(self, now: datetime) -> Job | None:
        """The next job whose start has come, taken off the queue."""
        if self._jobs and self._jobs[0].at <= now:
            return self._jobs.pop(0)
        return None

    def next_at(self) -> datetime | None:
        return self._jobs[0].at if self._jobs else None

    def pending(self) -> tuple[Job, ...]:
        return tuple(self._jobs)


@dataclass(slots=True)
class PushStats:
    """Per setup, for `ctl status`."""

    triggered: int = 0
    attempts: int = 0
    sent: int = 0  # pushes that completed (message delivered or none configured)
    failed: int = 0  # pushes given up after their last retry
    retried: int = 0
    skipped: int = 0  # disabled, never-active window or unusable settings
    last_error: str | None = None

    def as_dict(self) -> dict[str, int | str | None]:
        return {
            "triggered": self.triggered,
            "attempts": self.attempts,
            "sent": self.sent,
            "failed": self.failed,
            "retried": self.retried,
            "skipped": self.skipped,
            "last_error": self.last_error,
        }
