"""Crash loop figures: the real twin killed with SIGKILL at random moments, hundreds of times
(prints them; not a timed test). Each round starts the twin, checks it against everything the
readers saw before the last kill, reads P1/P3/control and sends `ctl tamper` in a random order,
and kills it (tests/e2e/crash_loop.py says what is checked).

    python bench/bench_crash_loop.py                    # 300 rounds, seed 1
    python bench/bench_crash_loop.py --rounds 100 --seed 7 --speeds 3600 60
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.e2e.crash_loop import SPEEDS, CrashLoop


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--speeds", type=int, nargs="+", default=list(SPEEDS))
    args = parser.parse_args()
    state = Path(tempfile.mkdtemp(prefix="bench-crash-"))
    loop = CrashLoop(state, args.seed, tuple(args.speeds))
    began = time.monotonic()
    done = 0
    try:
        for done in range(1, args.rounds + 1):
            loop.round()
            if done % 25 == 0:
                print(f"  {done} rounds, {time.monotonic() - began:.0f} s", flush=True)
        loop.round_start_only()
    except AssertionError as exc:
        print(f"FAILED in round {done} (seed {args.seed}): {exc}")
        print(f"state kept in {state}")
        return 1
    finally:
        loop.close()
    elapsed = time.monotonic() - began
    starts = sorted(loop.start_s)
    print(f"rounds (kill -9)        {args.rounds}  seed {args.seed}  speeds {args.speeds}")
    print(f"restarts checked        {loop.restarts}  violations 0")
    print(f"wall time               {elapsed:.0f} s ({elapsed / args.rounds:.2f} s per round)")
    print(
        f"start to P3 listening   median {statistics.median(starts):.2f} s"
        f"  p95 {starts[int(0.95 * (len(starts) - 1))]:.2f} s  max {starts[-1]:.2f} s"
    )
    print(f"reads before the kills  {dict(sorted(loop.seen.reads.items()))}")
    print(f"power failures counted  {loop.seen.power_failures}")
    print(f"meter invocation ctr    {loop.seen.invocation_counter} (strictly rising)")
    shutil.rmtree(state, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
