"""The P2 master service (implemented in `twin.p2.aio.service`; see its docstring)."""

from twin.p2.aio.service import STATE_SETTING, P2Service

__all__ = ["STATE_SETTING", "P2Service"]
