"""Wires the P2 (M-Bus) services into a running twin (see `twin.p2.aio.wiring`).

`p2_services(twin)` is called by twin/app.py when `[p2] enabled`; it also sets `twin.mbus_port`,
the M-Bus port (class 72 methods) the P3 object model calls.
"""

from twin.p2.aio.wiring import p2_services

__all__ = ["p2_services"]
