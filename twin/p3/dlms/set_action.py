"""SET service APDUs (Green Book §9.5: Set-Request 0xC1 / Set-Response 0xC5) and the
DataBlock-SA that SET and ACTION block transfer share (ACTION APDUs: `twin.p3.dlms.action`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from twin.p3.dlms.axdr import Reader, encode_length
from twin.p3.dlms.cosem import (
    AttributeRef,
    AttributeWithSelection,
    DataAccessResult,
    SelectiveAccess,
    data_access_result,
    optional_access_bytes,
)
from twin.p3.dlms.errors import ApduError, UnknownApduError

SET_REQUEST = 0xC1
SET_RESPONSE = 0xC5


@dataclass(frozen=True, slots=True)
class DataBlock:
    """DataBlock-SA: last-block, block-number, raw-data (octet-string)."""

    last: bool
    number: int
    raw: bytes

    def to_bytes(self) -> bytes:
        head = bytes([int(self.last)]) + self.number.to_bytes(4, "big")
        return head + encode_length(len(self.raw)) + self.raw

    @classmethod
    def read(cls, r: Reader) -> DataBlock:
        last, number = bool(r.u8()), r.u32()
        return cls(last, number, r.take(r.length()))


@dataclass(frozen=True, slots=True)
class SetRequestNormal:
    CHOICE: ClassVar[int] = 1
    invoke_id: int
    ref: AttributeRef
    value: bytes
    access: SelectiveAccess | None = None

    def to_bytes(self) -> bytes:
        head = bytes([SET_REQUEST, self.CHOICE, self.invoke_id]) + self.ref.to_bytes()
        return head + optional_access_bytes(self.access) + self.value


@dataclass(frozen=True, slots=True)
class SetRequestFirstBlock:
    CHOICE: ClassVar[int] = 2
    invoke_id: int
    ref: AttributeRef
    block: DataBlock
    access: SelectiveAccess | None = None

    def to_bytes(self) -> bytes:
        head = bytes([SET_REQUEST, self.CHOICE, self.invoke_id]) + self.ref.to_bytes()
        return head + optional_access_bytes(self.access) + self.block.to_bytes()


@dataclass(frozen=True, slots=True)
class SetRequestBlock:
    CHOICE: ClassVar[int] = 3
    invoke_id: int
    block: DataBlock

    def to_bytes(self) -> bytes:
        return bytes([SET_REQUEST, self.CHOICE, self.invoke_id]) + self.block.to_bytes()


@dataclass(frozen=True, slots=True)
class SetRequestWithList:
    CHOICE: ClassVar[int] = 4
    invoke_id: int
    items: tuple[AttributeWithSelection, ...]
    values: tuple[bytes, ...]

    def to_bytes(self) -> bytes:
        out = bytes([SET_REQUEST, self.CHOICE, self.invoke_id]) + encode_length(len(self.items))
        out += b"".join(item.to_bytes() for item in self.items)
        return out + encode_length(len(self.values)) + b"".join(self.values)


@dataclass(frozen=True, slots=True)
class SetRequestWithListFirstBlock:
    """Set-Request-With-List-And-First-Datablock: the blocks carry the value list
    (SEQUENCE OF Data, count first)."""

    CHOICE: ClassVar[int] = 5
    invoke_id: int
    items: tuple[AttributeWithSelection, ...]
    block: DataBlock

    def to_bytes(self) -> bytes:
        out = bytes([SET_REQUEST, self.CHOICE, self.invoke_id]) + encode_length(len(self.items))
        out += b"".join(item.to_bytes() for item in self.items)
        return out + self.block.to_bytes()


SetRequest = (
    SetRequestNormal
    | SetRequestFirstBlock
    | SetRequestBlock
    | SetRequestWithList
    | SetRequestWithListFirstBlock
)


def parse_set_request(data: bytes) -> SetRequest:
    r = Reader(data)
    if r.u8() != SET_REQUEST:
        raise ApduError("not a Set-Request")
    choice, invoke_id = r.u8(), r.u8()
    request: SetRequest
    if choice in (SetRequestNormal.CHOICE, SetRequestFirstBlock.CHOICE):
        ref, access = AttributeRef.read(r), SelectiveAccess.read_optional(r)
        if choice == SetRequestNormal.CHOICE:
            request = SetRequestNormal(invoke_id, ref, r.data(), access)
        else:
            request = SetRequestFirstBlock(invoke_id, ref, DataBlock.read(r), access)
    elif choice == SetRequestBlock.CHOICE:
        request = SetRequestBlock(invoke_id, DataBlock.read(r))
    elif choice == SetRequestWithList.CHOICE:
        items = tuple(AttributeWithSelection.read(r) for _ in range(r.length()))
        values = tuple(r.data() for _ in range(r.length()))
        request = SetRequestWithList(invoke_id, items, values)
    elif choice == SetRequestWithListFirstBlock.CHOICE:
        items = tuple(AttributeWithSelection.read(r) for _ in range(r.length()))
        request = SetRequestWithListFirstBlock(invoke_id, items, DataBlock.read(r))
    else:
        raise UnknownApduError(SET_REQUEST, f"Set-Request choice {choice}")
    r.expect_end()
    return request


@dataclass(frozen=True, slots=True)
class SetResponseNormal:
    CHOICE: ClassVar[int] = 1
    invoke_id: int
    result: DataAccessResult

    def to_bytes(self) -> bytes:
        return bytes([SET_RESPONSE, self.CHOICE, self.invoke_id, self.result])


@dataclass(frozen=True, slots=True)
class SetResponseBlock:
    CHOICE: ClassVar[int] = 2
    invoke_id: int
    block_number: int

    def to_bytes(self) -> bytes:
        head = bytes([SET_RESPONSE, self.CHOICE, self.invoke_id])
        return head + self.block_number.to_bytes(4, "big")


@dataclass(frozen=True, slots=True)
class SetResponseLastBlock:
    CHOICE: ClassVar[int] = 3
    invoke_id: int
    result: DataAccessResult
    block_number: int

    def to_bytes(self) -> bytes:
        head = bytes([SET_RESPONSE, self.CHOICE, self.invoke_id, self.result])
        return head + self.block_number.to_bytes(4, "big")


@dataclass(frozen=True, slots=True)
class SetResponseWithList:
    CHOICE: ClassVar[int] = 5
    invoke_id: int
    results: tuple[DataAccessResult, ...]

    def to_bytes(self) -> bytes:
        head = bytes([SET_RESPONSE, self.CHOICE, self.invoke_id])
        return head + encode_length(len(self.results)) + bytes(self.results)


@dataclass(frozen=True, slots=True)
class SetResponseLastBlockWithList:
    CHOICE: ClassVar[int] = 4
    invoke_id: int
    results: tuple[DataAccessResult, ...]
    block_number: int

    def to_bytes(self) -> bytes:
        head = bytes([SET_RESPONSE, self.CHOICE, self.invoke_id])
        body = encode_length(len(self.results)) + bytes(self.results)
        return head + body + self.block_number.to_bytes(4, "big")


SetResponse = (
    SetResponseNormal
    | SetResponseBlock
    | SetResponseLastBlock
    | SetResponseWithList
    | SetResponseLastBlockWithList
)


def parse_set_response(data: bytes) -> SetResponse:
    r = Reader(data)
    if r.u8() != SET_RESPONSE:
        raise ApduError("not a Set-Response")
    choice, invoke_id = r.u8(), r.u8()
    response: SetResponse
    if choice == SetResponseNormal.CHOICE:
        response = SetResponseNormal(invoke_id, data_access_result(r.u8()))
    elif choice == SetResponseBlock.CHOICE:
        response = SetResponseBlock(invoke_id, r.u32())
    elif choice == SetResponseLastBlock.CHOICE:
        response = SetResponseLastBlock(invoke_id, data_access_result(r.u8()), r.u32())
    elif choice == SetResponseWithList.CHOICE:
        results = tuple(data_access_result(r.u8()) for _ in range(r.length()))
        response = SetResponseWithList(invoke_id, results)
    elif choice == SetResponseLastBlockWithList.CHOICE:
        results = tuple(data_access_result(r.u8()) for _ in range(r.length()))
        response = SetResponseLastBlockWithList(invoke_id, results, r.u32())
    else:
        raise UnknownApduError(SET_RESPONSE, f"Set-Response choice {choice}")
    r.expect_end()
    return response
