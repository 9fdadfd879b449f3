"""Sans-IO wired M-Bus (DSMR 4.2.2 P2): codec, gas-meter slave and E-meter master.

Nothing in this package does I/O, reads a clock or draws random numbers: bytes, times
(timezone-aware UTC) and keys are passed in. Every decoding error is an `MbusError`.

Layers, bottom up: `frames` (FT1.2 link frames and a stream `Framer`), `records`/`values`
(EN 13757-3 data records and their DSMR meaning), `headers`/`payload`/`crypto` (data headers,
mode 15/5 AES-CBC, key wrap), `messages` (the P2 Table 5 messages), `commands`, and the two
state machines `slave.GasMeterSlave` and `master.MbusMaster`.
"""

from twin.p2.errors import (
    ChecksumError,
    DecryptionError,
    FramingError,
    HeaderError,
    MbusError,
    RecordError,
    ReplayError,
    UnsupportedMessageError,
)

__all__ = [
    "ChecksumError",
    "DecryptionError",
    "FramingError",
    "HeaderError",
    "MbusError",
    "RecordError",
    "ReplayError",
    "UnsupportedMessageError",
]
