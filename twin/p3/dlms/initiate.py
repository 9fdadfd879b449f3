"""xDLMS InitiateRequest / InitiateResponse, Conformance, ConfirmedServiceError and
ExceptionResponse (Green Book §9.5 ASN.1; DSMR P3 §2.1.3 for the values the meter uses).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import ClassVar

from twin.p3.dlms.axdr import Reader
from twin.p3.dlms.errors import ApduError

DLMS_VERSION = 6
_CONFORMANCE_TAG = b"\x5f\x1f\x04\x00"  # [APPLICATION 31] IMPLICIT BIT STRING (24), 0 unused
VAA_NAME_LN = 0x0007  # LN referencing (Green Book §9.5: vaa-name 0x0007)


class Conformance(enum.IntFlag):
    """Conformance block bits; Green Book bit n is integer bit (23 - n)."""

    NONE = 0
    ACTION = 1 << 0
    EVENT_NOTIFICATION = 1 << 1
    SELECTIVE_ACCESS = 1 << 2
    SET = 1 << 3
    GET = 1 << 4
    ACCESS = 1 << 6
    DATA_NOTIFICATION = 1 << 7
    MULTIPLE_REFERENCES = 1 << 9
    BLOCK_TRANSFER_WITH_ACTION = 1 << 10
    BLOCK_TRANSFER_WITH_SET = 1 << 11
    BLOCK_TRANSFER_WITH_GET = 1 << 12
    ATTRIBUTE0_WITH_GET = 1 << 13
    PRIORITY_MANAGEMENT = 1 << 14
    ATTRIBUTE0_WITH_SET = 1 << 15
    DELTA_VALUE_ENCODING = 1 << 17
    GENERAL_BLOCK_TRANSFER = 1 << 21
    GENERAL_PROTECTION = 1 << 22

    def encode(self) -> bytes:
        return _CONFORMANCE_TAG + int(self).to_bytes(3, "big")

    @classmethod
    def read(cls, reader: Reader) -> Conformance:
        if reader.take(4) != _CONFORMANCE_TAG:
            raise ApduError("conformance block tag is not 5F 1F 04 00")
        return cls(int.from_bytes(reader.take(3), "big") & 0xFFFFFF)


@dataclass(frozen=True, slots=True)
class InitiateRequest:
    TAG: ClassVar[int] = 0x01

    proposed_conformance: Conformance
    client_max_receive_pdu_size: int
    dlms_version: int = DLMS_VERSION
    dedicated_key: bytes | None = None
    response_allowed: bool = True
    quality_of_service: int | None = None

    def to_bytes(self) -> bytes:
        out = bytearray([self.TAG])
        if self.dedicated_key is None:
            out.append(0)
        else:
            out += bytes([1, len(self.dedicated_key)]) + self.dedicated_key
        # response-allowed has DEFAULT TRUE: encode "default" (0) when true.
        out += b"\x00" if self.response_allowed else b"\x01\x00"
        out += b"\x00" if self.quality_of_service is None else bytes([1, self.quality_of_service])
        out.append(self.dlms_version)
        out += self.proposed_conformance.encode()
        out += self.client_max_receive_pdu_size.to_bytes(2, "big")
        return bytes(out)

    @classmethod
    def from_bytes(cls, data: bytes) -> InitiateRequest:
        r = Reader(data)
        if r.u8() != cls.TAG:
            raise ApduError("not an InitiateRequest")
        key = r.take(r.length()) if r.u8() else None
        allowed = bool(r.u8()) if r.u8() else True
        qos = r.u8() if r.u8() else None
        version = r.u8()
        conformance = Conformance.read(r)
        size = r.u16()
        r.expect_end()
        return cls(conformance, size, version, key, allowed, qos)


@dataclass(frozen=True, slots=True)
class InitiateResponse:
    TAG: ClassVar[int] = 0x08

    negotiated_conformance: Conformance
    server_max_receive_pdu_size: int
    dlms_version: int = DLMS_VERSION
    vaa_name: int = VAA_NAME_LN

    def to_bytes(self) -> bytes:
        return (
            bytes([self.TAG, 0, self.dlms_version])
            + self.negotiated_conformance.encode()
            + self.server_max_receive_pdu_size.to_bytes(2, "big")
            + self.vaa_name.to_bytes(2, "big")
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> InitiateResponse:
        r = Reader(data)
        if r.u8() != cls.TAG:
            raise ApduError("not an InitiateResponse")
        if r.u8():
            r.u8()  # negotiated-quality-of-service, unused by DLMS
        version = r.u8()
        conformance = Conformance.read(r)
        size = r.u16()
        vaa = r.u16()
        r.expect_end()
        return cls(conformance, size, version, vaa)


class InitiateError(enum.IntEnum):
    """ServiceError initiate values (Green Book §9.5)."""

    OTHER = 0
    DLMS_VERSION_TOO_LOW = 1
    INCOMPATIBLE_CONFORMANCE = 2
    PDU_SIZE_TOO_SHORT = 3
    REFUSED_BY_VDE_HANDLER = 4


class ServiceErrorType(enum.IntEnum):
    """ServiceError CHOICE alternatives used here (Green Book §9.5)."""

    APPLICATION_REFERENCE = 0
    INITIATE = 6


APPLICATION_REFERENCE_DECIPHERING_ERROR = 6  # application-reference: deciphering-error


@dataclass(frozen=True, slots=True)
class ConfirmedServiceError:
    """confirmedServiceError (tag 14) answering a refused InitiateRequest in the AARE:
    CHOICE initiateError [1], then ServiceError (`kind`) and its enumerated `value`.
    """

    TAG: ClassVar[int] = 0x0E
    _INITIATE_ERROR: ClassVar[int] = 1

    kind: ServiceErrorType
    value: int

    @classmethod
    def initiate(cls, error: InitiateError) -> ConfirmedServiceError:
        return cls(ServiceErrorType.INITIATE, int(error))

    @classmethod
    def deciphering(cls) -> ConfirmedServiceError:
        kind = ServiceErrorType.APPLICATION_REFERENCE
        return cls(kind, APPLICATION_REFERENCE_DECIPHERING_ERROR)

    def to_bytes(self) -> bytes:
        return bytes([self.TAG, self._INITIATE_ERROR, self.kind, self.value])

    @classmethod
    def from_bytes(cls, data: bytes) -> ConfirmedServiceError:
        if len(data) != 4 or data[:2] != bytes([cls.TAG, cls._INITIATE_ERROR]):
            raise ApduError("not an initiateError ConfirmedServiceError")
        try:
            return cls(ServiceErrorType(data[2]), data[3])
        except ValueError as exc:
            raise ApduError(f"service error type {data[2]} unknown") from exc


class StateError(enum.IntEnum):
    SERVICE_NOT_ALLOWED = 1
    SERVICE_UNKNOWN = 2


class ServiceError(enum.IntEnum):
    OPERATION_NOT_POSSIBLE = 1
    SERVICE_NOT_SUPPORTED = 2
    OTHER_REASON = 3
    PDU_TOO_LONG = 4
    DECIPHERING_ERROR = 5
    INVOCATION_COUNTER_ERROR = 6


@dataclass(frozen=True, slots=True)
class ExceptionResponse:
    """ExceptionResponse (tag 216): the server's answer to an APDU it cannot serve."""

    TAG: ClassVar[int] = 0xD8

    state_error: StateError
    service_error: ServiceError
    invocation_counter: int | None = None

    def to_bytes(self) -> bytes:
        out = bytes([self.TAG, self.state_error, self.service_error])
        if self.service_error is ServiceError.INVOCATION_COUNTER_ERROR:
            out += (self.invocation_counter or 0).to_bytes(4, "big")
        return out

    @classmethod
    def from_bytes(cls, data: bytes) -> ExceptionResponse:
        r = Reader(data)
        if r.u8() != cls.TAG:
            raise ApduError("not an ExceptionResponse")
        try:
            state, service = StateError(r.u8()), ServiceError(r.u8())
        except ValueError as exc:
            raise ApduError("unknown exception code") from exc
        ic = r.u32() if service is ServiceError.INVOCATION_COUNTER_ERROR else None
        r.expect_end()
        return cls(state, service, ic)


# Answers used by several services (Green Book §9.5 ExceptionResponse).
NOT_SUPPORTED = ExceptionResponse(
    StateError.SERVICE_NOT_ALLOWED, ServiceError.SERVICE_NOT_SUPPORTED
)
NOT_POSSIBLE = ExceptionResponse(
    StateError.SERVICE_NOT_ALLOWED, ServiceError.OPERATION_NOT_POSSIBLE
)
