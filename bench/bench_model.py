"""Simulated days per second of the meter model (household, PV, tariffs, profiles).

Run: .venv/bin/python bench/bench_model.py [--days N] [--once]
Target (issue 2): >= 10 simulated days per second.
"""

from __future__ import annotations

import argparse
import random
import time
from datetime import UTC, datetime, timedelta

from twin.config import Config, LoadConfig
from twin.meter.model import MeterModel
from twin.metering import program_from_config


def run(days: int, config: Config) -> float:
    start = datetime(2026, 3, 20, tzinfo=UTC)  # spans the spring DST change
    model = MeterModel(
        config, random.Random(1), MeterModel.new_state(config, start), program_from_config(config)
    )
    began = time.perf_counter()
    model.advance(start + timedelta(days=days))
    elapsed = time.perf_counter() - began
    rows = len(model.drain().load_profile)
    assert rows == days * 96, rows
    return days / max(elapsed, 1e-9)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument(
        "--once",
        action="store_true",
        help="one run of the default household only, for counting instructions: "
        "valgrind --tool=callgrind --callgrind-out-file=/dev/null "
        ".venv/bin/python bench/bench_model.py --once --days N (N = 0 gives the start-up)",
    )
    args = parser.parse_args()
    default = Config()
    if args.once:
        print(f"model, default household + PV, one run: {run(args.days, default):.1f} days/s")
        return
    full = Config(load=LoadConfig(ev=True, heat_pump=True))
    for name, config in (("default household + PV", default), ("with EV and heat pump", full)):
        rates = sorted(run(args.days, config) for _ in range(3))
        print(f"model, {name}: {rates[1]:.1f} simulated days/s (median of 3 x {args.days} days)")


if __name__ == "__main__":
    main()
