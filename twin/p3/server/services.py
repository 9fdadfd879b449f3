"""xDLMS GET / SET / ACTION service provider with block transfer (Green Book §9.3.4-9.3.7;
DSMR P3 §2.1 services per client, §3.5 with-list answers partial results per item).

Works on plain (deciphered) APDUs; the server wraps the answer in ciphering afterwards, so
every size decision takes `overhead` (the ciphering bytes) into account: the answer as sent
must fit the client's max receive PDU size.
"""

from __future__ import annotations

from dataclasses import dataclass

from twin.p3.dlms.action import ACTION_REQUEST
from twin.p3.dlms.axdr import encode_length
from twin.p3.dlms.blocks import list_refusal
from twin.p3.dlms.cosem import DataAccessResult, result_bytes
from twin.p3.dlms.errors import ApduError, UnknownApduError
from twin.p3.dlms.get import (
    GET_REQUEST,
    GetRequestNext,
    GetRequestNormal,
    GetRequestWithList,
    GetResponseNormal,
    GetResponseWithBlock,
    GetResponseWithList,
    parse_get_request,
)
from twin.p3.dlms.initiate import NOT_SUPPORTED, Conformance
from twin.p3.dlms.set_action import SET_REQUEST
from twin.p3.server.action_service import ActionService
from twin.p3.server.association import ServerConfig, Session
from twin.p3.server.interfaces import CosemObjects
from twin.p3.server.set_service import CONFIRMED, SetService

_BLOCK_HEADER = 12  # C4 02 iip last block(4) choice length(<=3)


@dataclass(slots=True)
class _GetTransfer:
    invoke_id: int
    data: bytes
    offset: int = 0
    block_number: int = 0


class ServiceProvider:
    """Serves one association's requests; holds its block-transfer state."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.get_transfer: _GetTransfer | None = None
        self.sets = SetService(config.max_list_items)
        self.actions = ActionService(config.max_list_items)

    def reset(self) -> None:
        """Drop any transfer in progress (new association, release or abort)."""
        self.get_transfer = None
        self.sets.reset()
        self.actions.reset()

    def serve(
        self, session: Session, objects: CosemObjects, plain: bytes, overhead: int
    ) -> bytes | None:
        """Answer one request APDU; None for an unconfirmed service.

        Raises `ApduError` (incl. `UnknownApduError`) for bytes that do not decode.
        """
        if not plain:
            raise ApduError("empty APDU")
        tag = plain[0]
        call = _Call(self, session, objects, overhead)
        if tag == GET_REQUEST:
            return call.get(plain)
        if tag == SET_REQUEST:
            return call.set(plain)
        if tag == ACTION_REQUEST:
            return call.action(plain)
        raise UnknownApduError(tag, f"0x{tag:02X} is not a request this server serves")


@dataclass(slots=True)
class _Call:
    provider: ServiceProvider
    session: Session
    objects: CosemObjects
    overhead: int

    @property
    def room(self) -> int:
        """Bytes available for one plain response APDU."""
        return self.session.client_max_pdu - self.overhead

    def allowed(self, needed: Conformance) -> bool:
        return needed in self.session.conformance

    # ---- GET ---------------------------------------------------------------------------
    def get(self, plain: bytes) -> bytes | None:
        request = parse_get_request(plain)
        if not self.allowed(Conformance.GET):
            return NOT_SUPPORTED.to_bytes()
        if isinstance(request, GetRequestNext):
            return self._get_next(request)
        self.provider.get_transfer = None  # a new GET abandons any unfinished block transfer
        if isinstance(request, GetRequestNormal):
            result = self.objects.get(self.session.client, request.ref, request.access)
            answer = GetResponseNormal(request.invoke_id, result).to_bytes()
            return self._fit_get(request.invoke_id, answer, result)
        return self._get_with_list(request)

    def _get_with_list(self, request: GetRequestWithList) -> bytes | None:
        max_items = self.provider.config.max_list_items
        refused = list_refusal(self.session.conformance, len(request.items), max_items)
        if refused is not None:
            return refused
        client = self.session.client
        results = tuple(self.objects.get(client, i.ref, i.access) for i in request.items)
        answer = GetResponseWithList(request.invoke_id, results).to_bytes()
        raw = encode_length(len(results)) + b"".join(result_bytes(r) for r in results)
        return self._fit_get(request.invoke_id, answer, raw)

    def _fit_get(
        self, invoke_id: int, answer: bytes, raw: bytes | DataAccessResult
    ) -> bytes | None:
        if not invoke_id & CONFIRMED:
            return None
        if len(answer) <= self.room:
            return answer
        if isinstance(raw, DataAccessResult) or not self.allowed(
            Conformance.BLOCK_TRANSFER_WITH_GET
        ):
            return GetResponseNormal(invoke_id, DataAccessResult.OTHER_REASON).to_bytes()
        self.provider.get_transfer = _GetTransfer(invoke_id, raw)
        return self._next_block()

    def _get_next(self, request: GetRequestNext) -> bytes:
        transfer = self.provider.get_transfer
        if transfer is None:
            error = DataAccessResult.NO_LONG_GET_IN_PROGRESS
            return GetResponseWithBlock(
                request.invoke_id, True, request.block_number, error
            ).to_bytes()
        if request.block_number != transfer.block_number:
            self.provider.get_transfer = None
            error = DataAccessResult.DATA_BLOCK_NUMBER_INVALID
            return GetResponseWithBlock(
                request.invoke_id, True, request.block_number, error
            ).to_bytes()
        return self._next_block()

    def _next_block(self) -> bytes:
        transfer = self.provider.get_transfer
        assert transfer is not None
        size = self.room - _BLOCK_HEADER
        chunk = transfer.data[transfer.offset : transfer.offset + size]
        transfer.offset += len(chunk)
        transfer.block_number += 1
        last = transfer.offset >= len(transfer.data)
        if last:
            self.provider.get_transfer = None
        block = GetResponseWithBlock(transfer.invoke_id, last, transfer.block_number, chunk)
        return block.to_bytes()

    # ---- SET ---------------------------------------------------------------------------
    def set(self, plain: bytes) -> bytes | None:
        return self.provider.sets.handle(self.session, self.objects, plain)

    # ---- ACTION ------------------------------------------------------------------------
    def action(self, plain: bytes) -> bytes | None:
        return self.provider.actions.handle(self.session, self.objects, plain, self.room)
