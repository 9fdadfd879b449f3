"""The error register 0-0:97.97.0 and the alarm register 0-0:97.98.0 (P3 §4.2.3, §4.2.4).

Both registers have the same layout (double-long-unsigned, byte 1 the least significant) and
the same events set the same bit in each: logging one of these events sets its error bit and,
when the alarm filter 0-0:97.98.10 has that bit set ("a 0 means that the event will not be
treated as an alarm"), its alarm bit. Alarm bits stay until the management client clears them
(§4.2.4); so do the error bits of critical errors, new M-Bus devices, power up and replace
battery (§4.2.3). The other error bits clear themselves when their condition has gone: a
communication error on an M-Bus channel clears when the channel answers again (its event
"communication ok"). The fraud attempt bits are kept until cleared too: the twin cannot tell
when a tamper has ended.
"""

from __future__ import annotations

from twin.meter.events import EventCode, mbus_event_code

FACTORY_ALARM_FILTER = 0xFFFFFFFF  # every event of the tables is an alarm until the CS filters

# Event code -> bit (0 = least significant bit of byte 1).
REGISTER_BIT: dict[int, int] = {
    EventCode.CLOCK_INVALID: 0,  # byte 1: other errors / alarms
    EventCode.REPLACE_BATTERY: 1,
    EventCode.POWER_UP: 2,
    EventCode.PROGRAM_MEMORY_ERROR: 8,  # byte 2: critical
    EventCode.RAM_ERROR: 9,
    EventCode.NV_MEMORY_ERROR: 10,
    EventCode.MEASUREMENT_SYSTEM_ERROR: 11,
    EventCode.WATCHDOG_ERROR: 12,
    **dict.fromkeys((40, 42, 44, 46, 47), 13),  # fraud attempt: all fraud events, grouped
    **{mbus_event_code(n, 0): 15 + n for n in range(1, 5)},  # byte 3: M-Bus comm error 1..4
    **{mbus_event_code(n, 3): 19 + n for n in range(1, 5)},  # byte 3: M-Bus fraud 1..4
    **{mbus_event_code(n, 5): 23 + n for n in range(1, 5)},  # byte 4: new M-Bus device 1..4
}
# "Communication ok" on channel n clears the error bit of "communication error" on n.
SELF_CLEARING: dict[int, int] = {mbus_event_code(n, 1): 15 + n for n in range(1, 5)}


def error_bits(code: int) -> tuple[int, int]:
    """(bits the event sets, bits it clears) in the error register."""
    bit = REGISTER_BIT.get(code)
    cleared = SELF_CLEARING.get(code)
    return (0 if bit is None else 1 << bit), (0 if cleared is None else 1 << cleared)
