"""The object registry: implements the core's `CosemObjects` over `CosemObject`s.

Lookup and answers (P3 §2.2, Green Book §9.3 Data-Access-Result):
- no object with that logical name: object-undefined; the logical name exists with another
  class id: object-class-inconsistent; attribute or method index not defined: object-undefined;
- the client has no right (including objects it cannot see at all, e.g. everything for the
  pre-established client 102, P3 §2.1.2): read-write-denied;
- selective access on an attribute without it, or bad selector parameters:
  scope-of-access-violated; a value of the wrong type: type-unmatched.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime

from twin.meter.model import ModelError
from twin.p3.dlms.cosem import ActionResult, AttributeRef, DataAccessResult, SelectiveAccess
from twin.p3.dlms.errors import ApduError
from twin.p3.objects.base import CosemObject, ObjectError, Request
from twin.p3.objects.values import decode, encode
from twin.p3.server.interfaces import ActionOutcome

log = logging.getLogger(__name__)


class ObjectRegistry:
    """All objects of the logical device, keyed by logical name (unique within the logical
    device); the class id of a request is checked against the object's."""

    def __init__(self, objects: Iterable[CosemObject], now: Callable[[], datetime]) -> None:
        self._now = now
        self._by_obis: dict[bytes, CosemObject] = {}
        for obj in objects:
            self.add(obj)

    def __iter__(self) -> Iterator[CosemObject]:
        return iter(self._by_obis.values())

    def add(self, obj: CosemObject) -> None:
        if obj.obis in self._by_obis:
            raise ValueError(f"two objects named {obj.code}")
        self._by_obis[obj.obis] = obj

    def visible(self, client: int) -> list[CosemObject]:
        """The object_list of this client's association (P3 §5.1: filtered per client)."""
        return [o for o in self._by_obis.values() if o.visible_to(client)]

    def find(self, class_id: int, code: bytes) -> CosemObject:
        obj = self._by_obis.get(code)
        if obj is None:
            raise ObjectError(DataAccessResult.OBJECT_UNDEFINED)
        if obj.class_id != class_id:
            raise ObjectError(DataAccessResult.OBJECT_CLASS_INCONSISTENT)
        return obj

    # ------------------------------------------------------------------ CosemObjects

    def get(
        self, client: int, ref: AttributeRef, access: SelectiveAccess | None
    ) -> bytes | DataAccessResult:
        try:
            obj = self._checked(client, ref, "R", attribute=True)
            request = Request(client, self._now())
            if access is None:
                return encode(obj.read(ref.index, request))
            parameters = decode(access.parameters)
            return encode(obj.read_selected(ref.index, access.selector, parameters, request))
        except ObjectError as err:
            return err.result
        except ApduError as err:
            # DEBUG: the public client (no login) can cause this at every request.
            log.debug("GET %s: %s", ref, err)
            return DataAccessResult.SCOPE_OF_ACCESS_VIOLATED

    def set(
        self, client: int, ref: AttributeRef, access: SelectiveAccess | None, value: bytes
    ) -> DataAccessResult:
        try:
            obj = self._checked(client, ref, "W", attribute=True)
            if access is not None:
                return DataAccessResult.SCOPE_OF_ACCESS_VIOLATED
            obj.write(ref.index, decode(value), Request(client, self._now()))
        except ObjectError as err:
            return err.result
        except (ApduError, ModelError) as err:
            log.info("SET %s refused: %s", ref, err)
            return DataAccessResult.TYPE_UNMATCHED
        return DataAccessResult.SUCCESS

    def action(self, client: int, ref: AttributeRef, parameters: bytes | None) -> ActionOutcome:
        try:
            obj = self._checked(client, ref, "X", attribute=False)
            data = decode(parameters) if parameters is not None else None
            result = obj.invoke(ref.index, data, Request(client, self._now()))
        except ObjectError as err:
            return ActionOutcome(err.action_result)
        except (ApduError, ModelError) as err:
            log.info("ACTION %s refused: %s", ref, err)
            return ActionOutcome(ActionResult.TYPE_UNMATCHED)
        return ActionOutcome(ActionResult.SUCCESS, None if result is None else encode(result))

    def _checked(
        self, client: int, ref: AttributeRef, right: str, *, attribute: bool
    ) -> CosemObject:
        obj = self.find(ref.class_id, ref.obis)
        table = obj.attributes if attribute else obj.methods
        rights = table.get(ref.index)
        if rights is None:
            raise ObjectError(DataAccessResult.OBJECT_UNDEFINED)
        if not rights.allows(client, right):
            raise ObjectError(DataAccessResult.READ_WRITE_DENIED)
        return obj
