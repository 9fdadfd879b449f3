"""Each meter's identity and keys, derived from the fleet seed and the meter's index.

HKDF-SHA256 (RFC 5869) with the fleet seed as input keying material and the meter index and
the key's purpose as `info`: the same seed and index give the same meter on every host, so a
fleet can be rebuilt (or sharded over hosts by index range) and its inventory re-exported.
Anyone who knows the seed knows every key: a seeded fleet is for labs, never for keys that
protect anything real.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from twin.p3.keys import KeyMaterial

KEY_LENGTH = 16  # AES-128: GUEK, GAK, master key (P3 §3.2), the gas meter's keys (P2 §6.5)
HLS_SECRET_LENGTH = 16  # P3 §5.1 footnote 3: at least as long as the master key
SALT = b"dsmr-twin fleet v1"
MAX_METERS = 99_999_999  # P2 §4.2.2: the gas meter's M-Bus id is the index, 8 digits
MANUFACTURER = b"TWN"  # the twin's FLAG id (P1 §5.2 header "/TWN5")


def derive(seed: bytes, index: int, purpose: str, length: int = KEY_LENGTH) -> bytes:
    """`length` bytes for one purpose of one meter."""
    info = f"meter {index} {purpose}".encode()
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=SALT, info=info).derive(seed)


def fleet_tag(seed: bytes) -> int:
    """Four digits naming the fleet in its meters' equipment ids (two seeds rarely share one)."""
    return int.from_bytes(hashlib.sha256(SALT + seed).digest()[:4], "big") % 10_000


@dataclass(frozen=True, slots=True, repr=False)
class MeterIdentity:
    """One meter's identity; its repr names the equipment id only (keys stay out of logs)."""

    index: int
    equipment_id: str
    system_title: bytes
    guek: bytes
    gak: bytes
    master_key: bytes
    hls_secret: bytes
    gas_equipment_id: str
    gas_default_key: bytes
    model_seed: int  # the meter model's random.Random (load noise, appliances)
    household_seed: int  # the draw of its household from the fleet's distributions

    def __repr__(self) -> str:
        return f"MeterIdentity(index={self.index}, equipment_id={self.equipment_id})"

    def key_material(self) -> KeyMaterial:
        """The P3 keys a new meter gets and the inventory lists until the meter has its own."""
        return KeyMaterial(self.system_title, self.guek, self.gak, self.master_key, self.hls_secret)


def meter_identity(seed: bytes, index: int) -> MeterIdentity:
    """Meter `index` (1..MAX_METERS) of the fleet seeded with `seed`."""
    if not 1 <= index <= MAX_METERS:
        raise ValueError(f"meter index {index} out of 1..{MAX_METERS}")
    tag = fleet_tag(seed)
    # P1 Table 5-3 0-0:96.1.1 and P2 §6.4.1: 17 characters, the last 8 the serial (the index).
    equipment_id = f"E0099{tag:04d}{index:08d}"
    gas_equipment_id = f"G0099{tag:04d}{index:08d}"
    # P3 §3.2 system title: 8 bytes, the FLAG id then the manufacturer's serial; the fleet tag
    # and the index keep it unique in the fleet and across fleets sharded by index range.
    system_title = MANUFACTURER + tag.to_bytes(2, "big")[1:] + index.to_bytes(4, "big")

    def number(purpose: str) -> int:
        return int.from_bytes(derive(seed, index, purpose, 8), "big")

    return MeterIdentity(
        index=index,
        equipment_id=equipment_id,
        system_title=system_title,
        guek=derive(seed, index, "guek"),
        gak=derive(seed, index, "gak"),
        master_key=derive(seed, index, "master key"),
        hls_secret=derive(seed, index, "hls secret", HLS_SECRET_LENGTH),
        gas_equipment_id=gas_equipment_id,
        gas_default_key=derive(seed, index, "gas default key"),
        model_seed=number("model seed"),
        household_seed=number("household seed"),
    )
