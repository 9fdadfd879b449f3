"""The P3 key store: creation, configuration, key transfer, persistence, invocation counters."""

from __future__ import annotations

import json
import stat
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.keywrap import aes_key_wrap

from twin.cli import main
from twin.config import P3Config
from twin.p3.dlms.errors import CounterExhaustedError
from twin.p3.keys import COUNTER_SETTING, KeyStore, read_keys
from twin.p3.objects.ports import KeyId, WrappedKey
from twin.ports import PortResult
from twin.store import Store, StoreError
from twin.store_writer import STALLED_AFTER_S

MASTER = bytes(range(16))
GUEK = bytes.fromhex("000102030405060708090A0B0C0D0E0F")
GAK = bytes.fromhex("D0D1D2D3D4D5D6D7D8D9DADBDCDDDEDF")
CONFIGURED = P3Config(
    system_title="4B464D1020000001", guek=GUEK.hex(), gak=GAK.hex(), master_key=MASTER.hex()
)


def reopen(path: Path, config: P3Config = CONFIGURED, block: int = 10) -> tuple[Store, KeyStore]:
    store = Store.open(path)
    return store, KeyStore(store, config, block=block)


def test_generated_on_first_start_and_kept(tmp_path: Path) -> None:
    store, keys = reopen(tmp_path, P3Config())
    first = keys.material
    assert len(first.system_title) == 8
    assert len({first.guek, first.gak, first.master_key}) == 3
    store.close()
    store, again = reopen(tmp_path, P3Config())
    assert again.material == first


def test_configured_keys_are_used(tmp_path: Path) -> None:
    _store, keys = reopen(tmp_path)
    assert keys.material.system_title.hex() == "4b464d1020000001"
    assert keys.keys().guek == GUEK
    assert keys.keys().gak == GAK
    assert keys.security_policy() == 3  # P3 §3.2.1


def test_database_is_not_world_readable(tmp_path: Path) -> None:
    _store, _keys = reopen(tmp_path)
    for path in tmp_path.glob("meter.sqlite3*"):
        assert stat.S_IMODE(path.stat().st_mode) & 0o007 == 0, path


def test_global_key_transfer_applies_persists_and_survives_restart(tmp_path: Path) -> None:
    store, keys = reopen(tmp_path)
    new_guek, new_gak = bytes(range(100, 116)), bytes(range(200, 216))
    result = keys.global_key_transfer(
        [
            WrappedKey(KeyId.AUTHENTICATION, aes_key_wrap(MASTER, new_gak)),
            WrappedKey(KeyId.GLOBAL_UNICAST_ENCRYPTION, aes_key_wrap(MASTER, new_guek)),
        ]
    )
    assert result is PortResult.SUCCESS
    assert (keys.keys().guek, keys.keys().gak) == (new_guek, new_gak)
    store.close()
    # The configuration still names the old keys: the transferred ones win after a restart.
    _store, again = reopen(tmp_path)
    assert (again.keys().guek, again.keys().gak) == (new_guek, new_gak)


def test_a_changed_configuration_replaces_the_stored_key(tmp_path: Path) -> None:
    store, _keys = reopen(tmp_path)
    store.close()
    changed = replace(CONFIGURED, guek="11" * 16)
    _store, keys = reopen(tmp_path, changed)
    assert keys.keys().guek == bytes([0x11]) * 16
    assert keys.keys().gak == GAK


def test_key_transfer_is_all_or_nothing(tmp_path: Path) -> None:
    _store, keys = reopen(tmp_path)
    good = WrappedKey(KeyId.GLOBAL_UNICAST_ENCRYPTION, aes_key_wrap(MASTER, bytes(16)))
    bad = WrappedKey(KeyId.AUTHENTICATION, aes_key_wrap(bytes(16), bytes(16)))  # other KEK
    assert keys.global_key_transfer([good, bad]) is PortResult.TYPE_UNMATCHED
    assert keys.global_key_transfer([WrappedKey(KeyId.AUTHENTICATION, b"short")]) == (
        PortResult.TYPE_UNMATCHED
    )
    broadcast = WrappedKey(KeyId.GLOBAL_BROADCAST_ENCRYPTION, aes_key_wrap(MASTER, bytes(16)))
    assert keys.global_key_transfer([broadcast]) is PortResult.OTHER_REASON
    assert keys.global_key_transfer([]) is PortResult.TYPE_UNMATCHED
    assert (keys.keys().guek, keys.keys().gak) == (GUEK, GAK)


def test_security_policy_is_never_lowered(tmp_path: Path) -> None:
    _store, keys = reopen(tmp_path)
    assert keys.security_activate(1) is PortResult.DENIED
    assert keys.security_activate(4) is PortResult.TYPE_UNMATCHED
    assert keys.security_activate(3) is PortResult.SUCCESS
    assert keys.security_policy() == 3


def test_hls_secret_change(tmp_path: Path) -> None:
    store, keys = reopen(tmp_path)
    secret = bytes(range(32))
    assert keys.change_hls_secret(aes_key_wrap(MASTER, secret)) is PortResult.SUCCESS
    assert keys.change_hls_secret(aes_key_wrap(bytes(16), secret)) is PortResult.TYPE_UNMATCHED
    store.close()
    _store, again = reopen(tmp_path)
    assert again.material.hls_secret == secret


def test_invocation_counter_reserved_ahead_and_never_reused(tmp_path: Path) -> None:
    store, keys = reopen(tmp_path, block=10)
    used = [keys.counters.next_invocation_counter() for _ in range(15)]
    # the limit of the running block is durable before its counters are used
    assert used[0] == 1  # a new meter starts at 1 (clients require "higher than 0")
    assert store.setting(COUNTER_SETTING) >= 21
    _settled(store)
    assert store.setting(COUNTER_SETTING) == 31  # half of 11..20 used: the next one, ahead
    # "kill -9": no clean shutdown, a new process opens the same database
    _store2, keys2 = reopen(tmp_path, block=10)
    more = [keys2.counters.next_invocation_counter() for _ in range(3)]
    assert more[0] == 31
    seen = used + more
    assert seen == sorted(set(seen))


def test_counter_not_reset_by_a_key_change(tmp_path: Path) -> None:
    """P3 §3.2.3 *allows* a reset to 0 after a GUEK change; the twin keeps counting so a
    re-installed GUEK can never meet an IV it was used with before."""
    _store, keys = reopen(tmp_path)
    before = keys.counters.next_invocation_counter()
    wrapped = WrappedKey(KeyId.GLOBAL_UNICAST_ENCRYPTION, aes_key_wrap(MASTER, bytes(16)))
    assert keys.global_key_transfer([wrapped]) is PortResult.SUCCESS
    assert keys.counters.next_invocation_counter() > before


def exhausted_key_store(path: Path) -> tuple[Store, KeyStore]:
    """A key store whose last server invocation counter (2^32 - 1) has just been used."""
    store = Store.open(path)
    store.put_setting(COUNTER_SETTING, 2**32 - 1)
    keys = KeyStore(store, CONFIGURED, block=10)
    assert keys.counters.next_invocation_counter() == 2**32 - 1
    with pytest.raises(CounterExhaustedError):
        keys.counters.next_invocation_counter()  # never wraps to 0 (nonce reuse)
    return store, keys


def test_exhausted_counter_stays_refused_until_a_new_guek_is_transferred(tmp_path: Path) -> None:
    store, keys = exhausted_key_store(tmp_path)
    assert keys.counters.exhausted
    same = WrappedKey(KeyId.GLOBAL_UNICAST_ENCRYPTION, aes_key_wrap(MASTER, GUEK))
    assert keys.global_key_transfer([same]) is PortResult.SUCCESS  # no new key
    with pytest.raises(CounterExhaustedError):
        keys.counters.next_invocation_counter()
    store.close()
    store, keys = reopen(tmp_path)  # durable: still exhausted after a restart
    with pytest.raises(CounterExhaustedError):
        keys.counters.next_invocation_counter()
    new = WrappedKey(KeyId.GLOBAL_UNICAST_ENCRYPTION, aes_key_wrap(MASTER, bytes(range(16, 32))))
    assert keys.global_key_transfer([new]) is PortResult.SUCCESS
    # P3 §3.2.3: the counter may restart after a successful change of the GUEK.
    assert keys.counters.next_invocation_counter() == 1
    store.close()
    _store, again = reopen(tmp_path)
    assert again.counters.next_invocation_counter() > 1


def test_exhausted_counter_restarts_with_a_configured_new_guek(tmp_path: Path) -> None:
    store, _keys = exhausted_key_store(tmp_path)
    store.close()
    _store, keys = reopen(tmp_path, replace(CONFIGURED, guek="22" * 16))
    assert keys.counters.next_invocation_counter() == 1


def test_keys_show_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keys", "show", "--json", "--state-dir", str(tmp_path)]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert set(shown) >= {"system_title", "guek", "gak", "master_key"}
    store = Store.open(tmp_path)
    material = read_keys(store)
    assert material is not None
    assert shown == material.public()
    store.close()
    # A second call reads the same keys and prints them as text too.
    assert main(["keys", "show", "--state-dir", str(tmp_path)]) == 0
    assert shown["guek"] in capsys.readouterr().out


def test_database_and_its_wal_files_are_for_the_service_user_only(tmp_path: Path) -> None:
    store, keys = reopen(tmp_path)
    keys.counters.next_invocation_counter()
    names = sorted(p.name for p in tmp_path.glob("meter.sqlite3*"))
    assert names == ["meter.sqlite3", "meter.sqlite3-shm", "meter.sqlite3-wal"]
    for name in names:
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600, name
    store.close()


def test_a_database_of_an_older_twin_is_tightened_at_start(tmp_path: Path) -> None:
    store, _keys = reopen(tmp_path)
    store.close()
    (tmp_path / "meter.sqlite3").chmod(0o640)  # what twins before this change wrote
    Store.open(tmp_path).close()
    assert stat.S_IMODE((tmp_path / "meter.sqlite3").stat().st_mode) == 0o600


def _secrets_of(material: object) -> list[str]:
    found = []
    for name in ("guek", "gak", "master_key", "hls_secret"):
        value = getattr(material, name)
        found += [value.hex(), value.hex().upper(), repr(value)]
    return found


def test_key_material_keeps_its_secrets_out_of_reprs_and_logs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    _store, keys = reopen(tmp_path)
    material = keys.material
    shown = " ".join([repr(material), str(material), repr(keys.keys()), caplog.text])
    assert "4b464d1020000001" in repr(material)  # the system title is no secret (P3 §3.2)
    for secret in _secrets_of(material):
        assert secret not in shown
    config_text = repr(CONFIGURED) + repr(replace(CONFIGURED, master_key=MASTER.hex()))
    for secret in (GUEK.hex(), GAK.hex(), MASTER.hex()):
        assert secret not in config_text


def test_keys_show_refuses_who_cannot_read_the_database_and_says_why(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    reopen(tmp_path)[0].close()
    for path in tmp_path.glob("meter.sqlite3*"):
        path.chmod(0o000)  # as for an operator: the files are the service user's, mode 0600
    # Root reads anything: run it in a user namespace, where it keeps its uid but loses
    # CAP_DAC_OVERRIDE, as an operator in the service's group would be.
    prefix = ["unshare", "--user"] if os.geteuid() == 0 else []
    result = subprocess.run(
        [*prefix, sys.executable, "-m", "twin", "keys", "show", "--state-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "only the service user" in result.stderr
    assert "sudo -u" in result.stderr
    assert "Traceback" not in result.stderr


def test_p2_key_holders_keep_keys_out_of_reprs() -> None:
    from twin.p2.headers import ShortId
    from twin.p2.keys import PendingKey
    from twin.p2.master_state import Channel
    from twin.p2.payload import Keying
    from twin.p2.slave_state import GasMeterIdentity

    key = bytes(range(0xA0, 0xB0))
    holders = [
        PendingKey(user_key=key),
        GasMeterIdentity(12345678, "TWN", "G0099000000000019", key),
    ]
    holders += [Channel(1, 5, ShortId(12345678, "TWN"), user_key=key), Keying(key, None)]
    for holder in holders:
        assert key.hex() not in repr(holder)
        assert repr(key) not in repr(holder)


def test_no_counter_is_used_before_its_reservation_is_on_disk(tmp_path: Path) -> None:
    store, keys = reopen(tmp_path, block=10)
    first = [keys.counters.next_invocation_counter() for _ in range(4)]  # block 1..10
    disk = threading.Event()
    # The disk stops in the middle of a write (a frozen file system): the writer waits.
    store.writer.submit(lambda db: disk.wait(10))
    time.sleep(STALLED_AFTER_S * 1.5)
    # Half the block used: the next block (limit 21) is asked for ahead, behind the stuck write.
    first += [keys.counters.next_invocation_counter() for _ in range(6)]
    assert first == list(range(1, 11))
    with pytest.raises(StoreError, match="storage unavailable"):
        keys.counters.next_invocation_counter()  # 11: its reservation is not on disk
    disk.set()
    _settled(store)
    again = keys.counters.next_invocation_counter()
    assert again > first[-1]
    _store2, keys2 = reopen(tmp_path, block=10)  # "kill -9" now: nothing used is handed out
    assert keys2.counters.next_invocation_counter() > again


def _settled(store: Store) -> None:
    deadline = time.monotonic() + 5
    while store.writer.pending():
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_the_next_block_is_reserved_in_the_background_before_it_is_needed(
    tmp_path: Path,
) -> None:
    store, keys = reopen(tmp_path, block=10)
    used = [keys.counters.next_invocation_counter() for _ in range(5)]  # half of 1..10
    assert used == [1, 2, 3, 4, 5]
    _settled(store)
    assert store.setting(COUNTER_SETTING) == 21  # written ahead, nobody waited for it
    disk = threading.Event()
    store.writer.submit(lambda db: disk.wait(10))  # now the disk stops
    time.sleep(STALLED_AFTER_S * 1.5)
    # 6..15 lie below the limit on disk: no counter waits for the stuck disk
    assert [keys.counters.next_invocation_counter() for _ in range(10)] == list(range(6, 16))
    disk.set()
    _settled(store)
    _store2, keys2 = reopen(tmp_path, block=10)  # "kill -9": nothing used is handed out again
    assert keys2.counters.next_invocation_counter() > 15


def test_a_background_reservation_is_asked_for_when_a_connection_opens(tmp_path: Path) -> None:
    store, keys = reopen(tmp_path, block=10)
    future = keys.counters.reserve_ahead()  # a new meter: nothing reserved yet
    assert future is not None
    future.result(5)
    assert store.setting(COUNTER_SETTING) == 11
    assert keys.counters.reserve_ahead() is None  # a whole block is left
    disk = threading.Event()
    store.writer.submit(lambda db: disk.wait(10))  # the disk stops
    time.sleep(STALLED_AFTER_S * 1.5)
    assert keys.counters.next_invocation_counter() == 1  # already on disk: no wait, no error
    disk.set()
