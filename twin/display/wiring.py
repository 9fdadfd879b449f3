"""Wires the display service into a running twin.

twin/app.py calls `display_services(twin, twin.config.display)`; the service registers its
`ctl` commands (`screenshot`, `button`) and its status itself. Without a panel (device "none",
every fleet meter) no display service runs: a frame is rendered only when `ctl screenshot`
asks, by the same DisplayService, so an unwatched meter costs nothing for its display. P3 is
wired first: the display takes the modem's state (`twin.modem`) and the display readout lists
(`twin.display_lists`) it left on the twin, and imports nothing of P3.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from twin.display.service import DisplayService, ModuleStatus, StatusProvider, bars_from_dbm
from twin.ports import ModemStatus
from twin.readout_lists import DEFAULT_LISTS, ReadoutLists

if TYPE_CHECKING:
    from twin.parts import Twin
    from twin.supervisor import Service


class DisplaySettings(Protocol):
    """The `[display]` config table."""

    @property
    def device(self) -> str: ...  # hardware/oled.py: simulated[:DIR] | ssd1306:BUS:ADDR | ...

    @property
    def button(self) -> str: ...  # hardware/button.py: none | simulated | gpio:N

    @property
    def scroll_s(self) -> float: ...

    @property
    def manual_hold_s(self) -> float: ...

    @property
    def refresh_s(self) -> float: ...


def modem_status(modem: ModemStatus, self_check_ok: bool = True) -> StatusProvider:
    """DSMR-M 4.3.35 CM flag and 4.3.36 signal bars from the modem's network information."""

    def status() -> ModuleStatus:
        info = modem.network_info()
        dbm = None if info is None else info.signal_strength_dbm
        return ModuleStatus(info is not None, bars_from_dbm(dbm), self_check_ok)

    return status


def default_status(twin: Twin) -> StatusProvider:
    """The P3 modem's state when there is one (P3 is wired before the display); without a
    modem (p3.modem = "none"): attached when P3 is served, signal unknown."""
    if twin.modem is not None:
        return modem_status(twin.modem)
    status = ModuleStatus(comm_attached=twin.config.p3.serves, signal_level=None)
    return lambda: status


def default_lists(twin: Twin) -> ReadoutLists:
    """P3 §5.15: the display readout lists of the P3 object model when P3 runs (the head-end
    may rewrite them), else the Annex B defaults."""
    return DEFAULT_LISTS if twin.display_lists is None else twin.display_lists


def display_services(
    twin: Twin,
    settings: DisplaySettings,
    status: StatusProvider | None = None,
    lists: ReadoutLists | None = None,
) -> list[Service]:
    from hardware.button import open_button
    from hardware.oled import open_display
    from twin.supervisor import Service

    service = DisplayService(
        twin.meter,
        twin.clock,
        open_display(settings.device, twin.state_dir),
        status or default_status(twin),
        button=open_button(settings.button),
        lists=default_lists(twin) if lists is None else lists,
        scroll_s=settings.scroll_s,
        manual_hold_s=settings.manual_hold_s,
        refresh_s=settings.refresh_s,
    )
    twin.control.ports["display"] = service.status
    for name, fields in DisplayService.COMMANDS.items():
        twin.control.add_command(name, service.handle, fields)
    if settings.device == "none":
        return []  # issue 12: display rendering only on demand (`screenshot`)
    return [Service("display", service.run, heartbeat=lambda: service.heartbeat)]
