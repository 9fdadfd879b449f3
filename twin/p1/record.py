"""Record the telegrams of a P1 line into a capture file (twin/p1/capture.py has the format).

Runs in a thread of its own (the source's reads block for a moment): every telegram whose
CRC is right is written and flushed at once, so an interrupted recording keeps what it had.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TextIO

from hardware.p1_source import ByteSource
from twin.p1.capture import CapturedTelegram, TelegramFramer, header_line, telegram_line

READ_TIMEOUT_S = 0.2  # how often the recorder looks at its limits while the line is quiet


@dataclass(frozen=True, slots=True)
class RecordSummary:
    telegrams: int
    crc_errors: int  # framed telegrams with a wrong CRC: not written
    dropped_bytes: int  # bytes outside any whole telegram (a start mid-telegram, noise)


def record(
    source: ByteSource,
    out: TextIO,
    *,
    count: int | None = None,
    seconds: float | None = None,
    stop: Callable[[], bool] = lambda: False,
    monotonic: Callable[[], float] = time.monotonic,
) -> RecordSummary:
    """Write `source`'s telegrams to `out` until `count` telegrams, `seconds` of recording,
    or `stop()`; the offsets are arrival times relative to the first telegram."""
    out.write(header_line(source.description, datetime.now(UTC).isoformat()) + "\n")
    out.flush()
    framer, written, began = TelegramFramer(), 0, monotonic()
    first: float | None = None

    def done() -> bool:
        limit_reached = count is not None and written >= count
        late = seconds is not None and monotonic() - began >= seconds
        return limit_reached or late or stop()

    while not done():
        chunk = source.read(READ_TIMEOUT_S)
        for telegram in framer.feed(chunk, monotonic()) if chunk else []:
            first = telegram.offset_s if first is None else first
            shifted = CapturedTelegram(telegram.offset_s - first, telegram.data)
            out.write(telegram_line(shifted) + "\n")
            out.flush()
            written += 1
            if count is not None and written >= count:
                break
    return RecordSummary(written, framer.crc_errors, framer.dropped_bytes)
