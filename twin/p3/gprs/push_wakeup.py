"""External push triggers: SMS and CSD wake-ups (P3 §9.1.3-§9.1.4). Sans-IO.

An SMS from a sender in list_of_senders_and_actions of the message handler 0-0:2.3.0, or a
CSD call from a caller in list_of_callers_and_actions of the auto answer 0-0:2.2.0 (mode 200:
the call is rejected, not answered; DSMR-G 4.3.4), runs the script of that list entry; the
script pushes the CSD/SMS setup 0-2:25.9.0 (script 3 of 0-0:10.0.108, P3 §9.2, also used when
an entry names no script). An empty list accepts any sender only when the configuration says
so (`p3.wakeup_any_sender`, a lab meter with nothing provisioned). A wake-up outside the
object's listening window (auto answer attribute 3, message handler attribute 2; P3 §9 intro:
array[0] always active, an "unspecified" start never) is ignored.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from twin.p3.dlms.cosem import AttributeRef
from twin.p3.gprs.push import AUTO_ANSWER, MESSAGE_HANDLER
from twin.p3.gprs.push_time import PatternError, parse_windows
from twin.p3.gprs.push_triggers import CSD_SMS_SCRIPT, SCRIPT_TABLE, Script
from twin.p3.objects.settings import read_data
from twin.p3.objects.values import Data, Tag, ValueTypeError
from twin.p3.server.interfaces import CosemObjects

log = logging.getLogger(__name__)

SENDERS = {
    "sms": AttributeRef(60, MESSAGE_HANDLER, 4),  # list_of_senders_and_actions
    "csd": AttributeRef(28, AUTO_ANSWER, 8),  # list_of_callers_and_actions
}
LISTENING = {
    "sms": AttributeRef(60, MESSAGE_HANDLER, 2),  # listening_window
    "csd": AttributeRef(28, AUTO_ANSWER, 3),
}
DEFAULT_SCRIPT = Script(SCRIPT_TABLE, CSD_SMS_SCRIPT)


class WakeupRefusedError(ValueError):
    """A wake-up that the meter ignores (unknown kind)."""


@dataclass(frozen=True, slots=True)
class Wakeup:
    kind: str  # "sms" or "csd"
    sender: str

    def __post_init__(self) -> None:
        if self.kind not in SENDERS:
            raise WakeupRefusedError(f"wake-up kind {self.kind!r} is not sms or csd")

    @property
    def trigger(self) -> bytes:
        """The logical name of the triggering object (message handler or auto answer)."""
        return MESSAGE_HANDLER if self.kind == "sms" else AUTO_ANSWER


def sender_script(objects: CosemObjects, wakeup: Wakeup, *, any_sender: bool) -> Script | None:
    """The script to run for this sender or caller; None if the meter ignores the wake-up."""
    value = read_data(objects, SENDERS[wakeup.kind])
    items = value.items if value is not None and value.tag is Tag.ARRAY else ()
    if not items:
        return DEFAULT_SCRIPT if any_sender else None
    listed = [i for i in items if _sender_text(i) == wakeup.sender]
    return _entry_script(listed[0]) if listed else None


def listening(objects: CosemObjects, wakeup: Wakeup, now: datetime) -> bool:
    """The wake-up object's listening window is active at meter time `now`."""
    value = read_data(objects, LISTENING[wakeup.kind])
    if value is None:
        return True  # an object model without the object: no window to respect
    try:
        items = value.expect(Tag.ARRAY).items
        windows = parse_windows([(i.items[0].octets(), i.items[1].octets()) for i in items])
    except (ValueTypeError, PatternError, ValueError, IndexError) as exc:
        log.warning("%s listening_window unusable, wake-up ignored: %s", wakeup.kind, exc)
        return False
    return windows.active(now)


def _sender_text(item: Data) -> str | None:
    try:
        first = item.items[0] if item.tag is Tag.STRUCTURE else item
        return first.octets().decode("ascii", "replace")
    except ValueTypeError:
        return None


def _entry_script(item: Data) -> Script:
    """The script of a {sender, script} list entry; script 3 when the entry names none."""
    try:
        table, selector = item.items[1].items
        return Script(table.octets(), selector.integer())
    except (ValueTypeError, IndexError, ValueError):
        return DEFAULT_SCRIPT
