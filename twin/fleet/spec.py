"""What a fleet is (count, seed, addresses), kept in `fleet.json` in its state directory, and
how each meter of it is addressed, identified and configured.

Layout of a fleet's state directory:

    fleet.json            the fleet (this module); written once, by the first `fleet run`
    fleet-status.json     the head process's view of its workers (twin/fleet/head.py)
    meters/0001/ ...      one state directory per meter, as `dsmr-twin run --state-dir` has

`fleet.json` holds the seed every key is derived from: it is the service user's only (0600).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twin.config import P3_DEFAULT_PORT, Config, ConfigError, tcp_host_port
from twin.fleet.household import draw_household
from twin.fleet.identity import MAX_METERS, MeterIdentity, meter_identity
from twin.fleet.imported import read_inventory
from twin.store import DATABASE_MODE, STATE_DIR_MODE

SPEC_FILE = "fleet.json"
STATUS_FILE = "fleet-status.json"
# Each worker's report of its meters' start (running, starting, failed): `fleet ctl status`.
START_REPORT = "fleet-worker-{worker}.json"
METERS_DIR = "meters"
SPEC_MODE = DATABASE_MODE  # the seed opens every meter, as the database's keys open one
LOOPBACK = ipaddress.IPv4Network("127.0.0.0/8")  # Linux routes all of it to lo


def meter_dir(index: int) -> Path:
    """A meter's state directory, relative to the fleet's (short: the control socket in it
    must fit sockaddr_un, 108 bytes, so workers bind it relative to the fleet directory)."""
    return Path(METERS_DIR) / f"{index:04d}"


def nth_endpoint(
    first: str, index: int, option: str, *, by_address: bool, default_port: int | None = None
) -> str:
    """The endpoint of meter `index` (1-based) when meter 1 has `first`: with `by_address`
    and `first` on 127/8, the next loopback address on the same port (as meters behind a GPRS
    network are told apart by IP address), else the next port on the same host."""
    found = tcp_host_port(first, default_port)
    if found is None or found[1] == 0:
        raise ConfigError(f"{option} {first!r}: expected tcp://HOST:PORT with a fixed port")
    host, port = found
    offset = index - 1
    if by_address and _loopback(host):
        address = ipaddress.IPv4Address(host) + offset
        if address not in LOOPBACK or address == LOOPBACK.broadcast_address:
            raise ConfigError(f"{option} {first!r}: meter {index} runs past 127.255.255.254")
        return f"tcp://{address}:{port}"
    if port + offset > 65535:
        raise ConfigError(f"{option} {first!r}: meter {index} runs past port 65535")
    return f"tcp://{_bracketed(host)}:{port + offset}"


def _loopback(host: str) -> bool:
    try:
        return ipaddress.IPv4Address(host) in LOOPBACK
    except ValueError:
        return False


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host else host


@dataclass(frozen=True, slots=True, repr=False)
class FleetSpec:
    """The fleet's identity: fixed once created (a meter's address and keys never move)."""

    count: int
    seed: bytes
    p3: str  # meter 1's P3 endpoint
    p1: str  # meter 1's P1 TCP endpoint, or "none"
    seeded: bool  # the seed was given (a lab fleet whose keys anyone with the seed knows)
    # Identities taken from a head-end's inventory (twin/fleet/imported.py), row n = meter n;
    # what a row leaves out is derived from the seed.
    imported: tuple[dict[str, str], ...] = ()
    # The index of this fleet's first meter: shards of one fleet on several hosts share the
    # seed and take non-overlapping index ranges (so no two meters share an identity).
    first: int = 1

    def __post_init__(self) -> None:
        if not 1 <= self.count <= MAX_METERS:
            raise ConfigError(f"--count {self.count}: expected 1 to {MAX_METERS}")
        if not 1 <= self.first <= MAX_METERS - self.count + 1:
            raise ConfigError(
                f"--first {self.first}: expected 1 to {MAX_METERS - self.count + 1} for"
                f" {self.count} meters"
            )
        if self.imported and len(self.imported) != self.count:
            raise ConfigError(
                f"--count {self.count}: the inventory has {len(self.imported)} meters"
            )
        # Every meter's address must exist: checking the last one checks the range.
        self.p3_endpoint(self.indices[-1])
        self.p1_endpoint(self.indices[-1])

    def __repr__(self) -> str:
        return f"FleetSpec(first={self.first}, count={self.count}, p3={self.p3!r}, p1={self.p1!r})"

    @property
    def indices(self) -> range:
        return range(self.first, self.first + self.count)

    def position(self, index: int) -> int:
        """1 for this fleet's first meter, 2 for the next, ... (its place in the ranges)."""
        return index - self.first + 1

    def p3_endpoint(self, index: int) -> str:
        if self.imported and "p3" in self.imported[self.position(index) - 1]:
            return self.imported[self.position(index) - 1]["p3"]
        return nth_endpoint(
            self.p3, self.position(index), "--p3", by_address=True, default_port=P3_DEFAULT_PORT
        )

    def p1_endpoint(self, index: int) -> str:
        if self.p1 == "none":
            return "none"
        return nth_endpoint(self.p1, self.position(index), "--p1", by_address=False)

    def identity(self, index: int) -> MeterIdentity:
        derived = meter_identity(self.seed, index)
        if not self.imported:
            return derived
        row = self.imported[self.position(index) - 1]

        def key(name: str, derived_key: bytes) -> bytes:
            return bytes.fromhex(row[name]) if name in row else derived_key

        return dataclasses.replace(
            derived,
            equipment_id=row["equipment_id"],
            system_title=key("system_title", derived.system_title),
            guek=key("guek", derived.guek),
            gak=key("gak", derived.gak),
            master_key=key("master_key", derived.master_key),
            hls_secret=key("hls_secret", derived.hls_secret),
            gas_equipment_id=row.get("gas_equipment_id", derived.gas_equipment_id),
            gas_default_key=key("gas_default_key", derived.gas_default_key),
        )

    def worker_meters(self, worker: int, workers: int) -> list[int]:
        """Worker `worker` (0-based) of `workers` hosts every `workers`-th meter."""
        return [i for i in self.indices if (self.position(i) - 1) % workers == worker]

    def meter_config(self, base: Config, ident: MeterIdentity) -> Config:
        """The configuration of the meter `ident` names: the fleet's base (checked by
        `check_base_config`) with its identity, household and addresses; no display panel
        (a frame is rendered only when asked), no modem (no pty per meter), no web console of
        its own (one port per meter would collide on the default address). Its P3 keys are
        not configuration: the worker gives them to its store (`MeterIdentity.key_material`)."""
        index = ident.index
        home = draw_household(base.fleet, random.Random(ident.household_seed))
        return dataclasses.replace(
            base,
            meter=dataclasses.replace(
                base.meter,
                equipment_id=ident.equipment_id,
                phases=home.phases,
                seed=ident.model_seed,
            ),
            load=dataclasses.replace(
                base.load, base_w=home.base_w, ev=home.ev, heat_pump=home.heat_pump
            ),
            pv=dataclasses.replace(
                base.pv,
                enabled=home.pv_peak_w > 0,
                peak_w=home.pv_peak_w or base.pv.peak_w,
                cloudiness=home.cloudiness,
            ),
            gas=dataclasses.replace(
                base.gas,
                enabled=home.gas,
                equipment_id=ident.gas_equipment_id,
                default_key=ident.gas_default_key.hex(),
            ),
            p1=dataclasses.replace(base.p1, endpoint=self.p1_endpoint(index)),
            p3=dataclasses.replace(base.p3, endpoint=self.p3_endpoint(index), modem="none"),
            display=dataclasses.replace(base.display, device="none", button="none"),
            web=dataclasses.replace(base.web, endpoint="none"),
        )

    # ---------------------------------------------------------------- fleet.json

    def to_record(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "first": self.first,
            "seed": self.seed.hex(),
            "seeded": self.seeded,
            "p3": self.p3,
            "p1": self.p1,
            "imported": list(self.imported),
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> FleetSpec:
        try:
            return cls(
                int(record["count"]),
                bytes.fromhex(record["seed"]),
                str(record["p3"]),
                str(record["p1"]),
                bool(record["seeded"]),
                tuple(dict(row) for row in record.get("imported", [])),
                int(record.get("first", 1)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"{SPEC_FILE} is unusable: {exc!r}") from exc

    @classmethod
    def load(cls, fleet_dir: Path) -> FleetSpec:
        path = fleet_dir / SPEC_FILE
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(
                f"{fleet_dir} holds no fleet (no {SPEC_FILE}): fleet run first"
            ) from None
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{path} cannot be read: {exc}") from exc
        if not isinstance(record, dict):
            raise ConfigError(f"{path} is not a fleet description")
        return cls.from_record(record)

    def save(self, fleet_dir: Path) -> None:
        fleet_dir.mkdir(parents=True, exist_ok=True, mode=STATE_DIR_MODE)
        write_json_atomically(fleet_dir / SPEC_FILE, self.to_record(), SPEC_MODE)


# The P3 keys a configuration may give a meter (twin/p3/keys.py load_or_create: a configured
# key replaces the stored one at start).
CONFIGURED_P3_KEYS = ("system_title", "guek", "gak", "master_key")


def check_base_config(config: Config) -> Config:
    """The configuration every fleet meter starts from, refused if it gives P3 keys: each
    meter's keys are its own (derived from the seed or taken from the inventory), and a
    configured key would replace every meter's own at its start, one key opening them all."""
    for key in CONFIGURED_P3_KEYS:
        if getattr(config.p3, key):
            raise ConfigError(
                f"'p3.{key}' in a fleet's configuration: each fleet meter has its own keys"
                " (derived from the fleet seed, or taken from --inventory); leave"
                f" p3.{', p3.'.join(CONFIGURED_P3_KEYS)} out"
            )
    return config


def write_json_atomically(path: Path, record: object, mode: int = 0o640) -> None:
    """Readers see the old file or the new one, never half of one."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(record, out)
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, path)


def resolve_spec(
    fleet_dir: Path,
    count: int | None,
    seed: str | None,
    p3: str | None,
    p1: str | None,
    *,
    inventory: Path | None = None,
    first: int | None = None,
    create: bool = True,
) -> FleetSpec:
    """The fleet in `fleet_dir`, created from the options on first run; on a later run an
    option given must agree with it (a meter's address and keys never move). With `create`
    false nothing is written: the fleet the options would make (`fleet inventory` before the
    first run, e.g. a deployment exporting a shard's meters before its service starts)."""
    if (fleet_dir / SPEC_FILE).exists():
        spec = FleetSpec.load(fleet_dir)
        given = {"--count": count, "--p3": p3, "--p1": p1, "--first": first}
        stored = {"--count": spec.count, "--p3": spec.p3, "--p1": spec.p1, "--first": spec.first}
        for option, value in given.items():
            if value is not None and value != stored[option]:
                raise ConfigError(
                    f"{option} {value}: the fleet in {fleet_dir} has {stored[option]}"
                    " (a meter's address and keys never move; use a new --state-dir)"
                )
        if seed is not None and seed.encode() != spec.seed:
            raise ConfigError(f"--seed: the fleet in {fleet_dir} was made with another seed")
        if inventory is not None and tuple(read_inventory(inventory)) != spec.imported:
            raise ConfigError(
                f"--inventory {inventory}: the fleet in {fleet_dir} was made with other meters"
            )
        return spec
    imported = tuple(read_inventory(inventory)) if inventory is not None else ()
    if count is None and imported:
        count = len(imported)
    if count is None:
        raise ConfigError(f"--count (or --inventory) is needed to create a fleet in {fleet_dir}")
    if seed == "":
        raise ConfigError("--seed '': give a non-empty seed, or none for random keys")
    if seed is None and not create:
        raise ConfigError(
            f"{fleet_dir} holds no fleet yet: give the --seed or --seed-file it will run with"
            " (random keys exist only once `fleet run` made them)"
        )
    spec = FleetSpec(
        count,
        seed.encode() if seed is not None else os.urandom(32),
        p3 or "tcp://127.1.0.1:4059",
        p1 or "none",
        seed is not None,
        imported,
        first or 1,
    )
    if create:
        spec.save(fleet_dir)
    return spec
