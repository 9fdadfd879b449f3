"""`dsmr-twin fleet run|inventory|ctl|web` (and the internal `fleet worker`), loaded by
twin/cli.py."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import os
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from twin.config import Config, ConfigError, config_from_mapping, load_config
from twin.state_lock import StateLock

if TYPE_CHECKING:
    from twin.fleet.spec import FleetSpec

log = logging.getLogger(__name__)

MAX_WORKERS = 1024
FLEET_WEB = "http://127.0.0.1:8058"  # beside a single twin's console (8059)


def add_commands(commands: Any) -> None:
    fleet = commands.add_parser("fleet", help="many meters on one host, for head-end load tests")
    sub = fleet.add_subparsers(dest="fleet_command", required=True)
    run = sub.add_parser("run", help="run a fleet of meters (created on the first run)")
    run.add_argument("--state-dir", type=Path, required=True, help="the fleet's state directory")
    run.add_argument("--workers", type=int, help="worker processes (default: one per core)")
    _meter_options(run)
    _fleet_options(run)
    worker = sub.add_parser("worker", help="(internal) one worker of a running fleet")
    worker.add_argument("--state-dir", type=Path, required=True)
    worker.add_argument("--worker", type=int, required=True)
    worker.add_argument("--workers", type=int, required=True)
    _meter_options(worker)
    inventory = sub.add_parser("inventory", help="every meter's identity, keys and endpoints")
    inventory.add_argument("--state-dir", type=Path, required=True)
    # The options of `fleet run`: before the first run they say which meters it will make.
    _fleet_options(inventory)
    form = inventory.add_mutually_exclusive_group()
    form.add_argument("--json", action="store_true", help="a JSON list (the default)")
    form.add_argument("--csv", action="store_true", help="CSV with a header line")
    ctl = sub.add_parser("ctl", help="status and events of a running fleet")
    ctl.add_argument("--state-dir", type=Path, required=True)
    ctl_sub = ctl.add_subparsers(dest="fleet_ctl", required=True)
    status = ctl_sub.add_parser("status", help="meters up, workers, restarts, sessions, pushes")
    status.add_argument("--meter", type=int, help="one meter only (its index, 1..count)")
    status.add_argument("--json", action="store_true", help="per meter and aggregated, as JSON")
    outage = ctl_sub.add_parser("outage", help="a grid outage: power failures on many meters")
    _choice_options(outage)
    outage.add_argument("--seconds", type=float, required=True, help="meter seconds without power")
    tamper = ctl_sub.add_parser("tamper", help="a fraud event (40..47) on many meters")
    _choice_options(tamper)
    # Each meter checks the code (twin/control.py `tamper`): DSMR P3 §4.2.1, 40..47.
    tamper.add_argument(
        "--code", type=int, default=40, help="the fraud event code (default 40, cover removed)"
    )
    gas = ctl_sub.add_parser("gas", help="gas meters taken off (or put back on) the M-Bus")
    _choice_options(gas)
    on_bus = gas.add_mutually_exclusive_group(required=True)
    on_bus.add_argument(
        "--detach", dest="attached", action="store_false", help="remove each chosen gas meter"
    )
    on_bus.add_argument(
        "--attach", dest="attached", action="store_true", help="put each one back on the bus"
    )
    shot = ctl_sub.add_parser(
        "screenshot", help="save one meter's display as a PNG (rendered when asked, only then)"
    )
    shot.add_argument("--meter", type=int, required=True, help="the meter's index")
    shot.add_argument("file", type=Path)
    web = sub.add_parser("web", help="the fleet's overview and each meter's console, in a browser")
    web.add_argument("--state-dir", type=Path, required=True, help="the fleet's state directory")
    web.add_argument(
        "--web",
        default=FLEET_WEB,
        help=f"where to serve it: http://HOST:PORT (default {FLEET_WEB}; off loopback a token"
        " is asked: dsmr-twin web-token --state-dir FLEET_DIR)",
    )
    send = ctl_sub.add_parser(
        "send", help="one control request to many meters (what `dsmr-twin ctl` sends one)"
    )
    _choice_options(send, everyone=True)
    send.add_argument(
        "--request",
        required=True,
        help='the JSON request, e.g. \'{"cmd": "tamper", "code": 40}\' (each meter checks it)',
    )


def _fleet_options(parser: argparse.ArgumentParser) -> None:
    """What a fleet is: given to `fleet run` (fixed once created) and to `fleet inventory`."""
    parser.add_argument("--count", type=int, help="number of meters (fixed once created)")
    parser.add_argument(
        "--p3",
        help="meter 1's P3 endpoint, default tcp://127.1.0.1:4059; meter n"
        " takes the n-th loopback address (or port, off 127/8)",
    )
    parser.add_argument("--p1", help="meter 1's P1 TCP endpoint (tcp://HOST:PORT, then PORT+1...)")
    seeds = parser.add_mutually_exclusive_group()
    seeds.add_argument("--seed", help="derive every key from this (labs only); default random")
    seeds.add_argument(
        "--seed-file", type=Path, help="the seed from this file (kept out of the process list)"
    )
    parser.add_argument(
        "--first",
        type=int,
        help="index of the first meter (default 1): shards on several hosts share a --seed"
        " and take non-overlapping ranges",
    )
    parser.add_argument(
        "--inventory", type=Path, help="take identities and keys from this JSON/CSV inventory"
    )


def _choice_options(parser: argparse.ArgumentParser, *, everyone: bool = False) -> None:
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--fraction", type=float, help="this share of the meters (seeded choice)")
    which.add_argument("--meters", help="these meters: ID,ID,...")
    if everyone:
        which.add_argument("--all", action="store_true", help="every meter")
    parser.add_argument("--seed", type=int, default=0, help="the choice of meters (default 0)")


def _meter_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="TOML configuration every meter starts from")
    parser.add_argument("--speed", type=float, help="meter seconds per real second")


def add_ctl_commands(ctl_sub: Any) -> None:
    """The fleet has its own `fleet ctl`; nothing is added to a single meter's `ctl`."""


def ctl_request(args: argparse.Namespace) -> dict[str, Any] | None:
    return None


def run(args: argparse.Namespace) -> int | None:
    if args.command != "fleet":
        return None
    command: str = args.fleet_command
    if command == "run":
        return _run(args)
    if command == "worker":
        from twin.fleet.worker import run_worker

        return run_worker(args.state_dir, args.worker, args.workers, _base_config(args))
    if command == "inventory":
        return _inventory(args)
    if command == "web":
        return _web(args)
    return _ctl(args)


def _web(args: argparse.Namespace) -> int:
    """Serve the fleet console until SIGTERM or SIGINT (twin/fleet/web.py)."""
    from twin.config import WebConfig, http_host_port
    from twin.fleet.web import FleetConsole, serve_until
    from twin.web.server import WebError
    from twin.web.token import TokenError, load_or_create_token

    found = http_host_port(args.web)
    if found is None or args.web == "none":
        raise ConfigError(f"--web {args.web!r}: expected http://HOST:PORT")
    try:
        token = load_or_create_token(args.state_dir)
    except TokenError as exc:
        raise ConfigError(f"fleet console: {exc}") from exc

    async def serve() -> None:
        console = FleetConsole(args.state_dir, *found, token, WebConfig().refresh_s)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await serve_until(console, stop)

    try:
        asyncio.run(serve())
    except WebError as exc:  # the address of --web: taken, or not this host's
        raise ConfigError(f"--web {args.web}: {exc}") from exc
    return 0


def _base_config(args: argparse.Namespace) -> Config:
    from twin.fleet.spec import check_base_config

    config = load_config(args.config)
    if args.speed is not None:
        speed = config_from_mapping({"clock": {"speed": args.speed}}).clock.speed
        config = dataclasses.replace(config, clock=dataclasses.replace(config.clock, speed=speed))
    return check_base_config(config)


def _run(args: argparse.Namespace) -> int:
    from twin.fleet.head import FleetHead, run_head

    _base_config(args)  # refuse a bad configuration here, once, not in every worker
    workers = args.workers if args.workers is not None else os.cpu_count() or 1
    if not 1 <= workers <= MAX_WORKERS:
        raise ConfigError(f"--workers {workers}: expected 1 to {MAX_WORKERS}")
    state_dir: Path = args.state_dir.absolute()
    lock = StateLock.acquire(state_dir, purpose="fleet run")  # one head per fleet
    try:
        spec = _spec(args, state_dir)
        workers = min(workers, spec.count)
        if spec.seeded:
            log.warning("keys derived from --seed: a lab fleet (whoever has the seed has them)")
        assignments = [spec.worker_meters(w, workers) for w in range(workers)]
        passed = [] if args.config is None else ["--config", str(args.config.absolute())]
        passed += [] if args.speed is None else ["--speed", repr(args.speed)]
        log.info("fleet of %d meters over %d workers; P3 from %s", spec.count, workers, spec.p3)
        asyncio.run(run_head(FleetHead(state_dir, assignments, passed, args.log_level)))
    finally:
        lock.release()
    return 0


def _seed(args: argparse.Namespace) -> str | None:
    """--seed, or the first line of --seed-file (a seed on the command line is visible to
    every user of the host in the process list)."""
    if args.seed_file is None:
        seed: str | None = args.seed
        return seed
    try:
        lines = args.seed_file.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--seed-file {args.seed_file}: cannot read: {exc}") from exc
    return lines[0].strip() if lines else ""


def _spec(args: argparse.Namespace, state_dir: Path, *, create: bool = True) -> FleetSpec:
    """The fleet in `state_dir` as `fleet run` and `fleet inventory` options give it."""
    from twin.fleet.spec import resolve_spec

    return resolve_spec(
        state_dir,
        args.count,
        _seed(args),
        args.p3,
        args.p1,
        inventory=args.inventory,
        first=args.first,
        create=create,
    )


def _inventory(args: argparse.Namespace) -> int:
    from twin.fleet.inventory import as_csv, inventory

    spec = _spec(args, args.state_dir, create=False)
    rows = inventory(args.state_dir, spec)
    print(as_csv(rows) if args.csv else json.dumps(rows, indent=1), end="\n" * (not args.csv))
    return 0


def _ctl(args: argparse.Namespace) -> int:
    from twin.fleet.control import choose_meters, fleet_outage, fleet_send, fleet_status
    from twin.fleet.spec import FleetSpec

    if args.fleet_ctl == "status":
        status = asyncio.run(fleet_status(args.state_dir, args.meter))
        if args.json:
            print(json.dumps(status, indent=1))
        else:
            _print_status(status)
        return 0
    spec = FleetSpec.load(args.state_dir)
    if args.fleet_ctl == "screenshot":
        return _screenshot(args, spec)
    if args.meters is not None:
        meters = _meter_list(spec, args.meters)
    elif args.fraction is not None:
        meters = choose_meters(spec, args.fraction, args.seed)
    else:
        meters = list(spec.indices)
    if args.fleet_ctl == "outage":
        result = asyncio.run(fleet_outage(args.state_dir, meters, args.seconds))
    else:
        result = asyncio.run(fleet_send(args.state_dir, meters, _lever_request(args)))
    print(json.dumps(result))
    return 1 if result["failed"] else 0


def _screenshot(args: argparse.Namespace, spec: FleetSpec) -> int:
    """The meter's display as `dsmr-twin ctl screenshot` gets it: the meter renders its frame
    and sends it back, and the PNG is written here, by the operator."""
    from twin.display.cli import save_screenshot
    from twin.fleet.control import check_meter, meter_call

    index = check_meter(spec, args.meter)
    answer = asyncio.run(meter_call(args.state_dir, index, {"cmd": "screenshot"}))
    print(save_screenshot(answer, args.file))
    return 0


def _lever_request(args: argparse.Namespace) -> dict[str, Any]:
    """The control request `fleet ctl tamper|gas|send` sends each chosen meter: the same that
    `dsmr-twin ctl tamper` / `ctl gas --detach|--attach` send one meter."""
    if args.fleet_ctl == "tamper":
        return {"cmd": "tamper", "code": args.code}
    if args.fleet_ctl == "gas":
        return {"cmd": "gas", "attached": args.attached}
    return _request(args.request)


def _request(text: str) -> dict[str, Any]:
    try:
        request = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"--request: not JSON: {exc}") from exc
    if not isinstance(request, dict) or not isinstance(request.get("cmd"), str):
        raise ConfigError('--request: expected a JSON object with "cmd", e.g. {"cmd": "status"}')
    return request


def _meter_list(spec: FleetSpec, text: str) -> list[int]:
    from twin.fleet.control import check_meter

    try:
        meters = sorted({int(part) for part in text.split(",")})
    except ValueError:
        raise ConfigError(f"--meters {text!r}: expected meter numbers ID,ID,...") from None
    return [check_meter(spec, meter, "--meters") for meter in meters]


def _print_status(status: dict[str, Any]) -> None:
    print(
        f"meters {status['meters_up']}/{status['meters']} up ({status['meters_starting']}"
        f" starting, {status['meters_failed']} failed), {status['powered']} powered;"
        f" workers {status['workers_up']}/{status['workers']} up,"
        f" {status['worker_restarts']} restarts; associations {status['associations']},"
        f" pushes {status['pushes_sent']} (failed {status['push_failures']})"
    )
    for meter in status["meter_states"]:
        if not meter["up"]:
            print(f"  {meter['meter']:>5}  {meter['state'].upper()}  {meter['error']}")
        elif not meter["powered"]:
            print(f"  {meter['meter']:>5}  POWER FAILURE  {meter['equipment_id']}")
