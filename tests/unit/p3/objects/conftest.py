"""A live meter on a manual clock, its object model and DLMS clients over the in-memory link."""

from __future__ import annotations

import asyncio
import contextlib
import io
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from dlms_cosem import cosem, enumerations, utils
from gurux_dlms import GXByteBuffer
from gurux_dlms.internal._GXCommon import _GXCommon
from gurux_dlms.internal._GXDataInfo import _GXDataInfo

from tests.support import steady_config
from tests.unit.p3.gurux_session import GuruxSession
from tests.unit.p3.gurux_session import management_client as gurux_management_client
from tests.unit.p3.helpers import (
    GAK,
    GUEK,
    SERVER_TITLE,
    Challenges,
    Counters,
    Keys,
    MemoryLink,
    ciphered_exchange,
    management_client,
    public_client,
)
from twin.clock import ManualClock
from twin.metering import Meter
from twin.p3.dlms.cosem import AttributeRef
from twin.p3.objects import DsmrObjects, build_objects
from twin.p3.objects.base import obis_bytes
from twin.p3.server.association import ServerConfig
from twin.p3.server.connection import DlmsServer
from twin.p3.server.events import Transmit
from twin.ports import MbusDevice, NetworkInfo, PortResult
from twin.store import Store

START = datetime(2026, 11, 23, 20, 0, tzinfo=UTC)


@dataclass
class FakeKeyService:
    policy: int = 3
    client_title: bytes = b""
    calls: list[tuple[str, object]] = field(default_factory=list)
    answer: PortResult = PortResult.SUCCESS

    def security_policy(self) -> int:
        return self.policy

    def server_system_title(self) -> bytes:
        return SERVER_TITLE

    def client_system_title(self) -> bytes:
        return self.client_title

    def security_activate(self, policy: int) -> PortResult:
        self.calls.append(("activate", policy))
        return self.answer

    def global_key_transfer(self, keys: Any) -> PortResult:
        self.calls.append(("transfer", list(keys)))
        return self.answer

    def change_hls_secret(self, wrapped: bytes) -> PortResult:
        self.calls.append(("secret", wrapped))
        return self.answer


@dataclass
class FakeMbus:
    devices: dict[int, MbusDevice] = field(default_factory=dict)
    calls: list[tuple[str, int, object]] = field(default_factory=list)

    def device(self, channel: int) -> MbusDevice | None:
        return self.devices.get(channel)

    def _call(self, name: str, channel: int, arg: object = None) -> PortResult:
        self.calls.append((name, channel, arg))
        return PortResult.SUCCESS

    def slave_install(self, channel: int, primary_address: int) -> PortResult:
        return self._call("install", channel, primary_address)

    def slave_deinstall(self, channel: int) -> PortResult:
        return self._call("deinstall", channel)

    def capture(self, channel: int) -> PortResult:
        return self._call("capture", channel)

    def reset_alarm(self, channel: int) -> PortResult:
        return self._call("reset_alarm", channel)

    def synchronize_clock(self, channel: int) -> PortResult:
        return self._call("sync", channel)

    def data_send(self, channel: int, data: bytes) -> PortResult:
        return self._call("data_send", channel, data)

    def set_encryption_key(self, channel: int, key: bytes) -> PortResult:
        return self._call("set_key", channel, key)

    def transfer_key(self, channel: int, wrapped_key: bytes) -> PortResult:
        return self._call("transfer_key", channel, wrapped_key)


@dataclass
class FakeModem:
    info: NetworkInfo | None = field(default_factory=lambda: NetworkInfo(-71, 3, b"20408"))

    def network_info(self) -> NetworkInfo | None:
        return self.info


@dataclass
class Twin:
    clock: ManualClock
    meter: Meter
    objects: DsmrObjects
    keys: FakeKeyService
    mbus: FakeMbus
    state_dir: Path

    def server(self) -> DlmsServer:
        """One server core per connection (the P3 service makes one per TCP connection)."""
        return DlmsServer(
            ServerConfig(SERVER_TITLE),
            self.objects.session(),
            keys=Keys(),
            counters=Counters(),
            challenges=Challenges(),
        )

    def public(self) -> Any:
        client = public_client(MemoryLink(self.server(), 16))
        client.associate()
        return client

    def management(self, **kwargs: Any) -> Any:
        client = management_client(MemoryLink(self.server(), 1), **kwargs)
        client.associate()
        return client


def make_twin(tmp: Path, *, mbus: bool = True) -> Twin:
    clock = ManualClock(START)
    store = Store.open(tmp)
    meter = Meter(steady_config(), clock, store, random.Random(1))
    keys, port = FakeKeyService(), FakeMbus()
    objects = build_objects(
        meter, keys=keys, mbus=port if mbus else None, modem=FakeModem(), state_dir=tmp
    )
    return Twin(clock, meter, objects, keys, port, tmp)


@pytest.fixture
def twin(tmp_path: Path) -> Iterator[Twin]:
    t = make_twin(tmp_path)
    yield t
    t.meter.store.close()


# ---------------------------------------------------------------- helpers for the tests

IFACE = enumerations.CosemInterface


def obis(code: str) -> cosem.Obis:
    """'1-0:1.8.1' -> dlms-cosem Obis."""
    head, _, tail = code.partition(":")
    a, b = head.split("-")
    return cosem.Obis(int(a), int(b), *(int(x) for x in tail.split(".")))


def attr(class_id: int, code: str, index: int) -> cosem.CosemAttribute:
    return cosem.CosemAttribute(IFACE(class_id), obis(code), index)


def method(class_id: int, code: str, index: int) -> cosem.CosemMethod:
    return cosem.CosemMethod(IFACE(class_id), obis(code), index)


def ref(class_id: int, code: str, index: int) -> AttributeRef:
    return AttributeRef(class_id, obis_bytes(code), index)


def read(client: Any, class_id: int, code: str, index: int) -> Any:
    """GET through the dlms-cosem client, decoded by dlms-cosem (an independent decoder)."""
    return utils.parse_as_dlms_data(client.get(attr(class_id, code, index)))


def gx_decode(data: bytes) -> Any:
    """Decode with gurux's A-XDR decoder (handles bit-strings, which dlms-cosem cannot)."""
    return _GXCommon.getData(None, GXByteBuffer(data), _GXDataInfo())


def write(client: Any, class_id: int, code: str, index: int, value: bytes) -> int:
    """SET through dlms-cosem; returns the Data-Access-Result as an int."""
    response = client.set(attr(class_id, code, index), value)
    return int(response.result)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def advance(twin: Twin, seconds: float) -> None:
    """Let meter time pass and commit what it produced (the P1 service would tick it)."""
    run(twin.clock.advance(seconds))
    twin.meter.commit()


def set_time(twin: Twin, when: datetime) -> None:
    run(twin.clock.set(when))
    twin.meter.commit()


def big_set(client: Any, class_id: int, code: str, index: int, value: bytes) -> int:
    """SET-Request-Normal sent with the core's general-glo-ciphering framing: dlms-cosem
    21.3.2 writes the length of a ciphered APDU over 127 bytes in one byte (not A-XDR), which
    the core rightly rejects. The ciphering itself is still dlms-cosem's."""
    plain = b"\xc1\x01\xc1" + ref(class_id, code, index).to_bytes() + b"\x00" + value
    answer = ciphered_exchange(client, client.io_interface, plain)
    assert answer[:3] == b"\xc5\x01\xc1", answer.hex()
    return answer[3]


def big_action(client: Any, class_id: int, code: str, index: int, value: bytes) -> int:
    """ACTION-Request-Normal with parameters, framed like `big_set`; returns the result."""
    plain = b"\xc3\x01\xc1" + ref(class_id, code, index).to_bytes() + b"\x01" + value
    answer = ciphered_exchange(client, client.io_interface, plain)
    assert answer[:3] == b"\xc7\x01\xc1", answer.hex()
    return answer[3]


class CoreGurux(GuruxSession):
    """gurux's client wired to the twin's server core (the object model of a real twin)."""

    def __init__(self, twin: Twin) -> None:
        super().__init__(gurux_management_client(GUEK, GAK))
        self.server = twin.server()

    def _transfer(self, request: bytes) -> bytes:
        events = self.server.receive_data(request)
        return b"".join(e.data for e in events if isinstance(e, Transmit))


def gurux_rows(peer: CoreGurux, profile: Any, frames: list[Any]) -> list[list[Any]]:
    """The buffer rows gurux decodes from the answer to `frames` (a readRowsBy... request)."""
    with contextlib.redirect_stdout(io.StringIO()):  # gurux prints on every decrypt
        reply = peer.run(frames)
    peer.client.updateValue(profile, 2, reply.value)
    return [list(row) for row in profile.buffer]
