"""The P1 data line as a TCP server, like a network P1 dongle or ser2net.

Every connected client gets every telegram (P1 §4.3 allows several readers on one port). A
client that has not taken the previous telegram yet is dropped rather than waited for, so a
slow or dead reader never delays the others; readers reconnect (Home Assistant every 30 s).
With `pace` the bytes leave at the line speed of P1 §5.1, as from a serial-to-network bridge
(hardware/pacing.py).
"""

from __future__ import annotations

import asyncio
import logging
import socket

from hardware.pacing import P1_BAUDRATE, PacedLine
from hardware.ports import PortError

log = logging.getLogger(__name__)

# Kernel send buffer per client: bounds the stale data a stuck client can hold.
CLIENT_SNDBUF = 16 * 1024


class _Client(asyncio.Protocol):
    def __init__(self, sink: TcpSink) -> None:
        self.sink = sink
        self.transport: asyncio.Transport | None = None
        self.peer = "?"

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.peer = str(transport.get_extra_info("peername"))
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, CLIENT_SNDBUF)
        self.sink.clients.add(self)
        log.info("P1 client %s connected", self.peer)

    def data_received(self, data: bytes) -> None:
        # P1 is output-only; what a client sends is ignored.
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.sink.clients.discard(self)
        log.info("P1 client %s gone (%s)", self.peer, exc or "closed")

    def keeps_up(self, size: int) -> bool:
        """False (and the client dropped) if a telegram of `size` bytes is still unsent to it."""
        assert self.transport is not None
        if self.transport.get_write_buffer_size() >= size:
            log.warning("P1 client %s is not reading; dropped", self.peer)
            self.drop()
            return False
        return True

    def send(self, data: memoryview) -> None:
        assert self.transport is not None
        self.transport.write(data)

    def drop(self) -> None:
        if self.transport is not None:
            self.transport.abort()
        self.sink.clients.discard(self)


class TcpSink:
    """Serves the P1 telegrams on `host:port` (port 0 picks a free port, see `port`)."""

    def __init__(
        self, host: str, port: int, *, baudrate: int = P1_BAUDRATE, pace: bool = False
    ) -> None:
        self.host = host
        self.port = port
        self.line = PacedLine(baudrate, paced=pace)
        self.clients: set[_Client] = set()
        self._server: asyncio.Server | None = None

    @property
    def description(self) -> str:
        return f"tcp {self.host}:{self.port} ({len(self.clients)} clients)"

    def status(self) -> dict[str, object]:
        return {**self.line.status(), "clients": len(self.clients)}

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            self._server = await loop.create_server(lambda: _Client(self), self.host, self.port)
        except OSError as exc:
            raise PortError(f"cannot listen on tcp {self.host}:{self.port}: {exc}") from exc
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("P1 on %s", self.description)

    async def write(self, data: bytes) -> None:
        if self._server is None:
            raise PortError(f"{self.description} is not open")
        # The telegram goes to the clients there are when it starts (and keep up): one that
        # connects while it is on the line gets the next one whole, never a headless tail.
        receivers = [client for client in list(self.clients) if client.keeps_up(len(data))]

        async def send(view: memoryview) -> None:
            for client in receivers:
                if client in self.clients:  # not gone (or dropped) meanwhile
                    client.send(view)

        await self.line.write(data, send)

    def abort_output(self) -> None:
        # Bytes already in the kernel cannot be recalled; a client with a user-space backlog
        # would receive the rest of the telegram after Request fell (P1 §4.3), so drop it.
        for client in list(self.clients):
            if client.transport is not None and client.transport.get_write_buffer_size():
                client.drop()

    async def close(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for client in list(self.clients):
            client.drop()
        await server.wait_closed()
