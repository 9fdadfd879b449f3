"""Identities a head-end already has: `fleet run --inventory FILE` (JSON list or CSV, the
columns `fleet inventory` exports). Row n becomes meter n; its equipment id, system title,
GUEK, GAK and master key are required, `hls_secret`, `p3`, `gas_equipment_id` and
`gas_default_key` optional (else derived from the fleet seed / the address range). Every value
is checked as the configuration checks an operator's (a bad one names its row and column)."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Any

from twin.config import ConfigError, config_from_mapping, tcp_host_port
from twin.fleet.identity import HLS_SECRET_LENGTH, KEY_LENGTH

REQUIRED = ("equipment_id", "system_title", "guek", "gak", "master_key")
OPTIONAL = ("hls_secret", "p3", "gas_equipment_id", "gas_default_key")
_HEX_LENGTH = {
    "system_title": 8,
    "guek": KEY_LENGTH,
    "gak": KEY_LENGTH,
    "master_key": KEY_LENGTH,
    "hls_secret": HLS_SECRET_LENGTH,
    "gas_default_key": KEY_LENGTH,
}
UNIQUE = ("equipment_id", "system_title", "p3", "gas_equipment_id")


def read_inventory(path: Path) -> list[dict[str, str]]:
    """The checked rows of an inventory file, in meter order."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--inventory {path}: cannot read: {exc}") from exc
    raw = _parse(path, text)
    if not raw:
        raise ConfigError(f"--inventory {path}: no meters in it")
    rows = [_row(path, n, item) for n, item in enumerate(raw, start=1)]
    for column in UNIQUE:
        seen: dict[str, int] = {}
        for n, row in enumerate(rows, start=1):
            value = row.get(column)
            if value is not None and value in seen:
                raise ConfigError(
                    f"--inventory {path}: row {n} repeats {column} {value!r} of row {seen[value]}"
                )
            if value is not None:
                seen[value] = n
    return rows


def _parse(path: Path, text: str) -> list[Any]:
    if text.lstrip().startswith("["):
        try:
            parsed = json.loads(text)
        except ValueError as exc:
            raise ConfigError(f"--inventory {path}: not valid JSON: {exc}") from exc
        if not isinstance(parsed, list):
            raise ConfigError(f"--inventory {path}: expected a JSON list of meters")
        return parsed
    try:
        return list(csv.DictReader(io.StringIO(text)))
    except csv.Error as exc:
        raise ConfigError(f"--inventory {path}: not valid CSV: {exc}") from exc


def _row(path: Path, n: int, item: Any) -> dict[str, str]:
    where = f"--inventory {path}: row {n}"
    if not isinstance(item, dict):
        raise ConfigError(f"{where}: expected an object with {', '.join(REQUIRED)}")
    row: dict[str, str] = {}
    for column in (*REQUIRED, *OPTIONAL):
        value = item.get(column)
        if value in (None, "") and column in OPTIONAL:
            continue
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{where}: '{column}' is missing (a text value)")
        row[column] = _checked(where, column, value.strip())
    return row


def _checked(where: str, column: str, value: str) -> str:
    if column in _HEX_LENGTH:
        length = _HEX_LENGTH[column]
        if not re.fullmatch(f"[0-9A-Fa-f]{{{2 * length}}}", value):
            raise ConfigError(f"{where}: '{column}' = {value!r}: expected {2 * length} hex digits")
        return value.lower()
    if column == "p3":
        found = tcp_host_port(value)
        if found is None or found[1] == 0:
            raise ConfigError(f"{where}: 'p3' = {value!r}: expected tcp://HOST:PORT")
        return value
    # The identifiers: as the configuration checks them (P1 Table 5-3, P2 §6.4.1).
    section, key = ("gas", "equipment_id") if column == "gas_equipment_id" else ("meter", column)
    try:
        config_from_mapping({section: {key: value}})
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from exc
    return value
