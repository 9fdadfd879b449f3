"""The P3 `MbusPort` (class 72 M-Bus client setup methods, P3 §7.1) on the P2 service.

Every call returns at once (the DLMS core answers from memory): bus work is queued for the
P2 service, which does it "at the first opportunity" (MAIN DSMR-M 4.4.15), and the call
answers SUCCESS on receipt (P3 §3.5). Refusals are `PortResult`s, never exceptions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from twin.p2.crypto import KEY_SIZE, NO_KEY
from twin.p2.dtypes import manufacturer_encode
from twin.p2.errors import MbusError
from twin.ports import MbusDevice, PortResult

if TYPE_CHECKING:
    from twin.p2.aio.service import P2Service

CONFIGURATION_UNENCRYPTED = 0  # class 72 attribute 13 (P3 §7.1)
CONFIGURATION_AES = 15


class P2MbusPort:
    """`twin.ports.MbusPort` for channels 1..4 of the P2 master."""

    def __init__(self, service: P2Service) -> None:
        self.service = service

    def device(self, channel: int) -> MbusDevice | None:
        found = self.service.channel(channel) if 1 <= channel <= 4 else None
        if found is None:
            return None
        device = found.device
        return MbusDevice(
            primary_address=found.address,
            # Attribute 6: the 8 BCD digits read as hex, e.g. 12056731 -> 0x12056731.
            identification_number=int(f"{device.ident:08d}", 16),
            manufacturer_id=int.from_bytes(manufacturer_encode(device.manufacturer), "little"),
            version=device.version,
            device_type=device.device_type,
            status=found.status,
            configuration=CONFIGURATION_AES if found.user_key else CONFIGURATION_UNENCRYPTED,
            encryption_key_status=int(self.service.key_status(channel)),
        )

    def _installed(self, channel: int) -> bool:
        return 1 <= channel <= 4 and self.service.channel(channel) is not None

    def slave_install(self, channel: int, primary_address: int) -> PortResult:
        # P2 §8.3.1.2: scan address 0 now; the device gets the next free channel and an
        # unused address (the parameter is only a wish on wired M-Bus).
        if not 1 <= channel <= 4 or self._installed(channel):
            return PortResult.DENIED
        self.service.slave_install()
        return PortResult.SUCCESS

    def slave_deinstall(self, channel: int) -> PortResult:
        if not self._installed(channel):
            return PortResult.DENIED
        self.service.slave_deinstall(channel)
        return PortResult.SUCCESS

    def capture(self, channel: int) -> PortResult:
        if not self._installed(channel):
            return PortResult.DENIED
        self.service.capture(channel)
        return PortResult.SUCCESS

    def reset_alarm(self, channel: int) -> PortResult:
        if not self._installed(channel):
            return PortResult.DENIED
        self.service.reset_alarm(channel)
        return PortResult.SUCCESS

    def synchronize_clock(self, channel: int) -> PortResult:
        if not self._installed(channel):
            return PortResult.DENIED
        self.service.synchronize_clock(channel)
        return PortResult.SUCCESS

    def data_send(self, channel: int, data: bytes) -> PortResult:
        # DSMR 4.2.2 defines no data the E meter sends to a gas meter this way (valve
        # commands are gone, P2 §9); refuse rather than put undefined frames on the bus.
        return PortResult.DENIED

    def set_encryption_key(self, channel: int, key: bytes) -> PortResult:
        if not self._installed(channel):
            return PortResult.DENIED
        if len(key) not in (0, KEY_SIZE):
            return PortResult.TYPE_UNMATCHED
        try:
            # Empty removes the key: P2 §6.5, 16 x 00 means "no User key".
            self.service.set_encryption_key(channel, key or NO_KEY)
        except MbusError:
            return PortResult.TYPE_UNMATCHED
        return PortResult.SUCCESS

    def transfer_key(self, channel: int, wrapped_key: bytes) -> PortResult:
        if not self._installed(channel):
            return PortResult.DENIED
        try:
            self.service.transfer_key(channel, wrapped_key)
        except MbusError:
            return PortResult.TYPE_UNMATCHED
        return PortResult.SUCCESS
