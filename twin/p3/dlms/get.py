"""GET service APDUs (Green Book §9.5: Get-Request 0xC0, Get-Response 0xC4).

Requests are decoded by the server and encoded by tests; responses the other way round, so
every class round-trips. Attribute values are encoded A-XDR `Data` bytes.
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
    read_result,
    result_bytes,
)
from twin.p3.dlms.errors import ApduError, UnknownApduError

GET_REQUEST = 0xC0
GET_RESPONSE = 0xC4


@dataclass(frozen=True, slots=True)
class GetRequestNormal:
    CHOICE: ClassVar[int] = 1

    invoke_id: int
    ref: AttributeRef
    access: SelectiveAccess | None = None

    def to_bytes(self) -> bytes:
        head = bytes([GET_REQUEST, self.CHOICE, self.invoke_id])
        return head + self.ref.to_bytes() + optional_access_bytes(self.access)


@dataclass(frozen=True, slots=True)
class GetRequestNext:
    CHOICE: ClassVar[int] = 2

    invoke_id: int
    block_number: int

    def to_bytes(self) -> bytes:
        head = bytes([GET_REQUEST, self.CHOICE, self.invoke_id])
        return head + self.block_number.to_bytes(4, "big")


@dataclass(frozen=True, slots=True)
class GetRequestWithList:
    CHOICE: ClassVar[int] = 3

    invoke_id: int
    items: tuple[AttributeWithSelection, ...]

    def to_bytes(self) -> bytes:
        head = bytes([GET_REQUEST, self.CHOICE, self.invoke_id])
        body = b"".join(item.to_bytes() for item in self.items)
        return head + encode_length(len(self.items)) + body


GetRequest = GetRequestNormal | GetRequestNext | GetRequestWithList


def parse_get_request(data: bytes) -> GetRequest:
    r = Reader(data)
    if r.u8() != GET_REQUEST:
        raise ApduError("not a Get-Request")
    choice, invoke_id = r.u8(), r.u8()
    request: GetRequest
    if choice == GetRequestNormal.CHOICE:
        request = GetRequestNormal(
            invoke_id, AttributeRef.read(r), SelectiveAccess.read_optional(r)
        )
    elif choice == GetRequestNext.CHOICE:
        request = GetRequestNext(invoke_id, r.u32())
    elif choice == GetRequestWithList.CHOICE:
        items = tuple(AttributeWithSelection.read(r) for _ in range(r.length()))
        request = GetRequestWithList(invoke_id, items)
    else:
        raise UnknownApduError(GET_REQUEST, f"Get-Request choice {choice}")
    r.expect_end()
    return request


@dataclass(frozen=True, slots=True)
class GetResponseNormal:
    CHOICE: ClassVar[int] = 1

    invoke_id: int
    result: bytes | DataAccessResult

    def to_bytes(self) -> bytes:
        return bytes([GET_RESPONSE, self.CHOICE, self.invoke_id]) + result_bytes(self.result)


@dataclass(frozen=True, slots=True)
class GetResponseWithBlock:
    """DataBlock-G: raw-data [0] (a slice of the encoded result) or a data-access-result [1]."""

    CHOICE: ClassVar[int] = 2

    invoke_id: int
    last_block: bool
    block_number: int
    raw: bytes | DataAccessResult

    def to_bytes(self) -> bytes:
        out = bytes([GET_RESPONSE, self.CHOICE, self.invoke_id, int(self.last_block)])
        out += self.block_number.to_bytes(4, "big")
        if isinstance(self.raw, DataAccessResult):
            return out + bytes([1, self.raw])
        return out + b"\x00" + encode_length(len(self.raw)) + self.raw


@dataclass(frozen=True, slots=True)
class GetResponseWithList:
    CHOICE: ClassVar[int] = 3

    invoke_id: int
    results: tuple[bytes | DataAccessResult, ...]

    def to_bytes(self) -> bytes:
        out = bytes([GET_RESPONSE, self.CHOICE, self.invoke_id])
        out += encode_length(len(self.results))
        return out + b"".join(result_bytes(result) for result in self.results)


GetResponse = GetResponseNormal | GetResponseWithBlock | GetResponseWithList


def parse_get_response(data: bytes) -> GetResponse:
    r = Reader(data)
    if r.u8() != GET_RESPONSE:
        raise ApduError("not a Get-Response")
    choice, invoke_id = r.u8(), r.u8()
    response: GetResponse
    if choice == GetResponseNormal.CHOICE:
        response = GetResponseNormal(invoke_id, read_result(r))
    elif choice == GetResponseWithBlock.CHOICE:
        last, number = bool(r.u8()), r.u32()
        kind = r.u8()
        raw: bytes | DataAccessResult
        raw = r.take(r.length()) if kind == 0 else data_access_result(r.u8())
        response = GetResponseWithBlock(invoke_id, last, number, raw)
    elif choice == GetResponseWithList.CHOICE:
        response = GetResponseWithList(invoke_id, tuple(read_result(r) for _ in range(r.length())))
    else:
        raise UnknownApduError(GET_RESPONSE, f"Get-Response choice {choice}")
    r.expect_end()
    return response
