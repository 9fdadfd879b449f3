"""The display: flags, symbols and register pages checked as pixels, and the display service.
(Which pages each mode shows, from the display readout lists: test_display_lists.py.)

Every check looks inside the rectangle that twin/display/layout.py names for the element, so a
test fails when the element is missing, drawn in the wrong state or drawn somewhere else.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import dataclasses
import io
import itertools
import json
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest
from PIL import Image, ImageDraw

from hardware.button import Press, SimulatedButton
from hardware.oled import SimulatedDisplay
from hardware.ports import PortError
from tests.support import spec_example_reading
from twin.clock import ManualClock
from twin.config import Config, P3Config
from twin.control import ControlError, ControlServer
from twin.display import cli as display_cli
from twin.display import glyphs, layout
from twin.display.layout import FLAGS, PHASE_FLAGS, Flag, Rect
from twin.display.pages import pages
from twin.display.render import DisplayState, render
from twin.display.service import DisplayService, Mode, ModuleStatus, bars_from_dbm
from twin.display.wiring import display_services, modem_status
from twin.meter.state import MeterReading
from twin.meter.tariff import Tariff
from twin.readout_lists import ALTERNATE, AUTO_SCROLL, DEFAULT_LISTS, SERVICE_MODE

START = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def reading(**changes: object) -> MeterReading:
    return dataclasses.replace(spec_example_reading(), **changes)  # type: ignore[arg-type]


def frame(**state: object) -> Image.Image:
    base = reading(**state.pop("changes", {}))  # type: ignore[arg-type]
    return render(DisplayState(base, **state))  # type: ignore[arg-type]


def lit(image: Image.Image, rect: Rect) -> int:
    """Set pixels inside `rect` (corners inclusive)."""
    left, top, right, bottom = rect
    return sum(
        1 for x in range(left, right + 1) for y in range(top, bottom + 1) if image.getpixel((x, y))
    )


def area(rect: Rect) -> int:
    return (rect[2] - rect[0] + 1) * (rect[3] - rect[1] + 1)


def flag_on(image: Image.Image, flag: Flag) -> bool | None:
    """On, off, or None when the flag is not shown at all."""
    rect = FLAGS[flag]
    if lit(image, rect) == 0:
        return None
    # Just inside the top-left corner: filled when on, never part of the label.
    return bool(image.getpixel((rect[0] + 1, rect[1] + 1)))


def crop(image: Image.Image, rect: Rect) -> bytes:
    return image.crop((rect[0], rect[1], rect[2] + 1, rect[3] + 1)).tobytes()


def text_alone(content: str, rect: Rect, *, right: bool = False) -> bytes:
    """`content` drawn alone the way the renderer draws it, cut to `rect`."""
    image = Image.new("1", (layout.WIDTH, layout.HEIGHT), 0)
    draw = ImageDraw.Draw(image)
    if right:
        glyphs.text_right(draw, rect, content)
    else:
        glyphs.text(draw, rect[0], rect[1], content)
    return crop(image, rect)


# ---------------------------------------------------------------------- the frame


def test_frame_is_a_128x64_one_bit_image() -> None:
    image = frame()
    assert image.mode == "1"
    assert image.size == (128, 64)


def test_element_rectangles_are_on_the_panel_and_flags_do_not_overlap() -> None:
    for rect in layout.ELEMENTS.values():
        assert 0 <= rect[0] <= rect[2] < layout.WIDTH
        assert 0 <= rect[1] <= rect[3] < layout.HEIGHT
    boxes = sorted(FLAGS.values())
    assert all(a[2] < b[0] for a, b in itertools.pairwise(boxes))


# ---------------------------------------------------------------------- DSMR-M 4.3.35 flags


@pytest.mark.parametrize(
    ("admin_state", "flag_1", "flag_2"),
    [(0, False, False), (1, True, False), (2, False, True)],
    ids=["undefined", "admin-off", "default-on"],
)
def test_administrative_state_is_two_flags_for_three_values(
    admin_state: int, flag_1: bool, flag_2: bool
) -> None:
    image = frame(changes={"admin_state": admin_state})
    assert flag_on(image, Flag.ADMIN_OFF) is flag_1
    assert flag_on(image, Flag.ADMIN_ON) is flag_2


@pytest.mark.parametrize("attached", [True, False])
def test_communication_module_flag(attached: bool) -> None:
    assert flag_on(frame(comm_attached=attached), Flag.COMM) is attached


@pytest.mark.parametrize(
    ("volts", "present"),
    [
        ((230.0, 230.0, 230.0), (True, True, True)),
        ((230.0, 0.0, 231.0), (True, False, True)),
        ((0.0, 0.0, 175.9), (False, False, True)),  # a sag (0.85 x 207 V) is still voltage
    ],
)
def test_voltage_present_per_phase(
    volts: tuple[float, ...], present: tuple[bool, bool, bool]
) -> None:
    image = frame(changes={"voltage_v": volts})
    assert tuple(flag_on(image, f) for f in PHASE_FLAGS) == present


@pytest.mark.parametrize("volts", [(0.0, 0.0, 0.0), (230.0, 230.0, 230.0)], ids=["0V", "stale"])
def test_power_failure_shows_no_voltage_on_any_phase(volts: tuple[float, ...]) -> None:
    image = frame(changes={"powered": False, "voltage_v": volts})
    assert [flag_on(image, f) for f in PHASE_FLAGS] == [False, False, False]


def test_single_phase_meter_has_no_l2_l3_flags() -> None:
    image = frame(changes={"phases": 1, "voltage_v": (230.0,)})
    assert flag_on(image, Flag.L1) is True
    assert lit(image, FLAGS[Flag.L2]) == 0
    assert lit(image, FLAGS[Flag.L3]) == 0


@pytest.mark.parametrize(
    ("service_mode", "ok", "shown"),
    [(False, True, None), (False, False, None), (True, True, True), (True, False, False)],
)
def test_self_check_flag_only_in_service_mode(service_mode: bool, ok: bool, shown: bool) -> None:
    image = frame(service_mode=service_mode, self_check_ok=ok)
    assert flag_on(image, Flag.SELF_CHECK) is shown


def test_three_reserved_flags_are_shown_off() -> None:
    image = frame()
    reserved = [Flag.RESERVED_1, Flag.RESERVED_2, Flag.RESERVED_3]
    assert [flag_on(image, f) for f in reserved] == [False, False, False]


@pytest.mark.parametrize(
    "mode",
    [{}, {"manual": True}, {"service_mode": True}],
    ids=["auto-scroll", "manual-scroll", "service"],
)
def test_flags_are_always_shown_together_with_a_register_value(mode: dict[str, bool]) -> None:
    for page in range(len(pages(reading()))):
        image = frame(page=page, **mode)
        hidden = {Flag.SELF_CHECK} if not mode.get("service_mode") else set()
        assert all(flag_on(image, f) is not None for f in Flag if f not in hidden)
        assert lit(image, layout.VALUE) > 0


# ---------------------------------------------------------------------- DSMR-M 4.3.36 symbols


@pytest.mark.parametrize("level", [0, 1, 2, 3, 4])
def test_signal_strength_fills_that_many_of_four_bars(level: int) -> None:
    image = frame(signal_level=level)
    filled = [lit(image, bar) == area(bar) for bar in layout.SIGNAL_BARS]
    assert filled == [i < level for i in range(4)]
    assert lit(image, layout.ANTENNA) > 0
    # An empty bar keeps only its bottom row.
    assert all(lit(image, bar) == 2 for bar in layout.SIGNAL_BARS[level:])


def test_no_modem_no_signal_symbol() -> None:
    assert lit(frame(signal_level=None), layout.SIGNAL) == 0


def test_signal_level_out_of_range_is_refused() -> None:
    with pytest.raises(ValueError, match="signal_level"):
        DisplayState(reading(), signal_level=5)


def _arrow_ends(image: Image.Image) -> tuple[bool, bool]:
    left, top, right, bottom = layout.DIRECTION
    mid = (top + bottom) // 2
    return bool(image.getpixel((left, mid))), bool(image.getpixel((right, mid)))


def test_import_arrow_points_right() -> None:
    image = frame(changes={"import_w": 1500, "export_w": 0})
    assert _arrow_ends(image) == (False, True)
    left, top, right, _bottom = layout.DIRECTION
    assert image.getpixel((right - 5, top))
    assert not image.getpixel((left + 5, top))


def test_export_arrow_points_left() -> None:
    image = frame(changes={"import_w": 0, "export_w": 2200})
    assert _arrow_ends(image) == (True, False)
    left, top, right, _bottom = layout.DIRECTION
    assert image.getpixel((left + 5, top))
    assert not image.getpixel((right - 5, top))


def test_no_power_flow_no_arrow() -> None:
    assert lit(frame(changes={"import_w": 0, "export_w": 0}), layout.DIRECTION) == 0


# ---------------------------------------------------------------------- other elements


@pytest.mark.parametrize("tariff", [Tariff.LOW, Tariff.NORMAL])
def test_tariff_indicator(tariff: Tariff) -> None:
    image = frame(changes={"tariff": tariff})
    expected = Image.new("1", (layout.WIDTH, layout.HEIGHT), 0)
    glyphs.text(ImageDraw.Draw(expected), layout.TARIFF[0] + 2, layout.TARIFF[1] + 1, f"T{tariff}")
    assert crop(image, layout.TARIFF) == crop(expected, layout.TARIFF)
    other = frame(changes={"tariff": Tariff.NORMAL if tariff is Tariff.LOW else Tariff.LOW})
    assert crop(image, layout.TARIFF) != crop(other, layout.TARIFF)


def test_message_code_shown_only_when_set() -> None:
    assert lit(frame(changes={"message_code": ""}), layout.MESSAGE) == 0
    image = frame(changes={"message_code": "0161"})
    expected = Image.new("1", (layout.WIDTH, layout.HEIGHT), 0)
    glyphs.text(ImageDraw.Draw(expected), layout.MESSAGE[0], layout.MESSAGE[1] + 1, "M:0161")
    assert crop(image, layout.MESSAGE) == crop(expected, layout.MESSAGE)


@pytest.mark.parametrize("mode", [{}, {"manual": True}], ids=["auto-scroll", "manual-scroll"])
def test_each_page_shows_its_catalogue_label_unit_value_and_code(mode: dict[str, bool]) -> None:
    codes = DEFAULT_LISTS.codes(ALTERNATE) if mode else DEFAULT_LISTS.codes(AUTO_SCROLL)
    shown = pages(reading(), codes)
    for index, page in enumerate(shown):
        image = frame(page=index, codes=codes, **mode)
        assert crop(image, layout.LABEL) == text_alone(page.label, layout.LABEL)
        assert crop(image, layout.UNIT) == text_alone(page.unit, layout.UNIT, right=True)
        assert crop(image, layout.OBIS) == text_alone(page.code, layout.OBIS)
        big = Image.new("1", (layout.WIDTH, layout.HEIGHT), 0)
        glyphs.big_text(big, layout.VALUE, page.value)
        assert crop(image, layout.VALUE) == crop(big, layout.VALUE)
        assert crop(image, layout.PAGE) == text_alone(
            f"{index + 1}/{len(shown)}", layout.PAGE, right=True
        )


def test_a_value_too_wide_for_double_size_is_drawn_right_aligned() -> None:
    codes = DEFAULT_LISTS.codes(SERVICE_MODE)  # its first page: the date and time
    page = pages(reading(), codes)[0]
    assert page.value == "2010-12-09 11:30:20"
    image = frame(page=0, codes=codes, service_mode=True)
    expected = Image.new("1", (layout.WIDTH, layout.HEIGHT), 0)
    glyphs.text_right(ImageDraw.Draw(expected), layout.VALUE, page.value)
    assert crop(image, layout.VALUE) == crop(expected, layout.VALUE)
    assert crop(image, layout.UNIT) == text_alone("CET", layout.UNIT, right=True)


def test_page_index_wraps() -> None:
    count = len(pages(reading()))
    assert crop(frame(page=count + 1), layout.LABEL) == crop(frame(page=1), layout.LABEL)


# ---------------------------------------------------------------------- the service


class FakeMeter:
    def __init__(self, clock: ManualClock, **changes: object) -> None:
        self.clock = clock
        self.config = Config()  # the control server bounds its fields by the meter's config
        self.changes = changes

    def publish(self) -> MeterReading:
        return reading(time=self.clock.now(), **self.changes)

    async def publish_durable(self) -> MeterReading:
        return self.publish()


def label_of(image: Image.Image) -> bytes:
    return crop(image, layout.LABEL)


def labelled(index: int, list_code: str = AUTO_SCROLL) -> bytes:
    """The label of page `index` (modulo the page count) of a display readout list."""
    shown = pages(reading(), DEFAULT_LISTS.codes(list_code))
    return text_alone(shown[index % len(shown)].label, layout.LABEL)


class Running:
    """A DisplayService running on a ManualClock; `step` waits for the next frame."""

    def __init__(self, **kwargs: object) -> None:
        self.clock = ManualClock(START)
        self.port = SimulatedDisplay()
        self.status = ModuleStatus(comm_attached=True, signal_level=2)
        self.service = DisplayService(
            FakeMeter(self.clock),
            self.clock,
            self.port,
            lambda: self.status,
            **kwargs,  # type: ignore[arg-type]
        )
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Running:
        self.service.drawn.clear()
        self.task = asyncio.create_task(self.service.run())
        await self.frame()
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.task is not None
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)

    async def frame(self) -> Image.Image:
        await asyncio.wait_for(self.service.drawn.wait(), timeout=2)
        self.service.drawn.clear()
        assert self.service.frame is not None
        return self.service.frame

    async def advance(self, seconds: float) -> Image.Image:
        self.service.drawn.clear()
        await self.clock.advance(seconds)
        return await self.frame()

    async def press(self, kind: Press) -> Image.Image:
        self.service.drawn.clear()
        self.service.press(kind)
        return await self.frame()


async def test_auto_scroll_advances_every_scroll_s_of_meter_time() -> None:
    async with Running(scroll_s=10, refresh_s=4) as run:
        assert label_of(run.service.frame) == labelled(0)  # type: ignore[arg-type]
        assert run.port.image is not None
        assert run.port.image.tobytes() == run.service.frame.tobytes()  # type: ignore[union-attr]
        image = await run.advance(4)  # a refresh, not yet a scroll step
        assert label_of(image) == labelled(0)
        image = await run.advance(6)
        assert label_of(image) == labelled(1)
        image = await run.advance(20)
        assert label_of(image) == labelled(3)
        assert run.service.status()["page"] == 4


async def test_auto_scroll_wraps_around_all_pages() -> None:
    count = len(pages(reading()))
    async with Running(scroll_s=5) as run:
        image = await run.advance(5 * count)
        assert label_of(image) == labelled(0)


async def test_short_press_enters_manual_scroll_and_holds_it() -> None:
    async with Running(scroll_s=10, manual_hold_s=30) as run:
        await run.advance(10)
        image = await run.press(Press.SHORT)  # the manual scroll list, from its first page
        assert label_of(image) == labelled(0, ALTERNATE)
        assert run.service.mode is Mode.MANUAL
        image = await run.press(Press.SHORT)
        assert label_of(image) == labelled(1, ALTERNATE)
        image = await run.advance(29)  # no auto step while held
        assert label_of(image) == labelled(1, ALTERNATE)
        image = await run.advance(1)  # hold over: auto scroll starts again at its first page
        assert run.service.mode is Mode.AUTO
        assert label_of(image) == labelled(0)
        image = await run.advance(10)
        assert label_of(image) == labelled(1)


async def test_auto_scroll_resumes_on_the_grid_of_the_hold_end_after_a_late_wake() -> None:
    async with Running(scroll_s=10, manual_hold_s=30, refresh_s=100) as run:
        await run.press(Press.SHORT)  # manual scroll, held until +30 s
        image = await run.advance(35)  # woken late: the hold ended 5 s ago
        assert run.service.mode is Mode.AUTO
        assert label_of(image) == labelled(0)
        image = await run.advance(5)  # one scroll period after the end of the hold
        assert label_of(image) == labelled(1)


async def test_long_press_toggles_service_mode_with_the_self_check_flag() -> None:
    async with Running(scroll_s=10) as run:
        assert flag_on(run.service.frame, Flag.SELF_CHECK) is None  # type: ignore[arg-type]
        image = await run.press(Press.LONG)
        assert run.service.mode is Mode.SERVICE
        assert flag_on(image, Flag.SELF_CHECK) is True
        image = await run.advance(100)  # no auto scroll in service mode
        assert label_of(image) == labelled(0, SERVICE_MODE)
        image = await run.press(Press.SHORT)
        assert label_of(image) == labelled(1, SERVICE_MODE)
        assert run.service.mode is Mode.SERVICE
        image = await run.press(Press.LONG)
        assert run.service.mode is Mode.AUTO
        assert flag_on(image, Flag.SELF_CHECK) is None


async def test_status_provider_drives_comm_flag_and_signal() -> None:
    async with Running(refresh_s=1) as run:
        assert flag_on(run.service.frame, Flag.COMM) is True  # type: ignore[arg-type]
        run.status = ModuleStatus(comm_attached=False, signal_level=4)
        image = await run.advance(1)
        assert flag_on(image, Flag.COMM) is False
        assert all(lit(image, bar) == area(bar) for bar in layout.SIGNAL_BARS)


async def test_button_port_presses_reach_the_service() -> None:
    button = SimulatedButton()
    async with Running(button=button) as run:
        button.press(Press.LONG)
        image = await run.frame()
        assert run.service.mode is Mode.SERVICE
        assert flag_on(image, Flag.SELF_CHECK) is True
        assert run.service.status()["button"] == "simulated button"


async def test_button_command() -> None:
    async with Running() as run:
        answer = await run.service.handle({"cmd": "button", "press": "short"})
        assert answer["mode"] == "manual"  # type: ignore[index]
        assert answer["list"] == ALTERNATE  # type: ignore[index]
        assert answer["page"] == 1  # type: ignore[index]
        assert answer["register"] == "1-3:0.2.8"  # type: ignore[index]
        await run.service.handle({"cmd": "button", "press": "long"})
        assert run.service.mode is Mode.SERVICE


def _is_png_128x64(data: bytes) -> bool:
    image = Image.open(io.BytesIO(data))
    image.load()
    return (
        data.startswith(b"\x89PNG\r\n\x1a\n")
        and image.format == "PNG"
        and image.size
        == (
            128,
            64,
        )
    )


async def test_screenshot_is_the_current_frame_as_png() -> None:
    async with Running() as run:
        data = run.service.screenshot()
        assert _is_png_128x64(data)
        saved = Image.open(io.BytesIO(data)).convert("1")
        assert saved.tobytes() == run.service.frame.tobytes()  # type: ignore[union-attr]


async def test_screenshot_command_answers_the_png() -> None:
    async with Running() as run:
        answer = await run.service.handle({"cmd": "screenshot"})
        assert _is_png_128x64(base64.b64decode(answer["png_base64"]))  # type: ignore[index]


async def test_the_control_socket_never_writes_where_a_client_says(tmp_path: Path) -> None:
    # Issue 9: {"cmd": "screenshot", "path": "<state>/meter.sqlite3"} replaced the database.
    twin = _fake_twin(tmp_path)
    display_services(twin, SETTINGS)  # type: ignore[arg-type]
    database = tmp_path / "meter.sqlite3"
    database.write_bytes(b"SQLite format 3\x00 registers and keys")
    request = {"cmd": "screenshot", "path": str(database)}
    answer = await twin.control.dispatch(json.dumps(request).encode())
    assert answer["ok"] is False
    assert "'path'" in answer["error"]
    assert database.read_bytes() == b"SQLite format 3\x00 registers and keys"


async def test_screenshot_before_the_first_frame_renders_one() -> None:
    clock = ManualClock(START)
    service = DisplayService(FakeMeter(clock), clock, SimulatedDisplay(), ModuleStatus)
    assert _is_png_128x64(service.screenshot())


async def test_heartbeat_and_status() -> None:
    async with Running() as run:  # the default: 5 s per page (P3 Annex B)
        before = run.service.heartbeat
        await run.advance(5)
        assert run.service.heartbeat >= before
        status = run.service.status()
        assert status["display"] == "simulated 128x64 display"
        assert status["mode"] == "auto"
        assert status["register"] == "1-0:1.8.2"
        assert status["label"] == "T2 import"
        assert status["frames"] >= 2


def test_service_refuses_non_positive_periods() -> None:
    clock = ManualClock(START)
    with pytest.raises(ValueError, match="positive"):
        DisplayService(FakeMeter(clock), clock, SimulatedDisplay(), ModuleStatus, scroll_s=0)


@pytest.mark.parametrize(
    ("dbm", "bars"),
    [
        (None, 0),
        (-113, 0),
        (-101, 0),
        (-100, 1),
        (-96, 1),
        (-95, 2),
        (-85, 2),
        (-84, 3),
        (-75, 3),
        (-74, 4),
        (-51, 4),
    ],
)
def test_signal_bars_follow_dsmr_g_4_2_12(dbm: int | None, bars: int) -> None:
    assert bars_from_dbm(dbm) == bars


# ---------------------------------------------------------------------- wiring and ctl


def _fake_twin(tmp_path: Path, endpoint: str = "") -> SimpleNamespace:
    clock = ManualClock(START)
    meter = FakeMeter(clock)
    return SimpleNamespace(
        config=SimpleNamespace(p3=P3Config(endpoint=endpoint)),
        meter=meter,
        clock=clock,
        state_dir=tmp_path,
        control=ControlServer(meter, tmp_path / "control.sock"),  # type: ignore[arg-type]
        modem=None,  # what the P3 wiring leaves on the twin for the display (none here)
        display_lists=None,
    )


SETTINGS = SimpleNamespace(
    device="simulated:display", button="simulated", scroll_s=10.0, manual_hold_s=60.0, refresh_s=5.0
)


async def test_wiring_registers_the_ctl_commands_and_status(tmp_path: Path) -> None:
    twin = _fake_twin(tmp_path, endpoint="tcp://0.0.0.0:4059")
    [service] = display_services(twin, SETTINGS)  # type: ignore[arg-type]
    assert service.name == "display"
    assert service.heartbeat is not None
    task = asyncio.create_task(service.run())
    try:
        answer = await twin.control.dispatch(b'{"cmd": "button", "press": "long"}\n')
        assert answer["ok"], answer
        assert answer["result"]["mode"] == "service"
        shot = await twin.control.dispatch(b'{"cmd": "screenshot"}\n')
        png = base64.b64decode(shot["result"]["png_base64"])
        assert _is_png_128x64(png)
        assert flag_on(Image.open(io.BytesIO(png)).convert("1"), Flag.COMM) is True
        bad = await twin.control.dispatch(b'{"cmd": "button", "press": "twice"}\n')
        assert not bad["ok"]
        assert bad["error"] == "'press' must be one of 'short', 'long'; got 'twice'"
        assert twin.control.ports["display"]()["button"] == "simulated button"
        for _ in range(100):  # the first frame reaches the simulated panel's directory
            if (tmp_path / "display" / "latest.png").exists():
                break
            await asyncio.sleep(0)
        assert (tmp_path / "display" / "latest.png").exists()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def test_ctl_extension_builds_requests_and_saves_the_png(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="ctl_command")
    display_cli.add_ctl_commands(sub)
    args = parser.parse_args(["screenshot", str(tmp_path / "out.png")])
    assert display_cli.ctl_request(args) == {"cmd": "screenshot"}
    assert display_cli.ctl_request(parser.parse_args(["button", "--press", "long"])) == {
        "cmd": "button",
        "press": "long",
    }
    png = io.BytesIO()
    frame().save(png, format="PNG")
    result = {"png_base64": base64.b64encode(png.getvalue()).decode()}
    assert _is_png_128x64(display_cli.save_screenshot(result, args.file).read_bytes())
    with pytest.raises(ControlError, match="no screenshot"):
        display_cli.save_screenshot({}, args.file)


def test_modem_status_gives_the_comm_flag_and_the_bars() -> None:
    class Modem:
        info: SimpleNamespace | None = SimpleNamespace(signal_strength_dbm=-71)

        def network_info(self) -> SimpleNamespace | None:
            return self.info

    modem = Modem()
    status = modem_status(modem)  # type: ignore[arg-type]
    assert status() == ModuleStatus(comm_attached=True, signal_level=4)
    modem.info = None
    assert status() == ModuleStatus(comm_attached=False, signal_level=0)


class FailingOnce(SimulatedDisplay):
    """A panel whose first write fails, as a loose I2C connector would."""

    def __init__(self) -> None:
        super().__init__()
        self.failed = False

    async def show(self, image: Image.Image) -> None:
        if not self.failed:
            self.failed = True
            raise PortError("write failed")
        await super().show(image)


async def test_a_restarted_service_resends_the_frame_to_the_reopened_panel() -> None:
    clock = ManualClock(START)
    port = FailingOnce()
    service = DisplayService(FakeMeter(clock), clock, port, ModuleStatus)
    with pytest.raises(PortError):
        await service.run()  # the supervisor would restart it
    for _ in range(2):  # after the failure, then after a clean stop (close blanks the panel)
        service.drawn.clear()
        task = asyncio.create_task(service.run())
        try:
            await asyncio.wait_for(service.drawn.wait(), timeout=2)
            assert port.image is not None
            assert port.image.tobytes() == service.frame.tobytes()  # type: ignore[union-attr]
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        assert port.image is None  # closed
