"""The DSMR 4.2.2 COSEM object model (P3 chapters 4-9) behind the P3 DLMS server core.

`build_objects(meter, keys=..., mbus=..., modem=..., state_dir=..., push=...)` returns a
`DsmrObjects`, the `twin.p3.server.interfaces.CosemObjects` the core calls (through one `session()`
per connection). The Protocols other services implement are in `twin.p3.objects.ports`:
`KeyService` (P3 service) and `PushPort` (GPRS; the wiring hands over a `PushRelay` because the
controller is built after the objects); those P3 shares are in the neutral `twin.ports`:
`MbusPort` (P2 service), `ModemStatus` (the modem) and `PortResult`.

Layers: `values` (typed A-XDR values and their encoding) -> `base` (rights per client,
`CosemObject`) -> `registry` (lookup, rights checks, result codes) -> the object modules by
spec chapter (`association`, `clock`, `abstract`, `tariff`, `activation`, `profile_generic`,
`profiles`, `definable`, `readout`, `electricity`, `mbus`, `configured`, `comm`,
`push_setup`, `security`, `image`, `meter_reset`, `comlog`) -> `factory`.
"""

from __future__ import annotations

from twin.p3.objects.factory import DsmrObjects, build_objects
from twin.p3.objects.ports import (
    KeyId,
    KeyService,
    PushPort,
    PushRelay,
    WrappedKey,
)

__all__ = [
    "DsmrObjects",
    "KeyId",
    "KeyService",
    "PushPort",
    "PushRelay",
    "WrappedKey",
    "build_objects",
]
