"""`dsmr-twin fleet inventory`: what a head-end imports to talk to the fleet (JSON or CSV).

Keys come from each meter's store when it has one (the store is the authority: a head-end
may have replaced a key by global_key_transfer), else from the fleet seed (a meter that has not
started yet will get exactly those).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from twin.fleet.spec import FleetSpec, meter_dir
from twin.p3.keys import KeyMaterial, read_keys
from twin.store import DATABASE, Store

COLUMNS = (
    "meter",
    "equipment_id",
    "system_title",
    "guek",
    "gak",
    "master_key",
    "hls_secret",
    "p3",
    "p1",
    "gas_equipment_id",
    "gas_default_key",
)


def stored_keys(fleet_dir: Path, index: int) -> KeyMaterial | None:
    directory = fleet_dir / meter_dir(index)
    if not (directory / DATABASE).exists():
        return None
    store = Store.open(directory)
    try:
        return read_keys(store)
    finally:
        store.close()


def inventory(fleet_dir: Path, spec: FleetSpec | None = None) -> list[dict[str, Any]]:
    """The fleet in `fleet_dir`, or `spec` when given (a fleet that has not run yet)."""
    spec = spec or FleetSpec.load(fleet_dir)
    rows = []
    for index in spec.indices:
        ident = spec.identity(index)
        keys = stored_keys(fleet_dir, index) or ident.key_material()
        rows.append(
            {
                "meter": index,
                "equipment_id": ident.equipment_id,
                **keys.public(),
                "p3": spec.p3_endpoint(index),
                "p1": spec.p1_endpoint(index),
                "gas_equipment_id": ident.gas_equipment_id,
                "gas_default_key": ident.gas_default_key.hex(),
            }
        )
    return rows


def as_csv(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()
