"""The `dsmr-twin` command: `run` the meter, `ctl` a running one over its control socket."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import importlib
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from twin.cli_common import EXIT_CONFIG, EXIT_STATE_DIR_BUSY, EXIT_STORAGE, default_state_dir
from twin.config import Config, ConfigError, config_from_mapping, load_config
from twin.control import SOCKET_NAME, ControlError, call
from twin.state_lock import StateDirBusyError, StateLock
from twin.store import StoreError

# Commands contributed by the port packages. Each module defines:
#   add_commands(commands)      top-level sub-commands (e.g. "keys", "gasmeter")
#   add_ctl_commands(ctl_sub)   sub-commands of "ctl"
#   ctl_request(args)           the JSON request for one of its ctl commands, or None
#   run(args)                   run one of its top-level commands (exit code), or None
EXTENSIONS = (
    "twin.p1.cli",
    "twin.p2.cli",
    "twin.p3.cli",
    "twin.display.cli",
    "twin.store_cli",
    "twin.probe",
    "twin.fleet.cli",
    "twin.web.cli",
)
# `ctl advance` waits for the whole span: 400 days (its bound) even at 1 day/s.
ADVANCE_TIMEOUT_S = 900.0


def _extensions() -> list[Any]:
    return [importlib.import_module(name) for name in EXTENSIONS]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dsmr-twin", description="A digital twin of a DSMR 4.2.2 electricity meter."
    )
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING"])
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run the meter")
    run.add_argument("--config", type=Path, help="TOML configuration file")
    run.add_argument("--state-dir", type=Path, default=None, help="where the meter keeps its state")
    run.add_argument("--speed", type=float, help="meter seconds per real second (3600: 1 h/s)")
    run.add_argument("--p1", help="P1 endpoint: pty://LINK, tcp://HOST:PORT, uart:///dev/ttyX")
    run.add_argument("--p3", help="P3 endpoint: tcp://HOST:PORT")
    run.add_argument("--web", help="web console: http://HOST:PORT or none (default: [web])")
    run.add_argument("--check", action="store_true", help="validate the configuration and exit")
    run.add_argument(
        "--scenario", type=Path, help="run a scenario file (a new meter; docs/scenarios/)"
    )
    run.add_argument(
        "--record", type=Path, help="with --scenario: write its P1 telegrams to a capture file"
    )
    run.add_argument(
        "--pushes", type=Path, help="with --scenario: write its P3 pushes to a JSON lines file"
    )

    ctl = commands.add_parser("ctl", help="control a running meter")
    ctl.add_argument("--state-dir", type=Path, default=None)
    ctl_sub = ctl.add_subparsers(dest="ctl_command", required=True)
    _ctl_commands(ctl_sub)
    for extension in _extensions():
        extension.add_commands(commands)
        extension.add_ctl_commands(ctl_sub)
    return parser


def _ctl_commands(sub: Any) -> None:
    status = sub.add_parser("status", help="registers, tariff, power, failures, ports")
    status.add_argument("--json", action="store_true", help="print the status as JSON")
    failure = sub.add_parser("power-failure", help="cut the supply for N seconds of meter time")
    failure.add_argument("--seconds", type=float, required=True)
    for name in ("sag", "swell"):
        event = sub.add_parser(name, help=f"a voltage {name} on one phase")
        event.add_argument("--phase", type=int, required=True)
        event.add_argument("--seconds", type=float, default=10.0)
    message = sub.add_parser("message", help="set the consumer message (P1 0-0:96.13.x)")
    message.add_argument("--code", default="")
    message.add_argument("--text", default="")
    load = sub.add_parser("load", help="force the net power in W (negative exports), or clear")
    group = load.add_mutually_exclusive_group(required=True)
    group.add_argument("--watts", type=float)
    group.add_argument("--clear", action="store_true")
    tamper = sub.add_parser("tamper", help="raise a fraud event (40..47, default 40)")
    tamper.add_argument("--code", type=int, default=40)
    admin = sub.add_parser("admin", help="administrative state 0-1:94.31.0 (0, 1 off, 2 on)")
    admin.add_argument("--state", type=int, required=True)
    weather = sub.add_parser("weather", help="clouds over the PV from now on (0 clear .. 1)")
    weather.add_argument("--cloudiness", type=float, required=True)
    advance = sub.add_parser(
        "advance", help="live through N days/hours (or up to a time) at full speed, then go on"
    )
    span = advance.add_mutually_exclusive_group(required=True)
    span.add_argument("--days", type=float)
    span.add_argument("--hours", type=float)
    span.add_argument("--until", help="ISO time with its offset, e.g. 2027-01-01T00:00:00+01:00")
    drift = sub.add_parser("clock-drift", help="the meter clock runs off by S seconds (no event)")
    drift.add_argument("--seconds", type=float, required=True, help="-604800 to 604800")
    request = sub.add_parser("request", help="raise or drop a simulated P1 request line")
    request.add_argument("level", choices=["on", "off"])


def _ctl_request(args: argparse.Namespace) -> dict[str, Any]:
    for extension in _extensions():
        request: dict[str, Any] | None = extension.ctl_request(args)
        if request is not None:
            return request
    command = args.ctl_command
    fields: dict[str, Any] = {"cmd": command}
    if command in ("power-failure", "clock-drift"):
        fields["seconds"] = args.seconds
    elif command in ("sag", "swell"):
        fields.update(phase=args.phase, seconds=args.seconds)
    elif command == "message":
        fields.update(code=args.code, text=args.text)
    elif command == "load":
        fields["watts"] = None if args.clear else args.watts
    elif command == "tamper":
        fields["code"] = args.code
    elif command == "admin":
        fields["state"] = args.state
    elif command == "request":
        fields["raised"] = args.level == "on"
    elif command == "weather":
        fields["cloudiness"] = args.cloudiness
    elif command == "advance":
        given = {"days": args.days, "hours": args.hours, "until": args.until}
        fields.update((k, v) for k, v in given.items() if v is not None)
    return fields


def _run_config(args: argparse.Namespace) -> Config:
    config = load_config(args.config)
    # Each option replaces one key of its section; the rest of the file's section stays.
    overrides = (
        ("clock", "speed", args.speed),
        ("p1", "endpoint", args.p1),
        ("p3", "endpoint", args.p3),
        ("web", "endpoint", args.web),
    )
    for section, key, value in overrides:
        if value is not None:
            checked = getattr(config_from_mapping({section: {key: value}}), section)
            updated = dataclasses.replace(getattr(config, section), **{key: getattr(checked, key)})
            config = dataclasses.replace(config, **{section: updated})
    return config


def _run(args: argparse.Namespace) -> int:
    if args.scenario is not None:
        from twin.scenario_cli import run_scenario

        return run_scenario(args)
    if args.record is not None:
        raise ConfigError("--record goes with --scenario (or use dsmr-twin p1 record)")
    if args.pushes is not None:
        raise ConfigError("--pushes goes with --scenario")
    from twin.app import build, serve

    # `--check` and the start below share this one validation (twin/config.py).
    config = _run_config(args)
    if args.check:
        print("configuration is valid")
        return 0
    state_dir = args.state_dir or default_state_dir()
    lock = StateLock.acquire(state_dir)  # before the store: one twin per database
    try:
        twin = build(config, state_dir)
        # Everything built so far lives as long as the process: keep it out of the cyclic
        # collector, so a full collection cannot stall the event loop at a P1 slot.
        gc.collect()
        gc.freeze()
        asyncio.run(serve(twin))
    finally:
        lock.release()
    return 0


def _print_status(status: dict[str, Any]) -> None:
    if status.get("kind") == "gasmeter":  # a `dsmr-twin gasmeter` process
        print(f"gas meter {status['equipment_id']}  {status['state']}  speed x{status['speed']:g}")
        for key, value in status.items():
            if key not in ("kind", "equipment_id", "state", "speed"):
                print(f"  {key:<14} {value}")
        return
    print(
        f"meter {status['equipment_id']}  {status['local_time']} {'S' if status['dst'] else 'W'}"
        f"  speed x{status['speed']:g}  {'powered' if status['powered'] else 'POWER FAILURE'}"
    )
    for code in ("1-0:1.8.1", "1-0:1.8.2", "1-0:2.8.1", "1-0:2.8.2"):
        print(f"  {code:<10} {status[code]:>12.3f} kWh")
    print(f"  tariff     {status['tariff']} ({'normal' if status['tariff'] == 2 else 'low'})")
    print(f"  power      +{status['import_w']} W  -{status['export_w']} W")
    for phase in status["phases"]:
        print(
            f"    L{phase['phase']}  +{phase['import_w']:>5} W  -{phase['export_w']:>5} W"
            f"  {phase['current_a']:>3} A  {phase['voltage_v']:>5.1f} V"
            f"  sags {phase['sags']}  swells {phase['swells']}"
        )
    print(f"  failures   {status['power_failures']} (long {status['long_power_failures']})")
    for entry in status["power_failure_log"]:
        print(f"    ended {entry['end']}  {entry['duration_s']} s")
    if status["message"]["code"] or status["message"]["text"]:
        print(f"  message    [{status['message']['code']}] {status['message']['text']}")
    for device in status["mbus"]:
        print(f"  M-Bus {device['channel']}    {device['value']:.3f} m3 at {device['capture']}")
    for name, port in status["ports"].items():
        print(f"  {name:<10} {json.dumps(port)}")


def _ctl(args: argparse.Namespace) -> int:
    socket_path = (args.state_dir or default_state_dir()) / SOCKET_NAME
    # An advance answers when its span is lived through: seconds for a month (bounded by
    # MAX_DAYS at the model's speed), so its wait is longer than a command's.
    timeout = ADVANCE_TIMEOUT_S if args.ctl_command == "advance" else 10.0
    result = asyncio.run(call(socket_path, _ctl_request(args), timeout))
    if args.ctl_command == "screenshot":
        from twin.display.cli import save_screenshot

        # Written by the CLI as the operator: the service user cannot write to their home.
        print(save_screenshot(result, args.file))
        return 0
    if args.ctl_command == "status" and not args.json:
        _print_status(result)
    else:
        print(json.dumps(result, indent=2 if args.ctl_command == "status" else None))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    try:
        if args.command == "run":
            return _run(args)
        if args.command == "ctl":
            return _ctl(args)
        for extension in _extensions():
            code: int | None = extension.run(args)
            if code is not None:
                return code
        raise ControlError(f"no handler for command {args.command!r}")
    except (ConfigError, ControlError) as exc:
        print(f"dsmr-twin: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except StateDirBusyError as exc:
        print(f"dsmr-twin: {exc}", file=sys.stderr)
        return EXIT_STATE_DIR_BUSY
    except StoreError as exc:
        print(f"dsmr-twin: {exc}", file=sys.stderr)
        return EXIT_STORAGE


if __name__ == "__main__":
    sys.exit(main())
