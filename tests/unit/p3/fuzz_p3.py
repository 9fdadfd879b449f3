"""P3 fuzz cases and the invariants they must keep; shared by test_p3_fuzz.py (Hypothesis)
and bench/bench_p3_fuzz.py (10^5 cases from a seeded generator).

A case is a list of byte chunks fed to one connection of the sans-IO server core, after an
optional association (none, public client 16, or management client 1 with HLS-GMAC made by
the independent dlms-cosem client). Whatever the bytes, the core must only answer with whole
wrapper PDUs addressed to the sender, close the connection (silent release), or stay silent;
it never raises, and the next connection gets a good session.
"""

from __future__ import annotations

import enum
import itertools
import random
import struct
import typing
from dataclasses import dataclass
from typing import Any

from dlms_cosem import utils

from tests.unit.p3.helpers import (
    CLOCK_VALUE,
    LinkClosedError,
    MemoryLink,
    Meter,
    management_client,
    public_client,
)
from tests.unit.p3.tcp_peers import attribute
from twin.p3.dlms.security import CipheredApdu
from twin.p3.dlms.wrapper import WrapperPdu
from twin.p3.server.events import CloseConnection, ServerEvent, Transmit

SERVER_SAP = 1
# Client wPorts: the three DSMR clients, and some the meter does not know.
CLIENTS = (1, 16, 102, 0, 17, 0xFFFF)
# First bytes worth trying: AARQ, RLRQ, GET/SET/ACTION requests, general-glo and glo-
# ciphering, InitiateRequest, and a few that are no request at all.
TAGS = (0x60, 0x62, 0xC0, 0xC1, 0xC3, 0xDB, 0x21, 0xC8, 0xC9, 0xCB, 0x01, 0xD8, 0x00, 0xFF)
SETUPS = ("none", "public", "management")
CLOCK = attribute(8, "0-0:1.0.0", 2)
_EVENTS = typing.get_args(ServerEvent)


class Outcome(enum.Enum):
    ANSWERED = "answered"  # at least one PDU sent, connection open
    CLOSED = "closed"  # silent release / connection closed by the meter
    SILENT = "silent"  # nothing sent, connection open (e.g. an unknown wPort, half a PDU)


def header(version: int, source: int, destination: int, length: int) -> bytes:
    """A COSEM wrapper header (IEC 62056-47), any field values (length kept to 16 bits)."""
    return struct.pack(">HHHH", version, source, destination, min(max(length, 0), 0xFFFF))


def wrap(apdu: bytes, source: int, destination: int = SERVER_SAP) -> bytes:
    return header(1, source, destination, len(apdu)) + apdu


def feed(meter: Meter, chunks: list[bytes]) -> Outcome:
    """Feed `chunks` to the meter's core; assert the invariants; return the outcome."""
    closed = answered = False
    for chunk in chunks:
        events = meter.server.receive_data(chunk)
        if closed:
            assert events == [], "input after CloseConnection must be ignored"
        for position, event in enumerate(events):
            check_event(event, position == len(events) - 1)
            answered |= isinstance(event, Transmit)
            closed |= isinstance(event, CloseConnection)
    if closed:
        return Outcome.CLOSED
    return Outcome.ANSWERED if answered else Outcome.SILENT


def check_event(event: ServerEvent, last: bool) -> None:
    assert isinstance(event, _EVENTS), event
    if isinstance(event, Transmit):
        pdu = WrapperPdu.from_bytes(event.data)  # exactly one whole PDU
        assert pdu.source == SERVER_SAP
        assert pdu.destination in CLIENTS
        assert 0 < len(pdu.apdu) <= 1024 + 64  # P3 §2.1.3 server PDU size, plus ciphering
    if isinstance(event, CloseConnection):
        assert last, "nothing may follow CloseConnection"


@dataclass
class Setup:
    """A connection in one of the SETUPS, with the client that made the association."""

    kind: str
    client: Any = None

    def cipher(self, plain: bytes) -> bytes:
        """`plain` in general-glo-ciphering with the next client counter (management only)."""
        conn = self.client.dlms_connection
        text, ic = conn.encrypt(plain)
        sc = conn.security_control.to_bytes()[0]
        apdu = CipheredApdu(0xDB, sc, ic, bytes(text), conn.client_system_title)
        return wrap(apdu.to_bytes(), 1)


def set_up(meter: Meter, kind: str, invocation_counter: int) -> Setup:
    meter.server.connection_lost()
    if kind == "none":
        return Setup(kind)
    if kind == "public":
        client = public_client(MemoryLink(meter.server, 16))
    else:
        client = management_client(
            MemoryLink(meter.server, 1), invocation_counter=invocation_counter
        )
    client.associate()
    return Setup(kind, client)


def good_session(meter: Meter, invocation_counter: int) -> None:
    """A new connection: the management client associates, reads the clock, releases."""
    meter.server.connection_lost()
    client = management_client(MemoryLink(meter.server, 1), invocation_counter=invocation_counter)
    client.associate()
    assert utils.parse_as_dlms_data(client.get(CLOCK)) == CLOCK_VALUE
    try:
        client.release_association()
    except LinkClosedError as exc:  # an RLRE is due here, not a silent release
        raise AssertionError("release refused") from exc


# ---- a plain generator (the bench's 10^5 cases; Hypothesis builds the same kinds) ----------


def random_chunks(rng: random.Random) -> list[bytes]:
    """One case's bytes: garbage, odd headers, or random APDUs in a valid wrapper."""
    kind = rng.randrange(4)
    if kind == 0:
        data = rng.randbytes(rng.randrange(1, 64))
    elif kind == 1:  # truncated / over-long / odd header fields
        apdu = rng.randbytes(rng.randrange(0, 48))
        length = len(apdu) + rng.choice((-3, -1, 0, 1, 5, 4000, 65535))
        version = rng.choice((0, 1, 1, 2, 0xFFFF))
        data = header(version, rng.choice(CLIENTS), rng.choice((0, 1, 2)), length) + apdu
        data = data[: rng.randrange(1, len(data) + 1)]
    else:
        apdu = bytes([rng.choice(TAGS)]) + rng.randbytes(rng.randrange(0, 80))
        data = wrap(apdu, rng.choice(CLIENTS))
    return split(data, rng.randrange(1, 4), rng)


def split(data: bytes, parts: int, rng: random.Random) -> list[bytes]:
    """`data` in up to `parts` TCP-like chunks."""
    cuts = sorted(rng.randrange(0, len(data) + 1) for _ in range(parts - 1))
    edges = [0, *cuts, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges) if b > a] or [data]


def random_plain(rng: random.Random) -> bytes:
    """A random xDLMS APDU (known first byte) for the inside of a ciphered association."""
    return bytes([rng.choice(TAGS)]) + rng.randbytes(rng.randrange(0, 60))
