"""M-Bus supply switching: the `BusPower` Protocol and bus power on a Raspberry Pi GPIO pin.

The packom M-Bus master HAT switches its line driver on BCM 26, off after boot. The RPi.GPIO
API is imported when the power is first switched on, never at import time; off a Pi that
raises `PortError` saying what is missing.
"""

from __future__ import annotations

import asyncio
from types import ModuleType
from typing import Any, Protocol

from hardware.ports import PortError

PACKOM_POWER_PIN = 26  # the packom HAT switches bus power on BCM 26 (packom/pyMbusHat)
POWER_SETTLE_S = 0.5  # pyMbusHat: bus-powered meters may need more than 0.1 s


class BusPower(Protocol):
    """Switches the M-Bus supply (the master's 36 V/24 V line driver)."""

    @property
    def description(self) -> str: ...

    async def on(self) -> None: ...

    async def off(self) -> None: ...


def _load_gpio() -> ModuleType:
    from hardware.gpio import load_rpi_gpio  # raises PortError off a Pi

    return load_rpi_gpio()


class GpioBusPower:
    """Bus power on BCM pin `pin`, high = on (packom HAT: GPIO26, packom/pyMbusHat)."""

    def __init__(
        self, pin: int = PACKOM_POWER_PIN, settle_s: float = POWER_SETTLE_S, gpio: Any = None
    ) -> None:
        self.pin = pin
        self.settle_s = settle_s
        self._injected = gpio  # a stand-in module for tests; RPi.GPIO is loaded on `on()`
        self._gpio: Any = None

    @property
    def description(self) -> str:
        return f"bus power GPIO{self.pin} (BCM)"

    async def on(self) -> None:
        gpio = self._injected or _load_gpio()
        try:
            gpio.setmode(gpio.BCM)
            gpio.setup(self.pin, gpio.OUT, initial=gpio.HIGH)
            gpio.output(self.pin, gpio.HIGH)
        except Exception as exc:
            # lgpio raises its own `lgpio.error` when no gpiochip can be opened.
            raise PortError(f"{self.description}: cannot drive the pin: {exc}") from exc
        self._gpio = gpio
        # MAIN DSMR-M 4.3.16: transmitters are on during discovery; give the slaves time to
        # power up before the first frame.
        await asyncio.sleep(self.settle_s)

    async def off(self) -> None:
        gpio, self._gpio = self._gpio, None
        if gpio is None:
            return
        gpio.output(self.pin, gpio.LOW)
        gpio.cleanup(self.pin)
