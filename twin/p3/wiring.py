"""Wires the P3 (DLMS/COSEM over GPRS) service into a running twin.

`p3_services(twin)` is called by twin/app.py when `[p3] endpoint` is set: it opens the key
store, builds the object model (`twin.p3.objects.build_objects`), the TCP service and the
GPRS controller, registers `ctl wakeup` and the "p3" status, and returns one supervised
service "p3".
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from twin.clock import SystemClock
from twin.config import ConfigError
from twin.control import ControlError
from twin.p3.gprs import GprsController, SimulatedModem, WakeupRefusedError
from twin.p3.keys import KeyStore
from twin.p3.service import DEFAULT_PORT, P3Service
from twin.supervisor import Service

if TYPE_CHECKING:
    from twin.app import Twin
    from twin.p3.objects.ports import MbusPort

log = logging.getLogger(__name__)


def parse_endpoint(endpoint: str) -> tuple[str, int]:
    """tcp://HOST:PORT (PORT defaults to 4059, P3 §3); IPv6 hosts in brackets."""
    if not endpoint.startswith("tcp://"):
        raise ConfigError(f"'p3.endpoint' = {endpoint!r}: expected tcp://HOST:PORT")
    rest = endpoint.removeprefix("tcp://").rstrip("/")
    host, sep, port = rest.rpartition(":")
    if not sep or "]" in port:
        host, port = rest, str(DEFAULT_PORT)
    if not port.isdigit() or not 0 <= int(port) <= 65535 or not host:
        raise ConfigError(f"'p3.endpoint' = {endpoint!r}: expected tcp://HOST:PORT")
    return host.strip("[]"), int(port)


def _mbus_port(twin: Twin) -> MbusPort | None:
    """The class 72 methods go to the P2 service (wired before P3); None without P2."""
    if not twin.config.p2.enabled:
        return None
    from twin.p2.wiring import mbus_port

    return mbus_port(twin)


def build_gprs(twin: Twin) -> GprsController:
    from twin.p3.objects import build_objects

    config = twin.config.p3
    host, port = parse_endpoint(config.endpoint)
    keys = KeyStore(twin.store, config)
    modem = SimulatedModem(signal_dbm=config.signal_dbm)
    objects = build_objects(
        twin.meter, keys=keys, mbus=_mbus_port(twin), modem=modem, state_dir=twin.state_dir
    )
    # Network timers (inactivity) run in real time whatever the meter clock's speed.
    p3 = P3Service(twin.meter, keys, objects, host, port, net_clock=SystemClock())
    return GprsController(
        p3,
        config,
        meter_clock=twin.meter.clock,
        net_clock=p3.net_clock,
        equipment_id=twin.config.meter.equipment_id,
        modem=modem,
    )


def p3_services(twin: Twin) -> list[Service]:
    gprs = build_gprs(twin)

    async def wakeup(request: Mapping[str, Any]) -> object:
        kind, sender = request.get("kind"), request.get("sender")
        if not isinstance(kind, str) or not isinstance(sender, str) or not sender:
            raise ControlError("wakeup needs 'kind' (sms or csd) and a non-empty 'sender'")
        try:
            return gprs.wakeup(kind, sender)
        except WakeupRefusedError as exc:
            raise ControlError(str(exc)) from exc

    twin.control.add_command("wakeup", wakeup)
    twin.control.ports["p3"] = gprs.status
    return [
        Service("p3", gprs.run, heartbeat=lambda: max(gprs.heartbeat, gprs.p3.heartbeat)),
    ]
