"""A head-end's TCP listener for the meters' pushes (GPRS CS §3: the meter connects, sends one
message, closes), collecting every message with its arrival time on a thread: one for the fleet
tests and the fleet benchmark."""

from __future__ import annotations

import contextlib
import socket
import threading
import time


class PushListener:
    def __init__(self, backlog: int = 1024) -> None:
        # A whole fleet's outage may connect at once: the backlog holds them all.
        self.sock = socket.create_server(("127.0.0.1", 0), backlog=backlog)
        self.received: list[tuple[float, bytes]] = []  # (time.monotonic(), message)
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def destination(self) -> bytes:
        """The push setup's destination (P3 §9.3: "host:port")."""
        return f"127.0.0.1:{self.sock.getsockname()[1]}".encode()

    @property
    def messages(self) -> list[bytes]:
        return [message for _, message in self.received]

    def senders(self) -> list[str]:
        """The equipment ids of the alarm pushes (P3 §9.3: equipment id ',' alarm register)."""
        return [m.partition(b",")[0].decode() for m in self.messages]

    def close(self) -> None:
        self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):  # closed: done
            while True:
                pushed, _ = self.sock.accept()
                with pushed:
                    pushed.settimeout(10)
                    out = b""
                    while chunk := pushed.recv(4096):
                        out += chunk
                self.received.append((time.monotonic(), out))
