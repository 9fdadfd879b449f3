"""Wires the P3 (DLMS/COSEM) services into a running twin. Filled in by the P3 service layer."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from twin.app import Twin
    from twin.supervisor import Service

log = logging.getLogger(__name__)


def p3_services(twin: Twin) -> list[Service]:
    log.warning("P3 endpoint %s is accepted but P3 is not served yet", twin.config.p3.endpoint)
    return []
