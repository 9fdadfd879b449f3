"""DSMR 4.2.2 event codes and the logs they belong to (P3 §4.2.1).

Every event is stored in exactly one log; the assignment is fixed by the spec. Codes the
4.2.2 release reserves (60-67 breaker/limiter, 160-194 valve) are not defined here, so the twin
cannot raise them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum, IntEnum


class EventLog(Enum):
    """The event logs and their buffer sizes (P3 §5.7, §5.8, §5.10, §7.x profile_entries)."""

    STANDARD = ("0-0:99.98.0", 100)
    FRAUD = ("0-0:99.98.1", 30)
    COMMUNICATION = ("0-0:99.98.4", 2190)
    MBUS = ("0-0:99.98.3", 30)

    def __init__(self, obis: str, capacity: int) -> None:
        self.obis = obis
        self.capacity = capacity


class EventCode(IntEnum):
    EVENT_LOG_CLEARED = 255
    POWER_DOWN = 1
    POWER_UP = 2
    DST_CHANGE = 3
    CLOCK_ADJUSTED_OLD = 4
    CLOCK_ADJUSTED_NEW = 5
    CLOCK_INVALID = 6
    REPLACE_BATTERY = 7
    BATTERY_VOLTAGE_LOW = 8
    TARIFF_TIMES_ACTIVATED = 9
    ERROR_REGISTER_CLEARED = 10
    ALARM_REGISTER_CLEARED = 11
    PROGRAM_MEMORY_ERROR = 12
    RAM_ERROR = 13
    NV_MEMORY_ERROR = 14
    WATCHDOG_ERROR = 15
    MEASUREMENT_SYSTEM_ERROR = 16
    FIRMWARE_READY = 17
    FIRMWARE_ACTIVATED = 18
    TARIFF_SHIFT_TIME_CHANGED = 19
    SELFCHECK_AFTER_FIRMWARE_OK = 20
    TERMINAL_COVER_REMOVED = 40
    TERMINAL_COVER_CLOSED = 41
    STRONG_DC_FIELD = 42
    NO_STRONG_DC_FIELD = 43
    METER_COVER_REMOVED = 44
    METER_COVER_CLOSED = 45
    FAILED_LOGIN = 46
    CONFIGURATION_CHANGE = 47
    METROLOGICAL_MAINTENANCE = 71
    TECHNICAL_MAINTENANCE = 72
    RETRIEVE_READINGS_E = 73
    RETRIEVE_READINGS_G = 74
    RETRIEVE_INTERVAL_E = 75
    RETRIEVE_INTERVAL_G = 76


FRAUD_CODES = frozenset(range(40, 48))
COMMUNICATION_CODES = frozenset(range(71, 77))


def mbus_event_code(channel: int, offset: int) -> int:
    """M-Bus events: 100 + 10 * (channel - 1) + offset (0 comm error .. 6 permanent error)."""
    if not 1 <= channel <= 4 or not 0 <= offset <= 6:
        raise ValueError(f"no M-Bus event for channel {channel} offset {offset}")
    return 100 + 10 * (channel - 1) + offset


def log_of(code: int) -> EventLog:
    """The one log an event code belongs to (P3 §4.2.1 table)."""
    if code in FRAUD_CODES:
        return EventLog.FRAUD
    if code in COMMUNICATION_CODES:
        return EventLog.COMMUNICATION
    if 100 <= code <= 136 and code % 10 <= 6:
        return EventLog.MBUS
    if code in EventCode.__members__.values() and code != EventCode.EVENT_LOG_CLEARED:
        return EventLog.STANDARD
    raise ValueError(f"event code {code} is not raised by a DSMR 4.2.2 meter")


@dataclass(frozen=True, slots=True)
class Event:
    """One logged event: when (meter time, UTC), which code, and in which log."""

    when: datetime
    code: int
    log: EventLog

    @classmethod
    def of(cls, when: datetime, code: int) -> Event:
        return cls(when, code, log_of(code))
