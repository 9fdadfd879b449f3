"""The display push-button: short press = next page, long press = service mode (DSMR-M 4.3.35).

`Button` is the port; `GpioButton` reads a push-button on a Raspberry Pi GPIO through the
RPi.GPIO API (rpi-lgpio from the `pi` extra, imported on open), `SimulatedButton` is pressed
by `ctl button` and by tests. Debounce and long-press detection are a pure state machine,
`PressDetector`, fed with (level, monotonic time) pairs, so they are tested without a pin.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable
from enum import Enum
from types import ModuleType
from typing import Any, Protocol

from hardware.gpio import load_rpi_gpio
from hardware.ports import PortError

log = logging.getLogger(__name__)

DEBOUNCE_S = 0.03
LONG_PRESS_S = 2.0
BUTTON_FORMS = "'none', 'simulated' or 'gpio:N' (BCM pin, button to ground)"


class Press(Enum):
    SHORT = "short"
    LONG = "long"


class Button(Protocol):
    @property
    def description(self) -> str: ...

    async def open(self) -> None: ...

    async def next_press(self) -> Press:
        """Wait for the next complete press (reported on release)."""
        ...

    async def close(self) -> None: ...


class PressDetector:
    """Debounce and classify presses from raw edges.

    An edge within `debounce_s` of the last accepted edge is contact bounce and ignored (the
    caller re-samples the pin once the bounce window is over, so a real change is not lost).
    A press is reported on release: LONG when held at least `long_s`, SHORT otherwise.
    """

    def __init__(self, debounce_s: float = DEBOUNCE_S, long_s: float = LONG_PRESS_S) -> None:
        if not 0 <= debounce_s < long_s:
            raise ValueError("need 0 <= debounce_s < long_s")
        self.debounce_s = debounce_s
        self.long_s = long_s
        self.pressed = False
        self._since: float | None = None  # time of the last accepted edge

    def edge(self, pressed: bool, now: float) -> Press | None:
        """Feed the pin level seen at `now`; returns a press when one completes."""
        if pressed == self.pressed:
            return None
        if self._since is not None and now - self._since < self.debounce_s:
            return None
        held = now - self._since if self._since is not None else 0.0
        self.pressed, self._since = pressed, now
        if pressed:
            return None
        return Press.LONG if held >= self.long_s else Press.SHORT


class SimulatedButton:
    """A button pressed by software (`ctl button --press short|long`, tests)."""

    def __init__(self) -> None:
        self._presses: asyncio.Queue[Press] = asyncio.Queue()

    @property
    def description(self) -> str:
        return "simulated button"

    async def open(self) -> None:
        return None

    def press(self, kind: Press) -> None:
        self._presses.put_nowait(kind)

    async def next_press(self) -> Press:
        return await self._presses.get()

    async def close(self) -> None:
        return None


class GpioButton:
    """A push-button from BCM pin `pin` to ground (pull-up on), or to 3.3 V if active high."""

    def __init__(
        self,
        pin: int,
        *,
        active_high: bool = False,
        detector: PressDetector | None = None,
        gpio: ModuleType | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.pin = pin
        self._monotonic = monotonic  # injectable, so long presses are tested without waiting
        self.active_high = active_high
        self.detector = detector or PressDetector()
        self._injected = gpio  # a stand-in module for tests; RPi.GPIO is loaded on open
        self._gpio: ModuleType | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._presses: asyncio.Queue[Press] = asyncio.Queue()

    @property
    def description(self) -> str:
        return f"button on GPIO{self.pin} (BCM, active {'high' if self.active_high else 'low'})"

    async def open(self) -> None:
        gpio = self._injected or load_rpi_gpio()
        self._gpio, self._loop = gpio, asyncio.get_running_loop()
        pull = gpio.PUD_DOWN if self.active_high else gpio.PUD_UP
        try:
            gpio.setmode(gpio.BCM)
            gpio.setup(self.pin, gpio.IN, pull_up_down=pull)
            gpio.add_event_detect(self.pin, gpio.BOTH, callback=self._on_edge)
        except Exception as exc:
            # lgpio raises its own `lgpio.error` (an Exception) when no gpiochip can be opened.
            raise PortError(f"{self.description}: cannot watch the pin: {exc}") from exc
        log.info("display %s", self.description)

    def _level(self) -> bool:
        assert self._gpio is not None
        return bool(self._gpio.input(self.pin)) == self.active_high

    def _on_edge(self, channel: Any) -> None:
        # Runs on the library's thread: sample here, hand over to the loop.
        loop = self._loop
        if loop is not None:
            loop.call_soon_threadsafe(self._feed, self._level(), self._monotonic())

    def _feed(self, pressed: bool, now: float) -> None:
        press = self.detector.edge(pressed, now)
        if press is not None:
            self._presses.put_nowait(press)
        if self._loop is not None and self._gpio is not None:
            # Re-sample after the bounce window: an edge ignored as bounce may have been real.
            self._loop.call_later(self.detector.debounce_s, self._settle)

    def _settle(self) -> None:
        if self._gpio is not None and self._level() != self.detector.pressed:
            self._feed(self._level(), self._monotonic())

    async def next_press(self) -> Press:
        return await self._presses.get()

    async def close(self) -> None:
        gpio, self._gpio, self._loop = self._gpio, None, None
        if gpio is not None:
            gpio.remove_event_detect(self.pin)
            gpio.cleanup(self.pin)


def open_button(spec: str) -> Button | None:
    """The button named by `spec` (not opened yet); None for 'none'."""
    if spec == "none":
        return None
    if spec == "simulated":
        return SimulatedButton()
    if match := re.fullmatch(r"gpio:(\d{1,2})", spec):
        return GpioButton(int(match.group(1)))
    raise ValueError(f"bad display button {spec!r}: expected {BUTTON_FORMS}")
