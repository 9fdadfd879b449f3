"""Image transfer 0-0:44.0.0 (P3 §5.12): blocks, CRC32 verification, activation after the
association, events 17, 18 and 20."""

from __future__ import annotations

import zlib

from tests.unit.p3.objects.conftest import Twin, attr, big_action, gx_decode, read, ref
from twin.meter.events import EventCode, EventLog
from twin.p3.dlms.cosem import ActionResult
from twin.p3.objects import values as v
from twin.p3.objects.image import BLOCK_SIZE

IMAGE = "0-0:44.0.0"


def firmware(payload: bytes, *, good: bool = True) -> bytes:
    crc = zlib.crc32(payload) ^ (0 if good else 1)
    return crc.to_bytes(4, "big") + payload  # P3 §5.12: CRC32 first, over the rest


def transfer(twin: Twin, image: bytes, identifier: bytes = b"FW-2") -> object:
    client = twin.management()
    start = v.struct(v.octets(identifier), v.u32(len(image)))
    assert big_action(client, 18, IMAGE, 1, v.encode(start)) == 0
    for number in range(-(-len(image) // BLOCK_SIZE)):
        block = image[number * BLOCK_SIZE : (number + 1) * BLOCK_SIZE]
        result = big_action(
            client, 18, IMAGE, 2, v.encode(v.struct(v.u32(number), v.octets(block)))
        )
        assert result in (0, 250)
    return client


def standard_codes(twin: Twin) -> list[int]:
    return [e.code for e in twin.meter.store.events(EventLog.STANDARD)]


def test_transfer_verify_and_activate_after_the_association(twin: Twin) -> None:
    image = firmware(bytes(range(256)) * 6)  # 1540 bytes: 4 blocks
    client = transfer(twin, image)
    assert read(client, 18, IMAGE, 6) == 3  # verification successful, started by itself
    assert str(gx_decode(client.get(attr(18, IMAGE, 3)))) == "1111"
    assert read(client, 18, IMAGE, 4) == 4
    assert read(client, 18, IMAGE, 7) == [[len(image), bytearray(b"FW-2"), bytearray(image[:4])]]
    assert standard_codes(twin) == [EventCode.FIRMWARE_READY]
    assert (twin.state_dir / "p3-image.bin").read_bytes() == image
    assert big_action(client, 18, IMAGE, 4, v.encode(v.i8(0))) == 0
    assert read(client, 18, IMAGE, 6) == 5  # activation initiated
    twin.objects.association_released()  # P3 §5.12: right after the association ends
    assert read(client, 18, IMAGE, 6) == 6
    assert standard_codes(twin)[-2:] == [
        EventCode.FIRMWARE_ACTIVATED,
        EventCode.SELFCHECK_AFTER_FIRMWARE_OK,
    ]
    assert bytes(read(twin.public(), 1, "1-0:0.2.0", 2)) == b"FW-2"


def test_bad_crc_fails_verification_and_blocks_activation(twin: Twin) -> None:
    client = transfer(twin, firmware(b"x" * 700, good=False))
    assert read(client, 18, IMAGE, 6) == 4  # verification failed
    assert read(client, 18, IMAGE, 7) == []
    outcome = twin.objects.action(1, ref(18, IMAGE, 4), v.encode(v.i8(0)))
    assert outcome.result is ActionResult.OTHER_REASON
    assert EventCode.FIRMWARE_READY not in standard_codes(twin)


def test_blocks_are_checked(twin: Twin) -> None:
    action = twin.objects.action
    block = v.encode(v.struct(v.u32(0), v.octets(b"\x00" * BLOCK_SIZE)))
    assert action(1, ref(18, IMAGE, 2), block).result is ActionResult.OTHER_REASON  # not initiated
    action(1, ref(18, IMAGE, 1), v.encode(v.struct(v.octets(b"FW"), v.u32(600))))
    assert (
        action(1, ref(18, IMAGE, 2), v.encode(v.struct(v.u32(5), v.octets(b"")))).result
        is ActionResult.OTHER_REASON
    )
    short = v.encode(v.struct(v.u32(1), v.octets(b"\x00" * 10)))  # the last block is 88 bytes
    assert action(1, ref(18, IMAGE, 2), short).result is ActionResult.OTHER_REASON
    assert action(1, ref(18, IMAGE, 3), v.encode(v.i8(0))).result is ActionResult.OTHER_REASON
    assert (
        twin.objects.set(1, ref(18, IMAGE, 5), None, v.encode(v.boolean(False))).name == "SUCCESS"
    )
    disabled = action(1, ref(18, IMAGE, 1), v.encode(v.struct(v.octets(b"FW"), v.u32(600))))
    assert disabled.result is ActionResult.TEMPORARY_FAILURE
