"""Text-mode SMS fields of the AT dialogue (3GPP TS 27.005), sans-IO: the stored-message
listing of AT+CMGL (§3.4.2) and the service centre time stamp <scts> (§3.3.2).

Split from hardware/at_codec.py, whose codec delivers the listing's lines; hardware/modem.py
reads the SIM's stored wake-up SMS with these at start-up (P3 §9.1.4).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

from hardware.at_codec import RemoteAtError, TextFollows, info_body, split_fields, text_after


@dataclass(frozen=True, slots=True)
class ListedSms:
    """One message of an AT+CMGL listing; `timestamp` is the raw <scts> ('' if absent)."""

    index: int
    status: str  # <stat>: "REC UNREAD", "REC READ", "STO UNSENT", "STO SENT"
    sender: str  # <oa> (or <da> for a stored outgoing message)
    timestamp: str
    text: str

    @property
    def sent(self) -> datetime | None:
        """When the service centre received it (<scts>), None if absent or malformed."""
        return parse_scts(self.timestamp)


def parse_cmgl(lines: Sequence[str]) -> list[ListedSms]:
    """The messages of a text-mode listing (27.005 §3.4.2); RemoteAtError on a bad header.

    Each is '+CMGL: <index>,<stat>,<oa>,[<alpha>],[<scts>][,<tooa>,<length>]', then its text.
    With <length> > 0 the next line is text even if it looks like a header; with <length> 0
    there is none (the empty wake-up SMS of P3 §9.1.4). Further lines up to the next header are
    more text (the codec keeps them as response lines), joined with '\n'.
    """
    messages: list[ListedSms] = []
    number = 0
    while number < len(lines):
        body = info_body(lines[number], "+CMGL")
        number += 1
        if body is None:
            continue  # not inside a message: nothing a listing should hold
        text: list[str] = []
        if text_after("+CMGL", body) is TextFollows.YES and number < len(lines):
            text.append(lines[number])
            number += 1
        while number < len(lines) and info_body(lines[number], "+CMGL") is None:
            text.append(lines[number])
            number += 1
        messages.append(_listed(body, "\n".join(text)))
    return messages


def _listed(body: str, text: str) -> ListedSms:
    fields = split_fields(body)
    if len(fields) < 3 or not fields[0].isdigit():
        raise RemoteAtError(f"malformed +CMGL header: {body!r}")
    return ListedSms(
        int(fields[0]), fields[1], fields[2], fields[4] if len(fields) > 4 else "", text
    )


def parse_scts(scts: str) -> datetime | None:
    """27.005 §3.3.2 / 23.040 §9.2.3.11 '<yy/MM/dd,hh:mm:ss±zz>' (zz in quarter hours) in UTC.

    None when absent or malformed: a message whose age is unknown is not judged by it.
    """
    text = scts.strip().strip('"')
    if len(text) != 20 or text[17] not in "+-" or not text[18:].isdigit():
        return None
    try:
        local = datetime.strptime(text[:17], "%y/%m/%d,%H:%M:%S")
    except ValueError:
        return None
    quarters = int(text[18:]) * (-1 if text[17] == "-" else 1)
    if abs(quarters) > 4 * 14:  # UTC offsets stop at ±14 h
        return None
    return local.replace(tzinfo=timezone(timedelta(minutes=15 * quarters))).astimezone(UTC)
