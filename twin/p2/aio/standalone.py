"""`dsmr-twin gasmeter`: one gas-meter twin alone on a serial device (2400 8E1).

Any M-Bus master can read it: libmbus (`mbus-serial-request-data -b 2400 DEVICE 1`), a real
E meter through an M-Bus slave HAT, or our own twin over a pty pair. It starts unconfigured
at address 0 (P2 §8.3.1) unless `--address N`; its address, keys and counters are kept in
`--state-dir`, so a restart continues as the same installed meter.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import signal
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from hardware.mbus_uart import UartBusLink
from hardware.ports import PortError
from twin.clock import Clock, SimulatedClock, SystemClock
from twin.config import ConfigError
from twin.control import SOCKET_NAME, ControlError, ControlSocket
from twin.p2.aio.gas_control import GAS_FIELDS, gas_command
from twin.p2.aio.gasmeter import GasMeterTwin, default_key, ident_from_equipment_id
from twin.p2.slave_state import GasMeterIdentity
from twin.store import Store

log = logging.getLogger(__name__)

REOPEN_S = 1.0  # real seconds between attempts to reopen a port that went away


@dataclass(frozen=True, slots=True)
class GasMeterOptions:
    """The command line of `dsmr-twin gasmeter`."""

    port: str
    state_dir: Path
    address: int | None = None
    equipment_id: str = "G0099000000000019"
    manufacturer: str = "TWN"
    default_key: str = ""
    start_m3: float = 0.0
    dsmr40: bool = False
    speed: float = 1.0
    start: str | None = None
    echo: bool = False
    seed: int | None = None


def _clock(options: GasMeterOptions) -> Clock:
    if options.speed <= 0:
        raise ConfigError("--speed must be positive")
    if options.speed == 1 and options.start is None:
        return SystemClock()
    start = datetime.fromisoformat(options.start) if options.start else SystemClock().now()
    if start.tzinfo is None:
        raise ConfigError("--start needs a UTC offset, e.g. 2026-10-24T12:00:00+02:00")
    return SimulatedClock(start, options.speed)


def build_gasmeter(options: GasMeterOptions, store: Store) -> GasMeterTwin:
    """The gas meter of `options` on its UART (not opened yet)."""
    if options.address is not None and not 1 <= options.address <= 250:
        raise ConfigError("--address must be 1..250 (P2 §3.1.3); leave it out for 0")
    try:
        identity = GasMeterIdentity(
            ident=ident_from_equipment_id(options.equipment_id),
            manufacturer=options.manufacturer,
            equipment_id=options.equipment_id,
            default_key=default_key(store, options.default_key),
            dsmr40=options.dsmr40,
        )
    except ValueError as exc:  # MbusError, or bad hex in --default-key
        raise ConfigError(f"bad gas-meter identity: {exc}") from exc
    return GasMeterTwin(
        identity,
        UartBusLink(options.port, echo=options.echo),
        _clock(options),
        store,
        rng=random.Random(options.seed),
        start_litres=options.start_m3 * 1000,
        address=options.address,
    )


def run_gasmeter(options: GasMeterOptions) -> int:
    """Run the gas meter; exit code 2 with a message if its port cannot be used."""
    try:
        asyncio.run(serve_gasmeter(options))
    except PortError as exc:
        print(f"dsmr-twin gasmeter: {exc}", file=sys.stderr)
        return 2
    return 0


async def serve_gasmeter(options: GasMeterOptions) -> None:
    """Run until SIGTERM or SIGINT."""
    store = Store.open(options.state_dir)
    try:
        gas = build_gasmeter(options, store)
        log.info(
            "gas meter %s (%s, ID %08d) at address %d, %s",
            gas.identity.equipment_id,
            gas.identity.manufacturer,
            gas.identity.ident,
            gas.slave.snapshot.address,
            gas.slave.state.value,
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        control = gas_control(gas, options.state_dir)
        tasks = [
            asyncio.create_task(control.run(), name="dsmr-twin.gasmeter.control"),
            asyncio.create_task(_serve_bus(gas, stop), name="dsmr-twin.gasmeter.bus"),
        ]
        try:
            # The bus loop ends on SIGTERM/SIGINT; the control socket only by failing.
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()  # a failure (a port that never opened, a bad socket) surfaces
        except OSError as exc:
            if isinstance(exc, PortError):
                raise
            raise ControlError(f"cannot serve {control.socket_path}: {exc}") from exc
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        gas.save()
    finally:
        store.close()


def gas_control(gas: GasMeterTwin, state_dir: Path) -> ControlSocket:
    """The process's control socket: `ctl --state-dir DIR status` and `ctl ... gas`."""
    control = ControlSocket(state_dir / SOCKET_NAME)

    async def status(request: Mapping[str, Any]) -> object:
        return {"kind": "gasmeter", "speed": gas.clock.speed, **gas.status()}

    control.add_command("status", status)
    control.add_command("gas", gas_command(gas), GAS_FIELDS)
    return control


async def _serve_bus(gas: GasMeterTwin, stop: asyncio.Event) -> None:
    """Answer the bus until `stop`, reopening a port that went away."""
    while not stop.is_set():
        task = asyncio.create_task(gas.run(), name="dsmr-twin.gasmeter")
        stopper = asyncio.create_task(stop.wait())
        await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
        for pending in (task, stopper):
            pending.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await stopper
        try:
            await task
        except asyncio.CancelledError:
            break
        except PortError as exc:
            if not gas.opened:
                raise  # never opened: a wrong device name, say so and stop
            # The line went away (the master's pty was re-created, a USB adapter was
            # pulled): a meter on a wire just waits for the bus to come back.
            log.warning("%s; reopening in %.0f s", exc, REOPEN_S)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), REOPEN_S)
