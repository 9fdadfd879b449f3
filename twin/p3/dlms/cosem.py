"""COSEM references and result codes shared by the xDLMS codecs and the object model
(Green Book §9.5: Cosem-Attribute-Descriptor, Data-Access-Result, Action-Result).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from twin.p3.dlms.axdr import Reader
from twin.p3.dlms.errors import ApduError, LocalP3Error

OBIS_LENGTH = 6


class DataAccessResult(enum.IntEnum):
    SUCCESS = 0
    HARDWARE_FAULT = 1
    TEMPORARY_FAILURE = 2
    READ_WRITE_DENIED = 3  # P3 §2.2: the answer for a missing access right
    OBJECT_UNDEFINED = 4
    OBJECT_CLASS_INCONSISTENT = 9
    OBJECT_UNAVAILABLE = 11
    TYPE_UNMATCHED = 12
    SCOPE_OF_ACCESS_VIOLATED = 13
    DATA_BLOCK_UNAVAILABLE = 14
    LONG_GET_ABORTED = 15
    NO_LONG_GET_IN_PROGRESS = 16
    LONG_SET_ABORTED = 17
    NO_LONG_SET_IN_PROGRESS = 18
    DATA_BLOCK_NUMBER_INVALID = 19
    OTHER_REASON = 250


class ActionResult(enum.IntEnum):
    SUCCESS = 0
    HARDWARE_FAULT = 1
    TEMPORARY_FAILURE = 2
    READ_WRITE_DENIED = 3
    OBJECT_UNDEFINED = 4
    OBJECT_CLASS_INCONSISTENT = 9
    OBJECT_UNAVAILABLE = 11
    TYPE_UNMATCHED = 12
    SCOPE_OF_ACCESS_VIOLATED = 13
    DATA_BLOCK_UNAVAILABLE = 14
    LONG_ACTION_ABORTED = 15
    NO_LONG_ACTION_IN_PROGRESS = 16
    OTHER_REASON = 250


def data_access_result(value: int) -> DataAccessResult:
    try:
        return DataAccessResult(value)
    except ValueError as exc:
        raise ApduError(f"data-access-result {value} unknown") from exc


@dataclass(frozen=True, slots=True)
class AttributeRef:
    """Cosem-Attribute-Descriptor; also used for methods (`index` = method id)."""

    class_id: int
    obis: bytes
    index: int

    def __post_init__(self) -> None:
        if len(self.obis) != OBIS_LENGTH or not 0 <= self.class_id <= 0xFFFF:
            raise LocalP3Error(f"bad COSEM reference {self.class_id}/{self.obis.hex()}")

    def to_bytes(self) -> bytes:
        return self.class_id.to_bytes(2, "big") + self.obis + bytes([self.index & 0xFF])

    @classmethod
    def read(cls, reader: Reader) -> AttributeRef:
        return cls(reader.u16(), reader.take(OBIS_LENGTH), reader.u8())


@dataclass(frozen=True, slots=True)
class SelectiveAccess:
    """Selective-Access-Descriptor: selector and its encoded parameters (one Data)."""

    selector: int
    parameters: bytes

    def to_bytes(self) -> bytes:
        return bytes([self.selector]) + self.parameters

    @classmethod
    def read_optional(cls, reader: Reader) -> SelectiveAccess | None:
        if not reader.u8():
            return None
        return cls(reader.u8(), reader.data())


def optional_access_bytes(access: SelectiveAccess | None) -> bytes:
    return b"\x00" if access is None else b"\x01" + access.to_bytes()


@dataclass(frozen=True, slots=True)
class AttributeWithSelection:
    ref: AttributeRef
    access: SelectiveAccess | None = None

    def to_bytes(self) -> bytes:
        return self.ref.to_bytes() + optional_access_bytes(self.access)

    @classmethod
    def read(cls, reader: Reader) -> AttributeWithSelection:
        return cls(AttributeRef.read(reader), SelectiveAccess.read_optional(reader))


def read_result(reader: Reader) -> bytes | DataAccessResult:
    """Get-Data-Result ::= CHOICE { data [0] Data, data-access-result [1] }."""
    choice = reader.u8()
    if choice == 0:
        return reader.data()
    if choice == 1:
        return data_access_result(reader.u8())
    raise ApduError(f"Get-Data-Result choice {choice}")


def result_bytes(result: bytes | DataAccessResult) -> bytes:
    if isinstance(result, DataAccessResult):
        return bytes([1, result])
    return b"\x00" + result
