"""ACTION with list and with block transfer both ways (Green Book §9.3.7), sent as our APDUs
inside dlms-cosem's ciphering, and driven by the independent gurux-dlms client."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from gurux_dlms.enums import DataType
from gurux_dlms.GXDLMSExceptionResponse import GXDLMSExceptionResponse
from gurux_dlms.objects import GXDLMSImageTransfer

from tests.unit.p3.helpers import (
    CLOCK,
    Challenges,
    Counters,
    FakeObjects,
    Keys,
    MemoryLink,
    Meter,
    ciphered_exchange,
    management_client,
    wrap,
)
from tests.unit.p3.test_p3_peer_gurux import management as gurux_management
from twin.p3.dlms.action import (
    ActionReply,
    ActionRequestNextPblock,
    ActionRequestNormal,
    ActionRequestWithFirstPblock,
    ActionRequestWithList,
    ActionRequestWithListAndFirstPblock,
    ActionRequestWithPblock,
    ActionResponse,
    ActionResponseNextPblock,
    ActionResponseNormal,
    ActionResponseWithList,
    ActionResponseWithPblock,
    parse_action_request,
    parse_action_response,
    read_replies,
)
from twin.p3.dlms.axdr import Reader, encode_length, octet_string
from twin.p3.dlms.cosem import ActionResult, AttributeRef, DataAccessResult
from twin.p3.dlms.initiate import ExceptionResponse, ServiceError
from twin.p3.dlms.security import CipheredApdu
from twin.p3.dlms.set_action import DataBlock
from twin.p3.server.association import ServerConfig
from twin.p3.server.connection import DlmsServer
from twin.p3.server.interfaces import ActionOutcome

IID = 0xC1
IMAGE = bytes([0, 0, 44, 0, 0, 255])
IMAGE_BLOCK = AttributeRef(18, IMAGE, 2)  # image_block_transfer(structure{n, octets})
LONG_REPLY = AttributeRef(18, IMAGE, 9)  # a fake method with a long return value
ADJUST = AttributeRef(8, CLOCK, 1)  # adjust_to_quarter: SUCCESS for client 1
DENIED = AttributeRef(8, CLOCK, 6)
SUCCESS = ActionResult.SUCCESS
ABORTED = ActionResult.LONG_ACTION_ABORTED
NO_TRANSFER = ActionResult.NO_LONG_ACTION_IN_PROGRESS


def image_block(number: int, size: int) -> bytes:
    """image_block_transfer parameters: structure {double-long-unsigned, octet-string}."""
    payload = bytes((number + i) & 0xFF for i in range(size))
    return b"\x02\x02\x06" + number.to_bytes(4, "big") + octet_string(payload)


@dataclass
class MethodObjects(FakeObjects):
    """FakeObjects plus a method taking long parameters and one returning a long value."""

    received: list[bytes | None] = field(default_factory=list)
    reply: bytes = octet_string(bytes(range(256)) * 6)

    def action(self, client: int, ref: AttributeRef, parameters: bytes | None) -> ActionOutcome:
        if ref == IMAGE_BLOCK:
            self.received.append(parameters)
            return ActionOutcome(SUCCESS)
        if ref == LONG_REPLY:
            return ActionOutcome(SUCCESS, self.reply)
        return super().action(client, ref, parameters)


def method_meter() -> Meter:
    objects, counters, keys = MethodObjects(), Counters(), Keys()
    server = DlmsServer(
        ServerConfig(bytes.fromhex("4B464D1020000001")),
        objects,
        keys=keys,
        counters=counters,
        challenges=Challenges(),
    )
    return Meter(server, objects, counters, keys)


@dataclass
class Session:
    meter: Meter
    client: Any
    link: MemoryLink

    @property
    def objects(self) -> MethodObjects:
        assert isinstance(self.meter.objects, MethodObjects)
        return self.meter.objects

    def action(self, request: Any) -> ActionResponse:
        return parse_action_response(ciphered_exchange(self.client, self.link, request.to_bytes()))


def associate(*, max_pdu: int = 1024, block_action: bool = True) -> Session:
    meter = method_meter()
    link = MemoryLink(meter.server, 1)
    client = management_client(link, max_pdu_size=max_pdu)
    client.dlms_connection.conformance.block_transfer_with_action = block_action
    client.associate()
    return Session(meter, client, link)


@pytest.fixture
def session() -> Session:
    return associate()


def send_in_blocks(session: Session, ref: AttributeRef, raw: bytes, size: int) -> ActionResponse:
    """First pblock, then pblocks; every block but the last must be acknowledged."""
    parts = [raw[i : i + size] for i in range(0, len(raw), size)]
    first = ActionRequestWithFirstPblock(IID, ref, DataBlock(len(parts) == 1, 1, parts[0]))
    answer = session.action(first)
    for number, part in enumerate(parts[1:], start=2):
        assert answer == ActionResponseNextPblock(IID, number - 1)
        block = DataBlock(number == len(parts), number, part)
        answer = session.action(ActionRequestWithPblock(IID, block))
    return answer


def collect_blocks(session: Session, answer: ActionResponse) -> tuple[bytes, int]:
    """Follow Action-Response-With-Pblock to the last block; the data and block count."""
    data, count = b"", 0
    while True:
        assert isinstance(answer, ActionResponseWithPblock), answer
        count += 1
        assert answer.block.number == count
        data += answer.block.raw
        if answer.block.last:
            return data, count
        answer = session.action(ActionRequestNextPblock(IID, answer.block.number))


# ---- codecs ------------------------------------------------------------------------------
REF_LIST = (ADJUST, IMAGE_BLOCK)
CODEC_REQUESTS = [
    ActionRequestNormal(IID, ADJUST),
    ActionRequestNormal(IID, ADJUST, b"\x0f\x00"),
    ActionRequestNextPblock(IID, 7),
    ActionRequestWithList(IID, REF_LIST, (b"\x0f\x00", b"\x00")),
    ActionRequestWithFirstPblock(IID, IMAGE_BLOCK, DataBlock(False, 1, b"\x02\x02")),
    ActionRequestWithListAndFirstPblock(IID, REF_LIST, DataBlock(True, 1, b"\x02\x0f\x00\x00")),
    ActionRequestWithPblock(IID, DataBlock(True, 2, bytes(300))),
]
CODEC_RESPONSES = [
    ActionResponseNormal(IID, SUCCESS),
    ActionResponseNormal(IID, SUCCESS, octet_string(b"xy")),
    ActionResponseNormal(IID, ActionResult.OTHER_REASON, DataAccessResult.OTHER_REASON),
    ActionResponseWithPblock(IID, DataBlock(False, 3, bytes(200))),
    ActionResponseWithList(IID, (ActionReply(SUCCESS, b"\x11\x01"), ActionReply(ABORTED))),
    ActionResponseNextPblock(IID, 4),
]


@pytest.mark.parametrize("request_", CODEC_REQUESTS, ids=lambda r: type(r).__name__)
def test_action_request_round_trip(request_: Any) -> None:
    assert parse_action_request(request_.to_bytes()) == request_


@pytest.mark.parametrize("response", CODEC_RESPONSES, ids=lambda r: type(r).__name__)
def test_action_response_round_trip(response: Any) -> None:
    assert parse_action_response(response.to_bytes()) == response


def test_choice_numbers_follow_the_green_book() -> None:
    # Action-Request: normal 1, next-pblock 2, with-list 3, with-first-pblock 4,
    # with-list-and-first-pblock 5, with-pblock 6; Action-Response: 1, with-pblock 2,
    # with-list 3, next-pblock 4.
    assert [r.to_bytes()[1] for r in CODEC_REQUESTS[1:]] == [1, 2, 3, 4, 5, 6]
    assert [r.to_bytes()[1] for r in CODEC_RESPONSES[2:]] == [1, 2, 3, 4]
    assert ActionRequestNextPblock(0xC1, 1).to_bytes() == bytes.fromhex("C302C100000001")


# ---- with list ---------------------------------------------------------------------------
def test_action_with_list_answers_per_method(session: Session) -> None:
    refs = (ADJUST, DENIED, IMAGE_BLOCK)
    request = ActionRequestWithList(IID, refs, (b"\x0f\x00", b"\x0f\x00", image_block(1, 10)))
    answer = session.action(request)
    denied = ActionReply(ActionResult.READ_WRITE_DENIED)
    assert answer == ActionResponseWithList(
        IID, (ActionReply(SUCCESS), denied, ActionReply(SUCCESS))
    )
    assert session.objects.received == [image_block(1, 10)]


@pytest.mark.parametrize(
    ("refs", "values"),
    [((ADJUST,) * 17, (b"\x00",) * 17), ((ADJUST, ADJUST), (b"\x00",)), ((), ())],
    ids=["17-references", "count-mismatch", "empty"],
)
def test_action_with_list_refusals(
    session: Session, refs: tuple[AttributeRef, ...], values: tuple[bytes, ...]
) -> None:
    raw = ciphered_exchange(
        session.client, session.link, ActionRequestWithList(IID, refs, values).to_bytes()
    )
    assert ExceptionResponse.from_bytes(raw).service_error is ServiceError.OPERATION_NOT_POSSIBLE


# ---- parameters in blocks ----------------------------------------------------------------
def test_long_parameters_arrive_in_pblocks(session: Session) -> None:
    parameters = image_block(7, 2000)  # > 1024: cannot travel in one APDU
    answer = send_in_blocks(session, IMAGE_BLOCK, parameters, 800)
    assert answer == ActionResponseNormal(IID, SUCCESS)
    assert session.objects.received == [parameters]


def test_list_parameters_arrive_in_pblocks(session: Session) -> None:
    first, second = image_block(1, 700), image_block(2, 700)
    raw = b"\x02" + first + second  # SEQUENCE OF Data, count first
    refs = (IMAGE_BLOCK, IMAGE_BLOCK)
    request = ActionRequestWithListAndFirstPblock(IID, refs, DataBlock(False, 1, raw[:900]))
    assert session.action(request) == ActionResponseNextPblock(IID, 1)
    answer = session.action(ActionRequestWithPblock(IID, DataBlock(True, 2, raw[900:])))
    assert answer == ActionResponseWithList(IID, (ActionReply(SUCCESS), ActionReply(SUCCESS)))
    assert session.objects.received == [first, second]


def test_parameters_that_are_no_data_are_type_unmatched(session: Session) -> None:
    answer = send_in_blocks(session, IMAGE_BLOCK, b"\x09\x82\x10\x00" + bytes(10), 800)
    assert answer == ActionResponseNormal(IID, ActionResult.TYPE_UNMATCHED)
    refs = (IMAGE_BLOCK, IMAGE_BLOCK)
    one_value = b"\x01" + image_block(1, 5)  # one Data for two methods
    request = ActionRequestWithListAndFirstPblock(IID, refs, DataBlock(True, 1, one_value))
    unmatched = ActionReply(ActionResult.TYPE_UNMATCHED)
    assert session.action(request) == ActionResponseWithList(IID, (unmatched, unmatched))
    assert session.objects.received == []


def test_wrong_block_number_aborts_the_transfer(session: Session) -> None:
    raw = image_block(3, 1500)
    first = ActionRequestWithFirstPblock(IID, IMAGE_BLOCK, DataBlock(False, 1, raw[:800]))
    assert session.action(first) == ActionResponseNextPblock(IID, 1)
    skipped = ActionRequestWithPblock(IID, DataBlock(True, 3, raw[800:]))
    assert session.action(skipped) == ActionResponseNormal(IID, ABORTED)
    # The transfer is gone: the right block now finds nothing to continue.
    right = ActionRequestWithPblock(IID, DataBlock(True, 2, raw[800:]))
    assert session.action(right) == ActionResponseNormal(IID, NO_TRANSFER)
    assert session.objects.received == []


def test_first_block_must_be_number_one(session: Session) -> None:
    first = ActionRequestWithFirstPblock(IID, IMAGE_BLOCK, DataBlock(True, 2, image_block(1, 4)))
    assert session.action(first) == ActionResponseNormal(IID, ABORTED)


def test_list_transfer_aborts_per_method(session: Session) -> None:
    refs = (IMAGE_BLOCK, ADJUST)
    request = ActionRequestWithListAndFirstPblock(IID, refs, DataBlock(False, 1, b"\x02"))
    assert session.action(request) == ActionResponseNextPblock(IID, 1)
    answer = session.action(ActionRequestWithPblock(IID, DataBlock(True, 1, b"\x00\x00")))
    assert answer == ActionResponseWithList(IID, (ActionReply(ABORTED), ActionReply(ABORTED)))


def test_stray_pblock_has_no_transfer(session: Session) -> None:
    stray = ActionRequestWithPblock(IID, DataBlock(True, 2, b"\x00"))
    assert session.action(stray) == ActionResponseNormal(IID, NO_TRANSFER)


def test_oversized_block_is_refused_and_the_transfer_goes_on(session: Session) -> None:
    """P3 §2.1.3: server_max_receive_pdu_size 1024 holds for every block as received."""
    raw = image_block(5, 2000)
    first = ActionRequestWithFirstPblock(IID, IMAGE_BLOCK, DataBlock(False, 1, raw[:700]))
    assert session.action(first) == ActionResponseNextPblock(IID, 1)
    big = ActionRequestWithPblock(IID, DataBlock(True, 2, raw[700:])).to_bytes()
    ciphered = CipheredApdu(0xDB, 0x30, 1, big + bytes(12), bytes(8)).to_bytes()
    assert len(ciphered) > 1024
    refusal = ExceptionResponse.from_bytes(session.link.exchange(wrap(ciphered, source=1)))
    assert refusal.service_error is ServiceError.PDU_TOO_LONG
    # The oversized APDU was not taken in: block 2 is still the one expected.
    answer = session.action(ActionRequestWithPblock(IID, DataBlock(False, 2, raw[700:1400])))
    assert answer == ActionResponseNextPblock(IID, 2)
    answer = session.action(ActionRequestWithPblock(IID, DataBlock(True, 3, raw[1400:])))
    assert answer == ActionResponseNormal(IID, SUCCESS)
    assert session.objects.received == [raw]


def test_pblocks_need_the_conformance_bit() -> None:
    session = associate(block_action=False)
    first = ActionRequestWithFirstPblock(IID, IMAGE_BLOCK, DataBlock(True, 1, image_block(1, 4)))
    raw = ciphered_exchange(session.client, session.link, first.to_bytes())
    assert ExceptionResponse.from_bytes(raw).service_error is ServiceError.SERVICE_NOT_SUPPORTED
    # Without block transfer a response too long for the client's PDU cannot be sent.
    session = associate(max_pdu=256, block_action=False)
    answer = session.action(ActionRequestNormal(IID, LONG_REPLY))
    assert answer == ActionResponseNormal(IID, ActionResult.OTHER_REASON)


# ---- the response in blocks --------------------------------------------------------------
def test_long_result_leaves_in_pblocks() -> None:
    session = associate(max_pdu=256)
    data, count = collect_blocks(session, session.action(ActionRequestNormal(IID, LONG_REPLY)))
    assert data == session.objects.reply  # the return Data, block by block
    assert count > 6
    # Finished: one more Next-Pblock finds no transfer.
    answer = session.action(ActionRequestNextPblock(IID, count))
    assert answer == ActionResponseNormal(IID, NO_TRANSFER)


def test_list_result_in_pblocks_carries_the_response_list() -> None:
    session = associate(max_pdu=256)
    request = ActionRequestWithList(IID, (ADJUST, LONG_REPLY), (b"\x0f\x00", b"\x00"))
    data, _ = collect_blocks(session, session.action(request))
    reader = Reader(data)
    replies = read_replies(reader)
    reader.expect_end()
    assert replies == (ActionReply(SUCCESS), ActionReply(SUCCESS, session.objects.reply))


def test_next_pblock_with_wrong_number_aborts() -> None:
    session = associate(max_pdu=256)
    first = session.action(ActionRequestNormal(IID, LONG_REPLY))
    assert isinstance(first, ActionResponseWithPblock)
    answer = session.action(ActionRequestNextPblock(IID, 5))
    assert answer == ActionResponseNormal(IID, ABORTED)
    answer = session.action(ActionRequestNextPblock(IID, 1))
    assert answer == ActionResponseNormal(IID, NO_TRANSFER)


def test_long_parameters_with_long_result() -> None:
    """Parameters in pblocks, and the answer to the last one in pblocks too."""
    session = associate(max_pdu=256)
    refs = (IMAGE_BLOCK, LONG_REPLY)
    raw = b"\x02" + image_block(9, 1200) + b"\x00"
    answer = ActionRequestWithListAndFirstPblock(IID, refs, DataBlock(False, 1, raw[:600]))
    assert session.action(answer) == ActionResponseNextPblock(IID, 1)
    last = session.action(ActionRequestWithPblock(IID, DataBlock(True, 2, raw[600:])))
    data, _ = collect_blocks(session, last)
    expected = (ActionReply(SUCCESS), ActionReply(SUCCESS, session.objects.reply))
    assert read_replies(Reader(data)) == expected


def test_a_new_request_abandons_the_response_transfer() -> None:
    session = associate(max_pdu=256)
    assert isinstance(
        session.action(ActionRequestNormal(IID, LONG_REPLY)), ActionResponseWithPblock
    )
    assert session.action(ActionRequestNormal(IID, ADJUST)) == ActionResponseNormal(IID, SUCCESS)
    answer = session.action(ActionRequestNextPblock(IID, 1))
    assert answer == ActionResponseNormal(IID, NO_TRANSFER)


def test_service_specific_glo_action_blocks(session: Session) -> None:
    """glo-action-request (0xCB) is answered by glo-action-response (0xCF) for pblocks."""
    conn = session.client.dlms_connection
    raw = image_block(2, 1200)
    request = ActionRequestWithFirstPblock(IID, IMAGE_BLOCK, DataBlock(False, 1, raw[:800]))
    text, ic = conn.encrypt(request.to_bytes())
    reply = CipheredApdu.from_bytes(
        session.link.send(CipheredApdu(0xCB, 0x30, ic, bytes(text)).to_bytes())
    )
    assert reply.tag == 0xCF
    conn.update_meter_invocation_counter(reply.invocation_counter)
    assert parse_action_response(bytes(conn.decrypt(reply.text))) == ActionResponseNextPblock(
        IID, 1
    )
    last = ActionRequestWithPblock(IID, DataBlock(True, 2, raw[800:]))
    assert session.action(last) == ActionResponseNormal(IID, SUCCESS)
    assert session.objects.received == [raw]


def test_unconfirmed_pblock_is_taken_in_silently(session: Session) -> None:
    conn = session.client.dlms_connection
    request = ActionRequestWithFirstPblock(0x81, IMAGE_BLOCK, DataBlock(True, 1, image_block(1, 3)))
    text, ic = conn.encrypt(request.to_bytes())
    apdu = CipheredApdu(0xDB, 0x30, ic, bytes(text), conn.client_system_title).to_bytes()
    assert session.meter.server.receive_data(wrap(apdu, source=1)) == []
    assert session.objects.received == [image_block(1, 3)]


# ---- an independent peer: gurux-dlms -----------------------------------------------------
def test_gurux_sends_long_parameters_in_pblocks() -> None:
    meter = method_meter()
    peer = gurux_management(meter)
    peer.client.maxReceivePDUSize = 1024
    peer.associate()
    image = GXDLMSImageTransfer("0.0.44.0.0.255")
    value = bytes(range(256)) * 8  # image block 4 of 2048 bytes
    # gurux-dlms 1.0.203 cuts its pblocks 8 bytes longer than the size it is given (its
    # ciphering estimate leaves out the general-glo system title): give it 1016 so its
    # ciphered APDUs are exactly the 1024 bytes P3 §2.1.3 allows.
    peer.client.settings.maxPduSize = 1016
    frames = peer.client.method(image, 2, [4, value], DataType.STRUCTURE)
    assert max(len(frame) for frame in frames) == 8 + 1024  # wrapper header + APDU
    peer.run(frames)
    objects = meter.objects
    assert isinstance(objects, MethodObjects)
    # gurux encodes the block number as double-long (it infers types from Python values)
    structure = b"\x02\x02\x05" + (4).to_bytes(4, "big") + b"\x09" + encode_length(2048) + value
    assert objects.received == [structure]
    # One byte more and the block is refused.
    peer.client.settings.maxPduSize = 1024
    with pytest.raises(GXDLMSExceptionResponse, match="PDU is too long"):
        peer.run(peer.client.method(image, 2, [5, value], DataType.STRUCTURE))
    assert len(objects.received) == 1


def test_gurux_reads_a_long_result_in_pblocks() -> None:
    meter = method_meter()
    peer = gurux_management(meter)  # 256-byte PDUs
    peer.associate()
    before = len(meter.counters.issued)
    reply = peer.run(peer.client.method(GXDLMSImageTransfer("0.0.44.0.0.255"), 9, 0, DataType.INT8))
    objects = meter.objects
    assert isinstance(objects, MethodObjects)
    assert bytes(reply.value) == bytes(range(256)) * 6
    assert len(meter.counters.issued) - before > 6  # several ciphered pblocks
