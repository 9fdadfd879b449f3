"""Reading the meter's settings as the management client would (sans-IO).

The P3 service and the GPRS/push logic read what the CS wrote (inactivity time-out,
configuration object, push setups, triggers) through the object model itself, never through a
connection's session, so these reads are no client calls and are not logged (P3 §5.10).
"""

from __future__ import annotations

from twin.p3.dlms.cosem import AttributeRef, DataAccessResult
from twin.p3.objects.values import Data, ValueTypeError, decode
from twin.p3.server.association import MANAGEMENT_CLIENT
from twin.p3.server.interfaces import CosemObjects


def read_data(objects: CosemObjects, ref: AttributeRef) -> Data | None:
    """An attribute as the management client reads it; None if it cannot be read."""
    raw = objects.get(MANAGEMENT_CLIENT.sap, ref, None)
    if isinstance(raw, DataAccessResult):
        return None
    try:
        return decode(raw)
    except ValueTypeError:
        return None
