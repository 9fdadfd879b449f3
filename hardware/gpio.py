"""The P1 Request line on a Raspberry Pi GPIO input, through the RPi.GPIO API.

On the Pi the API comes from `rpi-lgpio` (the `pi` extra): the original RPi.GPIO cannot find
the SoC on a Pi 5 and its edge detection fails on kernel 6.6+ (gpiozero issue #1172,
raspberrypi/linux issue #6037). The module is imported when the line is opened, never at import
time, so the twin runs anywhere else.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from types import ModuleType
from typing import Any

from hardware.ports import PortError
from hardware.request_line import LevelLatch

log = logging.getLogger(__name__)

MISSING_HINT = "install the 'pi' extra (rpi-lgpio provides the RPi.GPIO API)"


def load_rpi_gpio() -> ModuleType:
    """Import RPi.GPIO, turning 'not here' into a PortError that says what to install."""
    try:
        return importlib.import_module("RPi.GPIO")
    except ImportError as exc:
        raise PortError(f"RPi.GPIO is missing: {MISSING_HINT} ({exc})") from exc
    except RuntimeError as exc:
        # Both RPi.GPIO and rpi-lgpio raise RuntimeError on import when this is no Pi.
        raise PortError(f"RPi.GPIO cannot run on this machine: {exc}") from exc


class GpioRequestLine:
    """Request (P1 §4.3) sensed on BCM pin `pin`; both edges are watched.

    The reader's 5 V Request drives an opto or a divider, never the 3.3 V pin directly. An opto
    transistor pulls the pin low while Request is raised, so `active_high=False` (the default in
    the config) reads a low pin as raised and enables the pull-up; with a divider
    (`active_high=True`) the pull-down makes an unplugged cable read as released.
    """

    def __init__(self, pin: int, active_high: bool, gpio: ModuleType | None = None) -> None:
        self.pin = pin
        self.active_high = active_high
        self._injected = gpio  # a stand-in module for tests; RPi.GPIO is loaded on open otherwise
        self._gpio: ModuleType | None = None
        self._latch = LevelLatch()
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def description(self) -> str:
        level = "high" if self.active_high else "low"
        return f"GPIO{self.pin} (BCM, active {level})"

    async def open(self) -> None:
        gpio = self._injected or load_rpi_gpio()
        self._gpio = gpio
        self._loop = asyncio.get_running_loop()
        pull = gpio.PUD_DOWN if self.active_high else gpio.PUD_UP
        try:
            gpio.setmode(gpio.BCM)
            gpio.setup(self.pin, gpio.IN, pull_up_down=pull)
            self._latch.update(self._level(gpio))
            gpio.add_event_detect(self.pin, gpio.BOTH, callback=self._on_edge)
        except Exception as exc:
            # lgpio raises its own `lgpio.error` (an Exception) when no gpiochip can be opened.
            self._gpio = self._loop = None
            raise PortError(f"{self.description}: cannot watch the pin: {exc}") from exc
        log.info("P1 Request on %s, now %s", self.description, self.is_raised())

    def _level(self, gpio: ModuleType) -> bool:
        return bool(gpio.input(self.pin)) == self.active_high

    def _on_edge(self, channel: Any) -> None:
        # Runs on the library's thread: read the level here, hand it to the loop.
        gpio, loop = self._gpio, self._loop
        if gpio is None or loop is None:
            return  # an edge that raced with close()
        loop.call_soon_threadsafe(self._latch.update, self._level(gpio))

    def is_raised(self) -> bool:
        return self._latch.is_raised()

    async def wait_for(self, raised: bool) -> None:
        await self._latch.wait_for(raised)

    async def close(self) -> None:
        gpio, self._gpio = self._gpio, None
        if gpio is None or self._loop is None:
            return
        self._loop = None
        gpio.remove_event_detect(self.pin)
        gpio.cleanup(self.pin)
