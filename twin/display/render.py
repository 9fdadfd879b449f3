"""Pure rendering: a `DisplayState` in, a 128x64 1-bit PIL image out. No device access.

DSMR-M 4.3.35: the flags are drawn on every frame, together with a register value, in auto
scroll, manual scroll and service mode alike; the self-check flag only in service mode.
DSMR-M 4.3.36: the GPRS signal strength (4 levels) and the actual energy direction.

During a power failure on all phases a real meter's display goes dark; the twin keeps drawing,
with every voltage flag off, so a lab can see the failure.
"""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image, ImageDraw

from twin.display import glyphs, layout
from twin.display.layout import FLAGS, PHASE_FLAGS, Flag
from twin.display.pages import Page, pages
from twin.meter.state import ADMIN_OFF, ADMIN_ON, MeterReading
from twin.readout_lists import AUTO_SCROLL, DEFAULT_LISTS

# A phase counts as "voltage present" from this level up. DSMR gives no figure; a sag
# (0.85 x 207 V in the model) is still present, a dead phase reads 0 V.
VOLTAGE_PRESENT_MIN_V = 100.0
SIGNAL_LEVELS = 4  # DSMR-M 4.3.36: "GPRS Signal Strength (4 levels)"


@dataclass(frozen=True, slots=True)
class DisplayState:
    """What the display shows: the reading plus what the reading does not carry."""

    reading: MeterReading
    comm_attached: bool = False  # communication module attached to the network
    signal_level: int | None = None  # GPRS bars 0..4; None: no modem, symbol not shown
    service_mode: bool = False
    self_check_ok: bool = True
    page: int = 0  # taken modulo the number of pages
    manual: bool = False  # manual scroll (a button press) rather than auto scroll
    # The OBIS codes of the mode's display readout list (P3 §5.15), made pages by pages.py.
    codes: tuple[str, ...] = DEFAULT_LISTS.codes(AUTO_SCROLL)

    def __post_init__(self) -> None:
        level = self.signal_level
        if level is not None and not 0 <= level <= SIGNAL_LEVELS:
            raise ValueError(f"signal_level must be 0..{SIGNAL_LEVELS} or None, got {level}")


def flag_states(state: DisplayState) -> dict[Flag, bool | None]:
    """Each flag on (True), off (False) or not shown (None)."""
    reading = state.reading
    # DSMR-M 4.3.35: 0-1:94.31.0 attr 2 = 0 undefined (both off), 1 flag 1, 2 flag 2.
    flags: dict[Flag, bool | None] = {
        Flag.ADMIN_OFF: reading.admin_state == ADMIN_OFF,
        Flag.ADMIN_ON: reading.admin_state == ADMIN_ON,
        Flag.COMM: state.comm_attached,
        Flag.SELF_CHECK: state.self_check_ok if state.service_mode else None,
        Flag.RESERVED_1: False,
        Flag.RESERVED_2: False,
        Flag.RESERVED_3: False,
    }
    for i, phase in enumerate(PHASE_FLAGS):
        flags[phase] = _voltage_present(reading, i) if i < reading.phases else None
    return flags


def _voltage_present(reading: MeterReading, phase: int) -> bool:
    return reading.powered and reading.voltage_v[phase] >= VOLTAGE_PRESENT_MIN_V


def current_page(state: DisplayState) -> tuple[Page, int, int]:
    """The page shown, its 0-based index and the number of pages."""
    all_pages = pages(state.reading, state.codes)
    index = state.page % len(all_pages)
    return all_pages[index], index, len(all_pages)


def render(state: DisplayState) -> Image.Image:
    image = Image.new("1", (layout.WIDTH, layout.HEIGHT), glyphs.OFF)
    draw = ImageDraw.Draw(image)
    _flags(draw, state)
    _symbols(draw, state)
    _register(image, draw, state)
    return image


def _flags(draw: ImageDraw.ImageDraw, state: DisplayState) -> None:
    for flag, on in flag_states(state).items():
        if on is not None:
            glyphs.flag(draw, FLAGS[flag], flag.value, on)


def _symbols(draw: ImageDraw.ImageDraw, state: DisplayState) -> None:
    reading = state.reading
    if state.signal_level is not None:
        glyphs.signal(draw, state.signal_level)
    if reading.import_w > 0 or reading.export_w > 0:
        # Import (+P, delivered to the client) points right, export (-P) points left.
        glyphs.arrow(draw, layout.DIRECTION, pointing_right=reading.import_w >= reading.export_w)
    glyphs.text(draw, layout.TARIFF[0] + 2, layout.TARIFF[1] + 1, f"T{int(reading.tariff)}")
    if reading.message_code:
        room = (layout.MESSAGE[2] - layout.MESSAGE[0] + 1) // glyphs.CHAR_W
        message = f"M:{reading.message_code}"[:room]
        glyphs.text(draw, layout.MESSAGE[0], layout.MESSAGE[1] + 1, message)


def _register(image: Image.Image, draw: ImageDraw.ImageDraw, state: DisplayState) -> None:
    page, index, count = current_page(state)
    glyphs.text(draw, layout.LABEL[0], layout.LABEL[1], page.label)
    glyphs.text_right(draw, layout.UNIT, page.unit)
    if glyphs.text_width(page.value) * 2 <= layout.WIDTH:
        glyphs.big_text(image, layout.VALUE, page.value)
    else:
        glyphs.text_right(draw, layout.VALUE, page.value)
    glyphs.text(draw, layout.OBIS[0], layout.OBIS[1], page.code)
    mode = "SERV" if state.service_mode else "MAN" if state.manual else ""
    glyphs.text(draw, layout.MODE[0] + 2, layout.MODE[1], mode)
    glyphs.text_right(draw, layout.PAGE, f"{index + 1}/{count}")
