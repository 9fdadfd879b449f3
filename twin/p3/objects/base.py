"""The object framework: access rights per client, the COSEM object base class, typed errors.

Access rights (P3 §2.2): every attribute and method of every object lists Get/Set (R/W) and
Action (X) rights per client column P (public, SAP 16), M (management, SAP 1) and Pr
(pre-established, SAP 102). A missing right answers read-write-denied, which is not a
protocol error. The tables are written as "P/M/Pr" strings, e.g. "R/RW/" = public reads,
management reads and writes, pre-established nothing — the columns as printed in the spec.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

from twin.p3.dlms.cosem import ActionResult, DataAccessResult
from twin.p3.objects.values import Data, obis

PUBLIC_SAP = 16
MANAGEMENT_SAP = 1
PRE_ESTABLISHED_SAP = 102
_COLUMNS = (PUBLIC_SAP, MANAGEMENT_SAP, PRE_ESTABLISHED_SAP)


class ObjectError(Exception):
    """An attribute or method cannot be served; carries the Data-Access-Result to answer."""

    def __init__(self, result: DataAccessResult, message: str = "") -> None:
        super().__init__(message or result.name)
        self.result = result

    @property
    def action_result(self) -> ActionResult:
        return ActionResult(int(self.result))


def obis_bytes(code: str) -> bytes:
    """'0-0:1.0.0' or '0-0:1.0.0.255' -> 6 bytes (value group F defaults to 255)."""
    head, _, tail = code.partition(":")
    a, b = head.split("-")
    groups = [int(a), int(b), *(int(x) for x in tail.split("."))]
    if len(groups) == 5:
        groups.append(255)
    if len(groups) != 6 or not all(0 <= g <= 255 for g in groups):
        raise ValueError(f"bad OBIS code {code!r}")
    return bytes(groups)


def obis_text(raw: bytes) -> str:
    """6-byte logical name -> '1-0:1.8.1' (F shown only when it is not 255); the inverse of
    `obis_bytes`."""
    if len(raw) != 6:
        raise ValueError(f"a logical name is 6 bytes, not {len(raw)}")
    text = f"{raw[0]}-{raw[1]}:{raw[2]}.{raw[3]}.{raw[4]}"
    return text if raw[5] == 255 else f"{text}.{raw[5]}"


@dataclass(frozen=True, slots=True)
class Rights:
    """One row's rights: client SAP -> subset of 'R', 'W', 'X'."""

    by_client: Mapping[int, str]

    @classmethod
    def parse(cls, text: str) -> Rights:
        columns = text.split("/")
        if len(columns) != len(_COLUMNS) or any(c.strip("RWX") for c in columns):
            raise ValueError(f"rights {text!r} are not 'P/M/Pr' of R, W, X")
        return cls(dict(zip(_COLUMNS, columns, strict=True)))

    def allows(self, client: int, right: str) -> bool:
        return right in self.by_client.get(client, "")

    def any_for(self, client: int) -> bool:
        return bool(self.by_client.get(client, ""))


def rights_table(rows: Mapping[int, str]) -> dict[int, Rights]:
    return {index: Rights.parse(text) for index, text in rows.items()}


@dataclass(frozen=True, slots=True)
class Request:
    """Who asks and when (meter time, UTC)."""

    client: int
    now: datetime


class CosemObject:
    """One COSEM object: class id, version, logical name and its rights table.

    Subclasses override `read`, `read_selected`, `write` and `invoke`; attribute 1
    (logical_name) is served here. Rights are checked by the registry before these run.
    """

    class_id: ClassVar[int]
    version: ClassVar[int] = 0
    selectors: ClassVar[dict[int, tuple[int, ...]]] = {}  # attribute -> access selectors

    def __init__(self, code: str, attributes: Mapping[int, str], methods: Mapping[int, str]):
        self.code = code
        self.obis = obis_bytes(code)
        self.attributes = rights_table(attributes)
        self.methods = rights_table(methods)

    def visible_to(self, client: int) -> bool:
        rows = (*self.attributes.values(), *self.methods.values())
        return any(r.any_for(client) for r in rows)

    def read(self, index: int, request: Request) -> Data:
        if index == 1:
            return obis(self.obis)
        raise ObjectError(DataAccessResult.OBJECT_UNAVAILABLE, f"{self.code} attr {index}")

    def read_selected(self, index: int, selector: int, parameters: Data, request: Request) -> Data:
        """Selective access; only profile buffers support it (Blue Book class 7)."""
        raise ObjectError(DataAccessResult.SCOPE_OF_ACCESS_VIOLATED)

    def write(self, index: int, value: Data, request: Request) -> None:
        raise ObjectError(DataAccessResult.READ_WRITE_DENIED)

    def invoke(self, index: int, parameters: Data | None, request: Request) -> Data | None:
        raise ObjectError(DataAccessResult.READ_WRITE_DENIED)
