"""What the P2 service keeps across restarts, in the store's settings table.

Besides the master's own snapshot (channels, keys, frame counters, P2 §5.2) that is the User
keys still on their way to a channel and the last clock sync of each channel, so a restart
neither loses a key the head end sent nor syncs every clock again at once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from twin.p2.keys import PendingKey
from twin.p2.master_state import MasterSnapshot
from twin.p2.persist import master_from_json, master_to_json
from twin.store import Store

STATE_SETTING = "p2.master"


@dataclass(frozen=True, slots=True)
class SavedMaster:
    """The master's snapshot, the pending keys and the last sync times, by channel."""

    snapshot: MasterSnapshot
    pending: dict[int, PendingKey]
    last_sync: dict[int, datetime]


def load_master(store: Store, urandom: Callable[[int], bytes]) -> SavedMaster:
    """The saved state, or a fresh master with a random access number."""
    saved = store.setting(STATE_SETTING)
    if not saved:
        return SavedMaster(MasterSnapshot(access_number=urandom(1)[0]), {}, {})  # EN 13757-3 §5.9
    pending = {
        int(number): _pending_from_json(pending)
        for number, pending in saved.get("pending", {}).items()
    }
    last_sync = {
        int(number): datetime.fromisoformat(when)
        for number, when in saved.get("last_sync", {}).items()
    }
    return SavedMaster(master_from_json(saved["master"]), pending, last_sync)


def save_master(
    store: Store,
    snapshot: MasterSnapshot,
    pending: dict[int, PendingKey],
    last_sync: dict[int, datetime],
) -> None:
    store.put_setting(STATE_SETTING, _master_record(snapshot, pending, last_sync))


async def save_master_async(
    store: Store,
    snapshot: MasterSnapshot,
    pending: dict[int, PendingKey],
    last_sync: dict[int, datetime],
) -> None:
    """`save_master` without holding the event loop while the store writes."""
    await store.put_setting_async(STATE_SETTING, _master_record(snapshot, pending, last_sync))


def _master_record(
    snapshot: MasterSnapshot, pending: dict[int, PendingKey], last_sync: dict[int, datetime]
) -> dict[str, Any]:
    return {
        "master": master_to_json(snapshot),
        "pending": {str(n): _pending_to_json(p) for n, p in pending.items()},
        "last_sync": {str(n): t.isoformat() for n, t in last_sync.items()},
    }


def _pending_from_json(pending: dict[str, Any]) -> PendingKey:
    return PendingKey(
        bytes.fromhex(pending["user_key"]) if pending["user_key"] else None,
        bytes.fromhex(pending["wrapped"]) if pending["wrapped"] else None,
        bool(pending["generated"]),
    )


def _pending_to_json(p: PendingKey) -> dict[str, Any]:
    return {
        "user_key": p.user_key.hex() if p.user_key else None,
        "wrapped": p.wrapped.hex() if p.wrapped else None,
        "generated": p.generated,
    }
