"""Commands of P2 §6.2-§6.5 as records, for both the E meter (master) and the G meter (slave).

- set address: SND_UD CI 51 `01 7A <addr>` (P2 §6.2.2)
- set key:     SND_UD CI 51 `07 FD 19 <8>` `47 FD 19 <8>` (P2 §6.5.1)
- clear status: `01 FD 97 06 <mask>` (P2 §6.2.3), sent in the encrypted CI 5A message
- read-out list: records with data field 1000b "selection for readout" (P2 §6.3.1)
- versions: `FD 0C..0F` answered as "name=value<CR><LF>" strings (P2 §6.4.2)
"""

from __future__ import annotations

from dataclasses import dataclass

from twin.p2.crypto import wrap_user_key
from twin.p2.errors import RecordError
from twin.p2.records import Item, Record
from twin.p2.values import VIF_EXT_FD, KeyHalf, NewAddress, address_record, interpret, key_records

VIFE_CLEAR = (0x97, 0x06)  # error flags (0x17 + extension bit), then "clear the bits"
CLEAR_MASK = 0x73  # P2 §6.2.3 mask 01110011: every non-permanent bit
SELECT_FOR_READOUT = 0x08  # DIF data field 1000b
VERSION_VIFES = (0x0C, 0x0D, 0x0E, 0x0F)  # P2 §6.4.2


@dataclass(frozen=True, slots=True)
class SetAddress:
    """Set-address command."""

    address: int


@dataclass(frozen=True, slots=True)
class SetKey:
    """Key-exchange command; `wire` are the 16 wrapped bytes in wire order."""

    wire: bytes


@dataclass(frozen=True, slots=True)
class ClearStatus:
    """Clear-status command with its mask."""

    mask: int


@dataclass(frozen=True, slots=True)
class SelectReadout:
    """Selection for readout of the given FD VIFEs (P2 §6.3.1)."""

    vifes: tuple[int, ...]


Command = SetAddress | SetKey | ClearStatus | SelectReadout


def set_key_records(default_key: bytes, user_key: bytes) -> tuple[Record, Record]:
    """The two key records that carry `user_key` wrapped with `default_key`."""
    return key_records(wrap_user_key(default_key, user_key))


def set_address_records(address: int) -> tuple[Record]:
    """The one record of a set-address command."""
    return (address_record(address),)


def clear_status_record(mask: int = CLEAR_MASK) -> Record:
    """`01 FD 97 06 <mask>`."""
    return Record(0x01, VIF_EXT_FD, bytes([mask & 0xFF]), vifes=VIFE_CLEAR)


def select_readout_record(vife: int) -> Record:
    """`08 FD <vife>`: ask for FD-coded data in the next RSP_UD."""
    return Record(SELECT_FOR_READOUT, VIF_EXT_FD, vifes=(vife,))


def version_record(vife: int, text: str) -> Record:
    """Answer to a version selection: variable-length ASCII, last character first."""
    data = text.encode("ascii")[::-1]
    if len(data) > 0xBF:
        raise RecordError("version string longer than LVAR allows")
    return Record(0x0D, VIF_EXT_FD, bytes([len(data)]) + data, vifes=(vife,))


def plain_command(records: tuple[Item, ...]) -> SetAddress | SetKey | None:
    """The CI 51 command the records form, or None if they form none (then: ignore)."""
    values = [interpret(r) if isinstance(r, Record) else None for r in records]
    if len(values) == 1 and isinstance(values[0], NewAddress):
        return SetAddress(values[0].address)
    if len(values) == 2:
        low, high = values
        # P2 §6.5.1: the second 64-bit half has the storage bit set.
        if (
            isinstance(low, KeyHalf)
            and isinstance(high, KeyHalf)
            and (low.storage, high.storage) == (0, 1)
        ):
            return SetKey(low.data + high.data)
    return None


def control_commands(records: tuple[Item, ...]) -> tuple[ClearStatus | SelectReadout, ...]:
    """The CI 5A commands in `records`; unknown records are skipped."""
    out: list[ClearStatus | SelectReadout] = []
    selected: list[int] = []
    for record in records:
        if not isinstance(record, Record) or record.vif != VIF_EXT_FD:
            continue
        if record.vifes == VIFE_CLEAR and record.coding == 0x1:
            out.append(ClearStatus(record.data[0]))
        elif record.coding == SELECT_FOR_READOUT and len(record.vifes) == 1:
            selected.append(record.vifes[0])
    if selected:
        out.append(SelectReadout(tuple(selected)))
    return tuple(out)
