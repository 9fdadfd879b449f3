"""`dsmr-twin run --scenario FILE [--speed F] [--record CAPTURE] [--pushes FILE]`
(twin/scenario_run.py)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import signal
from pathlib import Path

from twin.cli_common import default_state_dir
from twin.config import ConfigError, config_from_mapping
from twin.scenario import Scenario, load_scenario
from twin.scenario_run import ScenarioRunner, check_scenario, scenario_runner
from twin.state_lock import StateLock


def _scenario(args: argparse.Namespace) -> Scenario:
    if args.config is not None:
        raise ConfigError("--scenario brings its own configuration: no --config with it")
    if args.speed is not None and not 0 < args.speed <= 1e9:
        raise ConfigError("--speed is from 0 to 1e9 meter seconds per real second")
    scenario = load_scenario(args.scenario)
    # Where the telegrams go and where a head-end reaches P3 (P3 §3: TCP) are the operator's.
    for section, endpoint in (("p1", args.p1), ("p3", args.p3)):
        if endpoint is not None:
            scenario = _with_endpoint(scenario, section, endpoint)
    return scenario


def _with_endpoint(scenario: Scenario, section: str, endpoint: str) -> Scenario:
    checked = getattr(config_from_mapping({section: {"endpoint": endpoint}}), section)
    updated = dataclasses.replace(getattr(scenario.config, section), endpoint=checked.endpoint)
    config = dataclasses.replace(scenario.config, **{section: updated})
    return dataclasses.replace(scenario, config=config)


def run_scenario(args: argparse.Namespace) -> int:
    scenario = _scenario(args)
    check_scenario(scenario)  # every event, before the state directory is touched
    if args.check:
        print(f"scenario {scenario.name} is valid ({len(scenario.events)} events)")
        return 0
    state_dir: Path = args.state_dir or default_state_dir()
    lock = StateLock.acquire(state_dir)
    try:
        with scenario_runner(
            scenario, state_dir, speed=args.speed, record=args.record, pushes=args.pushes
        ) as runner:
            asyncio.run(_until_signalled(runner))
        print(f"scenario {scenario.name}: {runner.status()}")
    finally:
        lock.release()
    return 0


async def _until_signalled(runner: ScenarioRunner) -> None:
    """Run the scenario; SIGTERM or SIGINT ends it early (the meter is committed)."""
    task = asyncio.ensure_future(runner.run())
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, task.cancel)
    try:
        with contextlib.suppress(asyncio.CancelledError):
            await task
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
