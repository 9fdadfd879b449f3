"""P1 captures: telegrams with their arrival times, as a file (sans-IO: text and bytes only).

A capture file is JSON lines, UTF-8:

    {"format": "dsmr-twin/p1-capture", "version": 1, "source": "tcp://10.0.0.5:2000", ...}
    {"t": 0.0, "telegram": "/TWN5DSMR-TWIN-422\\r\\n\\r\\n1-3:0.2.8(42)\\r\\n...!5A1C\\r\\n"}
    {"t": 10.002, "telegram": "..."}

The first line describes the capture; every further line is one telegram: `t` the seconds
since the first telegram arrived, `telegram` its bytes exactly as on the line (P1 is ASCII,
P1 §5.12; CR LF kept). Only telegrams whose CRC is right are written (CRC-16/ARC over `/` to
`!`, P1 §5.2); the recorder counts the others.

A plain telegram file (a public capture as P1 parsers keep them as fixtures: one or more
telegrams, LF or CR LF line ends) loads as well, one telegram every 10 s (P1 §4.5).

Every telegram's CRC is checked on load: a bad one is a `CaptureError` naming its index.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass

from twin.p1.crc import crc16_arc

FORMAT = "dsmr-twin/p1-capture"
VERSION = 1
# P1 §4.5: a DSMR 4 meter sends a telegram every 10 s; plain files carry no times.
PLAIN_INTERVAL_S = 10.0
# Longer than any telegram (P1 §5.2 puts no limit, but 1-0:99.97.0 and 0-0:96.13.0 bound a
# DSMR 4.2.2 telegram at a few KiB): what a framer holds before it gives up on a frame.
MAX_TELEGRAM = 16 * 1024
MAX_OFFSET_S = 366 * 86400.0  # a capture spans at most a year
_END = re.compile(rb"!([0-9A-Fa-f]{4})\r\n")


class CaptureError(ValueError):
    """A capture that cannot be replayed: the message names the telegram (1-based) or line."""


@dataclass(frozen=True, slots=True)
class CapturedTelegram:
    """One telegram and when it arrived, in seconds since the capture's first telegram."""

    offset_s: float
    data: bytes


def crc_problem(data: bytes) -> str | None:
    """Why `data` is not one whole DSMR 4 telegram with a right CRC (P1 §5.2), or None."""
    if not data.startswith(b"/"):
        return "it does not start with '/'"
    end = _END.search(data)
    if end is None or end.end() != len(data):
        return "it does not end in '!' with four hex digits and CR LF"
    # '/' and '!' only frame a telegram: no value or identification holds them (P1 §5.2).
    if data.count(b"/") != 1 or data.count(b"!") != 1:
        return "it holds more than one telegram, or a '/' or '!' inside one"
    body = data[: end.start() + 1]
    sent, computed = int(end.group(1), 16), crc16_arc(body)
    if sent != computed:
        return f"CRC {sent:04X} is wrong, the telegram's is {computed:04X}"
    return None


class TelegramFramer:
    """Cuts telegrams out of a byte stream as it arrives: `feed(chunk, at)` -> whole ones.

    A telegram starts at `/` and ends after `!CRC CR LF`. Bytes between telegrams (a reader
    that started mid-telegram, line noise) are skipped; a new `/` before the end restarts the
    frame. Each telegram carries the arrival time of the chunk that held its `/`.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._started: float | None = None
        self.crc_errors = 0  # framed telegrams with a wrong CRC (not returned)
        self.dropped_bytes = 0  # bytes outside any whole telegram

    def feed(self, chunk: bytes, at: float) -> list[CapturedTelegram]:
        found: list[CapturedTelegram] = []
        for part in re.split(rb"(?=/)", chunk):
            if part.startswith(b"/"):
                self._restart(at)
            if self._started is None:
                self.dropped_bytes += len(part)
                continue
            self._buffer += part
            found.extend(self._cut())
        return found

    def _restart(self, at: float) -> None:
        self.dropped_bytes += len(self._buffer)
        self._buffer.clear()
        self._started = at

    def _cut(self) -> Iterable[CapturedTelegram]:
        end = _END.search(self._buffer)
        if end is None:
            if len(self._buffer) > MAX_TELEGRAM:  # no end in sight: noise, not a telegram
                self.dropped_bytes += len(self._buffer)
                self._buffer.clear()
                self._started = None
            return
        data, rest = bytes(self._buffer[: end.end()]), bytes(self._buffer[end.end() :])
        started = self._started
        self._buffer.clear()
        self._started = None
        self.dropped_bytes += len(rest)
        if crc_problem(data) is not None:
            self.crc_errors += 1
            return
        assert started is not None
        yield CapturedTelegram(started, data)


def header_line(source: str, started: str) -> str:
    """The first line of a capture file; `started` is the wall-clock time, ISO 8601."""
    return json.dumps({"format": FORMAT, "version": VERSION, "source": source, "started": started})


def telegram_line(telegram: CapturedTelegram) -> str:
    # P1 is ASCII (P1 §5.12): a telegram with other bytes never has a right CRC here, but a
    # framer may pass one; latin-1 keeps any byte as one character, losslessly.
    text = telegram.data.decode("latin-1")
    return json.dumps({"t": round(telegram.offset_s, 6), "telegram": text})


def load_capture(text: str) -> list[CapturedTelegram]:
    """The telegrams of a capture file or a plain telegram file, every CRC checked."""
    stripped = text.lstrip()
    if stripped.startswith("{"):
        telegrams = _load_json_lines(text)
    elif stripped.startswith("/"):
        telegrams = _load_plain(stripped)
    else:
        raise CaptureError("not a P1 capture: expected JSON lines or telegrams starting with '/'")
    if not telegrams:
        raise CaptureError("the capture holds no telegram")
    for index, telegram in enumerate(telegrams, 1):
        problem = crc_problem(telegram.data)
        if problem is not None:
            raise CaptureError(f"telegram {index}: {problem}")
    return telegrams


def _load_plain(text: str) -> list[CapturedTelegram]:
    """Telegrams as published: LF or CR LF line ends; on the wire each line ends in CR LF."""
    wire = text.replace("\r\n", "\n").replace("\n", "\r\n")
    pieces = [p for p in re.split(r"(?=^/)", wire, flags=re.MULTILINE) if p.strip()]
    telegrams = []
    for index, piece in enumerate(pieces):
        data = piece.rstrip("\r\n") + "\r\n"
        try:
            raw = data.encode("ascii")
        except UnicodeEncodeError as exc:
            raise CaptureError(f"telegram {index + 1}: not ASCII (P1 §5.12)") from exc
        telegrams.append(CapturedTelegram(index * PLAIN_INTERVAL_S, raw))
    return telegrams


def _load_json_lines(text: str) -> list[CapturedTelegram]:
    lines = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    header = _json(lines[0][1], lines[0][0])
    if header.get("format") != FORMAT or header.get("version") != VERSION:
        raise CaptureError(f"line 1: not a {FORMAT} version {VERSION} header")
    telegrams: list[CapturedTelegram] = []
    for number, line in lines[1:]:
        record = _json(line, number)
        where = f"telegram {len(telegrams) + 1} (line {number})"
        offset, data = record.get("t"), record.get("telegram")
        if set(record) != {"t", "telegram"} or not isinstance(data, str):
            raise CaptureError(f"{where}: expected exactly 't' and 'telegram'")
        if isinstance(offset, bool) or not isinstance(offset, int | float):
            raise CaptureError(f"{where}: 't' must be a number of seconds")
        previous = telegrams[-1].offset_s if telegrams else 0.0
        if not math.isfinite(offset) or not previous <= offset <= MAX_OFFSET_S:
            raise CaptureError(
                f"{where}: 't' = {offset!r} is not a time from {previous} to {MAX_OFFSET_S:g} s"
            )
        try:
            raw = data.encode("latin-1")
        except UnicodeEncodeError as exc:
            raise CaptureError(
                f"{where}: a telegram holds bytes (characters up to U+00FF)"
            ) from exc
        telegrams.append(CapturedTelegram(float(offset), raw))
    return telegrams


def _json(line: str, number: int) -> dict[str, object]:
    try:
        record = json.loads(line)
    except ValueError as exc:
        raise CaptureError(f"line {number}: not JSON: {exc}") from exc
    if not isinstance(record, dict):
        raise CaptureError(f"line {number}: not a JSON object")
    return record
