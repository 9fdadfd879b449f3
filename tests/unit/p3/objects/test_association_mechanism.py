"""Association LN 0-0:40.0.0 attribute 6 names the mechanism of the current association
(HLS 5 for the management client by default; HLS 3/4 once the configuration object enables
them, P3 §8.3), as the P3 service reports it to the connection's session."""

from __future__ import annotations

from tests.unit.p3.objects.conftest import Twin, gx_decode, ref
from twin.p3.dlms.cosem import DataAccessResult

MECHANISM_NAME = ref(15, "0-0:40.0.0", 6)


def mechanism_id(session: object) -> int:
    raw = session.get(1, MECHANISM_NAME, None)  # type: ignore[attr-defined]
    assert not isinstance(raw, DataAccessResult)
    return int(gx_decode(raw)[-1])  # {2, 16, 756, 5, 8, 2, mechanism_id}


def test_attribute_6_follows_the_association(twin: Twin) -> None:
    session = twin.objects.session()
    assert mechanism_id(session) == 5  # no association reported: the client's own
    session.associated(3)  # HLS MD5
    assert mechanism_id(session) == 3
    session.released()
    assert mechanism_id(twin.objects.session()) == 5
