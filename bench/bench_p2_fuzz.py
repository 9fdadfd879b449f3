"""Fuzz the P2 state machines at volume: 10^5 cases of tests/unit/p2/fuzz.py, seeded.

Run: .venv/bin/python bench/bench_p2_fuzz.py [--cases N] [--seed S]

The unit suite runs about 2 300 Hypothesis cases; this runs the same case functions with a
seeded `random.Random` (random bytes, mutated/truncated frames with and without a repaired
checksum, wrong keys, replays, at the keyed slave and at the master) and prints, per kind, the
cases, the failures (any is a bug: an exception, an untyped event or no good exchange after)
and the rate. Exits 1 if any case failed, printing the first of each kind.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests package

from tests.unit.p2 import fuzz

Case = Callable[[random.Random], None]


def _bytes(rng: random.Random, most: int) -> bytes:
    return rng.randbytes(rng.randint(0, most))


def _mutation(rng: random.Random) -> tuple[int, list[tuple[int, int]], int | None, bool, bytes]:
    edits = [(rng.randrange(300), rng.randrange(256)) for _ in range(rng.randint(1, 4))]
    cut = rng.randrange(300) if rng.random() < 0.3 else None
    return rng.randrange(len(fuzz.FRAMES)), edits, cut, rng.random() < 0.7, _bytes(rng, 6)


CASES: dict[str, tuple[int, Case]] = {  # kind: (weight, case)
    "slave random bytes": (20, lambda rng: fuzz.slave_bytes(_bytes(rng, 300))),
    "slave mutated frames": (25, lambda rng: fuzz.slave_mutated(*_mutation(rng))),
    "slave wrong key": (
        5,
        lambda rng: fuzz.slave_wrong_key(rng.randbytes(16), rng.randint(-3600, 3600)),
    ),
    "slave replayed command": (5, lambda rng: fuzz.slave_replay(rng.randint(-3600, 3600))),
    "master random answers": (20, lambda rng: fuzz.master_answer(_bytes(rng, 300)) and None),
    "master mutated answers": (15, lambda rng: fuzz.master_mutated(*_mutation(rng))),
    "master wrong key": (5, lambda rng: fuzz.master_wrong_key(rng.randbytes(16))),
    "master replayed answer": (5, lambda rng: fuzz.master_replay(rng.randrange(6))),
    "master forged counter": (5, lambda rng: fuzz.master_forged_counter(rng.getrandbits(32))),
}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=13757)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    kinds = list(CASES)
    weights = [CASES[k][0] for k in kinds]
    runs = dict.fromkeys(kinds, 0)
    failures = dict.fromkeys(kinds, 0)
    seconds = dict.fromkeys(kinds, 0.0)
    first: dict[str, str] = {}
    began = time.perf_counter()
    for kind in rng.choices(kinds, weights, k=args.cases):
        start = time.perf_counter()
        try:
            CASES[kind][1](rng)
        except fuzz.FuzzError as error:
            failures[kind] += 1
            first.setdefault(kind, str(error))
        seconds[kind] += time.perf_counter() - start
        runs[kind] += 1
    total = time.perf_counter() - began
    print(f"P2 fuzz: {args.cases:,} cases, seed {args.seed}, {total:.1f} s")
    print(f"  {'kind':<26} {'cases':>8} {'failed':>7} {'cases/s':>9}")
    for kind in kinds:
        rate = runs[kind] / seconds[kind] if seconds[kind] else 0.0
        print(f"  {kind:<26} {runs[kind]:>8,} {failures[kind]:>7} {rate:>9,.0f}")
    print(f"  {'all':<26} {args.cases:>8,} {sum(failures.values()):>7} {args.cases / total:>9,.0f}")
    for kind, error in first.items():
        print(f"first failure of {kind}: {error}")
    return 1 if first else 0


if __name__ == "__main__":
    sys.exit(main())
