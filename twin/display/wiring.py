"""Wires the display service into a running twin.

twin/app.py calls `display_services(twin, twin.config.display)` unless the device is "none";
the service registers its `ctl` commands (`screenshot`, `button`) and its status itself. P3 is
wired first: the display takes the modem's state and the display readout lists from it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from twin.display.service import DisplayService, ModuleStatus, StatusProvider, bars_from_dbm
from twin.readout_lists import DEFAULT_LISTS, ReadoutLists

if TYPE_CHECKING:
    from twin.app import Twin
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


class _Network(Protocol):
    @property
    def signal_strength_dbm(self) -> int: ...


class NetworkSource(Protocol):
    """What the display needs of the P3 modem (twin.p3.gprs.modem_service.ModemService)."""

    def network_info(self) -> _Network | None:
        """None while the module is not attached to the network."""
        ...


def modem_status(modem: NetworkSource, self_check_ok: bool = True) -> StatusProvider:
    """DSMR-M 4.3.35 CM flag and 4.3.36 signal bars from the modem's network information."""

    def status() -> ModuleStatus:
        info = modem.network_info()
        dbm = None if info is None else info.signal_strength_dbm
        return ModuleStatus(info is not None, bars_from_dbm(dbm), self_check_ok)

    return status


def default_status(twin: Twin) -> StatusProvider:
    """The P3 modem's state when there is one (P3 is wired before the display); without a
    modem (p3.modem = "none"): attached when P3 is served, signal unknown."""
    if twin.config.p3.serves:
        from twin.p3.wiring import modem_source

        modem = modem_source(twin)
        if modem is not None:
            return modem_status(modem)
    status = ModuleStatus(comm_attached=twin.config.p3.serves, signal_level=None)
    return lambda: status


def default_lists(twin: Twin) -> ReadoutLists:
    """P3 §5.15: the display readout lists of the P3 object model when P3 runs (the head-end
    may rewrite them), else the Annex B defaults."""
    if twin.config.p3.serves:
        from twin.p3.wiring import readout_lists_source

        lists = readout_lists_source(twin)
        if lists is not None:
            return lists
    return DEFAULT_LISTS


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
    for name in DisplayService.COMMANDS:
        twin.control.add_command(name, service.handle)
    return [Service("display", service.run, heartbeat=lambda: service.heartbeat)]
