"""Control socket fuzz at volume: the fuzz of tests/unit/test_control_fuzz.py with 10^5 cases.

    python bench/bench_control_fuzz.py [--cases N]

Every case is one random line (a request for any command with random field values, random
bytes, random JSON or an over-long line) on a fresh connection to a whole twin's control
socket, then `status`, then a check that the meter's reading still fits a P1 telegram and
its registers never ran back (tests/control_fuzz.py). Prints cases/s and the answers by kind;
exits 1 on the first case that breaks the twin (Hypothesis shrinks it and prints it).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from hypothesis import HealthCheck, Phase, given, settings

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests package
from tests.control_fuzz import fuzz_twin, lines


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", type=int, default=100_000)
    args = parser.parse_args()
    # A refused command is the expected answer here, not news for the log.
    logging.basicConfig(level=logging.ERROR)
    with fuzz_twin() as twin:
        strategy = lines(twin.commands)

        @settings(
            max_examples=args.cases,
            deadline=None,
            database=None,
            phases=[Phase.generate, Phase.shrink],
            suppress_health_check=list(HealthCheck),
        )
        @given(line=strategy)
        def fuzz(line: bytes) -> None:
            twin.case(line)

        began = time.perf_counter()
        failed = False
        try:
            fuzz()
        except AssertionError as exc:  # Hypothesis re-raises the shrunk failure
            print(f"FAILED: {exc}", file=sys.stderr)
            failed = True
        elapsed = time.perf_counter() - began
    cases = sum(twin.kinds.values())
    print(f"cases       {cases} in {elapsed:.1f} s ({cases / elapsed:.0f} cases/s)")
    for kind, count in twin.kinds.most_common():
        print(f"  {kind:<10} {count:>7} ({100 * count / max(cases, 1):.1f} %)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
