"""P2 figures: codec throughput (with and without AES) beside pyMeterBus.

Run: .venv/bin/python bench/bench_p2.py [--seconds S]

Frames per second through our codec: encode and decode a gas meter's RSP_UD in clear and in
mode 15 (AES-128-CBC), and pyMeterBus (`meterbus.load`, if installed: PyPI `pyMeterBus`)
parsing the same clear frames: the published V2 (DSMR 4.2.2 App. B1.3 in clear) and V5 (a
real Landis+Gyr G350), from tests/fixtures/p2.

The read cycle on the wire is measured by bench/bench_p2_pty.py (two processes over a pty):
the simulated bus sleeps the very line-time formula such a figure would be compared with.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

from twin.p2.headers import MODE_15, LongHeader
from twin.p2.messages import RspUd, decode_message, encode_message

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "p2"
USER_KEY = bytes(range(16))  # P2 App. B


def fixture(name: str) -> bytes:
    lines = (FIXTURES / f"{name}.hex").read_text(encoding="utf-8").splitlines()
    return bytes.fromhex(" ".join(line for line in lines if not line.startswith("#")))


def rate(action: Callable[[], object], seconds: float) -> float:
    """Calls per second of `action` over about `seconds`."""
    count, began = 0, time.perf_counter()
    deadline = began + seconds
    while True:
        for _ in range(200):
            action()
        count += 200
        now = time.perf_counter()
        if now >= deadline:
            return count / (now - began)


def codec_figures(seconds: float) -> None:
    clear = fixture("v2_rsp_ud_clear")
    g350 = fixture("v5_lgb_g350_clear")
    message = decode_message(clear)
    assert isinstance(message, RspUd)
    keyed = RspUd(
        message.address,
        LongHeader(message.header.device, message.header.access_number, 0, MODE_15),
        message.records,
        1,
    )
    encrypted = encode_message(keyed, key=USER_KEY)
    print(f"codec throughput (frames/s, {seconds:g} s each; frames of {len(clear)} and")
    print(f"{len(encrypted)} bytes: P2 App. B1.3 in clear and in mode 15)")
    rows: list[tuple[str, float]] = [
        ("ours   encode RSP_UD clear", rate(lambda: encode_message(message), seconds)),
        (
            "ours   encode RSP_UD mode 15 (AES)",
            rate(lambda: encode_message(keyed, key=USER_KEY), seconds),
        ),
        ("ours   decode RSP_UD clear (V2)", rate(lambda: decode_message(clear), seconds)),
        (
            "ours   decode RSP_UD mode 15 (AES)",
            rate(lambda: decode_message(encrypted, key=USER_KEY), seconds),
        ),
        ("ours   decode G350 clear (V5)", rate(lambda: decode_message(g350), seconds)),
    ]
    try:
        import meterbus  # type: ignore[import-untyped]
    except ImportError:
        rows.append(("pyMeterBus not installed (pip install pyMeterBus)", 0.0))
    else:
        rows += [
            ("pyMeterBus load RSP_UD clear (V2)", rate(lambda: meterbus.load(clear), seconds)),
            ("pyMeterBus load G350 clear (V5)", rate(lambda: meterbus.load(g350), seconds)),
        ]
    for label, value in rows:
        print(f"  {label:<44} {value:>10,.0f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=1.0, help="per throughput figure")
    args = parser.parse_args()
    codec_figures(args.seconds)


if __name__ == "__main__":
    main()
