"""The display ports (luma.oled real driver on a no-op bus, luma dummy) and the display button."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from hardware.button import GpioButton, Press, PressDetector, SimulatedButton, open_button
from hardware.oled import LumaDisplay, SimulatedDisplay, open_display
from hardware.ports import PortError

SSD1306_DISPLAY_ON = 0xAF


def corners() -> Image.Image:
    """Top-left and bottom-right pixels set: the first and the last bit of the panel RAM."""
    image = Image.new("1", (128, 64), 0)
    image.putpixel((0, 0), 1)
    image.putpixel((127, 63), 1)
    return image


class RecordingSerial:
    """A serial interface like luma's `noop` that keeps what the driver sends."""

    def __init__(self) -> None:
        self.commands: list[int] = []
        self.writes: list[bytes] = []
        self.closed = False

    def command(self, *cmd: int) -> None:
        self.commands.extend(cmd)

    def data(self, data: Any) -> None:
        self.writes.append(bytes(data))

    def cleanup(self) -> None:
        self.closed = True


# ---------------------------------------------------------------------- selection by name


@pytest.mark.parametrize(
    ("spec", "controller", "bus", "address"),
    [
        ("ssd1306:1:0x3c", "ssd1306", 1, 0x3C),
        ("sh1106:1:0x3C", "sh1106", 1, 0x3C),
        ("ssd1306:0:61", "ssd1306", 0, 0x3D),
    ],
)
def test_open_display_real_specs(spec: str, controller: str, bus: int, address: int) -> None:
    port = open_display(spec, Path("state"))
    assert isinstance(port, LumaDisplay)
    assert (port.controller, port.bus, port.address) == (controller, bus, address)


def test_open_display_simulated_specs(tmp_path: Path) -> None:
    plain = open_display("simulated", tmp_path)
    assert isinstance(plain, SimulatedDisplay)
    assert plain.frames_dir is None
    frames = open_display("simulated:display", tmp_path)
    assert isinstance(frames, SimulatedDisplay)
    assert frames.frames_dir == tmp_path / "display"


@pytest.mark.parametrize(
    "spec", ["oled", "ssd1306", "ssd1306:1", "ssd1306:x:0x3c", "ssd1309:1:0x3c", "sh1106:1:0x99"]
)
def test_open_display_rejects_bad_specs(spec: str) -> None:
    with pytest.raises(ValueError, match="bad display device"):
        open_display(spec, Path("state"))


# ---------------------------------------------------------------------- the real driver


async def test_missing_i2c_bus_is_a_port_error_that_says_so() -> None:
    port = LumaDisplay("ssd1306", bus=99, address=0x3C)  # /dev/i2c-99 exists nowhere
    with pytest.raises(PortError, match=r"/dev/i2c-99 is missing.*simulated"):
        await port.open()


@pytest.mark.parametrize("controller", ["ssd1306", "sh1106"])
async def test_real_driver_runs_on_lumas_noop_interface(controller: str) -> None:
    from luma.core.interface.serial import noop

    port = LumaDisplay(controller, serial_factory=noop)
    await port.open()
    await port.show(corners())
    await port.close()


async def test_ssd1306_driver_sends_init_and_the_frame_in_page_order() -> None:
    serial = RecordingSerial()
    port = LumaDisplay("ssd1306", serial_factory=lambda: serial)
    await port.open()
    assert SSD1306_DISPLAY_ON in serial.commands  # the init sequence ran
    serial.writes.clear()
    await port.show(corners())
    frame = b"".join(serial.writes)
    assert len(frame) == 128 * 64 // 8
    # Byte 0 is column 0 of page 0 (bit 0 = row 0); the last is column 127 of page 7.
    assert frame[0] == 0x01
    assert frame[-1] == 0x80
    assert frame.count(0) == len(frame) - 2
    await port.close()
    assert serial.closed


async def test_sh1106_driver_sends_eight_pages_of_128_columns() -> None:
    serial = RecordingSerial()
    port = LumaDisplay("sh1106", serial_factory=lambda: serial)
    await port.open()
    serial.writes.clear()
    await port.show(corners())
    assert [len(page) for page in serial.writes] == [128] * 8
    assert serial.writes[0][0] == 0x01
    assert serial.writes[7][127] == 0x80
    await port.close()


async def test_show_refuses_a_wrong_image() -> None:
    port = LumaDisplay("ssd1306", serial_factory=RecordingSerial)
    await port.open()
    with pytest.raises(ValueError, match="128x64"):
        await port.show(Image.new("L", (128, 64)))
    await port.close()


async def test_show_before_open_is_a_port_error() -> None:
    with pytest.raises(PortError, match="not open"):
        await LumaDisplay("ssd1306", serial_factory=RecordingSerial).show(corners())


# ---------------------------------------------------------------------- the simulated panel


async def test_simulated_display_keeps_the_last_frame() -> None:
    port = SimulatedDisplay()
    await port.open()
    assert port.image is None
    await port.show(corners())
    assert port.image is not None
    assert port.image.tobytes() == corners().tobytes()
    await port.close()


async def test_simulated_display_writes_changed_frames_and_keeps_the_last_n(
    tmp_path: Path,
) -> None:
    port = SimulatedDisplay(tmp_path / "frames", keep=2)
    await port.open()
    blank = Image.new("1", (128, 64), 0)
    for image in (blank, blank, corners(), blank):
        await port.show(image)
    assert port.frames == 3  # the repeated blank frame was not written again
    names = sorted(p.name for p in (tmp_path / "frames").iterdir())
    assert names == ["frame-000002.png", "frame-000003.png", "latest.png"]
    latest = Image.open(tmp_path / "frames" / "latest.png")
    assert latest.size == (128, 64)
    assert latest.convert("1").tobytes() == blank.tobytes()
    await port.close()


# ---------------------------------------------------------------------- the button


def test_press_detector_short_and_long() -> None:
    detector = PressDetector(debounce_s=0.03, long_s=2.0)
    assert detector.edge(True, 10.0) is None
    assert detector.edge(False, 10.2) is Press.SHORT
    assert detector.edge(True, 11.0) is None
    assert detector.edge(False, 13.5) is Press.LONG


def test_press_detector_ignores_contact_bounce() -> None:
    detector = PressDetector(debounce_s=0.03, long_s=2.0)
    assert detector.edge(True, 1.000) is None
    assert detector.edge(False, 1.002) is None  # bounce
    assert detector.edge(True, 1.004) is None  # bounce, and already pressed
    assert detector.pressed
    assert detector.edge(False, 1.300) is Press.SHORT
    assert detector.edge(True, 1.310) is None  # release bounce
    assert not detector.pressed


def test_press_detector_needs_debounce_below_long() -> None:
    with pytest.raises(ValueError, match="debounce"):
        PressDetector(debounce_s=2.0, long_s=1.0)


class FakeGpio:
    """The slice of the RPi.GPIO API the button uses, with a pin we can drive."""

    BCM, IN, BOTH, PUD_UP, PUD_DOWN = "bcm", "in", "both", "up", "down"

    def __init__(self) -> None:
        self.level = 1  # pulled up, button open
        self.callback: Any = None
        self.pull: str | None = None
        self.cleaned: list[int] = []

    def setmode(self, mode: str) -> None:
        assert mode == self.BCM

    def setup(self, pin: int, direction: str, pull_up_down: str) -> None:
        self.pull = pull_up_down

    def add_event_detect(self, pin: int, edge: str, callback: Any) -> None:
        self.callback = callback

    def input(self, pin: int) -> int:
        return self.level

    def remove_event_detect(self, pin: int) -> None:
        self.callback = None

    def cleanup(self, pin: int) -> None:
        self.cleaned.append(pin)

    def drive(self, level: int) -> None:
        self.level = level
        self.callback(17)


async def test_gpio_button_reports_short_and_long_presses() -> None:
    gpio, now = FakeGpio(), [100.0]
    button = GpioButton(17, gpio=gpio, monotonic=lambda: now[0])  # type: ignore[arg-type]
    await button.open()
    assert gpio.pull == gpio.PUD_UP
    gpio.drive(0)  # pressed: the button pulls the pin to ground
    now[0] += 0.3
    gpio.drive(1)
    assert await asyncio.wait_for(button.next_press(), 1) is Press.SHORT
    now[0] += 1.0
    gpio.drive(0)
    now[0] += 2.5
    gpio.drive(1)
    assert await asyncio.wait_for(button.next_press(), 1) is Press.LONG
    await button.close()
    assert gpio.cleaned == [17]
    assert "GPIO17" in button.description


async def test_gpio_button_without_rpi_gpio_is_a_port_error() -> None:
    try:
        import RPi.GPIO  # type: ignore[import-not-found]  # noqa: F401
    except (ImportError, RuntimeError):
        with pytest.raises(PortError, match=r"RPi\.GPIO"):
            await GpioButton(17).open()
    else:
        pytest.skip("RPi.GPIO is importable here (a Pi)")


async def test_simulated_button() -> None:
    button = SimulatedButton()
    await button.open()
    button.press(Press.LONG)
    button.press(Press.SHORT)
    assert await button.next_press() is Press.LONG
    assert await button.next_press() is Press.SHORT
    await button.close()


@pytest.mark.parametrize(
    ("spec", "kind"), [("none", type(None)), ("simulated", SimulatedButton), ("gpio:5", GpioButton)]
)
def test_open_button(spec: str, kind: type) -> None:
    assert isinstance(open_button(spec), kind)


def test_open_button_rejects_bad_specs() -> None:
    with pytest.raises(ValueError, match="bad display button"):
        open_button("gpio:x")
