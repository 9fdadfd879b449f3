"""Association LN 0-0:40.0.0 (class 15 v1) and SAP assignment 0-0:41.0.0 (class 17), P3 §5.1.

The object_list is filtered per client: an object appears for a client when the P3 tables
give that client at least one right on it, with that client's access modes (Blue Book
§4.4.3, object_list_element / access_right for version 1).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from twin.p3.dlms.cosem import DataAccessResult
from twin.p3.dlms.initiate import DLMS_VERSION
from twin.p3.objects.base import CosemObject, ObjectError, Request
from twin.p3.objects.env import Env
from twin.p3.objects.simple import Generic
from twin.p3.objects.values import (
    Data,
    array,
    bits,
    enum_,
    i8,
    null,
    octets,
    struct,
    u8,
    u16,
)
from twin.p3.server.association import DSMR_CLIENTS, ClientPolicy
from twin.ports import PortResult

SERVER_SAP = 1  # the management logical device (P3 §2)
MAX_PDU = 1024  # P3 §2.1.3 server_max_receive_pdu_size
ASSOCIATED = 2  # association_status enum


def access_mode(rights: str) -> int:
    """Attribute access mode: 0 no access, 1 read, 2 write, 3 read-write (Blue Book v1)."""
    return (1 if "R" in rights else 0) | (2 if "W" in rights else 0)


def object_entry(obj: CosemObject, client: int) -> Data:
    selectors = obj.selectors
    attributes = [
        struct(
            i8(index),
            enum_(access_mode(r.by_client.get(client, ""))),
            array([i8(s) for s in selectors[index]]) if index in selectors else null(),
        )
        for index, r in sorted(obj.attributes.items())
    ]
    methods = [
        struct(i8(index), enum_(1 if r.allows(client, "X") else 0))
        for index, r in sorted(obj.methods.items())
    ]
    return struct(
        u16(obj.class_id),
        u8(obj.version),
        octets(obj.obis),
        struct(array(attributes), array(methods)),
    )


def context_name(context_id: int) -> Data:
    """application_context_name as the 7-element structure {2,16,756,5,8,1,id}."""
    return struct(u8(2), u8(16), u16(756), u8(5), u8(8), u8(1), u8(context_id))


def mechanism_name(mechanism_id: int) -> Data:
    return struct(u8(2), u8(16), u16(756), u8(5), u8(8), u8(2), u8(mechanism_id))


def xdlms_context(policy: ClientPolicy) -> Data:
    """xDLMS_context_type {conformance, max_receive_pdu_size, max_send_pdu_size,
    dlms_version_number, quality_of_service, cyphering_info}."""
    conformance = bits(format(int(policy.conformance), "024b"))
    return struct(conformance, u16(MAX_PDU), u16(MAX_PDU), u8(DLMS_VERSION), i8(0), octets(b""))


class AssociationLN(CosemObject):
    class_id: ClassVar[int] = 15
    version: ClassVar[int] = 1

    def __init__(
        self,
        env: Env,
        objects: Callable[[int], list[CosemObject]],
        mechanism: Callable[[], int | None] = lambda: None,
    ) -> None:
        super().__init__(
            "0-0:40.0.0",
            {1: "R/R/", 2: "R/R/", 3: "R/R/", 4: "R/R/", 5: "R/R/", 6: "R/R/", 7: "/R/"}
            | {8: "R/R/", 9: "R/R/"},
            {1: "/X/", 2: "/X/"},
        )
        self.env = env
        self.objects = objects
        self.mechanism = mechanism  # of the current association; None: the client's own

    def read(self, index: int, request: Request) -> Data:
        policy = DSMR_CLIENTS.get(request.client)
        if policy is None:
            raise ObjectError(DataAccessResult.READ_WRITE_DENIED)
        getters: dict[int, Callable[[], Data]] = {
            2: lambda: array([object_entry(o, policy.sap) for o in self.objects(policy.sap)]),
            3: lambda: struct(i8(policy.sap), u16(SERVER_SAP)),
            4: lambda: context_name(int(policy.context)),
            5: lambda: xdlms_context(policy),
            6: lambda: mechanism_name(_or(self.mechanism(), int(policy.mechanism))),
            7: lambda: octets(b""),  # the HLS secret is never read back (the KeyService has it)
            8: lambda: enum_(ASSOCIATED),
            9: lambda: octets(bytes([0, 0, 43, 0, 0, 255])),
        }
        getter = getters.get(index)
        return super().read(index, request) if getter is None else getter()

    def invoke(self, index: int, parameters: Data | None, request: Request) -> Data | None:
        if index == 2 and parameters is not None:
            # P3 §5.1 footnote 3: the new secret arrives key-wrapped with the master key.
            _check(self.env.keys.change_hls_secret(parameters.octets()))
            return None
        # Method 1 is answered by the core while HLS is pending; afterwards nothing to do.
        raise ObjectError(DataAccessResult.OTHER_REASON, "no HLS authentication pending")


def _or(value: int | None, default: int) -> int:
    return default if value is None else value


def _check(result: PortResult) -> None:
    if result is not PortResult.SUCCESS:
        raise ObjectError(DataAccessResult(int(result)))


class SapAssignment(Generic):
    class_id: ClassVar[int] = 17


def sap_assignment(logical_device_name: bytes) -> CosemObject:
    value = array([struct(u16(SERVER_SAP), octets(logical_device_name))])
    return SapAssignment("0-0:41.0.0", {1: "R/R/", 2: "R/R/"}, {2: lambda _r: value})
