"""The display service: pages on the panel in auto scroll, manual scroll and service mode.

P3 §5.15: each mode shows the pages of its display readout list (`ReadoutLists`, the Annex B
defaults or what the head-end wrote through P3): auto scroll 0-0:21.0.1, manual scroll
0-0:21.0.2, service mode 0-0:21.0.3. Auto scroll moves to the next page every `scroll_s` of
meter time. A short press in auto scroll enters manual scroll at the first page of its list; a
further press shows the next page; manual scroll lasts `manual_hold_s` of meter time after the
last press, then auto scroll starts again at its first page (Annex B: "return to auto scroll
after 30 seconds not pushing a button"). A long press enters or leaves service mode (at the
first page of the list), where pages only move on a short press and the self-check flag is
shown. DSMR-M 4.3.35: the flags are on every frame, with a register value, in all three modes.
A list is read again at each page change, so a list the head-end writes shows from the next
page on.

Pages follow meter time exactly (page = anchor page + elapsed scroll periods), so a fast
simulated clock or a late wake-up shows the page a real meter would show at that moment. Frames
are redrawn at least every `refresh_s` real seconds (register values change), at a scroll step
and at once after a press, but never faster than every `MIN_FRAME_S` real seconds.
"""

from __future__ import annotations

import asyncio
import base64
import io
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import Any, ClassVar, Protocol

from PIL import Image

from hardware.button import Button, Press
from hardware.oled import DisplayPort
from twin.clock import Clock
from twin.control import ControlError
from twin.control_fields import Field, choice
from twin.display.render import DisplayState, current_page, render
from twin.meter.state import MeterReading
from twin.readout_lists import (
    ALTERNATE,
    AUTO_SCROLL,
    DEFAULT_LISTS,
    SERVICE_MODE,
    ReadoutLists,
)

log = logging.getLogger(__name__)

MIN_FRAME_S = 0.2  # real seconds between frames at most (a fast simulated clock)
# Real seconds between heartbeats while waiting for the next frame: a meter clock that stands
# still at the end of its range (twin/clock.py TIME_MAX) brings no frame, and is not a hang.
HEARTBEAT_S = 5.0


class MeterSource(Protocol):
    """What the service needs of `twin.metering.Meter`."""

    def publish(self) -> MeterReading: ...

    async def publish_durable(self) -> MeterReading: ...


@dataclass(frozen=True, slots=True)
class ModuleStatus:
    """What the display shows that the meter reading does not carry."""

    comm_attached: bool = False  # communication module attached to the network (4.3.35)
    signal_level: int | None = None  # GPRS bars 0..4, None without a modem (4.3.36)
    self_check_ok: bool = True  # shown in service mode only (4.3.35)


StatusProvider = Callable[[], ModuleStatus]

# DSMR-G 4.2.12 (GPRS CS §2.5): at least 4 levels, no reception < -100 dBm, low to -95,
# medium to -85, high above. The edges follow hardware/modem.py's `signal_level`; "high" is
# split at -75 dBm so the fourth bar has a meaning (the clause asks for a minimum of 4 levels).
HIGH_SPLIT_DBM = -75


def bars_from_dbm(dbm: int | None) -> int:
    """GPRS signal bars 0..4 from the RSSI in dBm (None: not known or not detectable)."""
    if dbm is None or dbm < -100:
        return 0
    if dbm < -95:
        return 1
    if dbm <= -85:
        return 2
    return 3 if dbm <= HIGH_SPLIT_DBM else 4


class Mode(Enum):
    AUTO = "auto"
    MANUAL = "manual"
    SERVICE = "service"


# P3 §5.15: the display readout list of each mode.
LIST_OF_MODE = {Mode.AUTO: AUTO_SCROLL, Mode.MANUAL: ALTERNATE, Mode.SERVICE: SERVICE_MODE}


class DisplayService:
    """Renders the meter on `display` and answers the `screenshot` and `button` commands."""

    # The control commands and their fields (ControlServer.add_command checks them).
    COMMANDS: ClassVar[dict[str, tuple[Field, ...]]] = {
        "screenshot": (),
        "button": (choice("press", [kind.value for kind in Press]),),
    }

    def __init__(
        self,
        meter: MeterSource,
        clock: Clock,
        display: DisplayPort,
        status_provider: StatusProvider,
        *,
        button: Button | None = None,
        lists: ReadoutLists = DEFAULT_LISTS,
        scroll_s: float = 5.0,
        manual_hold_s: float = 30.0,
        refresh_s: float = 5.0,
    ) -> None:
        if min(scroll_s, manual_hold_s, refresh_s) <= 0:
            raise ValueError("scroll_s, manual_hold_s and refresh_s must be positive")
        self.meter, self.clock, self.display = meter, clock, display
        self.status_provider = status_provider
        self.button = button
        self.lists = lists
        self.scroll = timedelta(seconds=scroll_s)
        self.manual_hold = timedelta(seconds=manual_hold_s)
        self.refresh_s = refresh_s
        self.mode = Mode.AUTO
        self._page = 0  # page shown at `_anchor`
        self._anchor = clock.now()  # auto scroll counts periods from here
        self._hold_until = self._anchor
        self._codes: tuple[str, ...] = ()  # the mode's list as read at `_codes_at`
        self._codes_at: tuple[Mode, int] | None = None
        self._wake = asyncio.Event()
        self.drawn = asyncio.Event()  # set after every frame (tests wait on it)
        self.frame: Image.Image | None = None
        self._shown: bytes | None = None  # the frame on the panel, as last sent
        self.frame_time: datetime | None = None
        self.frames = 0  # frames drawn by the frame loop
        self.renders = 0  # frames rendered, drawn or asked for (`screenshot`)
        self.presses = 0
        self.heartbeat = time.monotonic()  # read by the supervisor's watchdog

    # ------------------------------------------------------------------ pages and modes

    def page_at(self, now: datetime) -> int:
        """The page index (not yet taken modulo the page count) shown at meter time `now`."""
        self._expire_manual(now)
        if self.mode is not Mode.AUTO:
            return self._page
        return self._page + max(0, math.floor((now - self._anchor) / self.scroll))

    def _expire_manual(self, now: datetime) -> None:
        if self.mode is Mode.MANUAL and now >= self._hold_until:
            # Auto scroll starts again at its first page, its first step one period later.
            self.mode, self._page, self._anchor = Mode.AUTO, 0, self._hold_until

    def codes_at(self, page: int) -> tuple[str, ...]:
        """The codes of the mode's readout list, read again when the page or mode changes."""
        if self._codes_at != (self.mode, page):
            self._codes = tuple(self.lists.codes(LIST_OF_MODE[self.mode]))
            self._codes_at = (self.mode, page)
        return self._codes

    def press(self, kind: Press) -> None:
        """A button press (the button port or `ctl button`)."""
        now = self.clock.now()
        page = self.page_at(now)
        self.presses += 1
        if kind is Press.LONG:
            self.mode = Mode.AUTO if self.mode is Mode.SERVICE else Mode.SERVICE
            self._page = 0  # another list: from its first page
        elif self.mode is Mode.AUTO:
            self.mode, self._page = Mode.MANUAL, 0
        else:
            self._page = page + 1
        if self.mode is Mode.MANUAL:
            self._hold_until = now + self.manual_hold
        self._anchor = now
        log.info("display button: %s press, mode %s", kind.value, self.mode.value)
        self._wake.set()

    def current_state(self, reading: MeterReading | None = None) -> DisplayState:
        now = self.clock.now()
        page = self.page_at(now)
        status = self.status_provider()
        return DisplayState(
            reading=self.meter.publish() if reading is None else reading,
            comm_attached=status.comm_attached,
            signal_level=status.signal_level,
            service_mode=self.mode is Mode.SERVICE,
            self_check_ok=status.self_check_ok,
            page=page,
            manual=self.mode is Mode.MANUAL,
            codes=self.codes_at(page),
        )

    # ------------------------------------------------------------------ running

    async def run(self) -> None:
        """Draw until cancelled; a port failure (PortError) ends it for the supervisor."""
        self._shown = None  # a (re)opened panel gets the next frame whatever it was
        await self.display.open()
        try:
            if self.button is None:
                await self._frames()
                return
            await self.button.open()
            try:
                async with asyncio.TaskGroup() as group:
                    group.create_task(self._frames(), name="dsmr-twin.display.frames")
                    group.create_task(self._buttons(), name="dsmr-twin.display.button")
            finally:
                await self.button.close()
        finally:
            await self.display.close()

    async def _buttons(self) -> None:
        assert self.button is not None
        while True:
            self.press(await self.button.next_press())

    async def _frames(self) -> None:
        while True:
            self._wake.clear()
            await self.draw()
            await self._wait(self._next_wake(self.clock.now()))

    async def draw(self) -> Image.Image:
        """Render the current state and put it on the panel (unchanged frames are not resent)."""
        self.heartbeat = time.monotonic()
        # Awaited, not waited for: the frame's commit never holds the event loop.
        image = self._render(self.current_state(await self.meter.publish_durable()))
        self.frame, self.frame_time = image, self.clock.now()
        pixels = image.tobytes()
        if pixels != self._shown:
            await self.display.show(image)
            self._shown = pixels
        self.frames += 1
        self.drawn.set()
        return image

    def _render(self, state: DisplayState) -> Image.Image:
        self.renders += 1
        return render(state)

    def _next_wake(self, now: datetime) -> datetime:
        speed = self.clock.speed
        due = now + timedelta(seconds=self.refresh_s * speed)
        if self.mode is Mode.AUTO:
            steps = max(0, math.floor((now - self._anchor) / self.scroll)) + 1
            due = min(due, self._anchor + steps * self.scroll)
        elif self.mode is Mode.MANUAL:
            due = min(due, self._hold_until)
        return max(due, now + timedelta(seconds=MIN_FRAME_S * speed))

    async def _wait(self, until: datetime) -> None:
        """Sleep until `until` (meter time) or a button press, whichever comes first."""
        tasks = [
            asyncio.ensure_future(self.clock.sleep_until(until)),
            asyncio.ensure_future(self._wake.wait()),
        ]
        try:
            while not any(task.done() for task in tasks):
                self.heartbeat = time.monotonic()
                await asyncio.wait(tasks, timeout=HEARTBEAT_S, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.wait(tasks)
        errors = [e for t in tasks if not t.cancelled() and (e := t.exception()) is not None]
        if errors:
            raise errors[0]

    # ------------------------------------------------------------------ operator access

    def screenshot(self) -> bytes:
        """The frame on the panel (rendered now if none yet, and always without a panel: no
        frame loop runs then, issue 12 "display rendering only on demand") as a 128x64 PNG.

        Bytes, never a file: the control socket sends them back and the CLI writes them as the
        operator. A service that wrote where a client said could replace its own database.
        """
        buffer = io.BytesIO()
        (self.frame or self._render(self.current_state())).save(buffer, format="PNG")
        return buffer.getvalue()

    def status(self) -> dict[str, Any]:
        """For `ctl status`."""
        state = self.current_state()
        page, index, count = current_page(state)
        return {
            "display": self.display.description,
            "button": self.button.description if self.button else None,
            "mode": self.mode.value,
            "list": LIST_OF_MODE[self.mode],
            "page": index + 1,
            "pages": count,
            "register": page.code,
            "label": page.label,
            "scroll_s": self.scroll.total_seconds(),
            "frames": self.frames,
            "renders": self.renders,
            "presses": self.presses,
            "last_frame": self.frame_time.isoformat() if self.frame_time else None,
        }

    async def handle(self, request: Mapping[str, Any]) -> object:
        """The control commands in `COMMANDS`; register each with ControlServer.add_command."""
        match request.get("cmd"):
            case "screenshot":
                return self._screenshot_command()
            case "button":
                return self._button_command(request.get("press"))
        raise ControlError(f"the display does not handle {request.get('cmd')!r}")

    def _screenshot_command(self) -> object:
        # JSON carries text: the PNG goes as base64 (the service user cannot reach the
        # operator's home either, so the CLI is the one place to write it).
        return {"png_base64": base64.b64encode(self.screenshot()).decode("ascii")}

    def _button_command(self, press: object) -> object:
        # `press` is one of the Press values: the control server checked it (COMMANDS).
        self.press(Press(press))
        return {"press": press, **self.status()}
