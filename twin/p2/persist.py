"""JSON forms of the P2 snapshots, for `Store.put_setting` (all meter state is in the store).

Keys and frame counters live in the twin's SQLite store like the DLMS counters: a gas meter
keeps its address, User key and counter through outages (P2 §7.2), and so must its twin.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from twin.p2.errors import MbusError
from twin.p2.headers import ShortId
from twin.p2.master_state import Channel, MasterSnapshot
from twin.p2.slave_state import SlaveSnapshot

JsonDict = dict[str, Any]


def _key(value: str | None) -> bytes | None:
    return bytes.fromhex(value) if value else None


def _hex(value: bytes | None) -> str | None:
    return value.hex() if value else None


def device_to_json(device: ShortId) -> JsonDict:
    return {
        "ident": device.ident,
        "manufacturer": device.manufacturer,
        "version": device.version,
        "device_type": device.device_type,
    }


def device_from_json(data: JsonDict) -> ShortId:
    return ShortId(
        int(data["ident"]),
        str(data["manufacturer"]),
        int(data["version"]),
        int(data["device_type"]),
    )


def master_to_json(snapshot: MasterSnapshot) -> JsonDict:
    return {
        "access_number": snapshot.access_number,
        "channels": [
            {
                "number": c.number,
                "address": c.address,
                "device": device_to_json(c.device),
                "user_key": _hex(c.user_key),
                "frame_counter": c.frame_counter,
                "status": c.status,
                "comm_ok": c.comm_ok,
                "equipment_id": c.equipment_id,
            }
            for c in snapshot.channels
        ],
    }


def master_from_json(data: JsonDict) -> MasterSnapshot:
    try:
        channels = tuple(
            Channel(
                int(c["number"]),
                int(c["address"]),
                device_from_json(c["device"]),
                _key(c["user_key"]),
                int(c["frame_counter"]),
                int(c["status"]),
                bool(c["comm_ok"]),
                # Absent in state saved before it was kept: learned again at the next read.
                None if c.get("equipment_id") is None else str(c["equipment_id"]),
            )
            for c in data["channels"]
        )
        return MasterSnapshot(int(data["access_number"]), channels)
    except (KeyError, TypeError, ValueError) as exc:
        raise MbusError(f"stored M-Bus master state is unreadable: {exc}") from exc


def slave_to_json(snapshot: SlaveSnapshot) -> JsonDict:
    reading = snapshot.reading
    return {
        "address": snapshot.address,
        "user_key": _hex(snapshot.user_key),
        "frame_counter": snapshot.frame_counter,
        "access_number": snapshot.access_number,
        "status": snapshot.status,
        "clock_offset_s": snapshot.clock_offset.total_seconds(),
        "valve_state": snapshot.valve_state,
        "reading": None if reading is None else [reading[0], reading[1].isoformat()],
        "selected": list(snapshot.selected),
    }


def slave_from_json(data: JsonDict) -> SlaveSnapshot:
    try:
        reading = data["reading"]
        return SlaveSnapshot(
            address=int(data["address"]),
            user_key=_key(data["user_key"]),
            frame_counter=int(data["frame_counter"]),
            access_number=int(data["access_number"]),
            status=int(data["status"]),
            clock_offset=timedelta(seconds=float(data["clock_offset_s"])),
            valve_state=int(data["valve_state"]),
            reading=None
            if reading is None
            else (int(reading[0]), datetime.fromisoformat(str(reading[1]))),
            selected=tuple(int(v) for v in data["selected"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise MbusError(f"stored gas-meter state is unreadable: {exc}") from exc
