"""Independent DLMS clients over real TCP (loopback): dlms-cosem 21.3.2 and gurux-dlms.

Both are blocking; async tests run them in a thread (`asyncio.to_thread`). Shared by the
service unit tests, the end-to-end tests and the benchmark.
"""

from __future__ import annotations

import contextlib
import socket
import struct
from typing import Any

from dlms_cosem import cosem, enumerations
from dlms_cosem.clients.dlms_client import DlmsClient
from gurux_dlms.enums import Authentication, InterfaceType
from gurux_dlms.secure import GXDLMSSecureClient

from tests.unit.p3.gurux_session import GuruxSession
from tests.unit.p3.gurux_session import management_client as gurux_client

IFACE = enumerations.CosemInterface
CLIENT_TITLE = bytes.fromhex("5452414E53464552")


def attribute(interface: int, obis: str, index: int) -> Any:
    """A dlms-cosem CosemAttribute from '1-0:1.8.1' style codes."""
    head, _, tail = obis.partition(":")
    a, b = (int(x) for x in head.split("-"))
    c, d, e = (int(x) for x in tail.split("."))
    return cosem.CosemAttribute(IFACE(interface), cosem.Obis(a, b, c, d, e), index)


def method(interface: int, obis: str, index: int) -> Any:
    head, _, tail = obis.partition(":")
    a, b = (int(x) for x in head.split("-"))
    c, d, e = (int(x) for x in tail.split("."))
    return cosem.CosemMethod(IFACE(interface), cosem.Obis(a, b, c, d, e), index)


def public_client(port: int, host: str = "127.0.0.1", **kwargs: Any) -> Any:
    return DlmsClient.with_tcp_transport(host, port, 16, 1, timeout=5, **kwargs)


class AssociatedSession:
    """`with` a dlms-cosem client (set as `self.client` by a subclass): connected and
    associated inside, released (if the association still stands) and disconnected after."""

    client: DlmsClient

    def __enter__(self) -> Any:
        self.client.connect()
        self.client.associate()
        return self.client

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):
            self.client.release_association()
        self.client.disconnect()


def management_client(
    port: int,
    guek: bytes,
    gak: bytes,
    *,
    host: str = "127.0.0.1",
    invocation_counter: int = 1,
    client_system_title: bytes = CLIENT_TITLE,
    **kwargs: Any,
) -> Any:
    return DlmsClient.with_tcp_transport(
        host,
        port,
        1,
        1,
        authentication_method=enumerations.AuthenticationMechanism.HLS_GMAC,
        encryption_key=guek,
        authentication_key=gak,
        client_system_title=client_system_title,
        client_initial_invocation_counter=invocation_counter,
        timeout=5,
        **kwargs,
    )


def wrap(apdu: bytes, source: int = 1, destination: int = 1) -> bytes:
    """COSEM wrapper header (IEC 62056-47): version 1, source, destination, length."""
    return struct.pack(">HHHH", 1, source, destination, len(apdu)) + apdu


def recv_exact(sock: socket.socket, n: int) -> bytes:
    out = b""
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            raise ConnectionResetError(f"closed after {len(out)} of {n} bytes")
        out += chunk
    return out


def recv_pdu(sock: socket.socket) -> bytes:
    """One whole wrapper PDU (header included)."""
    header = recv_exact(sock, 8)
    (length,) = struct.unpack(">H", header[6:])
    return header + recv_exact(sock, length)


def closed_by_peer(sock: socket.socket, timeout: float = 5.0) -> bool:
    """True when the peer closed the connection (EOF or reset) without sending anything."""
    sock.settimeout(timeout)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


class GuruxTcpPeer(GuruxSession):
    """gurux-dlms's GXDLMSSecureClient over a blocking socket (WRAPPER)."""

    def __init__(self, port: int, client: Any, host: str = "127.0.0.1") -> None:
        super().__init__(client)
        self.sock = socket.create_connection((host, port), timeout=5)

    def close(self) -> None:
        self.sock.close()

    def _transfer(self, request: bytes) -> bytes:
        self.sock.sendall(request)
        return recv_pdu(self.sock)

    def release(self) -> bool:
        """True for an RLRE; False when the meter released silently. Gurux's default RLRQ
        is plain and gets an RLRE; before a protected one it skips an invocation counter,
        which P3 §3.2.3 answers with a silent release (see test_p3_peer_gurux.py)."""
        try:
            self.run(self.client.releaseRequest())
        except ConnectionResetError:
            return False
        return True


def gurux_management(
    port: int,
    guek: bytes,
    gak: bytes,
    invocation_counter: int = 10,
    host: str = "127.0.0.1",
    *,
    authentication: Authentication = Authentication.HIGH_GMAC,
    secret: bytes | None = None,
) -> GuruxTcpPeer:
    """Management client 1; HLS 3/4 (HIGH_MD5 / HIGH_SHA1) use `secret`, HLS 5 the keys."""
    client = gurux_client(
        guek,
        gak,
        authentication=authentication,
        secret=secret,
        invocation_counter=invocation_counter,
    )
    return GuruxTcpPeer(port, client, host)


def gurux_public(port: int, host: str = "127.0.0.1") -> GuruxTcpPeer:
    client = GXDLMSSecureClient(True, 16, 1, Authentication.NONE, None, InterfaceType.WRAPPER)
    client.maxReceivePDUSize = 1024
    return GuruxTcpPeer(port, client, host)
