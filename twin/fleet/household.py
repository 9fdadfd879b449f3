"""A household per meter, drawn from the fleet's distributions (`[fleet]`, twin/config.py).

Each meter draws with its own random.Random, seeded from the fleet seed and its index
(twin/fleet/identity.py), so the fleet is reproducible and no two meters' load curves match:
the draws differ, and so do the model seeds behind each meter's appliance and noise timing.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from twin.config import FleetConfig


@dataclass(frozen=True, slots=True)
class Household:
    phases: int
    base_w: float
    pv_peak_w: float  # 0: no PV
    cloudiness: float
    ev: bool
    heat_pump: bool
    gas: bool


def draw_household(fleet: FleetConfig, rng: random.Random) -> Household:
    """One household; the draws come in a fixed order so a seed always gives the same one."""
    phases = 1 if rng.random() < fleet.single_phase_share else 3
    base_w = round(rng.uniform(fleet.base_w_min, fleet.base_w_max), 1)
    has_pv = rng.random() < fleet.pv_share
    pv_peak_w = round(rng.uniform(fleet.pv_peak_w_min, fleet.pv_peak_w_max), -1)
    cloudiness = round(rng.uniform(fleet.cloudiness_min, fleet.cloudiness_max), 3)
    ev = rng.random() < fleet.ev_share
    heat_pump = rng.random() < fleet.heat_pump_share
    gas = rng.random() < fleet.gas_share
    return Household(phases, base_w, pv_peak_w if has_pv else 0.0, cloudiness, ev, heat_pump, gas)
