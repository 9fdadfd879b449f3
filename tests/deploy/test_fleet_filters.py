"""The role's fleet filters (roles/dsmr_twin/filter_plugins/dsmr_twin_fleet.py): each host's
range of meter indices, overlaps between shards and repeats in the merged inventory."""

from __future__ import annotations

import importlib.util
from types import ModuleType
from typing import Any

import pytest

from tests.deploy.conftest import ANSIBLE_DIR

PLUGIN = ANSIBLE_DIR / "roles" / "dsmr_twin" / "filter_plugins" / "dsmr_twin_fleet.py"


@pytest.fixture(scope="module")
def fleet() -> ModuleType:
    spec = importlib.util.spec_from_file_location("dsmr_twin_fleet", PLUGIN)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def hostvars(**fleets: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    return {host: {} if f is None else {"dsmr_twin_fleet": f} for host, f in fleets.items()}


def test_shards_follow_each_other_in_inventory_order(fleet: ModuleType) -> None:
    hosts = hostvars(a={"count": 10}, pi=None, b={"count": "15"}, idle={"count": 0}, c={"count": 5})
    ranges = fleet.fleet_ranges(["a", "pi", "b", "idle", "c"], hosts)
    assert ranges == {
        "a": {"first": 1, "count": 10, "last": 10},
        "b": {"first": 11, "count": 15, "last": 25},
        "c": {"first": 26, "count": 5, "last": 30},
    }
    assert fleet.fleet_overlaps(ranges) == []


def test_an_explicit_first_is_kept_and_the_next_shard_starts_after_it(fleet: ModuleType) -> None:
    hosts = hostvars(a={"count": 10, "first": 101}, b={"count": 5})
    assert fleet.fleet_ranges(["a", "b"], hosts) == {
        "a": {"first": 101, "count": 10, "last": 110},
        "b": {"first": 111, "count": 5, "last": 115},
    }


def test_overlapping_ranges_are_named_pair_by_pair(fleet: ModuleType) -> None:
    hosts = hostvars(a={"count": 10}, b={"count": 10, "first": 5}, c={"count": 3, "first": 0})
    ranges = fleet.fleet_ranges(["a", "b", "c"], hosts)
    assert fleet.fleet_overlaps(ranges) == [
        "c: first = 0, but meters are numbered from 1",
        "c (meters 0-2) and a (meters 1-10) overlap: the same meters would run twice",
        "a (meters 1-10) and b (meters 5-14) overlap: the same meters would run twice",
    ]
    # Touching ranges (10 then 11) do not overlap.
    touching = fleet.fleet_ranges(
        ["a", "b"], hostvars(a={"count": 10}, b={"count": 2, "first": 11})
    )
    assert fleet.fleet_overlaps(touching) == []


def test_repeated_identities_or_endpoints_in_the_merged_inventory_are_named(
    fleet: ModuleType,
) -> None:
    def row(meter: int, equipment_id: str, title: str, p3: str) -> dict[str, Any]:
        return {"meter": meter, "equipment_id": equipment_id, "system_title": title, "p3": p3}

    distinct = [
        row(1, "E1", "T1", "tcp://192.0.2.31:4059"),
        row(2, "E2", "T2", "tcp://192.0.2.32:4059"),
    ]
    assert fleet.fleet_repeats(iter(distinct)) == []
    # Two hosts both serving 127.1.0.1: the same endpoint string, two meters.
    clash = [
        *distinct,
        row(3, "E3", "T1", "tcp://127.1.0.1:4059"),
        row(4, "E4", "T4", "tcp://127.1.0.1:4059"),
    ]
    assert fleet.fleet_repeats(clash) == [
        "system_title T1 is both meter 1 and meter 3",
        "p3 tcp://127.1.0.1:4059 is both meter 3 and meter 4",
    ]


def test_the_filters_are_registered_under_the_role_prefix(fleet: ModuleType) -> None:
    assert set(fleet.FilterModule().filters()) == {
        "dsmr_twin_fleet_ranges",
        "dsmr_twin_fleet_overlaps",
        "dsmr_twin_fleet_repeats",
    }
