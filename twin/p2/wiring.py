"""Wires the P2 (M-Bus) services into a running twin. Filled in by the P2 service layer."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from twin.app import Twin
    from twin.supervisor import Service

log = logging.getLogger(__name__)


def p2_services(twin: Twin) -> list[Service]:
    log.warning("P2 is configured but the M-Bus service is not built yet; nothing runs on P2")
    return []
