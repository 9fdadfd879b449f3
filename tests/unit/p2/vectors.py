"""Published P2 test frames (sources in each file's header), read from tests/fixtures/p2/*.hex."""

from __future__ import annotations

from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "p2"
USER_KEY = bytes(range(16))  # P2 App. B: 00 01 02 .. 0F
DEFAULT_KEY = bytes.fromhex("00112233445566778899AABBCCDDEEFF")  # P2 App. B


def load(name: str) -> bytes:
    """The bytes of fixture `name` (hex text; '#' starts a comment line)."""
    lines = (FIXTURES / f"{name}.hex").read_text(encoding="utf-8").splitlines()
    return bytes.fromhex(" ".join(line for line in lines if not line.startswith("#")))


V1 = load("v1_rsp_ud_mode15")
V2 = load("v2_rsp_ud_clear")
V3 = load("v3_rsp_ud_dsmr40_valve")
V4 = load("v4_key_change")
V5 = load("v5_lgb_g350_clear")
V6 = load("v6_oms_mode5")
V7 = load("v7_oms_els_gas")
ALL = {"V1": V1, "V2": V2, "V3": V3, "V4": V4, "V5": V5, "V6": V6, "V7": V7}
