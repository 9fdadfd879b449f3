"""The display port: a 128x64 1-bit OLED, real (luma.oled on I2C) or simulated (luma's dummy).

Spec strings (config `[display] device`):
    "ssd1306:1:0x3c"   SSD1306 on I2C bus 1, address 0x3C (the usual 0.96" module)
    "sh1106:1:0x3c"    SH1106 (the usual 1.3" module; 132-column RAM, luma offsets by 2)
    "simulated"        keeps the last frame in memory
    "simulated:DIR"    also writes every new frame as DIR/frame-NNNNNN.png and DIR/latest.png
                       (DIR relative to the state directory), keeping the last `keep` frames
    "none"             no panel: nothing is drawn unless `ctl screenshot` asks for a frame

luma is imported when a port is opened, never at module load. A luma device write is a blocking
I2C transfer (~90 ms per frame at 100 kHz, luma.oled wiki "Usage & Benchmarking"), so it runs
in a worker thread.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from PIL import Image

from hardware.ports import PortError

log = logging.getLogger(__name__)

WIDTH, HEIGHT, MODE = 128, 64, "1"
CONTROLLERS = ("ssd1306", "sh1106")
DISPLAY_FORMS = "'simulated', 'simulated:DIR', 'ssd1306:BUS:ADDR' or 'sh1106:BUS:ADDR'"
KEEP_FRAMES = 500


class DisplayPort(Protocol):
    @property
    def description(self) -> str: ...

    async def open(self) -> None: ...

    async def show(self, image: Image.Image) -> None:
        """Put a 128x64 mode-'1' frame on the panel."""
        ...

    async def close(self) -> None: ...


def _check(image: Image.Image) -> None:
    if image.mode != MODE or image.size != (WIDTH, HEIGHT):
        raise ValueError(f"need a {WIDTH}x{HEIGHT} mode-'1' image, got {image.size} {image.mode}")


class LumaDisplay:
    """An SSD1306 or SH1106 driven by luma.oled.

    `serial_factory` replaces the I2C interface (tests pass luma's `noop` so the real driver,
    init sequence and page conversion included, runs with no bus).
    """

    def __init__(
        self,
        controller: str,
        bus: int = 1,
        address: int = 0x3C,
        *,
        serial_factory: Callable[[], Any] | None = None,
    ) -> None:
        if controller not in CONTROLLERS:
            raise ValueError(f"unknown OLED controller {controller!r}: expected {CONTROLLERS}")
        self.controller, self.bus, self.address = controller, bus, address
        self._serial_factory = serial_factory
        self._device: Any = None

    @property
    def description(self) -> str:
        return f"{self.controller} on I2C bus {self.bus} at {self.address:#04x}"

    async def open(self) -> None:
        self._device = await asyncio.to_thread(self._make_device)
        log.info("display: %s", self.description)

    def _make_device(self) -> Any:
        import luma.core.error
        from luma.oled.device import sh1106, ssd1306

        driver = {"ssd1306": ssd1306, "sh1106": sh1106}[self.controller]
        try:
            serial = self._serial_factory() if self._serial_factory else self._i2c()
            # The constructor sends the init sequence: the first write to the address.
            return driver(serial_interface=serial, width=WIDTH, height=HEIGHT)
        except luma.core.error.Error as exc:
            raise PortError(self._explain(exc)) from exc
        except OSError as exc:
            raise PortError(
                f"{self.description}: no answer from the display ({exc}); check wiring, "
                "address (i2cdetect -y BUS) and the controller type"
            ) from exc

    def _i2c(self) -> Any:
        from luma.core.interface.serial import i2c

        return i2c(port=self.bus, address=self.address)

    def _explain(self, exc: Exception) -> str:
        import luma.core.error

        device = f"/dev/i2c-{self.bus}"
        if isinstance(exc, luma.core.error.DeviceNotFoundError):
            return (
                f"{self.description}: I2C bus {device} is missing: enable I2C on the Pi "
                "(raspi-config nonint do_i2c 0) or set [display] device = 'simulated'"
            )
        if isinstance(exc, luma.core.error.DevicePermissionError):
            return f"{self.description}: no permission on {device} (add the user to group i2c)"
        return f"{self.description}: {exc}"

    async def show(self, image: Image.Image) -> None:
        _check(image)
        if self._device is None:
            raise PortError(f"{self.description}: not open")
        try:
            await asyncio.to_thread(self._device.display, image)
        except OSError as exc:
            raise PortError(f"{self.description}: write failed: {exc}") from exc

    async def close(self) -> None:
        device, self._device = self._device, None
        if device is None:
            return
        try:
            await asyncio.to_thread(device.cleanup)
        except OSError as exc:
            log.warning("%s: cleanup failed: %s", self.description, exc)


class SimulatedDisplay:
    """luma's `dummy` device: keeps the last frame; optionally writes PNG frames to `frames_dir`.

    Only frames that differ from the previous one are written, and files older than `keep`
    frames are removed, so a long run cannot fill the disk.
    """

    def __init__(self, frames_dir: Path | None = None, keep: int = KEEP_FRAMES) -> None:
        if keep < 1:
            raise ValueError("keep must be at least 1")
        self.frames_dir = frames_dir
        self.keep = keep
        self.frames = 0  # frames written to the panel (changed ones only)
        self._device: Any = None

    @property
    def description(self) -> str:
        where = f", frames in {self.frames_dir}" if self.frames_dir else ""
        return f"simulated 128x64 display{where}"

    @property
    def image(self) -> Image.Image | None:
        """The frame on the simulated panel (a copy), None before the first."""
        if self._device is None or self._device.image is None:
            return None
        image: Image.Image = self._device.image.copy()
        return image

    async def open(self) -> None:
        from luma.core.device import dummy

        if self.frames_dir is not None:
            try:
                self.frames_dir.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise PortError(
                    f"cannot create display frames dir {self.frames_dir}: {exc}"
                ) from exc
        self._device = dummy(width=WIDTH, height=HEIGHT, mode=MODE)

    async def show(self, image: Image.Image) -> None:
        _check(image)
        if self._device is None:
            raise PortError("simulated display: not open")
        previous = self._device.image
        if previous is not None and previous.tobytes() == image.tobytes():
            return
        self._device.display(image)
        self.frames += 1
        if self.frames_dir is not None:
            self._write(image)

    def _write(self, image: Image.Image) -> None:
        assert self.frames_dir is not None
        try:
            image.save(self.frames_dir / f"frame-{self.frames:06d}.png", format="PNG")
            temp = self.frames_dir / "latest.png.tmp"
            image.save(temp, format="PNG")
            temp.replace(self.frames_dir / "latest.png")
            (self.frames_dir / f"frame-{self.frames - self.keep:06d}.png").unlink(missing_ok=True)
        except OSError as exc:
            raise PortError(f"cannot write display frame in {self.frames_dir}: {exc}") from exc

    async def close(self) -> None:
        self._device = None


class NoPanel:
    """No panel ("none"): the display service runs no frame loop on it; a frame is rendered
    only when one is asked for (`ctl screenshot`, a fleet meter's display)."""

    description = "none (frames rendered on demand)"

    async def open(self) -> None:
        """Nothing to open."""

    async def show(self, image: Image.Image) -> None:
        _check(image)

    async def close(self) -> None:
        """Nothing to close."""


def open_display(spec: str, base_dir: Path) -> DisplayPort:
    """The display named by `spec` (not opened yet: the display service opens it)."""
    if spec == "none":
        return NoPanel()
    if spec == "simulated":
        return SimulatedDisplay()
    if spec.startswith("simulated:") and len(spec) > len("simulated:"):
        frames = Path(spec.removeprefix("simulated:"))
        return SimulatedDisplay(frames if frames.is_absolute() else base_dir / frames)
    match = re.fullmatch(r"(ssd1306|sh1106):(\d{1,2}):(0x[0-9a-fA-F]{1,2}|\d{1,3})", spec)
    if match:
        address = int(match.group(3), 0)
        if 0x03 <= address <= 0x77:
            return LumaDisplay(match.group(1), int(match.group(2)), address)
    raise ValueError(f"bad display device {spec!r}: expected {DISPLAY_FORMS}")
