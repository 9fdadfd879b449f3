"""What the E meter keeps from a validated RSP_UD (P2 §6.3-§6.4, §9)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from twin.p2.records import Item, Record
from twin.p2.values import EquipmentId, ErrorFlags, Timestamp, Volume, interpret

# P2 §9: a 4.2 E meter ignores status bit 7 (the DSMR 4.0 valve alarm).
STATUS_MASK = 0x7F


@dataclass(frozen=True, slots=True)
class Summary:
    """Hourly value, its G-meter time stamp, status and equipment identifier."""

    volume_m3: Decimal | None
    capture_time: datetime | None
    status: int
    equipment_id: str | None


def _pick(values: list[Volume | Timestamp]) -> Volume | Timestamp | None:
    # P2 §6.1: the storage-number bit marks the hourly value; prefer it over others.
    hourly = [v for v in values if v.storage == 1]
    if hourly:
        return hourly[0]
    return values[0] if values else None


def summarise(records: tuple[Item, ...]) -> Summary:
    """Summary of the records; unknown records and the 4.0 valve block are discarded."""
    values = [interpret(r) for r in records if isinstance(r, Record)]
    volume = _pick([v for v in values if isinstance(v, Volume) and v.converted])
    stamp = _pick([v for v in values if isinstance(v, Timestamp)])
    status = next((v.flags for v in values if isinstance(v, ErrorFlags)), 0)
    ident = next((v.text for v in values if isinstance(v, EquipmentId)), None)
    return Summary(
        volume.m3 if isinstance(volume, Volume) else None,
        stamp.when if isinstance(stamp, Timestamp) else None,
        status & STATUS_MASK,
        ident,
    )
