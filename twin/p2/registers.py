"""Alarm/error register bits raised by M-Bus events (P3 §4.2.3 error, §4.2.4 alarm tables).

Both registers are double-long-unsigned with byte 1 the least significant. Byte 3 holds
"Communication error M-Bus channel 1..4" (events 100/110/120/130) in bits 0-3 and "Fraud
attempt M-Bus channel 1..4" (103/113/123/133) in bits 4-7; byte 4 bits 0-3 hold "New M-Bus
device discovered channel 1..4" (105/115/125/135). Replace battery (102), clock adjusted
(104), communication ok (101) and permanent error (106) have no bit in either table.
"""

from __future__ import annotations

from twin.p2.master_events import MbusEventKind

_BASE_BIT = {
    MbusEventKind.COMMUNICATION_ERROR: 16,  # byte 3, bits 0-3
    MbusEventKind.FRAUD_ATTEMPT: 20,  # byte 3, bits 4-7
    MbusEventKind.NEW_DEVICE: 24,  # byte 4, bits 0-3
}


def alarm_bits(channel: int, kind: MbusEventKind) -> int:
    """The alarm register bits an M-Bus event of `kind` on `channel` (1..4) sets, or 0."""
    if not 1 <= channel <= 4:
        raise ValueError(f"M-Bus channel {channel} is not 1..4")
    base = _BASE_BIT.get(kind)
    return 0 if base is None else 1 << (base + channel - 1)
