"""A sans-IO codec for the AT dialogue of a GSM/GPRS/LTE modem (3GPP TS 27.007, ITU-T V.250).

Bytes in, events out; no serial port, asyncio or time here. The driver (hardware/modem.py) owns
the port and the per-command timeouts and calls `expire()` when one runs out.

The wire, with verbose result codes (ATV1, V.250 §5.2.1)::

    DTE -> modem   AT+CSQ<CR>
    modem -> DTE   [AT+CSQ<CR>]              echo, until ATE0
                   <CR><LF>+CSQ: 20,99<CR><LF>   information text: collected as response lines
                   <CR><LF>+CMTI: "SM",3<CR><LF> unsolicited result code (URC): separated out
                   <CR><LF>OK<CR><LF>        final result code: ends the command

Recovery: empty lines are skipped; a line with control or non-ASCII bytes, or longer than
`max_line` with no terminator, is garbage (a `Garbage` event; inside a response it also marks
that response corrupt, so `Response.check()` raises `AtGarbageError`). A final result code with
no command pending is garbage too.

URCs are told from information text by name (`URC_NAMES`). One with the pending command's own
name counts as response text, except the registration URCs, which differ from the reply to
AT+CREG? in form (a URC has no <n> before <stat>).

SMS text after a +CMGR/+CMGL/+CMT header is one line, taken verbatim (even 'OK' or 'RING').
With AT+CSDH=1 the header's <length> says whether there is any (the DSMR wake-up SMS is empty:
P3 §9); without it, an empty text is recognised by the final result code that follows, or in a
+CMGL listing by the next message's header. Multi-line SMS text is not supported (lines after
the first stay response lines; `parse_cmgl` joins them back).

`parse_cmgl` and `parse_scts` turn a text-mode listing (27.005 §3.4.2) into `ListedSms`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from hardware.ports import PortError

MAX_LINE = 1024  # longer than any 27.007 response we use, incl. a 160-char SMS text

# 27.007 / 27.005 unsolicited result codes the driver may meet (§7.2 +CREG, §10.1.19 +CGREG,
# §10.1.22 +CEREG, §6.9 +CLIP, §6.11 +CRING; 27.005 §3.4.1 +CMTI/+CMT/+CDS; V.250 RING) and
# common boot notices. "RING" has no colon; the others are matched as "NAME:".
URC_NAMES = frozenset(
    {
        "RING",
        "+CRING",
        "+CLIP",
        "+CMTI",
        "+CMT",
        "+CDSI",
        "+CDS",
        "+CBM",
        "+CREG",
        "+CGREG",
        "+CEREG",
        "+CGEV",
        "+CUSD",
        "+CPIN",
        "RDY",
    }
)
REGISTRATION_URCS = frozenset({"+CREG", "+CGREG", "+CEREG"})
TWO_LINE_URCS = frozenset({"+CMT", "+CDS"})  # 27.005 §3.4.1: header line, then the PDU/text
TEXT_FOLLOWS = frozenset({"+CMGR", "+CMGL"})  # 27.005 §3.4.3 text mode: header, then the text
# 27.005 §3.4.1-3.4.3 text mode with AT+CSDH=1: the fewest fields of a header whose last field
# is the text's <length>. +CMT has 10, +CMGR of a received message 11; a +CMGL entry has exactly
# 7 (<index>,<stat>,<oa>,[<alpha>],[<scts>],<tooa>,<length>), where 9 is a status report, whose
# last field is <st>, not a length, and which has no text.
DETAILED_HEADER = 10
LISTED_HEADER = 7


class TextFollows(enum.Enum):
    """Whether the next line is SMS text (27.005 §3.3.3 +CSDH gives its <length>)."""

    NO = enum.auto()
    MAYBE = enum.auto()  # no <length>: text unless a final result code or a +CMGL header
    YES = enum.auto()


# -- errors (one base; Local = we broke the rules, Remote = the modem did) -------------------------


class AtError(PortError):
    """Anything that went wrong in the AT dialogue."""


class LocalAtError(AtError):
    """The driver misused the codec (a second command while one is pending, bad text)."""


class RemoteAtError(AtError):
    """The modem answered badly or not at all."""


class AtCommandError(RemoteAtError):
    """The modem ended a command with ERROR (or NO CARRIER, BUSY, ...)."""

    def __init__(self, command: str, result: FinalResult) -> None:
        super().__init__(f"{command}: {result.text}")
        self.command = command
        self.result = result


class CmeError(AtCommandError):
    """+CME ERROR: <err> (27.007 §9.2), e.g. 10 SIM not inserted, 30 no network service."""

    @property
    def code(self) -> int | None:
        return self.result.code


class CmsError(AtCommandError):
    """+CMS ERROR: <err> (27.005 §3.2.5), e.g. 321 invalid memory index."""

    @property
    def code(self) -> int | None:
        return self.result.code


class AtGarbageError(RemoteAtError):
    """The response to a command was corrupted by bytes that are not AT text."""


class AtTimeoutError(RemoteAtError, TimeoutError):
    """No final result code came within the command's timeout."""


# -- events -----------------------------------------------------------------------------------


class FinalKind(enum.Enum):
    """Final result codes (V.250 §5.7.1; 27.007 §9.2; 27.005 §3.2.5)."""

    OK = "OK"
    ERROR = "ERROR"
    CME_ERROR = "+CME ERROR"
    CMS_ERROR = "+CMS ERROR"
    NO_CARRIER = "NO CARRIER"
    BUSY = "BUSY"
    NO_ANSWER = "NO ANSWER"
    NO_DIALTONE = "NO DIALTONE"


@dataclass(frozen=True, slots=True)
class FinalResult:
    kind: FinalKind
    code: int | None = None  # the number after +CME/+CMS ERROR (with AT+CMEE=1)
    text: str = ""  # the whole line as received

    @property
    def ok(self) -> bool:
        return self.kind is FinalKind.OK


@dataclass(frozen=True, slots=True)
class Response:
    """A command's information text and its final result code."""

    command: str
    lines: tuple[str, ...]
    result: FinalResult
    garbage: tuple[bytes, ...] = ()

    def check(self) -> tuple[str, ...]:
        """The information lines, or the typed error this response stands for."""
        if self.garbage:
            raise AtGarbageError(f"{self.command}: corrupt response {self.garbage!r}")
        if self.result.kind is FinalKind.CME_ERROR:
            raise CmeError(self.command, self.result)
        if self.result.kind is FinalKind.CMS_ERROR:
            raise CmsError(self.command, self.result)
        if not self.result.ok:
            raise AtCommandError(self.command, self.result)
        return self.lines

    def info(self, name: str) -> list[str]:
        """The bodies of the lines `NAME: body`, e.g. info('+CSQ') -> ['20,99']."""
        return [body for line in self.lines if (body := info_body(line, name)) is not None]


@dataclass(frozen=True, slots=True)
class Unsolicited:
    """An unsolicited result code: `name` ('RING', '+CMTI'), its body, a second line if any."""

    name: str
    body: str = ""
    text: str | None = None


@dataclass(frozen=True, slots=True)
class Garbage:
    """Bytes dropped because they are not AT text (reason says why)."""

    data: bytes
    reason: str


AtEvent = Response | Unsolicited | Garbage


# -- small pure helpers -----------------------------------------------------------------------


def command_name(command: str) -> str:
    """'AT+CREG?' -> '+CREG', 'AT+CGDCONT=1,...' -> '+CGDCONT', 'ATE0' -> 'E0'."""
    rest = command[2:] if command[:2].upper() == "AT" else command
    for stop in "=?":
        rest = rest.split(stop, 1)[0]
    return rest.upper()


def line_name(line: str) -> str:
    """'+CMTI: "SM",3' -> '+CMTI', 'RING' -> 'RING'."""
    return line.split(":", 1)[0].strip() if ":" in line else line.strip()


def info_body(line: str, name: str) -> str | None:
    """The body of `line` if it is `name: body`, else None."""
    head, sep, body = line.partition(":")
    return body.strip() if sep and head.strip() == name else None


def split_fields(body: str) -> list[str]:
    """Split a 27.007 parameter list at commas outside quotes; quotes are removed."""
    fields: list[str] = []
    current: list[str] = []
    quoted = False
    for char in body:
        if char == '"':
            quoted = not quoted
        elif char == "," and not quoted:
            fields.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    fields.append("".join(current).strip())
    return fields


def parse_final(text: str) -> FinalResult | None:
    """The final result code on this line, or None if it is not one."""
    for kind in (FinalKind.CME_ERROR, FinalKind.CMS_ERROR):
        if text.startswith(kind.value + ":"):
            detail = text[len(kind.value) + 1 :].strip()
            return FinalResult(kind, int(detail) if detail.isdigit() else None, text)
    try:
        return FinalResult(FinalKind(text), None, text)
    except ValueError:
        return None


def text_after(name: str, header_body: str) -> TextFollows:
    fields = split_fields(header_body)
    detailed = len(fields) == LISTED_HEADER if name == "+CMGL" else len(fields) >= DETAILED_HEADER
    if not detailed or not fields[-1].isdigit():
        return TextFollows.MAYBE
    return TextFollows.YES if int(fields[-1]) > 0 else TextFollows.NO


def _is_listing_header(line: str) -> bool:
    return info_body(line, "+CMGL") is not None


def _is_registration_reply(body: str | None) -> bool:
    """27.007 §7.2: the reply is '<n>,<stat>[,"<lac>",...]', the URC '<stat>[,"<lac>",...]'."""
    raw = (body or "").split(",")
    return len(raw) >= 2 and raw[1].strip().isdigit()


def _is_text(line: bytes) -> bool:
    return all(0x20 <= byte < 0x7F or byte == 0x09 for byte in line)


# -- the codec --------------------------------------------------------------------------------


class AtCodec:
    """One command at a time; lines in, `Response` / `Unsolicited` / `Garbage` events out."""

    def __init__(self, max_line: int = MAX_LINE) -> None:
        self.max_line = max_line
        self._buffer = bytearray()
        self._discarding = False  # inside an over-long line, until its terminator
        self._command: str | None = None
        self._lines: list[str] = []
        self._garbage: list[bytes] = []
        self._text = TextFollows.NO  # whether the next line is SMS text (after +CMGR:/+CMGL:)
        self._urc_head: Unsolicited | None = None  # a +CMT/+CDS header waiting for its line

    @property
    def pending(self) -> str | None:
        """The command waiting for its final result code, if any."""
        return self._command

    def send(self, command: str) -> bytes:
        """Start `command` (without the CR) and return the bytes to write."""
        if self._command is not None:
            raise LocalAtError(f"{command}: {self._command} is still pending")
        if not command[:2].upper() == "AT" or not command.isascii() or "\r" in command:
            raise LocalAtError(f"not an AT command line: {command!r}")
        self._command, self._lines, self._garbage = command, [], []
        self._text = TextFollows.NO
        return command.encode("ascii") + b"\r"  # V.250 §5.2.1: S3 (CR) ends the command line

    def expire(self) -> AtTimeoutError:
        """Abandon the pending command (its timeout ran out); return the error to raise."""
        command, lines = self._command, tuple(self._lines)
        self._command, self._lines, self._garbage = None, [], []
        return AtTimeoutError(f"{command}: no final result code (got {lines!r})")

    def receive_data(self, data: bytes) -> list[AtEvent]:
        """Feed received bytes; return the events they complete, in order."""
        self._buffer += data
        events: list[AtEvent] = []
        while True:
            ends = [i for i in (self._buffer.find(b"\r"), self._buffer.find(b"\n")) if i >= 0]
            if not ends:
                self._check_overflow(events)
                return events
            end = min(ends)
            line = bytes(self._buffer[:end])
            del self._buffer[: end + 1]
            if self._discarding:
                self._discarding = False
            elif line:
                self._line(line, events)

    def _check_overflow(self, events: list[AtEvent]) -> None:
        if len(self._buffer) > self.max_line:
            self._garbage_event(bytes(self._buffer), "line too long", events)
            self._buffer.clear()
            self._discarding = True

    def _garbage_event(self, data: bytes, reason: str, events: list[AtEvent]) -> None:
        if self._command is not None:
            self._garbage.append(data)
        events.append(Garbage(data, reason))

    def _line(self, raw: bytes, events: list[AtEvent]) -> None:
        if not _is_text(raw):
            self._garbage_event(raw, "not AT text", events)
            return
        line = raw.decode("ascii")
        if self._urc_head is not None:
            head, self._urc_head = self._urc_head, None
            events.append(Unsolicited(head.name, head.body, line))
        elif self._take_text(line):
            self._lines.append(line)
        elif self._command is not None and line == self._command:
            pass  # the modem's echo (before ATE0 takes effect)
        elif (final := parse_final(line)) is not None:
            self._final(final, raw, events)
        elif self._is_urc(line):
            self._urc(line, events)
        elif self._command is not None:
            self._response_line(line)
        else:
            events.append(Unsolicited(line_name(line), info_body(line, line_name(line)) or ""))

    def _take_text(self, line: str) -> bool:
        """True if `line` is the SMS text after a +CMGR/+CMGL header (taken verbatim)."""
        expected, self._text = self._text, TextFollows.NO
        if expected is TextFollows.MAYBE:  # no <length>: an empty text is followed by what ends it
            return parse_final(line) is None and not _is_listing_header(line)
        return expected is TextFollows.YES

    def _response_line(self, line: str) -> None:
        self._lines.append(line)
        name = line_name(line)
        if name in TEXT_FOLLOWS:
            self._text = text_after(name, info_body(line, name) or "")

    def _is_urc(self, line: str) -> bool:
        name = line_name(line)
        if name not in URC_NAMES:
            return False
        if self._command is None or name != command_name(self._command):
            return True
        return name in REGISTRATION_URCS and not _is_registration_reply(info_body(line, name))

    def _urc(self, line: str, events: list[AtEvent]) -> None:
        name = line_name(line)
        urc = Unsolicited(name, info_body(line, name) or "")
        if name in TWO_LINE_URCS and text_after(name, urc.body) is not TextFollows.NO:
            self._urc_head = urc
        else:
            events.append(urc)

    def _final(self, final: FinalResult, raw: bytes, events: list[AtEvent]) -> None:
        if self._command is None:
            events.append(Garbage(raw, "final result code with no command pending"))
            return
        events.append(Response(self._command, tuple(self._lines), final, tuple(self._garbage)))
        self._command, self._lines, self._garbage = None, [], []
