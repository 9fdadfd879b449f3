"""Wires the P2 (M-Bus) services into a running twin.

- `[p2] bus = "simulated"`: the master and the gas-meter twin share an in-process
  `SimulatedBus`; the twin knows that meter's Default key, so (with `auto_key`) it keys it with
  the User key it generates at installation and the bus runs mode 15 from the first hour.
- `pty://LINK` / `uart:///dev/X`: only the master runs here; the gas meter is a real one or a
  `dsmr-twin gasmeter` process on the other end, keyed over P3 or with `ctl mbus key`.

Control commands: `mbus` (install, key, deinstall) and `gas` (the simulated gas meter).
It sets `twin.mbus_port`, the P3 object model's class 72 port.
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hardware.mbus_link import MbusLink
from hardware.mbus_sim import SimulatedBus
from hardware.registry import open_mbus_link
from twin.clock import OffsetClock
from twin.config import Config
from twin.control import ControlError, ControlServer
from twin.control_fields import FieldError, choice, integer, text
from twin.p2.aio.fast_forward import GasFastForward
from twin.p2.aio.gas_control import GAS_FIELDS, gas_command
from twin.p2.aio.gasmeter import GasMeterTwin, default_key, ident_from_equipment_id
from twin.p2.aio.service import P2Service
from twin.p2.errors import MbusError
from twin.p2.headers import ShortId
from twin.p2.port import P2MbusPort
from twin.p2.slave_state import GasMeterIdentity

if TYPE_CHECKING:
    from twin.metering import Meter
    from twin.parts import Twin
    from twin.store import Store
    from twin.supervisor import Service

log = logging.getLogger(__name__)


def gas_identity(
    config: Config, store: Store, urandom: Callable[[int], bytes] = os.urandom
) -> GasMeterIdentity:
    """The simulated gas meter's identity from `[gas]`."""
    gas = config.gas
    return GasMeterIdentity(
        ident=ident_from_equipment_id(gas.equipment_id),
        manufacturer=gas.manufacturer,
        equipment_id=gas.equipment_id,
        default_key=default_key(store, gas.default_key, urandom),
        dsmr40=gas.dsmr40,
    )


@dataclass(frozen=True, slots=True)
class P2Parts:
    """The master's service and, on the simulated bus, the gas-meter twin with its clock."""

    service: P2Service
    gas: GasMeterTwin | None
    gas_clock: OffsetClock


def p2_parts(
    config: Config,
    meter: Meter,
    control: ControlServer,
    state_dir: Path,
    *,
    rng: random.Random,
    urandom: Callable[[int], bytes] = os.urandom,
) -> P2Parts:
    """Build the P2 master (and the simulated gas meter) and register their control commands
    (`mbus`, `gas`) and status ports. `rng` is the gas meter's household stream, `urandom`
    what the keys and the access number are drawn from (a scenario seeds both)."""
    p2 = config.p2
    gas: GasMeterTwin | None = None
    # The gas meter has its own clock, not the E meter's (P3 clock sets do not move it); time
    # passing (`ctl advance`) moves it as it moves the E meter's.
    gas_clock = OffsetClock(meter.clock.base)
    link: MbusLink
    if p2.bus == "simulated":
        bus = SimulatedBus(realtime=p2.realtime)
        link = bus.master_end()
        if config.gas.enabled:
            gas = GasMeterTwin(
                gas_identity(config, meter.store, urandom),
                bus.slave_end("gas meter"),
                gas_clock,
                meter.store,
                rng=rng,
                start_litres=config.gas.start_m3 * 1000,
                # The instant bus has no line time at all; the realtime one keeps EN 13757-2's.
                answer_delay_s=None if p2.realtime else 0.0,
                urandom=urandom,
            )
    else:
        link = open_mbus_link(p2.bus, state_dir, echo=p2.echo, power_gpio=p2.bus_power_gpio)
    known = gas.identity if gas is not None and p2.auto_key else None

    def default_key_for(device: ShortId) -> bytes | None:
        return known.default_key if known is not None and device == known.device else None

    service = P2Service(
        meter,
        link,
        read_delay_s=p2.read_delay_s,
        install_window_s=p2.install_window_s,
        default_key_for=default_key_for,
        urandom=urandom,
    )
    control.ports["p2"] = service.status
    control.add_command("mbus", _mbus_command(service), MBUS_FIELDS)
    control.add_command("gas", _gas_command(gas), GAS_FIELDS)
    if gas is not None:
        control.ports["gasmeter"] = gas.status
    return P2Parts(service, gas, gas_clock)


def p2_services(twin: Twin) -> list[Service]:
    from twin.supervisor import Service

    parts = p2_parts(
        twin.config,
        twin.meter,
        twin.control,
        twin.state_dir,
        rng=random.Random(twin.config.meter.seed),
    )
    service, gas = parts.service, parts.gas
    if gas is not None and gas.attached and not twin.config.p2.realtime:
        service.discover(gas.answer)  # the instant bus: installed before P1's first telegram
    twin.mbus_port = P2MbusPort(service)
    services = [Service("p2", service.run)]
    if gas is not None:
        fast_forward = GasFastForward(gas, parts.gas_clock, service, twin.meter)
        twin.fast_forward.waypoints.append(fast_forward)
        services.append(Service("gasmeter", gas.run))
    return services


# A key is 16 bytes (P2 §6.5, AES-128); empty or null: none given.
_KEY = r"([0-9A-Fa-f]{32})?"
MBUS_FIELDS = (
    choice("action", ("install", "key", "deinstall")),
    integer("channel", 1, 4, default=1),  # P2 §2.3: up to four M-Bus devices
    text("default_key", _KEY, "32 hex digits", default=None, nullable=True),
    text("user_key", _KEY, "32 hex digits", default=None, nullable=True),
)


def _key(hex_digits: str | None) -> bytes | None:
    return bytes.fromhex(hex_digits) if hex_digits else None


def _mbus_command(service: P2Service) -> Any:
    async def handle(request: Mapping[str, Any]) -> object:
        action, channel = request["action"], request["channel"]
        try:
            if action == "install":
                service.slave_install()
            elif action == "deinstall":
                service.slave_deinstall(channel)
            else:
                default = _key(request["default_key"])
                if default is None:
                    raise FieldError("'default_key' (32 hex digits) is required to key a device")
                service.key_with_default(channel, default, _key(request["user_key"]))
        except MbusError as exc:
            raise ControlError(str(exc)) from exc
        return {"action": action, "channel": channel, "queued": True}

    return handle


def _gas_command(gas: GasMeterTwin | None) -> Any:
    if gas is not None:
        return gas_command(gas)

    async def handle(request: Mapping[str, Any]) -> object:
        raise ControlError(
            "no simulated gas meter here ([p2] bus is not 'simulated' or [gas] is off); a"
            " `dsmr-twin gasmeter` process has its own: `dsmr-twin ctl --state-dir ITS_DIR gas`"
        )

    return handle
