"""The meter's P3 security material and its server invocation counter, durable in the store.

What is kept (P3 §3.2, §5.1): the 8-byte server system title, the global unicast encryption
key (GUEK), the authentication key (GAK/AK), the master key (KEK, only ever used to unwrap
keys, RFC 3394 / security suite 0), the HLS secret (association method 2) and the security
policy of security setup 0-0:43.0.0.

Where it comes from: a key set in `[p3]` of the configuration is used on first start; an
empty one is generated with `os.urandom` and stored. After that the store is the authority,
because a head-end may have replaced a key with global_key_transfer and the replacement must
survive a restart. A configured value that *changes* between starts is an operator's decision
and wins again (the last configured values are remembered to tell the two apart).

When new keys apply (P3 §5.1 footnote 4): "the ACK will be encrypted with the old key. The
next message shall use the new key". The core reads `keys()` once per request, so installing
at once in `global_key_transfer` gives exactly that.

Server invocation counter (P3 §3.2.3 "Frame Counters", meter -> CS): +1 per frame, never
reused under one key. It is reserved ahead in blocks (`BlockReservation`): the upper limit of
a block is committed (SQLite, synchronous=FULL) before any counter of it is used, so a crash or
kill -9 skips at most one block and never reuses one. The spec allows (does not require)
resetting it to 0 after a GUEK change; this twin does not, because a GUEK may be re-installed
(key rotation back to an older key) and a reset would then reuse IVs. Nor does it wrap to 0 at
2^32 as P3 §3.2.3 says (same IV reuse under one key): an exhausted counter refuses ciphered
service (`CounterExhaustedError`) until a GUEK other than the one it counted for is installed
(key transfer or the configuration); only then does it restart, at 1.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, replace
from typing import Any

from twin.config import P3Config
from twin.p3.dlms.errors import LocalP3Error, SecurityError
from twin.p3.dlms.security import KEY_LENGTH, SYSTEM_TITLE_LENGTH, SecurityKeys, unwrap_key
from twin.p3.objects.ports import KeyId, WrappedKey
from twin.p3.server.counters import BlockReservation
from twin.ports import PortResult
from twin.store import Store

log = logging.getLogger(__name__)

KEYS_SETTING = "p3_keys"
COUNTER_SETTING = "p3_invocation_counter_limit"
COUNTER_KEY_SETTING = "p3_invocation_counter_guek"  # which GUEK the counter counts for
COUNTER_BLOCK = 1000
# Blue Book class 64 security_policy (version 0): 0 none, 1 authenticated, 2 encrypted,
# 3 authenticated and encrypted. P3 §3.2.1: 3 after commissioning, never lowered.
MAX_POLICY = 3
MIN_HLS_SECRET = 16  # P3 §5.1 footnote 3: at least as long as the master key


class KeyStoreError(LocalP3Error):
    """The stored key material is unusable (corrupted record, wrong lengths)."""


@dataclass(frozen=True, slots=True, repr=False)
class KeyMaterial:
    """Everything a head-end needs to talk to this meter, plus the meter's own secrets.

    Its repr names the system title only: a key must not reach a log line or a traceback.
    """

    system_title: bytes
    guek: bytes
    gak: bytes
    master_key: bytes
    hls_secret: bytes
    policy: int = MAX_POLICY

    def __post_init__(self) -> None:
        if len(self.system_title) != SYSTEM_TITLE_LENGTH:
            raise KeyStoreError("system title must be 8 bytes")
        for name in ("guek", "gak", "master_key"):
            if len(getattr(self, name)) != KEY_LENGTH:
                raise KeyStoreError(f"{name} must be 16 bytes")
        if len(self.hls_secret) < MIN_HLS_SECRET:
            raise KeyStoreError("HLS secret shorter than 16 bytes")

    def __repr__(self) -> str:
        return f"KeyMaterial(system_title={self.system_title.hex()}, policy={self.policy})"

    def public(self) -> dict[str, str]:
        """What `dsmr-twin keys show` prints (hex)."""
        return {
            "system_title": self.system_title.hex(),
            "guek": self.guek.hex(),
            "gak": self.gak.hex(),
            "master_key": self.master_key.hex(),
            # The secret of HLS 3 (MD5) and 4 (SHA-1), for head-ends that use them once the
            # configuration object enables them (P3 §8.3); HLS 5 uses the GAK and GUEK.
            "hls_secret": self.hls_secret.hex(),
        }

    def to_record(self) -> dict[str, Any]:
        return {**self.public(), "policy": self.policy}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> KeyMaterial:
        try:
            return cls(
                bytes.fromhex(record["system_title"]),
                bytes.fromhex(record["guek"]),
                bytes.fromhex(record["gak"]),
                bytes.fromhex(record["master_key"]),
                bytes.fromhex(record["hls_secret"]),
                int(record["policy"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise KeyStoreError(f"stored P3 keys are unusable: {exc}") from exc


_CONFIGURABLE = ("system_title", "guek", "gak", "master_key")
_LENGTHS = {"system_title": SYSTEM_TITLE_LENGTH, "guek": KEY_LENGTH, "gak": KEY_LENGTH}


def load_or_create(
    store: Store, config: P3Config, urandom: Callable[[int], bytes] = os.urandom
) -> tuple[KeyMaterial, dict[str, str]]:
    """The current key material (stored, else from config or generated from `urandom`;
    persisted) and the configured values last applied (to recognise a deliberate
    configuration change).

    The store keeps them in a database only the service user can read (twin/store.py)."""
    saved = store.setting(KEYS_SETTING)
    configured = {name: str(getattr(config, name)).lower() for name in _CONFIGURABLE}
    if saved is None:

        def value(name: str) -> bytes:
            text = configured[name]
            return bytes.fromhex(text) if text else urandom(_LENGTHS.get(name, KEY_LENGTH))

        material = KeyMaterial(
            value("system_title"),
            value("guek"),
            value("gak"),
            value("master_key"),
            urandom(MIN_HLS_SECRET),
        )
        seen = {name: value for name, value in configured.items() if value}
        _save(store, material, seen)
        log.info("P3 keys created for system title %s", material.system_title.hex())
        return material, seen
    material = KeyMaterial.from_record(saved)
    seen = dict(saved.get("configured") or {})
    changed = {
        name: value for name, value in configured.items() if value and value != seen.get(name)
    }
    if changed:
        material = _with(material, {k: bytes.fromhex(v) for k, v in changed.items()})
        seen |= changed
        _save(store, material, seen)
        log.warning("P3 %s changed in the configuration; using it", ", ".join(sorted(changed)))
    return material, seen


def install_initial(store: Store, material: KeyMaterial) -> bool:
    """Give a meter that has no keys yet `material` (a fleet's derived keys); True if it did.

    A meter with keys keeps them: after the first start the store is the authority (a
    head-end may have replaced them with global_key_transfer)."""
    if store.setting(KEYS_SETTING) is not None:
        return False
    _save(store, material, {})
    return True


def _with(material: KeyMaterial, keys: dict[str, bytes]) -> KeyMaterial:
    """A copy with some of system_title / guek / gak / master_key replaced."""
    return KeyMaterial(
        keys.get("system_title", material.system_title),
        keys.get("guek", material.guek),
        keys.get("gak", material.gak),
        keys.get("master_key", material.master_key),
        material.hls_secret,
        material.policy,
    )


def _save(store: Store, material: KeyMaterial, configured: dict[str, str]) -> None:
    store.put_setting(KEYS_SETTING, {**material.to_record(), "configured": configured})


def read_keys(store: Store) -> KeyMaterial | None:
    """The stored keys without creating any (for tools)."""
    saved = store.setting(KEYS_SETTING)
    return None if saved is None else KeyMaterial.from_record(saved)


def _fingerprint(guek: bytes) -> str:
    # Names the GUEK without being it (the record sits next to the keys anyway).
    return hashlib.sha256(b"dsmr-twin counter epoch" + guek).hexdigest()[:16]


class KeyCounters:
    """The server invocation counter (`CounterReservation`) of the current GUEK: reserved
    ahead in blocks, never wrapped, restarted only for a new GUEK once exhausted.

    The next block is reserved in the background (`reserve_ahead`) once half the running one
    is used, and when a connection opens, so a ciphered answer does not hold the event loop
    for an fsync: the write is queued, and its limit is taken into use only once it is durable
    (`BlockReservation.reserved`). Should the counter reach the limit before that, it waits for
    that write as it would for its own (and refuses on a stalled store)."""

    def __init__(self, store: Store, guek: Callable[[], bytes], block: int) -> None:
        self._store = store
        self._guek = guek
        self._ahead: tuple[int, Future[None]] | None = None  # a limit being written
        # A new meter starts at 1: clients keep "last counter seen = 0" and want a higher one
        # (dlms-cosem does; P3 §3.2.3 "higher than in a previous message").
        start = max(1, int(store.setting(COUNTER_SETTING) or 0))
        self._blocks = BlockReservation(start, self._persist_limit, block)
        if store.setting(COUNTER_KEY_SETTING) is None:
            store.put_setting(COUNTER_KEY_SETTING, _fingerprint(guek()))

    @property
    def exhausted(self) -> bool:
        """True while no counter is left for the current GUEK."""
        return self._blocks.exhausted and not self._new_key()

    def next_invocation_counter(self) -> int:
        if self._blocks.exhausted and self._new_key():
            # P3 §3.2.3: the frame counters "may be reset to zero after a successful change of
            # the Global Encryption Key". The new GUEK is recorded first: a crash in between
            # leaves the counter exhausted (refusing), never restarted for the old key.
            self._store.put_setting(COUNTER_KEY_SETTING, _fingerprint(self._guek()))
            self._ahead = None  # a limit counted for the old key is no reservation for the new
            self._blocks.restart(1)
            log.warning("P3 invocation counter restarted at 1 for the new GUEK")
        self._adopt()
        value = self._blocks.next_invocation_counter()
        self.reserve_ahead()
        return value

    def reserve_ahead(self) -> Future[None] | None:
        """Queue the next block's limit when half the running block is used (or none is
        reserved yet), without waiting; the future completes when it is durable. None when
        nothing is wanted, or the store is stalled (the counter then waits, as without it)."""
        self._adopt()
        if self._ahead is not None:
            return self._ahead[1]
        limit = self._blocks.wanted_ahead()
        if limit is None or self._store.writer.stalled():
            return None
        future = self._store.queue_setting(COUNTER_SETTING, limit)
        self._ahead = (limit, future)
        return future

    def _adopt(self) -> None:
        """Take a limit written ahead into use once it is durable (and only then)."""
        if self._ahead is None or not self._ahead[1].done():
            return
        (limit, future), self._ahead = self._ahead, None
        if not future.cancelled() and future.exception() is None:
            self._blocks.reserved(limit)

    def _new_key(self) -> bool:
        return bool(self._store.setting(COUNTER_KEY_SETTING) != _fingerprint(self._guek()))

    def _persist_limit(self, limit: int) -> None:
        # Durable before the first counter below `limit` is used: an IV never repeats (P3 §3.2.3).
        ahead, self._ahead = self._ahead, None
        if ahead is not None and ahead[0] >= limit:
            self._store.wait_written(ahead[1])  # the write already queued for it
            return
        self._store.put_setting(COUNTER_SETTING, limit)


class KeyStore:
    """`KeyProvider` for the DLMS core and `KeyService` for security setup 0-0:43.0.0."""

    def __init__(
        self,
        store: Store,
        config: P3Config,
        *,
        block: int = COUNTER_BLOCK,
        urandom: Callable[[int], bytes] = os.urandom,  # a scenario's seeded stream
    ) -> None:
        self._store = store
        self._material, self._configured = load_or_create(store, config, urandom)
        self._client_title = b""
        self.counters = KeyCounters(store, lambda: self._material.guek, block)

    @property
    def material(self) -> KeyMaterial:
        return self._material

    # ---- KeyProvider (core) ----------------------------------------------------------------
    def keys(self) -> SecurityKeys:
        # The HLS secret goes along for HLS 3 and 4 (P3 §3.2.2); a change_HLS_secret applies
        # from the next association on, like a key transfer.
        material = self._material
        return SecurityKeys(material.guek, material.gak, material.hls_secret)

    # ---- counter persistence ---------------------------------------------------------------
    def reserved_limit(self) -> int:
        return int(self._store.setting(COUNTER_SETTING) or 0)

    # ---- KeyService (object model) ---------------------------------------------------------
    def security_policy(self) -> int:
        return self._material.policy

    def server_system_title(self) -> bytes:
        return self._material.system_title

    def client_system_title(self) -> bytes:
        return self._client_title

    def note_client_system_title(self, title: bytes) -> None:
        """The service reports the calling-AP-title of the last ciphered association."""
        self._client_title = bytes(title)

    def security_activate(self, policy: int) -> PortResult:
        # P3 §3.2.1: the policy can only be strengthened, never lowered.
        if not 0 <= policy <= MAX_POLICY:
            return PortResult.TYPE_UNMATCHED
        if policy < self._material.policy:
            return PortResult.DENIED
        self._install(replace(self._material, policy=policy))
        return PortResult.SUCCESS

    def global_key_transfer(self, keys: Sequence[WrappedKey]) -> PortResult:
        """Unwrap every key first, install all or none (P3 §5.1, Blue Book class 64 m. 2)."""
        if not keys:
            return PortResult.TYPE_UNMATCHED
        new: dict[str, bytes] = {}
        for item in keys:
            if item.key_id is KeyId.GLOBAL_BROADCAST_ENCRYPTION:
                # P3 §3.2.3 item 5: unicast global keys only; DSMR 4.2.2 has no broadcast.
                return PortResult.OTHER_REASON
            try:
                key = unwrap_key(self._material.master_key, item.wrapped)
            except SecurityError:
                return PortResult.TYPE_UNMATCHED
            if len(key) != KEY_LENGTH:
                return PortResult.TYPE_UNMATCHED
            new["guek" if item.key_id is KeyId.GLOBAL_UNICAST_ENCRYPTION else "gak"] = key
        self._install(_with(self._material, new))
        log.info("P3 %s replaced by global_key_transfer", ", ".join(sorted(new)))
        return PortResult.SUCCESS

    def change_hls_secret(self, wrapped: bytes) -> PortResult:
        try:
            secret = unwrap_key(self._material.master_key, wrapped)
        except SecurityError:
            return PortResult.TYPE_UNMATCHED
        if len(secret) < MIN_HLS_SECRET:
            return PortResult.TYPE_UNMATCHED
        self._install(replace(self._material, hls_secret=secret))
        return PortResult.SUCCESS

    def _install(self, material: KeyMaterial) -> None:
        # Persist first: an acknowledged key change must survive a crash (P3 §5.1).
        _save(self._store, material, self._configured)
        self._material = material
