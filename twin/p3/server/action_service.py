"""ACTION service: normal, with-list, and block transfer both ways (Green Book §9.3.7 ACTION
service and its block transfer; DSMR P3 §2.1.3: Action, with-list of at most 16 references).

Long method parameters arrive in pblocks: Action-Request-With-First-Pblock (or
-With-List-And-First-Pblock), then Action-Request-With-Pblock; every block but the last is
acknowledged by Action-Response-Next-Pblock with its number, and the last one invokes the
method(s). A response too long for the client's PDU leaves in Action-Response-With-Pblock
blocks; the client asks for each following one with Action-Request-Next-Pblock carrying the
number of the block it received (as GET-Request-Next).

What the raw data of the blocks is: the method invocation parameters (one Data) or the
parameter list (SEQUENCE OF Data, count first, as for SET-with-list blocks); the return
parameters of one method (one Data, as gurux-dlms sends and reads them) or, for a list, the
SEQUENCE OF Action-Response-With-Optional-Data.

Errors: a block out of sequence aborts the transfer with long-action-aborted; a pblock or a
Next-Pblock with no transfer running gets no-long-action-in-progress (Action-Result 15/16).
"""

from __future__ import annotations

from dataclasses import dataclass

from twin.p3.dlms.action import (
    ActionReply,
    ActionRequest,
    ActionRequestNextPblock,
    ActionRequestNormal,
    ActionRequestWithFirstPblock,
    ActionRequestWithList,
    ActionRequestWithListAndFirstPblock,
    ActionRequestWithPblock,
    ActionResponseNextPblock,
    ActionResponseNormal,
    ActionResponseWithList,
    ActionResponseWithPblock,
    parse_action_request,
    replies_bytes,
)
from twin.p3.dlms.blocks import BlockError, Incoming, list_refusal
from twin.p3.dlms.cosem import ActionResult, AttributeRef
from twin.p3.dlms.initiate import NOT_POSSIBLE, NOT_SUPPORTED, Conformance
from twin.p3.dlms.set_action import DataBlock
from twin.p3.server.association import Session
from twin.p3.server.interfaces import CosemObjects
from twin.p3.server.set_service import CONFIRMED, split_values

_PBLOCK_HEADER = 11  # C7 02 iip last-block(1) block-number(4) length(<=3)

FirstPblock = ActionRequestWithFirstPblock | ActionRequestWithListAndFirstPblock


@dataclass(slots=True)
class _Outgoing:
    """An encoded response leaving in blocks."""

    invoke_id: int
    data: bytes
    offset: int = 0
    block_number: int = 0


@dataclass(frozen=True, slots=True)
class _Call:
    session: Session
    objects: CosemObjects
    room: int  # bytes available for one plain response APDU

    def allowed(self, needed: Conformance) -> bool:
        return needed in self.session.conformance

    def invoke(self, ref: AttributeRef, parameters: bytes | None) -> ActionReply:
        outcome = self.objects.action(self.session.client, ref, parameters)
        return ActionReply(outcome.result, outcome.return_value)


class ActionService:
    """Serves ACTION requests of one association; holds both block-transfer states."""

    def __init__(self, max_list_items: int) -> None:
        self._max_items = max_list_items
        self._incoming: Incoming[FirstPblock] | None = None
        self._outgoing: _Outgoing | None = None

    def reset(self) -> None:
        self._incoming = None
        self._outgoing = None

    def handle(
        self, session: Session, objects: CosemObjects, plain: bytes, room: int
    ) -> bytes | None:
        """Answer one Action-Request; None when it is unconfirmed. `room`: the largest
        plain response APDU the client accepts once ciphered."""
        request = parse_action_request(plain)
        if Conformance.ACTION not in session.conformance:
            return NOT_SUPPORTED.to_bytes()
        answer = self._dispatch(_Call(session, objects, room), request)
        return answer if request.invoke_id & CONFIRMED else None

    def _dispatch(self, call: _Call, request: ActionRequest) -> bytes:
        if isinstance(request, ActionRequestNextPblock):
            return self._next_pblock(call, request)
        self._outgoing = None  # a new request abandons an unfinished response (as GET does)
        if isinstance(request, ActionRequestNormal):
            self._incoming = None
            reply = call.invoke(request.ref, request.parameters)
            return self._respond(call, request.invoke_id, (reply,), listed=False)
        if isinstance(request, ActionRequestWithList):
            self._incoming = None
            return self._with_list(call, request)
        return self._pblock(call, request)

    def _list_refused(self, call: _Call, count: int) -> bytes | None:
        return list_refusal(call.session.conformance, count, self._max_items)

    def _with_list(self, call: _Call, request: ActionRequestWithList) -> bytes:
        refused = self._list_refused(call, len(request.refs))
        if refused is not None:
            return refused
        if len(request.parameters) != len(request.refs):
            return NOT_POSSIBLE.to_bytes()
        pairs = zip(request.refs, request.parameters, strict=True)
        replies = tuple(call.invoke(ref, parameters) for ref, parameters in pairs)
        return self._respond(call, request.invoke_id, replies, listed=True)

    # ---- the response, whole or in blocks ----------------------------------------------
    def _respond(
        self, call: _Call, invoke_id: int, replies: tuple[ActionReply, ...], *, listed: bool
    ) -> bytes:
        first = replies[0]
        whole = (
            ActionResponseWithList(invoke_id, replies)
            if listed
            else ActionResponseNormal(invoke_id, first.result, first.return_value)
        )
        encoded = whole.to_bytes()
        if len(encoded) <= call.room:
            return encoded
        raw = replies_bytes(replies) if listed else _return_data(first)
        if raw is None or not call.allowed(Conformance.BLOCK_TRANSFER_WITH_ACTION):
            # Too long and no way to split it: say why instead of overflowing.
            return _failed(invoke_id, len(replies) if listed else None, ActionResult.OTHER_REASON)
        self._outgoing = _Outgoing(invoke_id, raw)
        return self._next_block(call)

    def _next_pblock(self, call: _Call, request: ActionRequestNextPblock) -> bytes:
        outgoing = self._outgoing
        if outgoing is None:
            no_transfer = ActionResult.NO_LONG_ACTION_IN_PROGRESS
            return ActionResponseNormal(request.invoke_id, no_transfer).to_bytes()
        if request.block_number != outgoing.block_number:
            self._outgoing = None
            aborted = ActionResult.LONG_ACTION_ABORTED
            return ActionResponseNormal(request.invoke_id, aborted).to_bytes()
        return self._next_block(call)

    def _next_block(self, call: _Call) -> bytes:
        outgoing = self._outgoing
        assert outgoing is not None
        size = call.room - _PBLOCK_HEADER
        chunk = outgoing.data[outgoing.offset : outgoing.offset + size]
        outgoing.offset += len(chunk)
        outgoing.block_number += 1
        last = outgoing.offset >= len(outgoing.data)
        if last:
            self._outgoing = None
        block = DataBlock(last, outgoing.block_number, chunk)
        return ActionResponseWithPblock(outgoing.invoke_id, block).to_bytes()

    # ---- parameters in blocks ----------------------------------------------------------
    def _pblock(self, call: _Call, request: FirstPblock | ActionRequestWithPblock) -> bytes:
        if not call.allowed(Conformance.BLOCK_TRANSFER_WITH_ACTION):
            return NOT_SUPPORTED.to_bytes()
        if isinstance(request, ActionRequestWithListAndFirstPblock):
            refused = self._list_refused(call, len(request.refs))
            if refused is not None:
                self._incoming = None
                return refused
        if not isinstance(request, ActionRequestWithPblock):
            self._incoming = Incoming(request)
        incoming = self._incoming
        error = self._append(request.block)
        if error is not None or incoming is None:
            self._incoming = None
            count = _list_size(None if incoming is None else incoming.first)
            return _failed(request.invoke_id, count, error or ActionResult.OTHER_REASON)
        if not request.block.last:
            return ActionResponseNextPblock(request.invoke_id, request.block.number).to_bytes()
        self._incoming = None
        return self._complete(call, incoming, request.invoke_id)

    def _append(self, block: DataBlock) -> ActionResult | None:
        incoming = self._incoming
        if incoming is None:
            return ActionResult.NO_LONG_ACTION_IN_PROGRESS
        error = incoming.append(block)
        if error is BlockError.OUT_OF_SEQUENCE:
            return ActionResult.LONG_ACTION_ABORTED
        return ActionResult.OTHER_REASON if error is BlockError.TOO_LARGE else None

    def _complete(self, call: _Call, incoming: Incoming[FirstPblock], invoke_id: int) -> bytes:
        raw = incoming.data()
        first = incoming.first
        if isinstance(first, ActionRequestWithFirstPblock):
            whole = split_values(raw, 1, counted=False) is not None
            reply = call.invoke(first.ref, raw) if whole else ActionReply(_UNMATCHED)
            return self._respond(call, invoke_id, (reply,), listed=False)
        values = split_values(raw, len(first.refs), counted=True)
        if values is None:  # the blocks do not form the announced parameter list
            replies = tuple(ActionReply(_UNMATCHED) for _ in first.refs)
        else:
            pairs = zip(first.refs, values, strict=True)
            replies = tuple(call.invoke(ref, value) for ref, value in pairs)
        return self._respond(call, invoke_id, replies, listed=True)


_UNMATCHED = ActionResult.TYPE_UNMATCHED


def _return_data(reply: ActionReply) -> bytes | None:
    """What the blocks of a single method's response carry: its return Data (success only,
    a failure has no long return parameters)."""
    if reply.result is ActionResult.SUCCESS and isinstance(reply.return_value, bytes):
        return reply.return_value
    return None


def _list_size(first: FirstPblock | None) -> int | None:
    return len(first.refs) if isinstance(first, ActionRequestWithListAndFirstPblock) else None


def _failed(invoke_id: int, count: int | None, result: ActionResult) -> bytes:
    """The whole request failed: one result, or the same result per method of a list."""
    if count is None:
        return ActionResponseNormal(invoke_id, result).to_bytes()
    replies = tuple(ActionReply(result) for _ in range(count))
    return ActionResponseWithList(invoke_id, replies).to_bytes()
