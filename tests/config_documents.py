"""Hypothesis strategies for configuration files: TOML documents built from the real schema
(every section and key of `twin.config.Config`) with values of any TOML type, unknown keys and
sections, and raw text and bytes. Shared by tests/unit/test_config_fuzz.py and
bench/bench_config_fuzz.py.
"""

from __future__ import annotations

import dataclasses
import json
import math
from datetime import UTC, date, datetime, time, timedelta, timezone
from typing import Any

from hypothesis import strategies as st

from twin.config import Config

SCHEMA: dict[str, tuple[str, ...]] = {
    section.name: tuple(f.name for f in dataclasses.fields(getattr(Config(), section.name)))
    for section in dataclasses.fields(Config)
}
# Values close to what a real file holds, so that deeper checks are reached too.
PLAUSIBLE = (
    "now",
    "simulated",
    "none",
    "always",
    "gpio:17",
    "pty://p1",
    "tcp://127.0.0.1:4059",
    "uart:///dev/ttyAMA0",
    "07:00",
    "2026-01-01T00:00:00+01:00",
    "2026-12-31",
    "TWN",
    "G0099000000000019",
    "000102030405060708090a0b0c0d0e0f",
    "ssd1306:1:0x3c",
    "always-on",
    "",
)

names = st.sampled_from(sorted(SCHEMA))
keys = st.one_of(
    st.sampled_from(sorted({k for ks in SCHEMA.values() for k in ks})),
    st.text(min_size=1, max_size=12),
)
scalars = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.sampled_from([0, 1, -1, 3, 10, 60, 3600, 86_400, 1_000_000]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.sampled_from(PLAUSIBLE),
    st.datetimes(timezones=st.sampled_from([None, UTC, timezone(timedelta(hours=1))])),
    st.dates(),
    st.times(),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=3)),
    max_leaves=8,
)


@st.composite
def tables(draw: st.DrawFn) -> dict[str, Any]:
    """A document: known sections with known and unknown keys, now and then a stray one."""
    document: dict[str, Any] = {}
    for section in draw(st.lists(names, max_size=4, unique=True)):
        known = st.sampled_from(SCHEMA[section])
        chosen = draw(st.lists(st.one_of(known, known, keys), max_size=4, unique=True))
        document[section] = {key: draw(values) for key in chosen}
    if draw(st.integers(0, 9)) == 0:
        document[draw(keys)] = draw(values)  # an unknown section or a top-level value
    return document


def toml_text(document: dict[str, Any]) -> str:
    """TOML 1.0 for `document`: one [section] per table, values inline."""
    lines = []
    for name, value in document.items():
        if not isinstance(value, dict):
            lines.insert(0, f"{_key(name)} = {_value(value)}")
    for name, value in document.items():
        if isinstance(value, dict):
            lines.append(f"[{_key(name)}]")
            lines.extend(f"{_key(k)} = {_value(v)}" for k, v in value.items())
    return "\n".join(lines) + "\n"


def _key(name: str) -> str:
    return _string(name)


def _string(text: str) -> str:
    # JSON escapes are TOML basic-string escapes, except that TOML also wants DEL escaped.
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def _value(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return _scalar(value)


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str):
        text = _string(value)
    elif isinstance(value, datetime | date | time):
        text = value.isoformat()
    else:  # int, float
        text = repr(value)
    return text


documents = st.one_of(
    tables().map(toml_text).map(str.encode),
    tables().map(toml_text).map(str.encode),  # twice: most documents are well-formed TOML
    st.text(max_size=200).map(str.encode),
    st.binary(max_size=200),
    st.sampled_from([2, 100, 3000]).map(
        lambda depth: ("a = " + "[" * depth + "]" * depth).encode()
    ),
)
