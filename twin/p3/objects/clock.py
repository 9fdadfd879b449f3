"""Clock 0-0:1.0.0 (class 8) and the clock time shift limit 1-0:0.9.11 (P3 §5.3)."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from twin.clock import TIME_SHIFT_LIMIT_S, carryable, is_dst
from twin.p3.dlms.cosem import DataAccessResult
from twin.p3.objects.base import CosemObject, ObjectError, Request
from twin.p3.objects.env import Env
from twin.p3.objects.simple import Register, Stored
from twin.p3.objects.values import (
    CLOCK_STATUS_DST,
    Data,
    boolean,
    date_time,
    enum_,
    i8,
    i16,
    octets,
    parse_date_time,
    u8,
)

# Wildcarded date-times (Blue Book §4.1.6.1): year not specified, month, last day (0xFE),
# Sunday (7), hh:00:00, hundredths/deviation not specified, status not specified.
DST_BEGIN = bytes.fromhex("FFFF03FE07020000FF8000FF")  # last Sunday in March 02:00
DST_END = bytes.fromhex("FFFF0AFE07030000FF8000FF")  # last Sunday in October 03:00
TIME_SHIFT_LIMIT = "1-0:0.9.11"


class Clock(CosemObject):
    """Attributes 2..9 as P3 §5.3. Writable settings are kept (and answered back) but the twin
    always keeps Dutch time (Europe/Amsterdam), which is what the defaults describe."""

    class_id: ClassVar[int] = 8

    def __init__(self, env: Env) -> None:
        super().__init__(
            "0-0:1.0.0",
            {
                1: "R/R/",
                2: "R/RW/",
                3: "/RW/",
                4: "/R/",
                5: "/RW/",
                6: "/RW/",
                7: "/R/",
                8: "/RW/",
                9: "/R/",
            },
            {},
        )
        self.env = env
        a = env.attrs
        self.limit = shift_limit(env)
        self.stored = {
            3: Stored(a, "clock.time_zone", i16(-60)),
            5: Stored(a, "clock.dst_begin", octets(DST_BEGIN), 12),
            6: Stored(a, "clock.dst_end", octets(DST_END), 12),
            8: Stored(a, "clock.dst_enabled", boolean(True)),
        }

    def read(self, index: int, request: Request) -> Data:
        if index == 2:
            return date_time(request.now)
        if index == 4:
            return u8(CLOCK_STATUS_DST if is_dst(request.now) else 0)
        if index == 7:
            return i8(60)
        if index == 9:
            return enum_(1)  # internal crystal
        if index in self.stored:
            return self.stored[index].get()
        return super().read(index, request)

    def set_time(self, new: datetime, now: datetime) -> None:
        """A shift above the clock time shift limit 1-0:0.9.11 is a clock adjustment: events
        4 (old time) and 5 (new time), CAD in the profile status (P3 §4.2.1, §4.2.5, §5.3).
        Up to the limit the clock moves without an event ("maximum allowed time shift without
        registration of a time shift event")."""
        if self.env.meter.advancing:
            # `ctl advance` is metering a span ahead of the clock; set it once that is done.
            raise ObjectError(DataAccessResult.TEMPORARY_FAILURE, "the meter is advancing")
        beyond_limit = abs((new - now).total_seconds()) > self.limit.get().integer()
        self.env.meter.set_time(new, event=beyond_limit)

    def write(self, index: int, value: Data, request: Request) -> None:
        if index == 2:
            new = parse_date_time(value.octets())
            if new is None:
                raise ObjectError(DataAccessResult.OTHER_REASON, "time with wildcards")
            if not carryable(new):  # P2 dates end in 2099: a later time would brick ports
                raise ObjectError(DataAccessResult.OTHER_REASON, f"{new} is out of range")
            self.set_time(new, request.now)
            return
        if index not in self.stored:
            raise ObjectError(DataAccessResult.READ_WRITE_DENIED)
        self.stored[index].set(value)


def shift_limit(env: Env) -> Stored:
    return Stored(env.attrs, "clock.time_shift_limit", u8(TIME_SHIFT_LIMIT_S))


def time_shift_limit(env: Env) -> Register:
    """1-0:0.9.11: unsigned, 60 s, {0, 7}; management RW (P3 §5.3)."""
    limit = shift_limit(env)
    return Register(
        TIME_SHIFT_LIMIT, ("/RW/", "/R/"), limit.get, scaler=0, unit=7, setter=limit.set
    )
