"""Security setup 0-0:43.0.0 (class 64 v0), P3 §3.2 and §5.1: attributes from the
`KeyService`, methods security_activate and global_key_transfer forwarded to it."""

from __future__ import annotations

from typing import ClassVar

from twin.p3.dlms.cosem import DataAccessResult
from twin.p3.objects.base import CosemObject, ObjectError, Request
from twin.p3.objects.env import Env
from twin.p3.objects.ports import KeyId, WrappedKey
from twin.p3.objects.values import Data, Tag, ValueTypeError, enum_, octets
from twin.ports import PortResult

SECURITY_SUITE = 0  # AES-GCM-128 + AES-128 key wrap (P3 §3.2.1)


class SecuritySetup(CosemObject):
    class_id: ClassVar[int] = 64

    def __init__(self, env: Env) -> None:
        super().__init__("0-0:43.0.0", dict.fromkeys(range(1, 6), "/R/"), {1: "/X/", 2: "/X/"})
        self.env = env

    def read(self, index: int, request: Request) -> Data:
        keys = self.env.keys
        if index == 2:
            return enum_(keys.security_policy())
        if index == 3:
            return enum_(SECURITY_SUITE)
        if index == 4:
            return octets(keys.client_system_title())
        if index == 5:
            return octets(keys.server_system_title())
        return super().read(index, request)

    def invoke(self, index: int, parameters: Data | None, request: Request) -> Data | None:
        if parameters is None:
            raise ValueTypeError("security setup methods need a parameter")
        keys = self.env.keys
        if index == 1:
            result = keys.security_activate(parameters.expect(Tag.ENUM).integer())
        else:
            result = keys.global_key_transfer(wrapped_keys(parameters))
        if result is not PortResult.SUCCESS:
            raise ObjectError(DataAccessResult(int(result)))
        return None


def wrapped_keys(parameters: Data) -> list[WrappedKey]:
    """array of key_data ::= structure {key_id enum, key_wrapped octet-string} (Blue Book
    class 64 method 2)."""
    out = []
    for item in parameters.items:
        key_id, wrapped = item.items if len(item.items) == 2 else (None, None)
        if key_id is None or wrapped is None:
            raise ValueTypeError("key_data is a structure of two elements")
        try:
            out.append(WrappedKey(KeyId(key_id.integer()), wrapped.octets()))
        except ValueError as err:
            raise ValueTypeError(f"key id: {err}") from err
    if not out:
        raise ValueTypeError("no keys in global_key_transfer")
    return out
