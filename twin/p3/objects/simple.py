"""Data (class 1), Register (class 3) and Extended register (class 4), plus the persisted
attribute store for values the central system writes (thresholds, location, APN, ...)."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import ClassVar

from twin.p3.dlms.cosem import DataAccessResult
from twin.p3.objects.base import CosemObject, ObjectError, Request
from twin.p3.objects.values import Data, Tag, ValueTypeError, decode, encode, scaler_unit
from twin.store import Store

ATTRIBUTES_SETTING = "p3_attributes"

Getter = Callable[[Request], Data]
Setter = Callable[[Data, Request], None]


def conform(template: Data, value: Data, max_length: int | None = None) -> Data:
    """Check `value` has the shape of `template` (same tags, structures of the same size,
    array elements shaped like the template's first element); raise ValueTypeError if not."""
    if value.tag is not template.tag:
        raise ValueTypeError(f"{value.tag.name} where {template.tag.name} is required")
    if value.tag is Tag.STRUCTURE:
        if len(value.items) != len(template.items):
            raise ValueTypeError("structure has the wrong number of elements")
        for t, v in zip(template.items, value.items, strict=True):
            conform(t, v)
    elif value.tag is Tag.ARRAY and template.items:
        for v in value.items:
            conform(template.items[0], v)
    if (
        max_length is not None
        and value.tag is Tag.OCTET_STRING
        and len(value.octets()) > max_length
    ):
        raise ValueTypeError(f"octet-string longer than {max_length}")
    return value


class AttributeStore:
    """Written attribute values, durable in the store (one JSON object of hex strings)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        saved = store.setting(ATTRIBUTES_SETTING) or {}
        self._values: dict[str, Data] = {k: decode(bytes.fromhex(v)) for k, v in saved.items()}

    def get(self, key: str, default: Data) -> Data:
        return self._values.get(key, default)

    def put(self, key: str, value: Data) -> None:
        self._values[key] = value
        self._save()

    def clear(self, keep: Collection[str] = ()) -> None:
        """Forget every written value except those under `keep`: each attribute reads its
        default again (meter reset to factory setting, P3 §8.5)."""
        self._values = {k: v for k, v in self._values.items() if k in keep}
        self._save()

    def _save(self) -> None:
        self._store.put_setting(
            ATTRIBUTES_SETTING, {k: encode(v).hex() for k, v in self._values.items()}
        )


class Stored:
    """An attribute with a default that the CS may overwrite (persisted, shape-checked)."""

    def __init__(
        self, attrs: AttributeStore, key: str, default: Data, max_length: int | None = None
    ) -> None:
        self.attrs, self.key, self.default, self.max_length = attrs, key, default, max_length

    def get(self, request: Request | None = None) -> Data:
        return self.attrs.get(self.key, self.default)

    def set(self, value: Data, request: Request | None = None) -> None:
        self.put(conform(self.default, value, self.max_length))

    def put(self, value: Data) -> None:
        """Store a value the caller has checked itself."""
        self.attrs.put(self.key, value)


class Generic(CosemObject):
    """An object whose attributes are getter/setter pairs (classes without behaviour)."""

    def __init__(
        self,
        code: str,
        attributes: Mapping[int, str],
        getters: Mapping[int, Getter],
        setters: Mapping[int, Setter] | None = None,
        methods: Mapping[int, str] | None = None,
    ) -> None:
        super().__init__(code, attributes, methods or {})
        self.getters = dict(getters)
        self.setters = dict(setters or {})

    def read(self, index: int, request: Request) -> Data:
        getter = self.getters.get(index)
        return super().read(index, request) if getter is None else getter(request)

    def write(self, index: int, value: Data, request: Request) -> None:
        setter = self.setters.get(index)
        if setter is None:
            raise ObjectError(DataAccessResult.READ_WRITE_DENIED)
        setter(value, request)


class DataObject(Generic):
    """Class 1 Data: attribute 2 value (Blue Book §4.3.1)."""

    class_id: ClassVar[int] = 1

    def __init__(self, code: str, rights: str, value: Getter, setter: Setter | None = None):
        super().__init__(
            code,
            {1: _ln_rights(rights), 2: rights},
            {2: value},
            {2: setter} if setter else None,
        )


class Register(Generic):
    """Class 3 Register: value and scaler_unit (Blue Book §4.3.2). The scaler is the power of
    ten (gurux-dlms 1.0.203's GXDLMSRegister takes a multiplier instead and fails on 0)."""

    class_id: ClassVar[int] = 3

    def __init__(
        self,
        code: str,
        rights: tuple[str, str],
        value: Getter,
        *,
        scaler: int,
        unit: int,
        setter: Setter | None = None,
    ) -> None:
        unit_value = scaler_unit(scaler, unit)
        super().__init__(
            code,
            {1: _ln_rights(rights[0]), 2: rights[0], 3: rights[1]},
            {2: value, 3: lambda _r: unit_value},
            {2: setter} if setter else None,
        )


def _ln_rights(rights: str) -> str:
    """logical_name is readable by every client that may read the value (P3 tables)."""
    return "/".join("R" if column else "" for column in rights.split("/"))
