"""gurux-dlms 1.0.203 as the reference encoder the twin's own A-XDR encoding is pinned to.

gurux has no public A-XDR value encoder, so the reference calls its internal `_GXCommon`;
that is acceptable in a test peer (the version is pinned in the `test` extra), never in the
twin. gurux leaves day-of-week at 0xFF ("not specified") in `GXDateTime`; DSMR clocks give
it, so the reference clears it (Blue Book §4.1.6.1 date-time).
"""

from __future__ import annotations

from datetime import datetime

from gurux_dlms import GXByteBuffer, GXDateTime
from gurux_dlms.enums import DataType
from gurux_dlms.internal._GXCommon import _GXCommon

from twin.clock import local
from twin.p3.objects import values as v
from twin.p3.objects.values import Tag

GX_TYPE: dict[Tag, int] = {
    Tag.NULL: DataType.NONE,
    Tag.BOOLEAN: DataType.BOOLEAN,
    Tag.BIT_STRING: DataType.BITSTRING,
    Tag.DOUBLE_LONG: DataType.INT32,
    Tag.DOUBLE_LONG_UNSIGNED: DataType.UINT32,
    Tag.OCTET_STRING: DataType.OCTET_STRING,
    Tag.VISIBLE_STRING: DataType.STRING,
    Tag.INTEGER: DataType.INT8,
    Tag.LONG: DataType.INT16,
    Tag.UNSIGNED: DataType.UINT8,
    Tag.LONG_UNSIGNED: DataType.UINT16,
    Tag.LONG64: DataType.INT64,
    Tag.LONG64_UNSIGNED: DataType.UINT64,
    Tag.ENUM: DataType.ENUM,
}
SIGNED_SIZE = {Tag.LONG: 2, Tag.DOUBLE_LONG: 4, Tag.LONG64: 8}


def gurux_encode(value: v.Data) -> bytes:
    buffer = GXByteBuffer()
    _encode_into(buffer, value)
    return bytes(buffer.array())


def _encode_into(buffer: GXByteBuffer, value: v.Data) -> None:
    if value.tag in (Tag.ARRAY, Tag.STRUCTURE):
        buffer.setUInt8(int(value.tag))
        _GXCommon.setObjectCount(len(value.items), buffer)
        for item in value.items:
            _encode_into(buffer, item)
        return
    raw = value.value
    if value.tag in SIGNED_SIZE and isinstance(raw, int) and raw < 0:
        raw = raw + (1 << (8 * SIGNED_SIZE[value.tag]))  # gurux writes these unsigned
    _GXCommon.setData(None, buffer, GX_TYPE[value.tag], raw)


def gurux_date_time(when: datetime) -> v.Data:
    """date-time as gurux encodes it (the reference for `values.date_time`)."""
    gx = GXDateTime(local(when).replace(microsecond=0))
    gx.dayOfWeek = 0  # gurux default 0xFF ("not specified"); 0 makes it write the weekday
    buffer = GXByteBuffer()
    _GXCommon.setDateTime(None, buffer, gx)
    return v.octets(bytes(buffer.array()))
