"""ACSE APDUs: AARQ, AARE, RLRQ, RLRE (ISO 8650 BER; Green Book §9.4.2 and its examples).

The ACSE layer stays ignorant of ciphering: `user_information` carries the raw xDLMS APDU
bytes (InitiateRequest/Response, their glo- ciphered forms or a ConfirmedServiceError); the
association layer deciphers and checks them. DSMR P3 §3.2.3 item 4: all other AARQ/RLRQ
fields are in clear text.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import ClassVar

from twin.p3.dlms import ber
from twin.p3.dlms.errors import ApduError

_OID_PREFIX = bytes.fromhex("60857405 08")  # {joint-iso-ccitt(2) country(16) ... dlms-UA(756)}
_CONTEXT_ARC = 1  # application-context-name arc
_MECHANISM_ARC = 2  # mechanism-name arc
_ACSE_REQUIREMENTS_AUTH = b"\x07\x80"  # BIT STRING, 7 unused bits, bit 0 = authentication
_OCTET_STRING = 0x04
_GRAPHIC_STRING = 0x80  # Authentication-value CHOICE charstring [0] IMPLICIT


class ApplicationContext(enum.IntEnum):
    LN = 1
    SN = 2
    LN_CIPHERED = 3
    SN_CIPHERED = 4


class Mechanism(enum.IntEnum):
    NONE = 0
    LLS = 1
    HLS = 2
    HLS_MD5 = 3
    HLS_SHA1 = 4
    HLS_GMAC = 5


# The challenge-response (HLS) mechanisms this server implements; HLS 2 never (P3 §3.2.2).
HLS_MECHANISMS = frozenset({Mechanism.HLS_MD5, Mechanism.HLS_SHA1, Mechanism.HLS_GMAC})
# Those that use the HLS secret of the association rather than the global keys (P3 §3.2.2).
SECRET_MECHANISMS = frozenset({Mechanism.HLS_MD5, Mechanism.HLS_SHA1})


class AssociationResult(enum.IntEnum):
    ACCEPTED = 0
    REJECTED_PERMANENT = 1
    REJECTED_TRANSIENT = 2


class UserDiagnostic(enum.IntEnum):
    """acse-service-user diagnostics (ISO 8650 / Green Book §9.4.2)."""

    NULL = 0
    NO_REASON_GIVEN = 1
    APPLICATION_CONTEXT_NAME_NOT_SUPPORTED = 2
    CALLING_AP_TITLE_NOT_RECOGNIZED = 3
    AUTHENTICATION_MECHANISM_NAME_NOT_RECOGNISED = 11
    AUTHENTICATION_MECHANISM_NAME_REQUIRED = 12
    AUTHENTICATION_FAILURE = 13
    AUTHENTICATION_REQUIRED = 14


def _oid(arc: int, value: int) -> bytes:
    return _OID_PREFIX + bytes([arc, value])


def _parse_oid(data: bytes, arc: int) -> int:
    if len(data) != 7 or data[:6] != _OID_PREFIX + bytes([arc]):
        raise ApduError(f"object identifier {data.hex()} is not a DLMS UA arc {arc} name")
    return data[6]


def _integer(raw: bytes) -> int:
    value = _unwrap(raw, 0x02)
    if len(value) != 1:
        raise ApduError("BER INTEGER is not one byte")
    return value[0]


def _unwrap(data: bytes, tag: int) -> bytes:
    got, value, end = ber.decode_one(data)
    if got != tag or end != len(data):
        raise ApduError(f"expected one BER value with tag 0x{tag:02X}")
    return value


@dataclass(frozen=True, slots=True)
class Aarq:
    TAG: ClassVar[int] = 0x60

    context: int
    calling_ap_title: bytes | None = None
    mechanism: int | None = None
    calling_authentication_value: bytes | None = None
    user_information: bytes | None = None

    def to_bytes(self) -> bytes:
        out = ber.encode(0xA1, ber.encode(0x06, _oid(_CONTEXT_ARC, self.context)))
        if self.calling_ap_title is not None:
            out += ber.encode(0xA6, ber.encode(_OCTET_STRING, self.calling_ap_title))
        if self.mechanism is not None:
            out += ber.encode(0x8A, _ACSE_REQUIREMENTS_AUTH)
            out += ber.encode(0x8B, _oid(_MECHANISM_ARC, self.mechanism))
        if self.calling_authentication_value is not None:
            value = ber.encode(_GRAPHIC_STRING, self.calling_authentication_value)
            out += ber.encode(0xAC, value)
        if self.user_information is not None:
            out += ber.encode(0xBE, ber.encode(_OCTET_STRING, self.user_information))
        return ber.encode(self.TAG, out)

    @classmethod
    def from_bytes(cls, data: bytes) -> Aarq:
        fields = dict(ber.decode_outer(data, cls.TAG))
        if 0xA1 not in fields:
            raise ApduError("AARQ without application-context-name")
        context = _parse_oid(_unwrap(fields[0xA1], 0x06), _CONTEXT_ARC)
        title = _unwrap(fields[0xA6], _OCTET_STRING) if 0xA6 in fields else None
        mechanism = None
        # mechanism-name counts only with the authentication functional unit selected.
        if 0x8B in fields and 0x8A in fields:
            mechanism = _parse_oid(fields[0x8B], _MECHANISM_ARC)
        auth = _authentication_value(fields.get(0xAC))
        info = _unwrap(fields[0xBE], _OCTET_STRING) if 0xBE in fields else None
        return cls(context, title, mechanism, auth, info)


def _authentication_value(raw: bytes | None) -> bytes | None:
    if raw is None:
        return None
    tag, value, end = ber.decode_one(raw)
    if tag not in (0x80, 0x81) or end != len(raw):
        raise ApduError("authentication-value is neither charstring nor bitstring")
    return value


@dataclass(frozen=True, slots=True)
class Aare:
    TAG: ClassVar[int] = 0x61

    context: int
    result: AssociationResult
    diagnostic: int = 0
    diagnostic_is_provider: bool = False
    responding_ap_title: bytes | None = None
    mechanism: int | None = None
    responding_authentication_value: bytes | None = None
    user_information: bytes | None = None

    def to_bytes(self) -> bytes:
        out = ber.encode(0xA1, ber.encode(0x06, _oid(_CONTEXT_ARC, self.context)))
        out += ber.encode(0xA2, ber.encode(0x02, bytes([self.result])))
        source = 0xA2 if self.diagnostic_is_provider else 0xA1
        out += ber.encode(0xA3, ber.encode(source, ber.encode(0x02, bytes([self.diagnostic]))))
        if self.responding_ap_title is not None:
            out += ber.encode(0xA4, ber.encode(_OCTET_STRING, self.responding_ap_title))
        if self.mechanism is not None:
            out += ber.encode(0x88, _ACSE_REQUIREMENTS_AUTH)
            out += ber.encode(0x89, _oid(_MECHANISM_ARC, self.mechanism))
        if self.responding_authentication_value is not None:
            value = ber.encode(_GRAPHIC_STRING, self.responding_authentication_value)
            out += ber.encode(0xAA, value)
        if self.user_information is not None:
            out += ber.encode(0xBE, ber.encode(_OCTET_STRING, self.user_information))
        return ber.encode(self.TAG, out)

    @classmethod
    def from_bytes(cls, data: bytes) -> Aare:
        fields = dict(ber.decode_outer(data, cls.TAG))
        for required in (0xA1, 0xA2, 0xA3):
            if required not in fields:
                raise ApduError(f"AARE without field 0x{required:02X}")
        context = _parse_oid(_unwrap(fields[0xA1], 0x06), _CONTEXT_ARC)
        try:
            result = AssociationResult(_integer(fields[0xA2]))
        except ValueError as exc:
            raise ApduError("AARE result out of range") from exc
        source, inner, _ = ber.decode_one(fields[0xA3])
        diagnostic = _integer(inner)
        title = _unwrap(fields[0xA4], _OCTET_STRING) if 0xA4 in fields else None
        mechanism = _parse_oid(fields[0x89], _MECHANISM_ARC) if 0x89 in fields else None
        auth = _authentication_value(fields.get(0xAA))
        info = _unwrap(fields[0xBE], _OCTET_STRING) if 0xBE in fields else None
        return cls(context, result, diagnostic, source == 0xA2, title, mechanism, auth, info)


@dataclass(frozen=True, slots=True)
class _Release:
    """RLRQ and RLRE share one shape: optional reason [0] and user-information [30]."""

    TAG: ClassVar[int] = 0

    reason: int | None = None
    user_information: bytes | None = None

    def to_bytes(self) -> bytes:
        out = b""
        if self.reason is not None:
            out += ber.encode(0x80, bytes([self.reason]))
        if self.user_information is not None:
            out += ber.encode(0xBE, ber.encode(_OCTET_STRING, self.user_information))
        return ber.encode(self.TAG, out)

    @classmethod
    def _fields(cls, data: bytes) -> tuple[int | None, bytes | None]:
        fields = dict(ber.decode_outer(data, cls.TAG))
        unknown = set(fields) - {0x80, 0xBE}
        if unknown:
            raise ApduError(f"release APDU with unknown fields {sorted(unknown)}")
        raw_reason = fields.get(0x80)
        if raw_reason is not None and len(raw_reason) != 1:
            raise ApduError("release reason is not one byte")
        reason = raw_reason[0] if raw_reason is not None else None
        info = _unwrap(fields[0xBE], _OCTET_STRING) if 0xBE in fields else None
        return reason, info


@dataclass(frozen=True, slots=True)
class Rlrq(_Release):
    TAG: ClassVar[int] = 0x62

    @classmethod
    def from_bytes(cls, data: bytes) -> Rlrq:
        return cls(*cls._fields(data))


@dataclass(frozen=True, slots=True)
class Rlre(_Release):
    TAG: ClassVar[int] = 0x63

    @classmethod
    def from_bytes(cls, data: bytes) -> Rlre:
        return cls(*cls._fields(data))
