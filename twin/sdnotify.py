"""systemd's sd_notify protocol, hand-written (one datagram per message, no library needed).

A no-op when the twin is not started by systemd with Type=notify (no $NOTIFY_SOCKET).
"""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger(__name__)


class Notifier:
    def __init__(self, address: str | None = None) -> None:
        self._address = address if address is not None else os.environ.get("NOTIFY_SOCKET", "")
        watchdog_usec = os.environ.get("WATCHDOG_USEC", "")
        # systemd asks for a ping at least every WatchdogSec; ping at half of it.
        self.watchdog_interval_s = int(watchdog_usec) / 2e6 if watchdog_usec.isdigit() else None

    @property
    def enabled(self) -> bool:
        return bool(self._address)

    def notify(self, message: str) -> None:
        if not self._address:
            return
        # A leading '@' names a socket in the Linux abstract namespace.
        target = "\0" + self._address[1:] if self._address.startswith("@") else self._address
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                # Never wait for the manager: a full queue (net.unix.max_dgram_qlen, 10 by
                # default) would block the event loop and stop metering. A dropped ping is
                # followed by the next one; a dropped READY=1 shows in the unit's state.
                sock.sendto(message.encode(), socket.MSG_DONTWAIT, target)
        except OSError as exc:
            log.warning("sd_notify %r failed: %s", message, exc)
