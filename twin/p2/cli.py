"""Command-line commands of P2 (see EXTENSIONS in twin/cli.py).

- `dsmr-twin gasmeter --port DEVICE [--address N] [--state-dir DIR] ...`: a gas-meter twin
  alone on a serial device at 2400 8E1 (P2 §3.1.4).
- `dsmr-twin ctl gas [--battery-low on|off] [--fraud on|off] [--clock-drift S]
  [--detach|--attach]`: the simulated gas meter inside a running twin, or a `dsmr-twin
  gasmeter` process (its `--state-dir` holds its control socket; `ctl status` works too).
- `dsmr-twin ctl mbus install|deinstall|key [--channel N] [--default-key HEX] [--user-key HEX]`:
  the M-Bus master, as P3 class 72 methods 1, 2 and 7/8 would drive it.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from twin.config import GasConfig

ON_OFF = ("on", "off")


def add_commands(commands: Any) -> None:
    """`dsmr-twin gasmeter`."""
    gas = commands.add_parser(
        "gasmeter", help="run a gas-meter twin alone on a serial device (M-Bus, 2400 8E1)"
    )
    gas.add_argument("--port", required=True, help="serial device, e.g. /dev/ttyAMA0 or a pty")
    gas.add_argument("--address", type=int, help="primary address 1..250 (default 0)")
    gas.add_argument(
        "--state-dir",
        type=Path,
        default=Path("gasmeter-state"),
        help="its state and control socket (dsmr-twin ctl --state-dir DIR gas|status)",
    )
    defaults = GasConfig()
    gas.add_argument("--equipment-id", default=defaults.equipment_id)
    gas.add_argument("--manufacturer", default=defaults.manufacturer)
    gas.add_argument("--default-key", default="", help="32 hex digits (default: generated)")
    gas.add_argument("--start-m3", type=float, default=defaults.start_m3)
    gas.add_argument("--dsmr40", action="store_true", help="behave as a DSMR 4.0 gas meter")
    gas.add_argument("--speed", type=float, default=1.0, help="meter seconds per real second")
    gas.add_argument("--start", help="ISO time with offset of the meter clock at start")
    gas.add_argument("--echo", action="store_true", help="drop our own echoed bytes")
    gas.add_argument("--seed", type=int, help="fix the gas-use random stream")


def add_ctl_commands(ctl: Any) -> None:
    """`dsmr-twin ctl gas` and `dsmr-twin ctl mbus`."""
    gas = ctl.add_parser(
        "gas", help="a gas-meter twin (simulated, or `gasmeter` process): status, clock, bus"
    )
    gas.add_argument("--battery-low", choices=ON_OFF)
    gas.add_argument("--fraud", choices=ON_OFF)
    gas.add_argument("--clock-drift", type=float, metavar="SECONDS")
    bus = gas.add_mutually_exclusive_group()
    bus.add_argument("--detach", action="store_true", help="take it off the bus")
    bus.add_argument("--attach", action="store_true", help="put it back on the bus")
    mbus = ctl.add_parser("mbus", help="the M-Bus master: install, key or de-install a device")
    mbus.add_argument("action", choices=("install", "key", "deinstall"))
    mbus.add_argument("--channel", type=int, default=1)
    mbus.add_argument("--default-key", help="the device's Default key (32 hex digits)")
    mbus.add_argument("--user-key", help="User key (default: the one generated at install)")


def ctl_request(args: argparse.Namespace) -> dict[str, Any] | None:
    if args.ctl_command == "gas":
        request: dict[str, Any] = {"cmd": "gas"}
        if args.battery_low:
            request["battery_low"] = args.battery_low == "on"
        if args.fraud:
            request["fraud"] = args.fraud == "on"
        if args.clock_drift is not None:
            request["clock_drift_s"] = args.clock_drift
        if args.detach or args.attach:
            request["attached"] = bool(args.attach)
        return request
    if args.ctl_command == "mbus":
        return {
            "cmd": "mbus",
            "action": args.action,
            "channel": args.channel,
            "default_key": args.default_key,
            "user_key": args.user_key,
        }
    return None


def run(args: argparse.Namespace) -> int | None:
    if args.command != "gasmeter":
        return None
    from twin.p2.aio.standalone import GasMeterOptions, run_gasmeter

    options = GasMeterOptions(
        port=args.port,
        state_dir=args.state_dir,
        address=args.address,
        equipment_id=args.equipment_id,
        manufacturer=args.manufacturer,
        default_key=args.default_key,
        start_m3=args.start_m3,
        dsmr40=args.dsmr40,
        speed=args.speed,
        start=args.start,
        echo=args.echo,
        seed=args.seed,
    )
    return run_gasmeter(options)
