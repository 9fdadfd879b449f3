"""Our server core against the independent dlms-cosem 21.3.2 client over an in-memory link."""

from __future__ import annotations

import pytest
from dlms_cosem import cosem, dlms_data, enumerations, utils
from dlms_cosem.clients.dlms_client import DataResultError

from tests.unit.p3.helpers import (
    CLOCK_VALUE,
    ENERGY,
    MemoryLink,
    make_meter,
    management_client,
    public_client,
)
from twin.p3.dlms.errors import LocalP3Error
from twin.p3.dlms.security import SecurityKeys
from twin.p3.server.association import State
from twin.p3.server.events import Associated, Released

IFACE = enumerations.CosemInterface
CLOCK_TIME = cosem.CosemAttribute(IFACE.CLOCK, cosem.Obis(0, 0, 1, 0, 0), 2)
ENERGY_VALUE = cosem.CosemAttribute(IFACE.REGISTER, cosem.Obis(1, 0, 1, 8, 1), 2)
ENERGY_SCALER = cosem.CosemAttribute(IFACE.REGISTER, cosem.Obis(1, 0, 1, 8, 1), 3)
MESSAGE_TEXT = cosem.CosemAttribute(IFACE.DATA, cosem.Obis(0, 0, 96, 13, 0), 2)
ADJUST_TO_QUARTER = cosem.CosemMethod(IFACE.CLOCK, cosem.Obis(0, 0, 1, 0, 0), 1)


@pytest.mark.parametrize("byte_by_byte", [False, True])
def test_public_client_reads_clock_and_register(byte_by_byte: bool) -> None:
    meter = make_meter()
    link = MemoryLink(meter.server, 16, byte_by_byte=byte_by_byte)
    client = public_client(link)
    client.associate()
    assert meter.server.state is State.ASSOCIATED
    assert utils.parse_as_dlms_data(client.get(CLOCK_TIME)) == CLOCK_VALUE
    assert utils.parse_as_dlms_data(client.get(ENERGY_SCALER)) == [0, 30]
    client.release_association()
    assert meter.server.state is State.IDLE
    assert link.events[-1] == Released(16, graceful=True)
    assert meter.counters.issued == []  # nothing ciphered for the public client


def test_public_client_is_denied_metering_data() -> None:
    meter = make_meter()
    client = public_client(MemoryLink(meter.server, 16))
    client.associate()
    with pytest.raises(DataResultError, match="READ_WRITE_DENIED"):
        client.get(ENERGY_VALUE)  # P3 §2.1.1 / §2.2
    assert meter.server.state is State.ASSOCIATED  # not a protocol error


def test_management_client_hls_gmac_session() -> None:
    meter = make_meter()
    link = MemoryLink(meter.server, 1)
    client = management_client(link)
    aare = client.associate()
    assert aare.system_title is not None
    assert meter.server.state is State.ASSOCIATED
    assert Associated(1) in link.events
    assert utils.parse_as_dlms_data(client.get(CLOCK_TIME)) == CLOCK_VALUE
    assert utils.parse_as_dlms_data(client.get(ENERGY_VALUE)) == 123456
    client.release_association()
    assert meter.server.state is State.IDLE
    issued = meter.counters.issued
    assert issued == sorted(set(issued))  # strictly increasing, never reused
    # AARE, f(CtoS), HLS action response, 2 GETs, RLRE
    assert len(issued) == 6


def test_management_get_with_block_transfer() -> None:
    meter = make_meter()
    client = management_client(MemoryLink(meter.server, 1), max_pdu_size=256)
    client.associate()
    value = utils.parse_as_dlms_data(client.get(MESSAGE_TEXT))
    assert value == meter.objects.message
    # the 1000-byte value does not fit 256-byte PDUs: several ciphered blocks were sent
    assert len(meter.counters.issued) > 6


def test_public_get_with_block_transfer() -> None:
    meter = make_meter()
    meter.objects.message = bytes(range(256)) * 3
    link = MemoryLink(meter.server, 16)
    client = public_client(link, max_pdu_size=100)
    client.associate()
    assert utils.parse_as_dlms_data(client.get(MESSAGE_TEXT)) == meter.objects.message


def test_management_set_and_action() -> None:
    meter = make_meter()
    client = management_client(MemoryLink(meter.server, 1))
    client.associate()
    new_time = bytes.fromhex("07EA0B17FF16000000FFC400")
    response = client.set(CLOCK_TIME, dlms_data.OctetStringData(new_time).to_bytes())
    assert response.result == enumerations.DataAccessResult.SUCCESS
    assert ("set", 1, meter.objects.calls[-1][2]) == meter.objects.calls[-1]
    assert client.action(ADJUST_TO_QUARTER, dlms_data.IntegerData(0).to_bytes()) is None
    assert meter.objects.calls[-1][0] == "action"
    client.release_association()


def test_server_counter_increases_across_associations() -> None:
    meter = make_meter()
    seen: list[int] = []
    for round_ in range(3):
        link = MemoryLink(meter.server, 1)
        client = management_client(link, invocation_counter=100 * round_ + 1)
        client.associate()
        client.get(CLOCK_TIME)
        client.release_association()
        seen.append(client.dlms_connection.meter_invocation_counter)
        client.disconnect()
    assert seen == sorted(set(seen))
    assert meter.counters.issued == sorted(set(meter.counters.issued))


def test_public_then_management_on_one_server() -> None:
    meter = make_meter()
    public = public_client(MemoryLink(meter.server, 16))
    public.associate()
    public.release_association()
    management = management_client(MemoryLink(meter.server, 1))
    management.associate()
    assert utils.parse_as_dlms_data(management.get(ENERGY_VALUE)) == 123456
    assert meter.objects.calls[-1][2].obis == ENERGY


def test_management_session_fed_byte_by_byte() -> None:
    meter = make_meter()
    client = management_client(MemoryLink(meter.server, 1, byte_by_byte=True), max_pdu_size=300)
    client.associate()
    assert utils.parse_as_dlms_data(client.get(MESSAGE_TEXT)) == meter.objects.message
    client.release_association()
    assert meter.server.state is State.IDLE


def test_new_key_applies_from_the_next_message() -> None:
    """P3 §5.1 footnote 4: the ACK of a key transfer still travels under the old key."""
    meter = make_meter()
    new_guek = bytes(range(100, 116))
    original_action = meter.objects.action

    def transfer_key(client: int, ref: object, parameters: bytes | None) -> object:
        meter.keys.current = SecurityKeys(new_guek, meter.keys.current.gak)
        return original_action(client, ref, parameters)  # type: ignore[arg-type]

    meter.objects.action = transfer_key  # type: ignore[method-assign]
    client = management_client(MemoryLink(meter.server, 1))
    client.associate()
    client.action(ADJUST_TO_QUARTER, dlms_data.IntegerData(0).to_bytes())  # answered, old key
    client.dlms_connection.global_encryption_key = new_guek
    assert utils.parse_as_dlms_data(client.get(CLOCK_TIME)) == CLOCK_VALUE


def test_counter_store_out_of_range_is_a_local_error() -> None:
    meter = make_meter()
    meter.counters.start = 2**32
    with pytest.raises(LocalP3Error):
        management_client(MemoryLink(meter.server, 1)).associate()
