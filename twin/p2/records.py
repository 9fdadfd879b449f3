"""EN 13757-3 variable data records (DIF, DIFE, VIF, VIFE, data) as DSMR gas meters use them.

A `Record` keeps the raw bytes of each part so that encoding a decoded record gives back the
very same bytes; `twin.p2.values` gives the typed meaning of the records DSMR cares about.
Idle fillers (DIF 2F) are skipped on decoding (P2 §6: "Filler bytes (DIF=2Fh) may be used in
unencrypted variable datablocks and must be used in encrypted" ones).

Not supported, rejected with `RecordError` rather than guessed: plain-text VIFs (7C/FC), the
global readout request DIF 7F and the reserved special DIFs 3F..6F, and variable-length
fields with LVAR >= F0.
"""

from __future__ import annotations

from dataclasses import dataclass

from twin.p2.errors import RecordError

FILLER = 0x2F
MANUFACTURER_DATA = 0x0F
MORE_RECORDS_FOLLOW = 0x1F
EXTENSION = 0x80
MAX_EXTENSIONS = 10  # EN 13757-3: at most 10 DIFE and 10 VIFE per record
VARIABLE_LENGTH = 0x0D

# Data field (DIF bits 0-3) -> number of data bytes; D (variable) is handled apart.
_DATA_SIZES = {
    0x0: 0,
    0x1: 1,
    0x2: 2,
    0x3: 3,
    0x4: 4,
    0x5: 4,
    0x6: 6,
    0x7: 8,
    0x8: 0,  # selection for readout (P2 §6.3.1): no data
    0x9: 1,
    0xA: 2,
    0xB: 3,
    0xC: 4,
    0xE: 6,
}


@dataclass(frozen=True, slots=True)
class Record:
    """One data record. For DIF data field D, `data` starts with its LVAR byte."""

    dif: int
    vif: int
    data: bytes = b""
    difes: tuple[int, ...] = ()
    vifes: tuple[int, ...] = ()

    @property
    def coding(self) -> int:
        """DIF bits 0-3: the data field (length and coding of the data)."""
        return self.dif & 0x0F

    @property
    def function(self) -> int:
        """DIF bits 4-5: 0 instantaneous, 1 maximum, 2 minimum, 3 value during error."""
        return (self.dif >> 4) & 0x03

    @property
    def storage(self) -> int:
        """Storage number: DIF bit 6 plus 4 bits per DIFE (P2 §6.1: 1 = hourly value)."""
        value = (self.dif >> 6) & 0x01
        for index, dife in enumerate(self.difes):
            value |= (dife & 0x0F) << (1 + 4 * index)
        return value

    @property
    def tariff(self) -> int:
        """Tariff: 2 bits per DIFE."""
        return sum(((dife >> 4) & 0x03) << (2 * i) for i, dife in enumerate(self.difes))

    @property
    def subunit(self) -> int:
        """Device subunit: 1 bit per DIFE (P2 §6.4.5 uses it for cooling values)."""
        return sum(((dife >> 6) & 0x01) << i for i, dife in enumerate(self.difes))

    @property
    def value_bytes(self) -> bytes:
        """The data without the LVAR byte of a variable-length record."""
        return self.data[1:] if self.coding == VARIABLE_LENGTH else self.data


@dataclass(frozen=True, slots=True)
class ManufacturerData:
    """DIF 0F / 1F: manufacturer-specific bytes up to the end of the user data."""

    data: bytes
    more_records_follow: bool = False


Item = Record | ManufacturerData


def decode_records(payload: bytes, *, strict: bool = False) -> tuple[Item, ...]:
    """Parse a whole user-data block; any truncation or bad field is an error.

    `strict` (used after decryption) also rejects manufacturer-specific data (DIF 0F/1F),
    which P2 §6.4 does not define: with a wrong IV the first plaintext block is garbled
    while 2F 2F survives, and a garbled DIF of 0F would otherwise swallow the rest of the
    telegram silently (P2 App. B1.3 decrypted with VER 42 does exactly that).
    """
    items: list[Item] = []
    pos = 0
    while pos < len(payload):
        dif = payload[pos]
        if dif == FILLER:
            pos += 1
            continue
        if dif in (MANUFACTURER_DATA, MORE_RECORDS_FOLLOW):
            if strict:
                raise RecordError(f"manufacturer-specific DIF {dif:02X} in strict mode")
            items.append(ManufacturerData(payload[pos + 1 :], dif == MORE_RECORDS_FOLLOW))
            break
        record, pos = _decode_record(payload, pos)
        items.append(record)
    return tuple(items)


def _decode_record(payload: bytes, pos: int) -> tuple[Record, int]:
    dif = payload[pos]
    if dif & 0x0F == 0x0F:
        raise RecordError(f"special DIF {dif:02X} at offset {pos} is not supported")
    difes, pos = _extensions(payload, pos + 1, dif, "DIFE")
    if pos >= len(payload):
        raise RecordError("record ends before its VIF")
    vif = payload[pos]
    if vif & 0x7F == 0x7C:
        raise RecordError("plain-text VIF is not supported")
    vifes, pos = _extensions(payload, pos + 1, vif, "VIFE")
    size, pos = _data_size(payload, pos, dif & 0x0F)
    end = pos + size
    if end > len(payload):
        raise RecordError(f"record data needs {size} bytes, {len(payload) - pos} left")
    data = payload[pos:end]
    if dif & 0x0F == VARIABLE_LENGTH:
        data = payload[pos - 1 : end]
    return Record(dif, vif, bytes(data), difes, vifes), end


def _extensions(payload: bytes, pos: int, lead: int, name: str) -> tuple[tuple[int, ...], int]:
    found: list[int] = []
    more = bool(lead & EXTENSION)
    while more:
        if pos >= len(payload):
            raise RecordError(f"record ends inside its {name} chain")
        if len(found) == MAX_EXTENSIONS:
            raise RecordError(f"more than {MAX_EXTENSIONS} {name} bytes")
        found.append(payload[pos])
        more = bool(payload[pos] & EXTENSION)
        pos += 1
    return tuple(found), pos


def _data_size(payload: bytes, pos: int, coding: int) -> tuple[int, int]:
    """Number of data bytes and where they start (after the LVAR byte for coding D)."""
    if coding != VARIABLE_LENGTH:
        return _DATA_SIZES[coding], pos
    if pos >= len(payload):
        raise RecordError("record ends before its LVAR byte")
    return _lvar_size(payload[pos]), pos + 1


def _lvar_size(lvar: int) -> int:
    # EN 13757-3 LVAR: 00-BF ASCII of that length, C0-CF / D0-DF BCD (+/-), E0-EF binary.
    if lvar <= 0xBF:
        return lvar
    if lvar <= 0xEF:
        return lvar & 0x0F
    raise RecordError(f"LVAR {lvar:02X} is not supported")


def encode_records(items: tuple[Item, ...] | list[Item]) -> bytes:
    """The bytes of `items`, checking that every record is self-consistent."""
    out = bytearray()
    for index, item in enumerate(items):
        if isinstance(item, ManufacturerData):
            if index != len(items) - 1:
                raise RecordError("manufacturer data must be the last item")
            lead = MORE_RECORDS_FOLLOW if item.more_records_follow else MANUFACTURER_DATA
            out += bytes([lead]) + item.data
        else:
            out += encode_record(item)
    return bytes(out)


def encode_record(record: Record) -> bytes:
    """One record's bytes; a record that would not decode back to itself is an error."""
    try:
        encoded = bytes([record.dif, *record.difes, record.vif, *record.vifes]) + record.data
        decoded, used = _decode_record(encoded, 0)
    except (ValueError, IndexError, KeyError) as error:  # RecordError is a ValueError
        raise RecordError(f"record {record!r} is not encodable: {error}") from None
    if decoded != record or used != len(encoded):
        raise RecordError(f"record {record!r} is inconsistent (extension bits or data size)")
    return encoded
