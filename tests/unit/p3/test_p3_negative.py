"""Negative paths: each gets the spec's answer or a silent release, and the core keeps
working for the next association."""

from __future__ import annotations

import pytest
from dlms_cosem import cosem, enumerations, exceptions, utils
from dlms_cosem.clients.dlms_client import HLSError

from tests.unit.p3.helpers import (
    CLOCK_VALUE,
    GAK,
    GUEK,
    LinkClosedError,
    MemoryLink,
    Meter,
    ciphered_exchange,
    make_meter,
    management_client,
    public_client,
    wrap,
)
from twin.p3.dlms.cosem import AttributeRef, DataAccessResult
from twin.p3.dlms.get import GetRequestNormal, GetResponseNormal, parse_get_response
from twin.p3.dlms.initiate import ExceptionResponse, ServiceError, StateError
from twin.p3.server.association import State
from twin.p3.server.events import AuthenticationFailed, CloseConnection, Released, Transmit

IFACE = enumerations.CosemInterface
CLOCK_TIME = cosem.CosemAttribute(IFACE.CLOCK, cosem.Obis(0, 0, 1, 0, 0), 2)
WRONG_KEY = bytes(range(16, 32))
SET_UNSIGNED = b"\xc1\x01\xc1" + bytes(9) + b"\x00\x11\x01"  # public client may not Set


def assert_still_serves(meter: Meter) -> None:
    """A fresh connection can associate as management client and read the clock."""
    meter.server.connection_lost()
    before = list(meter.counters.issued)
    client = management_client(MemoryLink(meter.server, 1), invocation_counter=10_000)
    client.associate()
    assert utils.parse_as_dlms_data(client.get(CLOCK_TIME)) == CLOCK_VALUE
    client.release_association()
    issued = meter.counters.issued
    assert issued == sorted(set(issued))
    assert not before or issued[len(before)] > before[-1]


@pytest.mark.parametrize(("guek", "gak"), [(GUEK, WRONG_KEY), (WRONG_KEY, GAK)])
def test_wrong_key_rejects_aarq(guek: bytes, gak: bytes) -> None:
    meter = make_meter()
    link = MemoryLink(meter.server, 1)
    with pytest.raises(exceptions.DlmsClientException, match="REJECTED_PERMANENT"):
        management_client(link, guek=guek, gak=gak).associate()
    assert meter.server.state is State.IDLE
    assert AuthenticationFailed(1) in link.events
    assert meter.counters.issued == []  # a refusal is never ciphered
    assert_still_serves(meter)


def test_wrong_f_stoc_fails_hls() -> None:
    meter = make_meter()
    link = MemoryLink(meter.server, 1)
    client = management_client(link)
    good = client.dlms_connection.get_hls_reply
    client.dlms_connection.get_hls_reply = lambda: good()[:-1] + b"\x00"
    with pytest.raises(HLSError):
        client.associate()
    assert meter.server.state is State.IDLE
    assert link.events[-1] == AuthenticationFailed(1)
    assert_still_serves(meter)


def test_request_before_hls_is_denied() -> None:
    meter = make_meter()
    link = MemoryLink(meter.server, 1)
    client = management_client(link)
    client.dlms_connection.get_hls_reply = lambda: b""  # not used below
    aarq = client.dlms_connection.get_aarq()
    client.send(aarq)
    client.next_event()
    assert meter.server.state is State.AWAITING_HLS
    request = GetRequestNormal(0xC1, AttributeRef(8, bytes([0, 0, 1, 0, 0, 255]), 2))
    answer = parse_get_response(ciphered_exchange(client, link, request.to_bytes()))
    assert answer == GetResponseNormal(0xC1, DataAccessResult.READ_WRITE_DENIED)
    assert meter.server.state is State.AWAITING_HLS


@pytest.mark.parametrize("shift", [+1, -1, -2], ids=["skipped", "repeated", "replayed"])
def test_frame_counter_out_of_sequence_releases_silently(shift: int) -> None:
    meter = make_meter()
    link = MemoryLink(meter.server, 1)
    client = management_client(link)
    client.associate()
    client.get(CLOCK_TIME)
    issued = len(meter.counters.issued)
    client.dlms_connection.client_invocation_counter += shift
    with pytest.raises(LinkClosedError):
        client.get(CLOCK_TIME)
    assert link.events[-2:] == [Released(1, graceful=False), link.events[-1]]
    assert isinstance(link.events[-1], CloseConnection)
    assert meter.server.state is State.IDLE
    assert len(meter.counters.issued) == issued  # no reply at all
    assert meter.server.receive_data(b"\x00\x01") == []  # closed until connection_lost
    assert_still_serves(meter)


def test_unprotected_request_in_ciphered_association_releases() -> None:
    meter = make_meter()
    link = MemoryLink(meter.server, 1)
    client = management_client(link)
    client.associate()
    with pytest.raises(LinkClosedError):
        link.exchange(wrap(bytes.fromhex("C001C100080000010000FF0200"), source=1))
    assert_still_serves(meter)


def test_truncated_ciphered_apdu_releases() -> None:
    meter = make_meter()
    link = MemoryLink(meter.server, 1)
    client = management_client(link)
    client.associate()
    conn = client.dlms_connection
    text, ic = conn.encrypt(bytes.fromhex("C001C100080000010000FF0200"))
    apdu = bytes([0xDB, 8]) + conn.client_system_title + bytes([5 + len(text)])
    apdu += bytes([0x30]) + ic.to_bytes(4, "big") + text
    with pytest.raises(LinkClosedError):
        link.exchange(wrap(apdu[:-3], source=1))
    assert_still_serves(meter)


def test_malformed_plain_inside_valid_ciphering_gets_exception_response() -> None:
    meter = make_meter()
    link = MemoryLink(meter.server, 1)
    client = management_client(link)
    client.associate()
    answer = ciphered_exchange(client, link, b"\xc0\x01")  # truncated GET
    assert ExceptionResponse.from_bytes(answer).service_error is ServiceError.OTHER_REASON
    answer = ciphered_exchange(client, link, b"\x42\x00")  # no such service
    assert ExceptionResponse.from_bytes(answer).state_error is StateError.SERVICE_UNKNOWN
    assert utils.parse_as_dlms_data(client.get(CLOCK_TIME)) == CLOCK_VALUE


@pytest.mark.parametrize(
    ("apdu", "state_error", "service_error"),
    [
        (b"\xc0\x01\xc1\x00", StateError.SERVICE_NOT_ALLOWED, ServiceError.OTHER_REASON),
        (b"\xc0\x09\xc1", StateError.SERVICE_UNKNOWN, ServiceError.SERVICE_NOT_SUPPORTED),
        (b"\x42", StateError.SERVICE_UNKNOWN, ServiceError.SERVICE_NOT_SUPPORTED),
        (b"\xdb\x08", StateError.SERVICE_NOT_ALLOWED, ServiceError.OPERATION_NOT_POSSIBLE),
        (SET_UNSIGNED, StateError.SERVICE_NOT_ALLOWED, ServiceError.SERVICE_NOT_SUPPORTED),
        (bytes(1100), StateError.SERVICE_NOT_ALLOWED, ServiceError.PDU_TOO_LONG),
    ],
    ids=["truncated", "bad-choice", "unknown-tag", "ciphered-in-public", "set-public", "oversized"],
)
def test_public_association_answers_bad_apdus(
    apdu: bytes, state_error: StateError, service_error: ServiceError
) -> None:
    meter = make_meter()
    link = MemoryLink(meter.server, 16)
    client = public_client(link)
    client.associate()
    answer = ExceptionResponse.from_bytes(link.exchange(wrap(apdu)))
    assert (answer.state_error, answer.service_error) == (state_error, service_error)
    assert utils.parse_as_dlms_data(client.get(CLOCK_TIME)) == CLOCK_VALUE


def test_request_without_association() -> None:
    meter = make_meter()
    link = MemoryLink(meter.server, 16)
    answer = ExceptionResponse.from_bytes(
        link.exchange(wrap(bytes.fromhex("C001C100080000010000FF0200")))
    )
    assert answer.service_error is ServiceError.OPERATION_NOT_POSSIBLE


def test_oversized_wrapper_frame_closes_connection() -> None:
    meter = make_meter()
    events = meter.server.receive_data(bytes.fromhex("0001 0010 0001 2000".replace(" ", "")))
    assert len(events) == 1
    assert isinstance(events[0], CloseConnection)
    assert_still_serves(meter)


def test_bad_wrapper_version_closes_connection() -> None:
    meter = make_meter()
    events = meter.server.receive_data(bytes.fromhex("00020010000100016000"))
    assert isinstance(events[-1], CloseConnection)
    assert_still_serves(meter)


def test_unknown_wports_are_discarded() -> None:
    meter = make_meter()
    get = bytes.fromhex("C001C100080000010000FF0200")
    assert meter.server.receive_data(wrap(get, source=17)) == []
    assert meter.server.receive_data(wrap(get, destination=2)) == []


def test_pre_established_client_reaches_nothing() -> None:
    meter = make_meter()
    link = MemoryLink(meter.server, 102)
    set_clock = bytes.fromhex("C101C1 0008 0000010000FF 02 00") + b"\x09\x0c" + CLOCK_VALUE
    assert link.exchange(wrap(set_clock, source=102)) == bytes.fromhex("C501C103")
    get = bytes.fromhex("C001C100080000010000FF0200")
    answer = ExceptionResponse.from_bytes(link.exchange(wrap(get, source=102)))
    assert answer.service_error is ServiceError.SERVICE_NOT_SUPPORTED  # P3 §2.1.2: no Get


def test_other_client_is_ignored_while_associated() -> None:
    meter = make_meter()
    client = management_client(MemoryLink(meter.server, 1))
    client.associate()
    get = bytes.fromhex("C001C100080000010000FF0200")
    assert meter.server.receive_data(wrap(get, source=16)) == []
    assert meter.server.client == 1


def test_connection_lost_reports_abort() -> None:
    meter = make_meter()
    client = public_client(MemoryLink(meter.server, 16))
    client.associate()
    assert meter.server.connection_lost() == [Released(16, graceful=False)]
    assert meter.server.state is State.IDLE
    assert all(not isinstance(e, Transmit) for e in meter.server.connection_lost())


def test_f_stoc_with_its_own_counter_is_accepted() -> None:
    """Gurux-style: f(StoC) uses counter n, the ACTION frame carrying it n + 1."""
    meter = make_meter()
    client = management_client(MemoryLink(meter.server, 1))
    conn = client.dlms_connection
    good = conn.get_hls_reply

    def own_counter() -> bytes:
        reply: bytes = good()
        conn.client_invocation_counter += 1
        return reply

    conn.get_hls_reply = own_counter
    client.associate()
    assert meter.server.state is State.ASSOCIATED
    assert utils.parse_as_dlms_data(client.get(CLOCK_TIME)) == CLOCK_VALUE


def test_hls_frame_counter_two_ahead_releases() -> None:
    meter = make_meter()
    client = management_client(MemoryLink(meter.server, 1))
    conn = client.dlms_connection
    good = conn.get_hls_reply

    def skip_two() -> bytes:
        conn.client_invocation_counter += 1
        reply: bytes = good()
        conn.client_invocation_counter += 1
        return reply

    conn.get_hls_reply = skip_two
    with pytest.raises(LinkClosedError):
        client.associate()
    assert_still_serves(meter)
