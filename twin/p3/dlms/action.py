"""ACTION service APDUs (Green Book §9.5: Action-Request 0xC3 / Action-Response 0xC7).

Action-Request CHOICE: normal [1], next-pblock [2], with-list [3], with-first-pblock [4],
with-list-and-first-pblock [5], with-pblock [6]. Action-Response CHOICE: normal [1],
with-pblock [2], with-list [3], next-pblock [4]. The pblocks are DataBlock-SA, as for SET.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from twin.p3.dlms.axdr import Reader, encode_length
from twin.p3.dlms.cosem import (
    ActionResult,
    AttributeRef,
    DataAccessResult,
    read_result,
    result_bytes,
)
from twin.p3.dlms.errors import ApduError, UnknownApduError
from twin.p3.dlms.set_action import DataBlock

ACTION_REQUEST = 0xC3
ACTION_RESPONSE = 0xC7


def _head(tag: int, choice: int, invoke_id: int) -> bytes:
    return bytes([tag, choice, invoke_id])


def _refs_bytes(refs: tuple[AttributeRef, ...]) -> bytes:
    return encode_length(len(refs)) + b"".join(ref.to_bytes() for ref in refs)


def _read_refs(r: Reader) -> tuple[AttributeRef, ...]:
    return tuple(AttributeRef.read(r) for _ in range(r.length()))


@dataclass(frozen=True, slots=True)
class ActionRequestNormal:
    CHOICE: ClassVar[int] = 1
    invoke_id: int
    ref: AttributeRef
    parameters: bytes | None = None

    def to_bytes(self) -> bytes:
        head = _head(ACTION_REQUEST, self.CHOICE, self.invoke_id) + self.ref.to_bytes()
        return head + (b"\x00" if self.parameters is None else b"\x01" + self.parameters)


@dataclass(frozen=True, slots=True)
class ActionRequestNextPblock:
    """The client acknowledges response block `block_number` and asks for the next one."""

    CHOICE: ClassVar[int] = 2
    invoke_id: int
    block_number: int

    def to_bytes(self) -> bytes:
        head = _head(ACTION_REQUEST, self.CHOICE, self.invoke_id)
        return head + self.block_number.to_bytes(4, "big")


@dataclass(frozen=True, slots=True)
class ActionRequestWithList:
    """Method descriptors, then one Data per method (null-data when it takes none)."""

    CHOICE: ClassVar[int] = 3
    invoke_id: int
    refs: tuple[AttributeRef, ...]
    parameters: tuple[bytes, ...]

    def to_bytes(self) -> bytes:
        out = _head(ACTION_REQUEST, self.CHOICE, self.invoke_id) + _refs_bytes(self.refs)
        return out + encode_length(len(self.parameters)) + b"".join(self.parameters)


@dataclass(frozen=True, slots=True)
class ActionRequestWithFirstPblock:
    """The blocks carry the method invocation parameters (one Data)."""

    CHOICE: ClassVar[int] = 4
    invoke_id: int
    ref: AttributeRef
    block: DataBlock

    def to_bytes(self) -> bytes:
        head = _head(ACTION_REQUEST, self.CHOICE, self.invoke_id) + self.ref.to_bytes()
        return head + self.block.to_bytes()


@dataclass(frozen=True, slots=True)
class ActionRequestWithListAndFirstPblock:
    """The blocks carry the parameter list (SEQUENCE OF Data, count first)."""

    CHOICE: ClassVar[int] = 5
    invoke_id: int
    refs: tuple[AttributeRef, ...]
    block: DataBlock

    def to_bytes(self) -> bytes:
        out = _head(ACTION_REQUEST, self.CHOICE, self.invoke_id) + _refs_bytes(self.refs)
        return out + self.block.to_bytes()


@dataclass(frozen=True, slots=True)
class ActionRequestWithPblock:
    CHOICE: ClassVar[int] = 6
    invoke_id: int
    block: DataBlock

    def to_bytes(self) -> bytes:
        return _head(ACTION_REQUEST, self.CHOICE, self.invoke_id) + self.block.to_bytes()


ActionRequest = (
    ActionRequestNormal
    | ActionRequestNextPblock
    | ActionRequestWithList
    | ActionRequestWithFirstPblock
    | ActionRequestWithListAndFirstPblock
    | ActionRequestWithPblock
)


def parse_action_request(data: bytes) -> ActionRequest:
    r = Reader(data)
    if r.u8() != ACTION_REQUEST:
        raise ApduError("not an Action-Request")
    choice, invoke_id = r.u8(), r.u8()
    request: ActionRequest
    if choice == ActionRequestNormal.CHOICE:
        ref = AttributeRef.read(r)
        request = ActionRequestNormal(invoke_id, ref, r.data() if r.u8() else None)
    elif choice == ActionRequestNextPblock.CHOICE:
        request = ActionRequestNextPblock(invoke_id, r.u32())
    elif choice == ActionRequestWithList.CHOICE:
        refs = _read_refs(r)
        request = ActionRequestWithList(invoke_id, refs, tuple(r.data() for _ in range(r.length())))
    elif choice == ActionRequestWithFirstPblock.CHOICE:
        request = ActionRequestWithFirstPblock(invoke_id, AttributeRef.read(r), DataBlock.read(r))
    elif choice == ActionRequestWithListAndFirstPblock.CHOICE:
        refs = _read_refs(r)
        request = ActionRequestWithListAndFirstPblock(invoke_id, refs, DataBlock.read(r))
    elif choice == ActionRequestWithPblock.CHOICE:
        request = ActionRequestWithPblock(invoke_id, DataBlock.read(r))
    else:
        raise UnknownApduError(ACTION_REQUEST, f"Action-Request choice {choice}")
    r.expect_end()
    return request


def _action_result(value: int) -> ActionResult:
    try:
        return ActionResult(value)
    except ValueError as exc:
        raise ApduError(f"action-result {value} unknown") from exc


@dataclass(frozen=True, slots=True)
class ActionReply:
    """Action-Response-With-Optional-Data: result + optional Get-Data-Result."""

    result: ActionResult
    return_value: bytes | DataAccessResult | None = None

    def to_bytes(self) -> bytes:
        if self.return_value is None:
            return bytes([self.result, 0])
        return bytes([self.result, 1]) + result_bytes(self.return_value)

    @classmethod
    def read(cls, r: Reader) -> ActionReply:
        result = _action_result(r.u8())
        return cls(result, read_result(r) if r.u8() else None)


@dataclass(frozen=True, slots=True)
class ActionResponseNormal:
    CHOICE: ClassVar[int] = 1
    invoke_id: int
    result: ActionResult
    return_value: bytes | DataAccessResult | None = None

    def to_bytes(self) -> bytes:
        reply = ActionReply(self.result, self.return_value)
        return _head(ACTION_RESPONSE, self.CHOICE, self.invoke_id) + reply.to_bytes()


@dataclass(frozen=True, slots=True)
class ActionResponseWithPblock:
    """One block of a response too long for one APDU (see `twin.p3.server.action_service`)."""

    CHOICE: ClassVar[int] = 2
    invoke_id: int
    block: DataBlock

    def to_bytes(self) -> bytes:
        return _head(ACTION_RESPONSE, self.CHOICE, self.invoke_id) + self.block.to_bytes()


@dataclass(frozen=True, slots=True)
class ActionResponseWithList:
    CHOICE: ClassVar[int] = 3
    invoke_id: int
    replies: tuple[ActionReply, ...]

    def to_bytes(self) -> bytes:
        return _head(ACTION_RESPONSE, self.CHOICE, self.invoke_id) + replies_bytes(self.replies)


@dataclass(frozen=True, slots=True)
class ActionResponseNextPblock:
    """The server acknowledges request block `block_number` and waits for the next one."""

    CHOICE: ClassVar[int] = 4
    invoke_id: int
    block_number: int

    def to_bytes(self) -> bytes:
        head = _head(ACTION_RESPONSE, self.CHOICE, self.invoke_id)
        return head + self.block_number.to_bytes(4, "big")


def replies_bytes(replies: tuple[ActionReply, ...]) -> bytes:
    """SEQUENCE OF Action-Response-With-Optional-Data."""
    return encode_length(len(replies)) + b"".join(reply.to_bytes() for reply in replies)


def read_replies(r: Reader) -> tuple[ActionReply, ...]:
    return tuple(ActionReply.read(r) for _ in range(r.length()))


ActionResponse = (
    ActionResponseNormal
    | ActionResponseWithPblock
    | ActionResponseWithList
    | ActionResponseNextPblock
)


def parse_action_response(data: bytes) -> ActionResponse:
    r = Reader(data)
    if r.u8() != ACTION_RESPONSE:
        raise ApduError("not an Action-Response")
    choice, invoke_id = r.u8(), r.u8()
    response: ActionResponse
    if choice == ActionResponseNormal.CHOICE:
        reply = ActionReply.read(r)
        response = ActionResponseNormal(invoke_id, reply.result, reply.return_value)
    elif choice == ActionResponseWithPblock.CHOICE:
        response = ActionResponseWithPblock(invoke_id, DataBlock.read(r))
    elif choice == ActionResponseWithList.CHOICE:
        response = ActionResponseWithList(invoke_id, read_replies(r))
    elif choice == ActionResponseNextPblock.CHOICE:
        response = ActionResponseNextPblock(invoke_id, r.u32())
    else:
        raise UnknownApduError(ACTION_RESPONSE, f"Action-Response choice {choice}")
    r.expect_end()
    return response
