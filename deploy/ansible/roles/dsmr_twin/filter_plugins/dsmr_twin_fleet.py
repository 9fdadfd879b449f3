"""Filters for a fleet spread over several hosts (roles/dsmr_twin/tasks/fleet.yml).

Every shard of one fleet shares the seed and takes its own range of meter indices, so no two
meters anywhere share an identity, keys or (per host) an endpoint: `dsmr-twin fleet run --first K`
(twin/fleet/spec.py). Plain functions of plain data, so the tests import them without Ansible.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

# What a head-end tells meters apart by (the columns of `dsmr-twin fleet inventory`).
UNIQUE_COLUMNS = ("equipment_id", "system_title", "p3")


def fleet_ranges(hosts: Iterable[str], hostvars: Mapping[str, Any]) -> dict[str, dict[str, int]]:
    """host -> {first, count, last} for each host with a `dsmr_twin_fleet` of count > 0, in
    inventory order: a host without an explicit `first` starts after the previous shard."""
    ranges: dict[str, dict[str, int]] = {}
    next_first = 1
    for host in hosts:
        fleet = hostvars[host].get("dsmr_twin_fleet") or {}
        count = int(fleet.get("count") or 0)
        if count <= 0:
            continue
        given = fleet.get("first")
        first = int(given) if given not in (None, "") else next_first
        ranges[host] = {"first": first, "count": count, "last": first + count - 1}
        next_first = max(next_first, first + count)
    return ranges


def fleet_overlaps(ranges: Mapping[str, Mapping[str, int]]) -> list[str]:
    """One message per pair of shards whose index ranges meet (or a range below meter 1)."""
    problems = [
        f"{host}: first = {r['first']}, but meters are numbered from 1"
        for host, r in ranges.items()
        if r["first"] < 1
    ]
    ordered = sorted(ranges.items(), key=lambda item: (item[1]["first"], item[0]))
    for number, (host, r) in enumerate(ordered):
        for other, o in ordered[number + 1 :]:
            if o["first"] > r["last"]:
                break
            problems.append(
                f"{host} (meters {r['first']}-{r['last']}) and {other} (meters"
                f" {o['first']}-{o['last']}) overlap: the same meters would run twice"
            )
    return problems


def fleet_repeats(rows: Iterable[Mapping[str, Any]]) -> list[str]:
    """One message per value of an identifying column that more than one meter has."""
    rows = list(rows)
    problems = []
    for column in UNIQUE_COLUMNS:
        seen: dict[str, Any] = {}
        for row in rows:
            value = str(row[column])
            if value in seen:
                problems.append(
                    f"{column} {value} is both meter {seen[value]} and meter {row['meter']}"
                )
            else:
                seen[value] = row["meter"]
    return problems


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "dsmr_twin_fleet_ranges": fleet_ranges,
            "dsmr_twin_fleet_overlaps": fleet_overlaps,
            "dsmr_twin_fleet_repeats": fleet_repeats,
        }
