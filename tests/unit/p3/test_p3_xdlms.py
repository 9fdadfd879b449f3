"""GET/SET/ACTION codecs, A-XDR skipping and ciphered-APDU framing."""

from __future__ import annotations

import pytest
from dlms_cosem import cosem, enumerations
from dlms_cosem.protocol import xdlms as dc_xdlms

from twin.p3.dlms.action import (
    ActionRequestNormal,
    ActionResponseNormal,
    parse_action_request,
    parse_action_response,
)
from twin.p3.dlms.axdr import Reader, encode_length, octet_string
from twin.p3.dlms.cosem import (
    ActionResult,
    AttributeRef,
    AttributeWithSelection,
    DataAccessResult,
    SelectiveAccess,
)
from twin.p3.dlms.errors import ApduError, UnknownApduError
from twin.p3.dlms.get import (
    GetRequestNext,
    GetRequestNormal,
    GetRequestWithList,
    GetResponseNormal,
    GetResponseWithBlock,
    GetResponseWithList,
    parse_get_request,
    parse_get_response,
)
from twin.p3.dlms.security import CipheredApdu
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
    parse_set_response,
)

CLOCK = AttributeRef(8, bytes([0, 0, 1, 0, 0, 255]), 2)
PROFILE = AttributeRef(7, bytes([1, 0, 99, 1, 0, 255]), 2)
# entry descriptor {from 1, to 10, all columns}
ENTRY = SelectiveAccess(2, bytes.fromhex("02040600000001060000000A120001120000"))

REQUESTS = [
    GetRequestNormal(0xC1, CLOCK),
    GetRequestNormal(0xC1, PROFILE, ENTRY),
    GetRequestNext(0xC1, 7),
    GetRequestWithList(
        0xC2, (AttributeWithSelection(CLOCK), AttributeWithSelection(PROFILE, ENTRY))
    ),
]
RESPONSES = [
    GetResponseNormal(0xC1, b"\x11\x05"),
    GetResponseNormal(0xC1, DataAccessResult.OBJECT_UNDEFINED),
    GetResponseWithBlock(0xC1, False, 1, b"\x01\x02\x03"),
    GetResponseWithBlock(0xC1, True, 2, DataAccessResult.DATA_BLOCK_NUMBER_INVALID),
    GetResponseWithList(0xC1, (b"\x11\x05", DataAccessResult.READ_WRITE_DENIED)),
]
SETS = [
    SetRequestNormal(0xC1, CLOCK, octet_string(bytes(12))),
    SetRequestFirstBlock(0xC1, CLOCK, DataBlock(False, 1, b"\x09\x0c")),
    SetRequestBlock(0xC1, DataBlock(True, 2, bytes(12))),
    SetRequestWithList(0xC1, (AttributeWithSelection(CLOCK),), (b"\x11\x01",)),
    SetRequestWithListFirstBlock(
        0xC1, (AttributeWithSelection(CLOCK),), DataBlock(True, 1, b"\x01\x00")
    ),
]
SET_RESPONSES = [
    SetResponseNormal(0xC1, DataAccessResult.SUCCESS),
    SetResponseBlock(0xC1, 3),
    SetResponseLastBlock(0xC1, DataAccessResult.TYPE_UNMATCHED, 4),
    SetResponseWithList(0xC1, (DataAccessResult.SUCCESS, DataAccessResult.READ_WRITE_DENIED)),
    SetResponseLastBlockWithList(0xC1, (DataAccessResult.SUCCESS,), 9),
]


@pytest.mark.parametrize("request_", REQUESTS)
def test_get_request_round_trip(request_: GetRequestNormal) -> None:
    assert parse_get_request(request_.to_bytes()) == request_


@pytest.mark.parametrize("response", RESPONSES)
def test_get_response_round_trip(response: GetResponseNormal) -> None:
    assert parse_get_response(response.to_bytes()) == response


@pytest.mark.parametrize("request_", SETS)
def test_set_request_round_trip(request_: SetRequestNormal) -> None:
    assert parse_set_request(request_.to_bytes()) == request_


@pytest.mark.parametrize("response", SET_RESPONSES)
def test_set_response_round_trip(response: SetResponseNormal) -> None:
    assert parse_set_response(response.to_bytes()) == response


def test_action_round_trips() -> None:
    method = AttributeRef(15, bytes([0, 0, 40, 0, 0, 255]), 1)
    for request in (
        ActionRequestNormal(0xC1, method),
        ActionRequestNormal(0xC1, method, b"\x0f\x00"),
    ):
        assert parse_action_request(request.to_bytes()) == request
    for response in (
        ActionResponseNormal(0xC1, ActionResult.SUCCESS),
        ActionResponseNormal(0xC1, ActionResult.SUCCESS, octet_string(b"xy")),
        ActionResponseNormal(0xC1, ActionResult.OTHER_REASON, DataAccessResult.OTHER_REASON),
    ):
        assert parse_action_response(response.to_bytes()) == response


def test_get_request_matches_dlms_cosem() -> None:
    theirs = dc_xdlms.GetRequestNormal(
        cosem.CosemAttribute(enumerations.CosemInterface.CLOCK, cosem.Obis(0, 0, 1, 0, 0), 2)
    ).to_bytes()
    assert parse_get_request(theirs) == GetRequestNormal(0xC1, CLOCK)


def test_block_response_parsed_by_dlms_cosem() -> None:
    theirs = dc_xdlms.GetResponseFactory.from_bytes(
        GetResponseWithBlock(0xC1, False, 1, bytes(200)).to_bytes()
    )
    assert isinstance(theirs, dc_xdlms.GetResponseWithBlock)
    assert theirs.data == bytes(200)


@pytest.mark.parametrize(
    "data",
    [
        b"\xc0",
        b"\xc0\x01",
        b"\xc0\x01\xc1\x00\x08",
        REQUESTS[0].to_bytes() + b"\x00",
        b"\xc0\x02\xc1\x00",
    ],
)
def test_bad_get_requests(data: bytes) -> None:
    with pytest.raises(ApduError):
        parse_get_request(data)


def test_unknown_choices() -> None:
    with pytest.raises(UnknownApduError):
        parse_get_request(b"\xc0\x04\xc1")
    with pytest.raises(UnknownApduError):
        parse_set_request(b"\xc1\x06\xc1")
    with pytest.raises(UnknownApduError):
        parse_action_request(b"\xc3\x07\xc1")


@pytest.mark.parametrize(
    ("data", "size"),
    [
        (b"\x00", 1),
        (b"\x11\x05", 2),
        (b"\x09\x03abc", 5),
        (b"\x04\x0a\xff\xc0", 4),  # bit-string of 10 bits = 2 bytes
        (b"\x02\x02\x0f\x00\x16\x1e", 6),
        (b"\x01\x02\x12\x00\x01\x12\x00\x02", 8),
        (b"\x09\x81\x80" + bytes(128), 131),
        (b"\x19" + bytes(12), 13),
    ],
)
def test_axdr_data_skipper(data: bytes, size: int) -> None:
    reader = Reader(data + b"\xee")
    assert reader.data() == data[:size]
    assert reader.remaining == 1 + len(data) - size


@pytest.mark.parametrize(
    "data", [b"", b"\x09\x05ab", b"\x13\x00", b"\x02\x01", b"\x01" * 40, b"\x09\x85" + bytes(5)]
)
def test_axdr_skipper_rejects(data: bytes) -> None:
    with pytest.raises(ApduError):
        Reader(data).data()


def test_length_encoding() -> None:
    for n in (0, 127, 128, 255, 256, 70000):
        assert Reader(encode_length(n)).length() == n
    assert encode_length(300) == b"\x82\x01\x2c"


def test_ciphered_apdu_round_trip() -> None:
    general = CipheredApdu(0xDB, 0x30, 5, bytes(20), b"ABCDEFGH")
    assert general.to_bytes()[:11] == b"\xdb\x08ABCDEFGH\x19"
    assert CipheredApdu.from_bytes(general.to_bytes()) == general
    specific = CipheredApdu(0xC8, 0x30, 2**32 - 1, bytes(200))
    assert specific.to_bytes()[:3] == b"\xc8\x81\xcd"
    assert CipheredApdu.from_bytes(specific.to_bytes()) == specific
    for bad in (b"\xc0\x00", b"\xdb\x08AB", general.to_bytes()[:-1], b"\xc8\x02\x30\x00"):
        with pytest.raises(ApduError):
            CipheredApdu.from_bytes(bad)
