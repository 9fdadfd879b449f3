"""`Configured`: an object whose attributes are persisted settings with defaults, the shape of
most communication objects (P3 §3.1, chapters 8-9): what the CS writes is kept in the
attribute store and read back. A written value must have the default's shape, or pass the
attribute's own check where it has one (lists whose elements the default cannot show, e.g.
an empty array; type-unmatched otherwise)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from twin.p3.dlms.cosem import DataAccessResult
from twin.p3.objects.base import CosemObject, ObjectError, Request
from twin.p3.objects.simple import AttributeStore, Stored
from twin.p3.objects.values import Data

Attribute = tuple[str, Data]  # rights "P/M/Pr", default value
Check = Callable[[Data], None]  # raises ValueTypeError for a value to refuse


class Configured(CosemObject):
    """An object whose attributes are persisted settings with defaults (no behaviour)."""

    def __init__(
        self,
        class_id: int,
        version: int,
        code: str,
        attrs: AttributeStore,
        table: Mapping[int, Attribute],
        *,
        methods: Mapping[int, str] | None = None,
        checks: Mapping[int, Check] | None = None,
    ) -> None:
        self.class_id = class_id  # type: ignore[misc]
        self.version = version  # type: ignore[misc]
        super().__init__(
            code, {1: _readers(table)} | {i: r for i, (r, _) in table.items()}, methods or {}
        )
        self.values = {
            i: Stored(attrs, f"{code}#{i}", default) for i, (_, default) in table.items()
        }
        self.checks = dict(checks or {})  # attribute -> check used instead of the shape

    def read(self, index: int, request: Request) -> Data:
        stored = self.values.get(index)
        return super().read(index, request) if stored is None else stored.get()

    def write(self, index: int, value: Data, request: Request) -> None:
        check = self.checks.get(index)
        if check is None:
            self.values[index].set(value)  # shaped like the default
            return
        check(value)  # ValueTypeError: type-unmatched
        self.values[index].put(value)

    def invoke(self, index: int, parameters: Data | None, request: Request) -> Data | None:
        raise ObjectError(DataAccessResult.OBJECT_UNAVAILABLE, "no behaviour")


def _readers(table: Mapping[int, Attribute]) -> str:
    columns = zip(*(r.split("/") for r, _ in table.values()), strict=True)
    return "/".join("R" if any(c) else "" for c in columns)
