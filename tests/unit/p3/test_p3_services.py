"""xDLMS services the dlms-cosem client cannot drive (with-list, SET blocks, block errors),
sent as our APDUs inside dlms-cosem's ciphering."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.p3.helpers import (
    CLOCK,
    CLOCK_VALUE,
    ENERGY,
    ENERGY_VALUE,
    MESSAGE,
    MemoryLink,
    Meter,
    ciphered_exchange,
    make_meter,
    management_client,
    public_client,
    wrap,
)
from twin.p3.dlms.action import ActionRequestNormal, ActionResponseNormal, parse_action_response
from twin.p3.dlms.axdr import octet_string
from twin.p3.dlms.cosem import ActionResult, AttributeRef, AttributeWithSelection, DataAccessResult
from twin.p3.dlms.get import (
    GetRequestNext,
    GetRequestNormal,
    GetRequestWithList,
    GetResponseNormal,
    GetResponseWithBlock,
    GetResponseWithList,
    parse_get_response,
)
from twin.p3.dlms.initiate import ExceptionResponse, ServiceError
from twin.p3.dlms.security import CipheredApdu
from twin.p3.dlms.set_action import (
    DataBlock,
    SetRequestBlock,
    SetRequestFirstBlock,
    SetRequestWithList,
    SetRequestWithListFirstBlock,
    SetResponseBlock,
    SetResponseLastBlock,
    SetResponseLastBlockWithList,
    SetResponseWithList,
    parse_set_response,
)

IID = 0xC1  # invoke id 1, confirmed, high priority
CLOCK_TIME = AttributeRef(8, CLOCK, 2)
ENERGY_REF = AttributeRef(3, ENERGY, 2)
MESSAGE_REF = AttributeRef(1, MESSAGE, 2)
UNKNOWN = AttributeRef(1, bytes([0, 0, 96, 99, 0, 255]), 2)


@pytest.fixture
def session(request: pytest.FixtureRequest) -> tuple[Meter, Any, MemoryLink]:
    meter = make_meter()
    link = MemoryLink(meter.server, 1)
    client = management_client(link, max_pdu_size=getattr(request, "param", 1024))
    # dlms-cosem 21.3.2 never proposes block transfer with SET; we need it here.
    client.dlms_connection.conformance.block_transfer_with_set_or_write = True
    client.associate()
    return meter, client, link


def test_get_with_list_partial_results(session: tuple[Meter, Any, MemoryLink]) -> None:
    _, client, link = session
    items = (
        AttributeWithSelection(CLOCK_TIME),
        AttributeWithSelection(UNKNOWN),
        AttributeWithSelection(ENERGY_REF),
    )
    answer = parse_get_response(
        ciphered_exchange(client, link, GetRequestWithList(IID, items).to_bytes())
    )
    expected = (octet_string(CLOCK_VALUE), DataAccessResult.OBJECT_UNDEFINED, ENERGY_VALUE)
    assert answer == GetResponseWithList(IID, expected)  # P3 §3.5: per-item errors


def test_get_with_list_limit(session: tuple[Meter, Any, MemoryLink]) -> None:
    _, client, link = session
    items = tuple(AttributeWithSelection(CLOCK_TIME) for _ in range(17))  # P3 §2.1.3: max 16
    answer = ExceptionResponse.from_bytes(
        ciphered_exchange(client, link, GetRequestWithList(IID, items).to_bytes())
    )
    assert answer.service_error is ServiceError.OPERATION_NOT_POSSIBLE


@pytest.mark.parametrize("session", [200], indirect=True)
def test_get_blocks_and_block_errors(session: tuple[Meter, Any, MemoryLink]) -> None:
    meter, client, link = session
    first = parse_get_response(
        ciphered_exchange(client, link, GetRequestNormal(IID, MESSAGE_REF).to_bytes())
    )
    assert isinstance(first, GetResponseWithBlock)
    assert (first.last_block, first.block_number) == (False, 1)
    data = first.raw
    assert isinstance(data, bytes)
    number = 1
    while True:
        block = parse_get_response(
            ciphered_exchange(client, link, GetRequestNext(IID, number).to_bytes())
        )
        assert isinstance(block, GetResponseWithBlock)
        assert isinstance(block.raw, bytes)
        assert block.block_number == number + 1
        data += block.raw
        number = block.block_number
        if block.last_block:
            break
    assert data == octet_string(meter.objects.message)
    again = parse_get_response(
        ciphered_exchange(client, link, GetRequestNext(IID, number).to_bytes())
    )
    assert again == GetResponseWithBlock(
        IID, True, number, DataAccessResult.NO_LONG_GET_IN_PROGRESS
    )
    ciphered_exchange(client, link, GetRequestNormal(IID, MESSAGE_REF).to_bytes())
    wrong = parse_get_response(ciphered_exchange(client, link, GetRequestNext(IID, 5).to_bytes()))
    assert wrong == GetResponseWithBlock(IID, True, 5, DataAccessResult.DATA_BLOCK_NUMBER_INVALID)


def test_set_with_list(session: tuple[Meter, Any, MemoryLink]) -> None:
    meter, client, link = session
    items = (AttributeWithSelection(CLOCK_TIME), AttributeWithSelection(ENERGY_REF))
    values = (octet_string(CLOCK_VALUE), b"\x06\x00\x00\x00\x01")
    request = SetRequestWithList(IID, items, values)
    answer = parse_set_response(ciphered_exchange(client, link, request.to_bytes()))
    assert answer == SetResponseWithList(
        IID, (DataAccessResult.SUCCESS, DataAccessResult.OBJECT_UNDEFINED)
    )
    assert meter.objects.written[CLOCK_TIME] == octet_string(CLOCK_VALUE)


def test_set_with_blocks(session: tuple[Meter, Any, MemoryLink]) -> None:
    meter, client, link = session
    value = octet_string(b"hello P3 " * 50)
    parts = [value[i : i + 200] for i in range(0, len(value), 200)]
    first = SetRequestFirstBlock(IID, MESSAGE_REF, DataBlock(False, 1, parts[0]))
    assert parse_set_response(
        ciphered_exchange(client, link, first.to_bytes())
    ) == SetResponseBlock(IID, 1)
    for number, part in enumerate(parts[1:], start=2):
        last = number == len(parts)
        answer = parse_set_response(
            ciphered_exchange(
                client, link, SetRequestBlock(IID, DataBlock(last, number, part)).to_bytes()
            )
        )
        expected = (
            SetResponseLastBlock(IID, DataAccessResult.SUCCESS, number)
            if last
            else SetResponseBlock(IID, number)
        )
        assert answer == expected
    assert meter.objects.message == b"hello P3 " * 50


def test_set_block_errors(session: tuple[Meter, Any, MemoryLink]) -> None:
    _, client, link = session
    stray = SetRequestBlock(IID, DataBlock(True, 2, b"\x00"))
    answer = parse_set_response(ciphered_exchange(client, link, stray.to_bytes()))
    assert answer == SetResponseLastBlock(IID, DataAccessResult.NO_LONG_SET_IN_PROGRESS, 2)
    ciphered_exchange(
        client,
        link,
        SetRequestFirstBlock(IID, MESSAGE_REF, DataBlock(False, 1, b"\x09\x02")).to_bytes(),
    )
    skipped = SetRequestBlock(IID, DataBlock(True, 3, b"ab"))
    answer = parse_set_response(ciphered_exchange(client, link, skipped.to_bytes()))
    assert answer == SetResponseLastBlock(IID, DataAccessResult.DATA_BLOCK_NUMBER_INVALID, 3)
    broken = SetRequestFirstBlock(IID, MESSAGE_REF, DataBlock(True, 1, b"\x09\x05ab"))
    answer = parse_set_response(ciphered_exchange(client, link, broken.to_bytes()))
    assert answer == SetResponseLastBlock(IID, DataAccessResult.TYPE_UNMATCHED, 1)


def test_set_blocks_need_the_conformance_bit() -> None:
    meter = make_meter()
    link = MemoryLink(meter.server, 1)
    client = management_client(link)
    client.associate()
    first = SetRequestFirstBlock(IID, MESSAGE_REF, DataBlock(True, 1, b"\x09\x00"))
    answer = ExceptionResponse.from_bytes(ciphered_exchange(client, link, first.to_bytes()))
    assert answer.service_error is ServiceError.SERVICE_NOT_SUPPORTED


def test_action_denied_and_unconfirmed(session: tuple[Meter, Any, MemoryLink]) -> None:
    meter, client, link = session
    request = ActionRequestNormal(IID, AttributeRef(8, CLOCK, 6), b"\x0f\x00")
    answer = parse_action_response(ciphered_exchange(client, link, request.to_bytes()))
    assert answer == ActionResponseNormal(IID, ActionResult.READ_WRITE_DENIED)
    # An unconfirmed request (bit 6 clear) is served but not answered.
    conn = client.dlms_connection
    text, ic = conn.encrypt(GetRequestNormal(0x81, CLOCK_TIME).to_bytes())

    apdu = CipheredApdu(0xDB, 0x30, ic, bytes(text), conn.client_system_title).to_bytes()
    assert meter.server.receive_data(wrap(apdu, source=1)) == []
    assert meter.objects.calls[-1] == ("get", 1, CLOCK_TIME)


def test_service_specific_glo_is_answered_in_kind(session: tuple[Meter, Any, MemoryLink]) -> None:
    _, client, link = session

    conn = client.dlms_connection
    text, ic = conn.encrypt(GetRequestNormal(IID, CLOCK_TIME).to_bytes())
    reply = CipheredApdu.from_bytes(link.send(CipheredApdu(0xC8, 0x30, ic, bytes(text)).to_bytes()))
    assert reply.tag == 0xCC
    conn.update_meter_invocation_counter(reply.invocation_counter)
    answer = parse_get_response(bytes(conn.decrypt(reply.text)))
    assert answer == GetResponseNormal(IID, octet_string(CLOCK_VALUE))


def test_public_response_too_large_without_block_transfer() -> None:
    meter = make_meter()
    link = MemoryLink(meter.server, 16)
    client = public_client(link, max_pdu_size=100)
    client.dlms_connection.conformance.block_transfer_with_get_or_read = False
    client.associate()
    answer = parse_get_response(link.exchange(wrap(GetRequestNormal(IID, MESSAGE_REF).to_bytes())))
    assert answer == GetResponseNormal(IID, DataAccessResult.OTHER_REASON)


def test_set_with_list_in_blocks(session: tuple[Meter, Any, MemoryLink]) -> None:
    meter, client, link = session
    items = (AttributeWithSelection(CLOCK_TIME), AttributeWithSelection(MESSAGE_REF))
    raw = b"\x02" + octet_string(CLOCK_VALUE) + octet_string(b"x" * 300)
    first = SetRequestWithListFirstBlock(IID, items, DataBlock(False, 1, raw[:200]))
    answer = parse_set_response(ciphered_exchange(client, link, first.to_bytes()))
    assert answer == SetResponseBlock(IID, 1)
    last = SetRequestBlock(IID, DataBlock(True, 2, raw[200:]))
    answer = parse_set_response(ciphered_exchange(client, link, last.to_bytes()))
    success = DataAccessResult.SUCCESS
    assert answer == SetResponseLastBlockWithList(IID, (success, success), 2)
    assert meter.objects.message == b"x" * 300


def test_set_with_list_in_blocks_wrong_count(session: tuple[Meter, Any, MemoryLink]) -> None:
    _, client, link = session
    items = (AttributeWithSelection(CLOCK_TIME), AttributeWithSelection(MESSAGE_REF))
    raw = b"\x01" + octet_string(CLOCK_VALUE)  # one value for two references
    first = SetRequestWithListFirstBlock(IID, items, DataBlock(True, 1, raw))
    answer = parse_set_response(ciphered_exchange(client, link, first.to_bytes()))
    unmatched = DataAccessResult.TYPE_UNMATCHED
    assert answer == SetResponseLastBlockWithList(IID, (unmatched, unmatched), 1)


def test_set_with_list_block_out_of_sequence(session: tuple[Meter, Any, MemoryLink]) -> None:
    _, client, link = session
    items = (AttributeWithSelection(CLOCK_TIME),)
    first = SetRequestWithListFirstBlock(IID, items, DataBlock(False, 1, b"\x01"))
    ciphered_exchange(client, link, first.to_bytes())
    stray = SetRequestBlock(IID, DataBlock(True, 5, b""))
    answer = parse_set_response(ciphered_exchange(client, link, stray.to_bytes()))
    invalid = DataAccessResult.DATA_BLOCK_NUMBER_INVALID
    assert answer == SetResponseLastBlockWithList(IID, (invalid,), 5)
