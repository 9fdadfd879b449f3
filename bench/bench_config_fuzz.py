"""Config loader fuzz figures (prints them; not a timed test): random TOML documents from the
real schema (known and unknown keys, values of every TOML type), the same documents with bytes
flipped, and random bytes, each written to a file and loaded. Every case must give a `Config`
or a `ConfigError` naming the key or the file; any other exception is printed and fails.
A sample also runs `dsmr-twin run --check` (in process): exit 0, or 2 with one line.

    python bench/bench_config_fuzz.py                     # 100000 cases, seed 1
    python bench/bench_config_fuzz.py --cases 10000 --seed 7 --cli-every 100
"""

from __future__ import annotations

import argparse
import contextlib
import io
import random
import string
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.config_documents import PLAUSIBLE, SCHEMA, toml_text
from twin.cli import main as cli_main
from twin.config import ConfigError, load_config

KEYS = sorted({key for keys in SCHEMA.values() for key in keys})


TEXT = string.printable + "éß€\u00a0\u2028😀"
SCALARS = (
    lambda rng: rng.random() < 0.5,
    lambda rng: rng.randint(-(2**63), 2**63 - 1),
    lambda rng: rng.choice([0, 1, -1, 3, 10, 60, 3600, 86_400, 1_000_000]),
    lambda rng: rng.choice([rng.uniform(-1e6, 1e6), float("nan"), float("inf"), -0.0, 1e308]),
    lambda rng: "".join(rng.choice(TEXT) for _ in range(rng.randrange(20))),
    lambda rng: datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=rng.randrange(10**9)),
    lambda rng: rng.choice(PLAUSIBLE),
    lambda rng: rng.choice(PLAUSIBLE),
    lambda rng: rng.choice(PLAUSIBLE),
)


def random_scalar(rng: random.Random) -> Any:
    return rng.choice(SCALARS)(rng)


def random_value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(12)
    if depth < 3 and kind == 0:
        return [random_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    if depth < 3 and kind == 1:
        return {random_key(rng): random_value(rng, depth + 1) for _ in range(rng.randrange(3))}
    return random_scalar(rng)


def random_key(rng: random.Random) -> str:
    if rng.random() < 0.9:
        return rng.choice(KEYS)
    return "".join(rng.choice(string.ascii_letters + "_-. ") for _ in range(rng.randint(1, 10)))


def random_document(rng: random.Random) -> dict[str, Any]:
    document: dict[str, Any] = {}
    for section in rng.sample(sorted(SCHEMA), rng.randrange(5)):
        keys = SCHEMA[section]
        chosen = {rng.choice(keys) if rng.random() < 0.8 else random_key(rng) for _ in range(4)}
        document[section] = {key: random_value(rng) for key in chosen}
    if rng.random() < 0.1:
        document[random_key(rng)] = random_value(rng)
    return document


def random_bytes(rng: random.Random) -> tuple[str, bytes]:
    kind = rng.randrange(10)
    if kind < 6:
        return "document", toml_text(random_document(rng)).encode()
    if kind < 9:  # a document with a few bytes changed: near-valid TOML and UTF-8
        data = bytearray(toml_text(random_document(rng)).encode())
        for _ in range(rng.randint(1, 3)):
            if data:
                # Mostly TOML's own punctuation, now and then any byte (then not UTF-8).
                flip = (
                    rng.choice(b" \"=[]{}.,#\\\n'0aZ") if rng.random() < 0.8 else rng.randrange(256)
                )
                data[rng.randrange(len(data))] = flip
        return "flipped", bytes(data)
    return "bytes", rng.randbytes(rng.randrange(200))


def outcome(path: Path) -> str:
    try:
        load_config(path)
    except ConfigError as exc:
        message = str(exc)
        if message.startswith(str(path)):
            return "file: " + message[len(str(path)) + 2 :].split(":", maxsplit=1)[0]
        if message.startswith("unknown key"):
            return "unknown key"
        if "must be" in message:
            return "wrong type"
        if "is not allowed" in message:
            return "value not allowed"
        raise AssertionError(f"a ConfigError that names no key: {message}") from exc
    return "valid Config"


def run_check(path: Path, state: Path) -> int:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = cli_main(["run", "--check", "--config", str(path), "--state-dir", str(state)])
    text = err.getvalue()
    last = text.strip().splitlines()[-1] if text.strip() else ""
    if (
        code not in (0, 2)
        or "Traceback" in text
        or (code == 2 and not last.startswith("dsmr-twin: "))
    ):
        raise AssertionError(f"run --check: exit {code}, stderr {text!r}")
    return code


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--cli-every", type=int, default=200, help="run --check every Nth case")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    outcomes: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    checks: Counter[int] = Counter()
    # In memory where Linux offers it: the loader is measured, not the disk.
    memory = Path("/dev/shm")
    where = memory if memory.is_dir() else None
    with tempfile.TemporaryDirectory(prefix="bench-config-", dir=where) as directory:
        path, state = Path(directory) / "twin.toml", Path(directory) / "state"
        began = time.perf_counter()
        for case in range(args.cases):
            kind, data = random_bytes(rng)
            path.write_bytes(data)
            try:
                outcomes[outcome(path)] += 1
                if case % args.cli_every == 0:
                    checks[run_check(path, state)] += 1
            except Exception:
                print(f"FAILED at case {case} (seed {args.seed}, {kind}): {data!r}")
                raise
            kinds[kind] += 1
        elapsed = time.perf_counter() - began
    print(f"cases                 {args.cases}  seed {args.seed}  ({dict(kinds)})")
    print("other exceptions      0")
    print(f"time                  {elapsed:.1f} s ({args.cases / elapsed:.0f} cases/s)")
    for name, count in outcomes.most_common():
        print(f"  {name:<30} {count:>7} ({100 * count / args.cases:.1f} %)")
    print(f"run --check sample    {sum(checks.values())}: exit 0 x{checks[0]}, exit 2 x{checks[2]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
