"""Test doubles for the P3 core: a tiny object model, key/counter/challenge sources, and an
in-memory byte link that lets the independent dlms-cosem client talk to `DlmsServer`."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from dlms_cosem import enumerations
from dlms_cosem.clients.dlms_client import DlmsClient
from dlms_cosem.protocol.wrappers import WrapperHeader, WrapperProtocolDataUnit

from twin.p3.dlms.axdr import Reader, octet_string
from twin.p3.dlms.cosem import ActionResult, AttributeRef, DataAccessResult, SelectiveAccess
from twin.p3.dlms.security import CipheredApdu, SecurityKeys
from twin.p3.server.association import ServerConfig
from twin.p3.server.connection import DlmsServer
from twin.p3.server.events import CloseConnection, ServerEvent, Transmit
from twin.p3.server.interfaces import ActionOutcome

GUEK = bytes.fromhex("000102030405060708090A0B0C0D0E0F")
GAK = bytes.fromhex("D0D1D2D3D4D5D6D7D8D9DADBDCDDDEDF")
SERVER_TITLE = bytes.fromhex("4B464D1020000001")
CLIENT_TITLE = bytes.fromhex("5452414E53464552")

CLOCK = bytes([0, 0, 1, 0, 0, 255])
ENERGY = bytes([1, 0, 1, 8, 1, 255])
MESSAGE = bytes([0, 0, 96, 13, 0, 255])  # consumer message text, os[1024] (P3 §5)
# 2026-11-23 21:00:00, deviation -60, status 0 (Green Book date-time, 12 bytes)
CLOCK_VALUE = bytes.fromhex("07EA0B17FF150000 00FFC400".replace(" ", ""))
ENERGY_VALUE = b"\x06" + (123456).to_bytes(4, "big")
SCALER_UNIT = bytes.fromhex("02020F00161E")  # {0, Wh}


@dataclass
class FakeObjects:
    """Clock (class 8), one energy register (class 3) and a long message (class 1)."""

    message: bytes = b"A" * 1000
    calls: list[tuple[str, int, AttributeRef]] = field(default_factory=list)
    written: dict[AttributeRef, bytes] = field(default_factory=dict)

    def get(
        self, client: int, ref: AttributeRef, access: SelectiveAccess | None
    ) -> bytes | DataAccessResult:
        self.calls.append(("get", client, ref))
        if client == 102:
            return DataAccessResult.READ_WRITE_DENIED  # P3 §2.1.2: nothing accessible
        key = (ref.class_id, ref.obis, ref.index)
        if key == (8, CLOCK, 2):
            return octet_string(CLOCK_VALUE)
        if key == (3, ENERGY, 3):
            return SCALER_UNIT
        if key == (3, ENERGY, 2):
            # P3 §2.1.1: the public client must not read metering data.
            return DataAccessResult.READ_WRITE_DENIED if client == 16 else ENERGY_VALUE
        if key == (1, MESSAGE, 2):
            return octet_string(self.message)
        return DataAccessResult.OBJECT_UNDEFINED

    def set(
        self, client: int, ref: AttributeRef, access: SelectiveAccess | None, value: bytes
    ) -> DataAccessResult:
        self.calls.append(("set", client, ref))
        if client != 1:
            return DataAccessResult.READ_WRITE_DENIED
        if (ref.class_id, ref.obis, ref.index) not in {(8, CLOCK, 2), (1, MESSAGE, 2)}:
            return DataAccessResult.OBJECT_UNDEFINED
        if value[0] != 0x09:
            return DataAccessResult.TYPE_UNMATCHED
        self.written[ref] = value
        if ref.obis == MESSAGE:
            reader = Reader(value, 1)
            self.message = reader.take(reader.length())
        return DataAccessResult.SUCCESS

    def action(self, client: int, ref: AttributeRef, parameters: bytes | None) -> ActionOutcome:
        self.calls.append(("action", client, ref))
        if (ref.class_id, ref.obis, ref.index) == (8, CLOCK, 1) and client == 1:
            return ActionOutcome(ActionResult.SUCCESS)  # adjust_to_quarter
        return ActionOutcome(ActionResult.READ_WRITE_DENIED)


@dataclass
class Keys:
    current: SecurityKeys = field(default_factory=lambda: SecurityKeys(GUEK, GAK))

    def keys(self) -> SecurityKeys:
        return self.current


@dataclass
class Counters:
    """Reserves counters like a store would; remembers what it handed out."""

    start: int = 5000
    issued: list[int] = field(default_factory=list)

    def next_invocation_counter(self) -> int:
        value = self.issued[-1] + 1 if self.issued else self.start
        self.issued.append(value)
        return value


class Challenges:
    def __init__(self) -> None:
        self._count = itertools.count(1)

    def challenge(self, length: int) -> bytes:
        seed = next(self._count)
        return bytes((seed + i) & 0xFF for i in range(length))


@dataclass
class Meter:
    server: DlmsServer
    objects: FakeObjects
    counters: Counters
    keys: Keys


def make_meter(**server_kwargs: Any) -> Meter:
    objects, counters, keys = FakeObjects(), Counters(), Keys()
    server = DlmsServer(
        ServerConfig(SERVER_TITLE),
        objects,
        keys=keys,
        counters=counters,
        challenges=Challenges(),
        **server_kwargs,
    )
    return Meter(server, objects, counters, keys)


class LinkClosedError(ConnectionError):
    """The server emitted CloseConnection (silent release)."""


@dataclass
class MemoryLink:
    """dlms-cosem `DlmsIOInterface` over an in-memory byte link to `DlmsServer`."""

    server: DlmsServer
    client_logical_address: int
    server_logical_address: int = 1
    timeout: int = 1
    byte_by_byte: bool = False
    events: list[ServerEvent] = field(default_factory=list)

    def connect(self) -> None:
        return None

    def disconnect(self) -> None:
        self.events += self.server.connection_lost()

    def send(self, bytes_to_send: bytes) -> bytes:
        header = WrapperHeader(
            self.client_logical_address, self.server_logical_address, len(bytes_to_send)
        )
        return self.exchange(WrapperProtocolDataUnit(bytes_to_send, header).to_bytes())

    def exchange(self, wire: bytes) -> bytes:
        """Send raw wire bytes; return the APDU of the single reply."""
        events: list[ServerEvent] = []
        chunks = [wire[i : i + 1] for i in range(len(wire))] if self.byte_by_byte else [wire]
        for chunk in chunks:
            events += self.server.receive_data(chunk)
        self.events += events
        replies = [e.data for e in events if isinstance(e, Transmit)]
        if any(isinstance(e, CloseConnection) for e in events):
            assert not replies, "silent release must not send anything"
            raise LinkClosedError
        assert len(replies) == 1, events
        pdu = WrapperProtocolDataUnit.from_bytes(replies[0])
        assert pdu.wrapper_header.source_wport == self.server_logical_address
        assert pdu.wrapper_header.destination_wport == self.client_logical_address
        return bytes(pdu.data)


def public_client(link: MemoryLink, **kwargs: Any) -> Any:
    return DlmsClient(
        client_logical_address=16, server_logical_address=1, io_interface=link, **kwargs
    )


def management_client(
    link: MemoryLink,
    *,
    guek: bytes = GUEK,
    gak: bytes = GAK,
    invocation_counter: int = 1,
    **kwargs: Any,
) -> Any:
    return DlmsClient(
        client_logical_address=1,
        server_logical_address=1,
        io_interface=link,
        authentication_method=enumerations.AuthenticationMechanism.HLS_GMAC,
        encryption_key=guek,
        authentication_key=gak,
        client_system_title=CLIENT_TITLE,
        client_initial_invocation_counter=invocation_counter,
        **kwargs,
    )


def ciphered_exchange(client: Any, link: MemoryLink, plain: bytes) -> bytes:
    """Send `plain` in general-glo-ciphering using dlms-cosem's crypto and counters (an
    independent implementation); return the deciphered answer."""
    conn = client.dlms_connection
    text, ic = conn.encrypt(plain)
    sc = conn.security_control.to_bytes()[0]
    request = CipheredApdu(0xDB, sc, ic, bytes(text), conn.client_system_title)
    reply = CipheredApdu.from_bytes(link.send(request.to_bytes()))
    assert reply.tag == 0xDB
    assert reply.system_title == conn.meter_system_title
    conn.update_meter_invocation_counter(reply.invocation_counter)
    return bytes(conn.decrypt(reply.text))


def wrap(apdu: bytes, source: int = 16, destination: int = 1) -> bytes:
    header = WrapperHeader(source, destination, len(apdu))
    return WrapperProtocolDataUnit(apdu, header).to_bytes()
