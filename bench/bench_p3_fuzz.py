"""Fuzz the sans-IO P3 server core with 10^5 cases and print figures (not a timed test).

    python bench/bench_p3_fuzz.py [--cases 100000] [--seed 1]

The cases and invariants are those of tests/unit/p3/test_p3_fuzz.py (tests/unit/p3/fuzz_p3.py):
garbage, odd wrapper headers, random APDUs in a valid wrapper, and random APDUs correctly
ciphered inside a management association. Cases run one after another on a connection until
the meter closes it (or 50 cases), then a new connection starts; every 1000 cases, and at the
end, a good management session must work. Any exception is a finding: it is printed with the
seed and case number and the script exits 1.
"""

from __future__ import annotations

import argparse
import collections
import logging
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.unit.p3 import fuzz_p3
from tests.unit.p3.helpers import make_meter

logging.getLogger("dlms_cosem").setLevel(logging.ERROR)  # 21.3.2 logs every APDU
CASES_PER_CONNECTION = 50
CHECK_EVERY = 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    meter = make_meter()
    outcomes: collections.Counter[tuple[str, str]] = collections.Counter()
    slowest = 0.0
    done = checks = connections = 0
    start = time.perf_counter()
    try:
        while done < args.cases:
            setup = fuzz_p3.set_up(meter, rng.choice(fuzz_p3.SETUPS), rng.randrange(1, 2**31))
            connections += 1
            for _ in range(CASES_PER_CONNECTION):
                began = time.perf_counter()
                outcome = run_case(meter, setup, rng)
                slowest = max(slowest, time.perf_counter() - began)
                outcomes[(setup.kind, outcome.value)] += 1
                done += 1
                if done % CHECK_EVERY == 0:
                    fuzz_p3.good_session(meter, rng.randrange(1, 2**31))
                    checks += 1
                if outcome is fuzz_p3.Outcome.CLOSED or done >= args.cases:
                    break
        fuzz_p3.good_session(meter, rng.randrange(1, 2**31))
        checks += 1
    except Exception as exc:  # any failure is the finding; re-raised for its traceback
        print(f"FINDING after {done} cases (seed {args.seed}): {exc!r}")
        raise
    elapsed = time.perf_counter() - start
    print(f"cases: {done} on {connections} connections, seed {args.seed}")
    rate = done / elapsed
    print(f"time: {elapsed:.1f} s, {rate:.0f} cases/s, slowest case {slowest * 1e3:.1f} ms")
    print(f"good sessions after fuzzing: {checks}, all worked")
    for (kind, outcome), count in sorted(outcomes.items()):
        print(f"  {kind:<10} {outcome:<9} {count:>7}")
    return 0


def run_case(meter: fuzz_p3.Meter, setup: fuzz_p3.Setup, rng: random.Random) -> fuzz_p3.Outcome:
    if setup.kind == "management" and rng.random() < 0.5:
        return fuzz_p3.feed(meter, [setup.cipher(fuzz_p3.random_plain(rng))])
    return fuzz_p3.feed(meter, fuzz_p3.random_chunks(rng))


if __name__ == "__main__":
    sys.exit(main())
