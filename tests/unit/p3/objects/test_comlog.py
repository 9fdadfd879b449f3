"""Communication session log 0-0:99.98.4 and comlog counters 0-1:94.31.7..10 (P3 §5.10, §8.7)."""

from __future__ import annotations

import threading
import time

from dlms_cosem import time as dlms_time

from tests.unit.p3.objects.conftest import Twin, advance, read, ref, write
from twin.meter.events import EventLog
from twin.p3.objects import values as v
from twin.store_writer import STALLED_AFTER_S


def test_a_session_is_logged_at_release_with_its_counters(twin: Twin) -> None:
    advance(twin, 3600)
    client = twin.management()
    read(client, 3, "1-0:1.8.1", 2)  # 73
    read(client, 3, "1-0:1.8.2", 2)  # 73
    read(client, 3, "1-0:1.8.2", 3)  # scaler_unit of a register: 71
    read(client, 7, "1-0:99.1.0", 2)  # 75
    read(client, 4, "0-1:24.2.1", 2)  # 74
    write(client, 1, "0-0:96.1.3", 2, v.encode(v.octets(b"x")))  # 71
    twin.objects.get(1, ref(1, "0-0:96.1.1", 2), None)  # the service's own read: not counted
    assert read(client, 1, "0-1:94.31.7", 2) == 2  # counters run during the session
    assert read(client, 1, "0-1:94.31.9", 2) == 1
    read(twin.public(), 1, "0-0:96.1.1", 2)  # the public client is not logged
    assert twin.meter.store.events(EventLog.COMMUNICATION) == []
    twin.objects.association_released()
    log = read(twin.management(), 7, "0-0:99.98.4", 2)
    assert [(row[1], row[2]) for row in log] == [(71, 0), (73, 2), (74, 1), (75, 1)]
    when, _ = dlms_time.datetime_from_bytes(bytes(log[0][0]))
    assert when == twin.meter.now()
    assert read(twin.management(), 1, "0-1:94.31.7", 2) == 0  # reset at the release


def test_no_entries_without_management_calls(twin: Twin) -> None:
    twin.objects.association_released()
    assert twin.meter.store.events(EventLog.COMMUNICATION) == []


def test_the_release_does_not_wait_for_the_disk_and_loses_nothing(twin: Twin) -> None:
    """The entries are queued in order at the release, not waited for (the RLRE is sent
    already, nobody is answered about them): a stuck disk holds neither the release nor the
    event loop, and they are written once it goes on."""
    client = twin.management()
    read(client, 3, "1-0:1.8.1", 2)  # 73
    read(client, 3, "1-0:1.8.2", 2)  # 73
    twin.meter.publish()  # the reads' commit is on disk before the disk stops
    disk = threading.Event()
    frozen = twin.meter.store.writer.submit(lambda db: disk.wait(10))  # a frozen file system
    time.sleep(STALLED_AFTER_S * 1.5)
    began = time.monotonic()
    twin.objects.association_released()
    assert time.monotonic() - began < 0.1
    assert twin.meter.store.events(EventLog.COMMUNICATION) == []  # not on disk yet
    # behind the stuck write: one transaction with the entries and their counter values
    assert twin.meter.store.writer.pending() == 2
    disk.set()
    # Once the file system is back (its write done, so the store is no longer stalled), a read
    # commits what is queued first.
    frozen.result(timeout=10)
    log = read(twin.management(), 7, "0-0:99.98.4", 2)
    assert [(row[1], row[2]) for row in log] == [(73, 2)]
