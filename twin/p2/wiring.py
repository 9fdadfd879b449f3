"""Wires the P2 (M-Bus) services into a running twin (see `twin.p2.aio.wiring`).

`p2_services(twin)` is called by twin/app.py when `[p2] enabled`; `mbus_port(twin)` gives the
P3 object model the M-Bus port (class 72 methods) of a built twin.
"""

from twin.p2.aio.wiring import mbus_port, p2_services

__all__ = ["mbus_port", "p2_services"]
