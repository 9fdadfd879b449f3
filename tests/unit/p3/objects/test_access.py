"""Access rights per client (P3 §2.1, §2.2) and the association object (P3 §5.1)."""

from __future__ import annotations

import pytest
from dlms_cosem.clients.dlms_client import DataResultError

from tests.unit.p3.objects.conftest import Twin, attr, gx_decode, read, ref
from twin.p3.dlms.cosem import DataAccessResult, SelectiveAccess

# Every object whose logical name the public client may read (the P3 tables, column P).
PUBLIC_OBJECTS = {
    "0-0:41.0.0", "0-0:40.0.0", "0-0:42.0.0", "0-0:1.0.0", "0-0:96.10.2",
    *(f"0-0:96.1.{f}" for f in (0, 1, 3, 4, 7, 8)),
    *(f"1-{b}:0.2.{e}" for b in (0, 1, 2) for e in (0, 8)), "1-3:0.2.8",
    *(f"0-{c}:96.10.3" for c in (1, 2, 3, 4)),
}  # fmt: skip


def _code(raw: bytes) -> str:
    return f"{raw[0]}-{raw[1]}:{raw[2]}.{raw[3]}.{raw[4]}"


def test_public_object_list_is_what_column_p_allows(twin: Twin) -> None:
    listing = read(twin.public(), 15, "0-0:40.0.0", 2)
    assert {_code(bytes(entry[2])) for entry in listing} == PUBLIC_OBJECTS
    clock = next(e for e in listing if _code(bytes(e[2])) == "0-0:1.0.0")
    assert clock[0] == 8
    assert clock[1] == 0
    modes = {a[0]: a[1] for a in clock[3][0]}
    assert modes[2] == 1  # time: read only for the public client
    assert modes[3] == 0  # time_zone: management only


def test_management_object_list_names_rights_and_selectors(twin: Twin) -> None:
    listing = read(twin.management(), 15, "0-0:40.0.0", 2)
    codes = {_code(bytes(e[2])) for e in listing}
    assert {"1-0:1.8.1", "1-0:99.1.0", "0-0:43.0.0", "0-1:24.1.0", "0-0:44.0.0"} <= codes
    assert len(codes) == len(listing)
    clock = next(e for e in listing if _code(bytes(e[2])) == "0-0:1.0.0")
    assert {a[0]: a[1] for a in clock[3][0]}[2] == 3  # time: read-write
    profile = next(e for e in listing if _code(bytes(e[2])) == "1-0:99.1.0")
    buffer = next(a for a in profile[3][0] if a[0] == 2)
    assert buffer[2] == [1, 2]  # range and entry descriptors
    assert [m[1] for m in profile[3][1]] == [1]  # reset: access


@pytest.mark.parametrize(
    ("class_id", "code", "index"),
    [
        (3, "1-0:1.8.1", 2),  # P3 §2.1.1: no metering data for the public client
        (3, "1-0:1.8.1", 1),
        (8, "0-0:1.0.0", 3),
        (1, "0-0:96.13.0", 2),
        (7, "1-0:99.1.0", 2),
        (64, "0-0:43.0.0", 2),
    ],
)
def test_public_client_is_denied(twin: Twin, class_id: int, code: str, index: int) -> None:
    with pytest.raises(DataResultError, match="READ_WRITE_DENIED"):
        twin.public().get(attr(class_id, code, index))


def test_public_client_reads_what_it_may(twin: Twin) -> None:
    client = twin.public()
    assert bytes(read(client, 1, "0-0:96.1.1", 2)) == b"E0099000000000018"
    assert bytes(read(client, 1, "1-3:0.2.8", 2)) == b"42"
    assert read(client, 17, "0-0:41.0.0", 2) == [[1, bytearray(b"TWN9000000000018")]]
    assert read(client, 15, "0-0:40.0.0", 3) == [16, 1]  # associated_partners_id


def test_pre_established_client_sees_nothing(twin: Twin) -> None:
    # P3 §2.1.2: "no objects accessible" for client 102.
    for class_id, code in ((8, "0-0:1.0.0"), (1, "0-0:96.1.1"), (15, "0-0:40.0.0")):
        assert (
            twin.objects.get(102, ref(class_id, code, 2), None)
            is DataAccessResult.READ_WRITE_DENIED
        )


def test_result_codes_for_missing_things(twin: Twin) -> None:
    get = twin.objects.get
    assert get(1, ref(3, "1-0:9.9.9", 2), None) is DataAccessResult.OBJECT_UNDEFINED
    assert get(1, ref(1, "1-0:1.8.1", 2), None) is DataAccessResult.OBJECT_CLASS_INCONSISTENT
    assert get(1, ref(3, "1-0:1.8.1", 9), None) is DataAccessResult.OBJECT_UNDEFINED
    entry = SelectiveAccess(2, bytes.fromhex("020406000000010600000000120001120000"))
    assert get(1, ref(3, "1-0:1.8.1", 2), entry) is DataAccessResult.SCOPE_OF_ACCESS_VIOLATED
    assert get(7, ref(3, "1-0:1.8.1", 2), None) is DataAccessResult.READ_WRITE_DENIED


def test_set_and_action_rights(twin: Twin) -> None:
    value = bytes.fromhex("0903414243")
    assert (
        twin.objects.set(16, ref(1, "0-0:96.13.0", 2), None, value)
        is DataAccessResult.READ_WRITE_DENIED
    )
    assert (
        twin.objects.set(1, ref(1, "0-0:96.1.1", 2), None, value)
        is DataAccessResult.READ_WRITE_DENIED
    )
    assert twin.objects.set(1, ref(1, "0-0:96.1.3", 2), None, value) is DataAccessResult.SUCCESS
    assert (
        twin.objects.set(1, ref(1, "0-0:96.1.3", 2), None, b"\x11\x01")
        is DataAccessResult.TYPE_UNMATCHED
    )
    outcome = twin.objects.action(16, ref(64, "0-0:43.0.0", 1), b"\x16\x03")
    assert outcome.result.name == "READ_WRITE_DENIED"
    assert twin.keys.calls == []


def test_association_attributes_for_the_management_client(twin: Twin) -> None:
    client = twin.management()
    assert read(client, 15, "0-0:40.0.0", 3) == [1, 1]
    assert read(client, 15, "0-0:40.0.0", 4) == [2, 16, 756, 5, 8, 1, 3]  # LN with ciphering
    assert read(client, 15, "0-0:40.0.0", 6) == [2, 16, 756, 5, 8, 2, 5]  # HLS-GMAC
    assert read(client, 15, "0-0:40.0.0", 8) == 2  # associated
    assert bytes(read(client, 15, "0-0:40.0.0", 9)) == bytes([0, 0, 43, 0, 0, 255])
    context = gx_decode(client.get(attr(15, "0-0:40.0.0", 5)))
    assert list(context)[1:4] == [1024, 1024, 6]
