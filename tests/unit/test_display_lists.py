"""The display follows the display readout lists (P3 §5.15, Annex B): one page per showable code
of the mode's list, in list order; unknown codes skipped; an empty list falls back."""

from __future__ import annotations

import dataclasses
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from PIL import Image

from hardware.button import Press
from hardware.oled import SimulatedDisplay
from tests.support import spec_example_reading, steady_config
from twin.app import build
from twin.catalogue import BY_CODE
from twin.clock import ManualClock
from twin.config import P3Config
from twin.display import layout
from twin.display.pages import page_of, pages
from twin.display.render import DisplayState, current_page, render
from twin.display.service import DisplayService, Mode, ModuleStatus
from twin.display.wiring import default_lists
from twin.meter.state import MbusReading, MeterReading
from twin.p3.objects.readout import DisplayLists
from twin.readout_lists import (
    ALTERNATE,
    AUTO_SCROLL,
    DEFAULT_LISTS,
    DISPLAY_LISTS,
    SERVICE_MODE,
    DefaultLists,
    annex_b,
)

START = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
ENERGY = ("1-0:1.8.1", "1-0:1.8.2", "1-0:2.8.1", "1-0:2.8.2")
MBUS_DEVICE = tuple(f"0-{n}:24.1.0" for n in range(1, 5))
# What the display shows of the Annex B lists of a 3-phase meter with one gas meter on
# channel 1 and a message code set (spec_example_reading).
SHOWN = {
    AUTO_SCROLL: (*ENERGY, "0-0:96.13.1"),
    ALTERNATE: ("1-3:0.2.8", *ENERGY, "0-1:24.1.0"),
    SERVICE_MODE: (
        "0-0:1.0.0",
        *ENERGY,
        "0-1:24.1.0",
        *(f"1-0:{c}.7.0" for c in (21, 22, 41, 42, 61, 62)),
    ),
}


def reading(**changes: object) -> MeterReading:
    return dataclasses.replace(spec_example_reading(), **changes)  # type: ignore[arg-type]


def codes(shown: tuple[object, ...]) -> tuple[str, ...]:
    return tuple(p.code for p in shown)  # type: ignore[attr-defined]


# ---------------------------------------------------------------------- the lists


def test_default_lists_are_the_annex_b_capture_objects() -> None:
    for name in DISPLAY_LISTS:
        assert DEFAULT_LISTS.codes(name) == tuple(code for _c, code, _i in annex_b(3)[name])
    assert DEFAULT_LISTS.codes(AUTO_SCROLL) == (*ENERGY, "0-0:96.13.1")
    assert "1-0:41.7.0" not in DefaultLists(phases=1).codes(SERVICE_MODE)


@pytest.mark.parametrize("name", DISPLAY_LISTS)
def test_each_list_shows_its_showable_codes_in_list_order(name: str) -> None:
    assert codes(pages(reading(), DEFAULT_LISTS.codes(name))) == SHOWN[name]


def test_the_default_pages_are_the_auto_scroll_list() -> None:
    assert pages(reading()) == pages(reading(), DEFAULT_LISTS.codes(AUTO_SCROLL))


def test_annex_b_entries_without_a_page_are_exactly_the_skipped_ones() -> None:
    """Firmware ids and the communication session log are P3's objects (not in the catalogue);
    M-Bus channels 2..4 have no device installed (Annex B note 2)."""
    listed = {code for name in DISPLAY_LISTS for code in DEFAULT_LISTS.codes(name)}
    shown = {code for name in DISPLAY_LISTS for code in SHOWN[name]}
    assert listed - shown == {
        "1-0:0.2.0",
        "1-0:0.2.8",
        "1-1:0.2.0",
        "1-1:0.2.8",
        "0-0:99.98.4",
        *MBUS_DEVICE[1:],
    }


def test_unknown_and_unlabelled_codes_are_skipped() -> None:
    written = ("9-9:9.9.9", "1-0:1.7.0", "0-0:21.0.1", "1-0:32.24.0", "1-0:99.97.0", "0-0:96.14.0")
    assert codes(pages(reading(), written)) == ("1-0:1.7.0", "0-0:96.14.0")


@pytest.mark.parametrize(
    "written", [(), ("9-9:9.9.9",), ("0-2:24.2.1", "0-0:99.98.4")], ids=["empty", "unknown", "none"]
)
def test_a_list_without_a_page_falls_back_to_the_energy_registers(
    written: tuple[str, ...],
) -> None:
    assert codes(pages(reading(), written)) == ENERGY


def test_three_phase_codes_are_skipped_on_a_single_phase_meter() -> None:
    single = reading(phases=1, voltage_v=(230.0,))
    shown = codes(pages(single, DEFAULT_LISTS.codes(SERVICE_MODE)))
    assert shown == ("0-0:1.0.0", *ENERGY, "0-1:24.1.0", "1-0:21.7.0", "1-0:22.7.0")
    assert page_of("1-0:52.32.0", single) is None
    assert page_of("1-0:52.32.0", reading()) is not None


def test_an_empty_message_code_has_no_page() -> None:
    """Annex B: the message is shown until the CS sends an empty one."""
    assert codes(pages(reading(message_code=""))) == ENERGY
    page = page_of("0-0:96.13.1", reading())
    assert page is not None
    assert (page.label, page.value) == ("Message", "01 61 81")


def test_catalogue_objects_with_a_label_are_written_as_on_p1() -> None:
    shown = {p.code: (p.label, p.value, p.unit) for p in pages(reading(), tuple(BY_CODE))}
    assert shown["1-0:1.8.1"] == ("T1 import", "123456.789", "kWh")
    assert shown["1-0:1.7.0"] == ("Import", "01.193", "kW")
    assert shown["1-0:61.7.0"] == ("L3 import", "03.333", "kW")
    assert shown["0-0:96.14.0"] == ("Tariff", "0002", "")
    assert shown["0-0:96.7.21"] == ("Failures", "00004", "")
    assert shown["1-3:0.2.8"] == ("Version", "42", "")
    assert shown["0-0:96.1.1"][:2] == ("Meter ID", reading().equipment_id)
    # P1 shows 101209113020W: Dutch winter time.
    assert shown["0-0:1.0.0"] == ("Date time", "2010-12-09 11:30:20", "CET")
    unlabelled = {o.code for o in BY_CODE.values() if o.label is None}
    assert not unlabelled & set(shown)


def test_mbus_pages_for_installed_devices_only() -> None:
    water = MbusReading(3, 7, "3333XYZ000012345", 42_000, None)
    both = reading(mbus=(*reading().mbus, water))
    written = ("0-1:24.1.0", "0-1:24.1.0", "0-3:24.1.0", "0-1:24.2.1", "0-3:24.2.1", "0-2:24.2.1")
    shown = [(p.code, p.label, p.value, p.unit) for p in pages(both, written)]
    assert shown == [
        ("0-1:24.1.0", "Gas", "23456789", ""),  # serial and device type are one entry
        ("0-3:24.1.0", "Water", "00012345", ""),
        ("0-1:24.2.1", "Gas", "12785.123", "m3"),
        ("0-3:24.2.1", "M-Bus 3", "00042.000", "m3"),
    ]


def test_render_draws_the_page_of_the_states_list() -> None:
    state = DisplayState(reading(), service_mode=True, codes=DEFAULT_LISTS.codes(SERVICE_MODE))
    page, index, count = current_page(state)
    assert (page.code, index, count) == ("0-0:1.0.0", 0, len(SHOWN[SERVICE_MODE]))
    other = render(DisplayState(reading(), service_mode=True))
    assert _label(render(state)) != _label(other)


def _label(image: Image.Image) -> bytes:
    rect = layout.LABEL
    return image.crop((rect[0], rect[1], rect[2] + 1, rect[3] + 1)).tobytes()


# ---------------------------------------------------------------------- the service


class Meter:
    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock

    def publish(self) -> MeterReading:
        return reading(time=self.clock.now())


class Written:
    """A provider whose lists a test rewrites, as the head-end does through P3."""

    def __init__(self) -> None:
        self.lists = {name: DEFAULT_LISTS.codes(name) for name in DISPLAY_LISTS}

    def codes(self, list_code: str) -> tuple[str, ...]:
        return self.lists[list_code]


def service(lists: Written | None = None) -> tuple[DisplayService, ManualClock]:
    clock = ManualClock(START)
    display = DisplayService(
        Meter(clock),
        clock,
        SimulatedDisplay(),
        ModuleStatus,
        lists=lists or DEFAULT_LISTS,
        scroll_s=10,
        manual_hold_s=30,
    )
    return display, clock


def pressed_through(display: DisplayService, count: int) -> tuple[str, ...]:
    """The registers shown on `count` pages, a short press after each."""
    seen = []
    for _ in range(count):
        seen.append(display.status()["register"])
        display.press(Press.SHORT)
    return tuple(seen)


async def test_each_mode_shows_the_pages_of_its_list() -> None:
    display, clock = service()
    auto = []
    for _ in SHOWN[AUTO_SCROLL]:
        auto.append(display.status()["register"])
        await clock.advance(10)
    assert tuple(auto) == SHOWN[AUTO_SCROLL]
    assert display.status()["list"] == AUTO_SCROLL

    display.press(Press.SHORT)  # manual scroll: from the first page of its list
    assert display.mode is Mode.MANUAL
    assert display.status()["list"] == ALTERNATE
    assert pressed_through(display, len(SHOWN[ALTERNATE])) == SHOWN[ALTERNATE]

    display.press(Press.LONG)
    assert display.mode is Mode.SERVICE
    assert display.status()["list"] == SERVICE_MODE
    assert pressed_through(display, len(SHOWN[SERVICE_MODE])) == SHOWN[SERVICE_MODE]
    assert display.status()["pages"] == len(SHOWN[SERVICE_MODE])


async def test_auto_scroll_starts_again_at_its_first_page_after_manual_scroll() -> None:
    display, clock = service()
    await clock.advance(20)
    assert display.status()["register"] == ENERGY[2]
    display.press(Press.SHORT)
    assert display.status()["register"] == "1-3:0.2.8"
    await clock.advance(30)  # no press for manual_hold_s
    assert display.status()["register"] == ENERGY[0]
    assert display.mode is Mode.AUTO
    await clock.advance(10)
    assert display.status()["register"] == ENERGY[1]


async def test_a_written_list_shows_from_the_next_page_change() -> None:
    lists = Written()
    display, clock = service(lists)
    assert display.status()["register"] == ENERGY[0]
    lists.lists[AUTO_SCROLL] = ("1-0:1.7.0", "9-9:9.9.9", "0-0:96.14.0")
    await clock.advance(5)  # the same page: the list in use is kept
    assert display.status()["register"] == ENERGY[0]
    assert display.status()["pages"] == len(SHOWN[AUTO_SCROLL])
    await clock.advance(5)  # the next page: the written list, its second page
    assert display.status()["pages"] == 2
    assert display.status()["register"] == "0-0:96.14.0"
    await clock.advance(10)
    assert display.status()["register"] == "1-0:1.7.0"
    lists.lists[AUTO_SCROLL] = ()
    await clock.advance(10)
    assert display.status()["pages"] == len(ENERGY)  # fallback: never an empty display


# ---------------------------------------------------------------------- wiring


@pytest.mark.parametrize("endpoint", ["tcp://127.0.0.1:0", ""], ids=["p3", "no-p3"])
def test_the_display_reads_the_p3_lists_when_p3_runs(tmp_path: Path, endpoint: str) -> None:
    config = steady_config()
    twin = build(replace(config, p3=P3Config(endpoint=endpoint, modem="none")), tmp_path)
    try:
        lists = default_lists(twin)
        assert isinstance(lists, DisplayLists) is bool(endpoint)
        assert (lists is DEFAULT_LISTS) is not bool(endpoint)
        for name in DISPLAY_LISTS:
            assert lists.codes(name) == DEFAULT_LISTS.codes(name)
    finally:
        twin.store.close()
