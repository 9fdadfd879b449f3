"""Wires the P3 (DLMS/COSEM over GPRS) service into a running twin.

`p3_services(twin)` is called by twin/app.py when `[p3] endpoint` is set: it opens the key
store, builds the modem service (p3.modem: twin/p3/gprs/modem_service.py), the object model
(`twin.p3.objects.build_objects`, its push setups relayed to the GPRS controller), the TCP
service and the GPRS controller, registers `ctl wakeup` and the "p3" and "modem" status, and
returns the supervised services "p3", "p3-objects" (the object model's ticks) and (unless
p3.modem = "none") "modem". For the display, wired after P3, it sets `twin.modem` (the modem's
network state) and `twin.display_lists` (the display readout lists 0-0:21.0.1..3, P3 §5.15).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from twin.clock import SystemClock
from twin.config import ConfigError, tcp_host_port
from twin.control import ControlError
from twin.control_fields import choice, text
from twin.p3.gprs.controller import SENDERS, GprsController, GprsModem, NoModem
from twin.p3.gprs.modem_service import MAX_NUMBER, ModemUnavailableError, open_modem_service
from twin.p3.keys import KeyStore
from twin.p3.objects.fast_forward import CalendarFastForward
from twin.p3.objects.ports import PushRelay
from twin.p3.service import DEFAULT_PORT, P3Service
from twin.supervisor import Service

if TYPE_CHECKING:
    from twin.parts import Twin

log = logging.getLogger(__name__)


# 27.007 <number> text: printable ASCII without quotes or commas, at most MAX_NUMBER long.
WAKEUP_FIELDS = (
    choice("kind", tuple(SENDERS)),
    text(
        "sender",
        rf"[\x20\x21\x23-\x2b\x2d-\x7e]{{1,{MAX_NUMBER}}}",
        f"1 to {MAX_NUMBER} printable ASCII characters without quotes or commas",
    ),
)


def parse_endpoint(endpoint: str) -> tuple[str, int]:
    """tcp://HOST:PORT (PORT defaults to 4059, P3 §3); IPv6 hosts in brackets. The
    configuration refuses anything else already (twin/config.py, the same function)."""
    found = tcp_host_port(endpoint, DEFAULT_PORT)
    if found is None:
        raise ConfigError(f"'p3.endpoint' = {endpoint!r}: expected tcp://HOST:PORT")
    return found


def build_gprs(twin: Twin, modem: GprsModem) -> GprsController:
    from twin.p3.objects import build_objects

    config = twin.config.p3
    host, port = parse_endpoint(config.endpoint)
    keys = KeyStore(twin.store, config)
    # The push setups need the controller, which needs the objects: a relay joins them.
    relay = PushRelay()
    objects = build_objects(
        twin.meter,
        keys=keys,
        mbus=twin.mbus_port,  # set by the P2 wiring (before P3); None without P2
        modem=modem,
        state_dir=twin.state_dir,
        push=relay,
    )
    twin.display_lists = objects.display_lists
    twin.fast_forward.waypoints.append(CalendarFastForward(objects.calendar))
    # Network timers (inactivity, repetition_delay) run in real time whatever the meter
    # clock's speed; push schedules and windows run on the meter clock.
    p3 = P3Service(
        twin.meter,
        keys,
        objects,
        host,
        port,
        net_clock=SystemClock(),
        association_timeout_s=config.association_timeout_s,
    )
    gprs = GprsController(
        p3,
        config,
        meter_clock=twin.meter.clock,
        net_clock=p3.net_clock,
        equipment_id=twin.config.meter.equipment_id,
        modem=modem,
    )
    relay.attach(gprs)
    return gprs


def p3_services(twin: Twin) -> list[Service]:
    # The modem polls on the real clock, like the DLMS timers, whatever the meter's speed.
    modem = open_modem_service(twin.config.p3, twin.state_dir, SystemClock())
    gprs = build_gprs(twin, modem or NoModem())
    services = [
        Service("p3", gprs.run, heartbeat=lambda: max(gprs.liveness(), gprs.p3.heartbeat)),
        # The object model's meter-clock schedules (calendar activation, profile captures).
        Service("p3-objects", gprs.p3.run_ticks),
    ]
    if modem is not None:
        modem.on_wakeup = gprs.wakeup
        twin.modem = modem
        twin.control.ports["modem"] = modem.status
        services.append(Service("modem", modem.run, heartbeat=lambda: modem.heartbeat))

    async def wakeup(request: Mapping[str, Any]) -> object:
        """ctl wakeup: the simulated modem receives the SMS or call (through the AT codec)."""
        kind, sender = request["kind"], request["sender"]
        if modem is None:
            raise ControlError("p3.modem is 'none': there is no modem to receive a wake-up")
        try:
            return await modem.inject_wakeup(kind, sender)
        except (ModemUnavailableError, ValueError) as exc:
            raise ControlError(str(exc)) from exc

    twin.control.add_command("wakeup", wakeup, WAKEUP_FIELDS)
    twin.control.ports["p3"] = gprs.status
    return services
