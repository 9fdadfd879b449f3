"""Identity and persistent state of the gas-meter twin (P2 §4.2, §7.2, §8.2)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum

from twin.p2.commands import version_record
from twin.p2.crypto import KEY_SIZE
from twin.p2.errors import MbusError
from twin.p2.headers import DEVICE_GAS, DSMR_40, DSMR_42, ShortId
from twin.p2.values import equipment_id_record

DEFAULT_VERSIONS = (
    (0x0C, "dsmr=4.2.2\r\n"),
    (0x0D, "met=HW1\r\ncom=HW1\r\n"),
    (0x0E, "met=FW1\r\n"),
    (0x0F, "com=FW1\r\napl=FW1\r\ncfg=1\r\n"),
)


class SlaveState(Enum):
    """Configuration state of the gas meter."""

    UNCONFIGURED = "unconfigured"
    ADDRESSED = "addressed"
    KEYED = "keyed"


@dataclass(frozen=True, slots=True)
class GasMeterIdentity:
    """What a gas meter is born with: Short ID parts, equipment ID, Default key, variant."""

    ident: int
    manufacturer: str
    equipment_id: str
    default_key: bytes = field(repr=False)  # a key: out of logs
    large_meter: bool = False  # G10-G25: volume in 0.01 m3 (P2 §6.4.4)
    dsmr40: bool = False  # DSMR 4.0 meter: VER 40 and the valve block (P2 §9)
    versions: tuple[tuple[int, str], ...] = DEFAULT_VERSIONS

    def __post_init__(self) -> None:
        # Fail at configuration time, not in the middle of answering the bus.
        self.device  # noqa: B018 - validates ident and manufacturer (P2 §4.2.2)
        equipment_id_record(self.equipment_id)
        if len(self.default_key) != KEY_SIZE:
            raise MbusError("the Default key is 16 bytes (AES-128, P2 §6.5)")
        for vife, text in self.versions:
            version_record(vife, text)

    @property
    def device(self) -> ShortId:
        """The Short ID sent in every RSP_UD header (P2 §4.2.2-4.2.3)."""
        version = DSMR_40 if self.dsmr40 else DSMR_42
        return ShortId(self.ident, self.manufacturer, version, DEVICE_GAS)


@dataclass(frozen=True, slots=True)
class SlaveSnapshot:
    """Everything a G meter keeps through a power outage (P2 §7.2), for the state store."""

    address: int = 0
    user_key: bytes | None = field(default=None, repr=False)  # a key: out of logs
    frame_counter: int = 0
    access_number: int = 0
    status: int = 0
    clock_offset: timedelta = timedelta(0)
    valve_state: int = 1
    reading: tuple[int, datetime] | None = None
    selected: tuple[int, ...] = field(default=())
