"""SET service: normal, with-list, and block transfer of one value or of a value list
(Green Book §9.3.5; DSMR P3 §2.1.3: Set, Set with list, block transfer with Set, at most
16 references).
"""

from __future__ import annotations

from twin.p3.dlms.axdr import Reader
from twin.p3.dlms.blocks import BlockError, Incoming, list_refusal
from twin.p3.dlms.cosem import DataAccessResult
from twin.p3.dlms.errors import ApduError
from twin.p3.dlms.initiate import NOT_POSSIBLE, NOT_SUPPORTED, Conformance
from twin.p3.dlms.set_action import (
    DataBlock,
    SetRequestBlock,
    SetRequestFirstBlock,
    SetRequestNormal,
    SetRequestWithList,
    SetRequestWithListFirstBlock,
    SetResponseBlock,
    SetResponseLastBlock,
    SetResponseLastBlockWithList,
    SetResponseNormal,
    SetResponseWithList,
    parse_set_request,
)
from twin.p3.server.association import Session
from twin.p3.server.interfaces import CosemObjects

CONFIRMED = 0x40  # invoke-id-and-priority bit 6: service-class confirmed

FirstBlock = SetRequestFirstBlock | SetRequestWithListFirstBlock


class SetService:
    """Serves SET requests of one association; holds the SET block-transfer state."""

    def __init__(self, max_list_items: int) -> None:
        self._max_items = max_list_items
        self._transfer: Incoming[FirstBlock] | None = None

    def reset(self) -> None:
        self._transfer = None

    def handle(self, session: Session, objects: CosemObjects, plain: bytes) -> bytes | None:
        request = parse_set_request(plain)
        if Conformance.SET not in session.conformance:
            return NOT_SUPPORTED.to_bytes()
        if isinstance(request, SetRequestNormal):
            result = objects.set(session.client, request.ref, request.access, request.value)
            answer = SetResponseNormal(request.invoke_id, result).to_bytes()
        elif isinstance(request, SetRequestWithList):
            answer = self._with_list(session, objects, request)
        else:
            answer = self._block(session, objects, request)
        return answer if request.invoke_id & CONFIRMED else None

    def _with_list(
        self, session: Session, objects: CosemObjects, request: SetRequestWithList
    ) -> bytes:
        refused = list_refusal(session.conformance, len(request.items), self._max_items)
        if refused is not None:
            return refused
        if len(request.values) != len(request.items):
            return NOT_POSSIBLE.to_bytes()
        pairs = zip(request.items, request.values, strict=True)
        results = tuple(objects.set(session.client, i.ref, i.access, v) for i, v in pairs)
        return SetResponseWithList(request.invoke_id, results).to_bytes()

    def _block(
        self,
        session: Session,
        objects: CosemObjects,
        request: SetRequestFirstBlock | SetRequestBlock | SetRequestWithListFirstBlock,
    ) -> bytes:
        if Conformance.BLOCK_TRANSFER_WITH_SET not in session.conformance:
            return NOT_SUPPORTED.to_bytes()
        if isinstance(request, SetRequestWithListFirstBlock):
            refused = list_refusal(session.conformance, len(request.items), self._max_items)
            if refused is not None:
                return refused
        if not isinstance(request, SetRequestBlock):
            self._transfer = Incoming(request)
        transfer = self._transfer
        error = self._append(request.block)
        if error is not None or transfer is None:
            self._transfer = None
            first = None if transfer is None else transfer.first
            return self._last(request.invoke_id, first, error, request.block.number)
        if not request.block.last:
            return SetResponseBlock(request.invoke_id, request.block.number).to_bytes()
        self._transfer = None
        return self._apply(session, objects, transfer, request.invoke_id)

    def _append(self, block: DataBlock) -> DataAccessResult | None:
        transfer = self._transfer
        if transfer is None:
            return DataAccessResult.NO_LONG_SET_IN_PROGRESS
        error = transfer.append(block)
        if error is BlockError.OUT_OF_SEQUENCE:
            return DataAccessResult.DATA_BLOCK_NUMBER_INVALID
        return DataAccessResult.OTHER_REASON if error is BlockError.TOO_LARGE else None

    @staticmethod
    def _last(
        invoke_id: int, first: FirstBlock | None, error: DataAccessResult | None, number: int
    ) -> bytes:
        result = error or DataAccessResult.OTHER_REASON
        if isinstance(first, SetRequestWithListFirstBlock):
            results = tuple(result for _ in first.items)
            return SetResponseLastBlockWithList(invoke_id, results, number).to_bytes()
        return SetResponseLastBlock(invoke_id, result, number).to_bytes()

    @staticmethod
    def _apply(
        session: Session, objects: CosemObjects, transfer: Incoming[FirstBlock], invoke_id: int
    ) -> bytes:
        raw = transfer.data()
        first, number = transfer.first, transfer.block_number
        if isinstance(first, SetRequestFirstBlock):
            values = split_values(raw, 1, counted=False)
            if values is None:  # the blocks do not form one Data
                return SetResponseLastBlock(
                    invoke_id, DataAccessResult.TYPE_UNMATCHED, number
                ).to_bytes()
            result = objects.set(session.client, first.ref, first.access, raw)
            return SetResponseLastBlock(invoke_id, result, number).to_bytes()
        values = split_values(raw, len(first.items), counted=True)
        if values is None:
            results = tuple(DataAccessResult.TYPE_UNMATCHED for _ in first.items)
        else:
            pairs = zip(first.items, values, strict=True)
            results = tuple(objects.set(session.client, i.ref, i.access, v) for i, v in pairs)
        return SetResponseLastBlockWithList(invoke_id, results, number).to_bytes()


def split_values(raw: bytes, count: int, *, counted: bool) -> list[bytes] | None:
    """`count` whole Data values (after an A-XDR count if `counted`), or None."""
    try:
        reader = Reader(raw)
        if counted and reader.length() != count:
            return None
        values = [reader.data() for _ in range(count)]
        reader.expect_end()
    except ApduError:
        return None
    return values
