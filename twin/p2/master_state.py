"""State of the E meter's M-Bus master: channels, snapshot and queued jobs (P2 §5.2, §8.3)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum

from twin.p2.crypto import check_counter
from twin.p2.errors import ReplayError
from twin.p2.headers import MODE_15, ShortId
from twin.p2.messages import RspUd


class Op(Enum):
    """Kinds of exchange."""

    PROBE = "probe"  # SND_NKE to address 0 (installation scan, P2 §8.3.1)
    SET_ADDRESS = "address"
    IDENTIFY = "identify"  # REQ_UD2 to the address just set
    RESET = "reset"
    READ = "read"
    CLOCK = "clock"
    KEY = "key"
    CLEAR = "clear_status"


@dataclass(frozen=True, slots=True)
class Channel:
    """A registered M-Bus device (M-Bus Client Setup, P3 class 72)."""

    number: int
    address: int
    device: ShortId
    user_key: bytes | None = field(default=None, repr=False)  # a key: out of logs
    frame_counter: int = 0  # last validated (P2 §5.2)
    status: int = 0
    comm_ok: bool = True
    # Learned from its first answer; a later answer with another one is corrupt or forged.
    equipment_id: str | None = None


@dataclass(frozen=True, slots=True)
class MasterSnapshot:
    """Persistent master state: the E meter's access number and the channels."""

    access_number: int = 0
    channels: tuple[Channel, ...] = ()


@dataclass(frozen=True, slots=True)
class Job:
    """One queued exchange: what to do, for which channel/address, and its arguments."""

    op: Op
    channel: int = 0
    address: int = 0
    when: datetime | None = None
    wire: bytes = b""
    user_key: bytes | None = field(default=None, repr=False)  # a key: out of logs
    resynced: bool = False  # already retried after a REQ_UD2 frame-counter resync


def check_response(ch: Channel, message: RspUd) -> str | None:
    """Why a decoded RSP_UD is not acceptable from `ch`, or None."""
    if message.address != ch.address:
        return f"RSP_UD from address {message.address}, expected {ch.address}"
    if message.header.device != ch.device:
        return f"Short ID {message.header.device} is not the installed {ch.device}"
    if ch.user_key is None:
        return None
    if message.header.mode != MODE_15:
        return "unencrypted data from a keyed device (P2 §6.5)"
    try:
        check_counter(message.frame_counter, ch.frame_counter)
    except ReplayError as error:
        return str(error)
    return None
