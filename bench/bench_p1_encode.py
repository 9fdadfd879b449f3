"""P1 telegram encode time: median and p99 over many encodes of live readings.

Run: .venv/bin/python bench/bench_p1_encode.py [--count N]
Target (issue 2): <= 0.2 ms median (the wire needs ~90 ms per telegram at 115200 baud).
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from datetime import UTC, datetime, timedelta

from twin.config import Config, P2Config
from twin.meter.model import MeterModel
from twin.metering import program_from_config
from twin.p1.telegram import TelegramEncoder


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=20_000)
    args = parser.parse_args()
    # The gas stand-in (P2 off) puts the M-Bus lines in, as on a meter with a gas meter.
    config = Config(p2=P2Config(enabled=False))
    start = datetime(2026, 6, 1, 10, tzinfo=UTC)
    model = MeterModel(
        config, random.Random(1), MeterModel.new_state(config, start), program_from_config(config)
    )
    model.power_failure(start, 400)  # a failure-log entry, as a real meter carries
    readings = [model.reading(start + timedelta(minutes=10, seconds=10 * i)) for i in range(500)]
    encoder = TelegramEncoder(config.meter.manufacturer, config.meter.identification)
    samples = []
    size = 0
    for i in range(args.count):
        reading = readings[i % len(readings)]
        began = time.perf_counter_ns()
        telegram = encoder.encode(reading)
        samples.append(time.perf_counter_ns() - began)
        size = len(telegram)
    samples.sort()
    median = statistics.median(samples) / 1e6
    p99 = samples[int(len(samples) * 0.99)] / 1e6
    print(
        f"P1 encode: median {median:.3f} ms, p99 {p99:.3f} ms"
        f" over {args.count} telegrams of {size} bytes"
    )


if __name__ == "__main__":
    main()
