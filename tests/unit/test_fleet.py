"""The fleet's pure parts: identities, addressing, households, the fleet description, the
choice of meters for an outage, and a worker opening its meters (real stores, no services)."""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

import pytest

from twin.app import build
from twin.config import Config, ConfigError, FleetConfig, config_from_mapping
from twin.fleet.control import check_meter, choose_meters
from twin.fleet.head import WORKER_STALE_S, FleetHead
from twin.fleet.identity import meter_identity
from twin.fleet.inventory import as_csv, inventory
from twin.fleet.spec import SPEC_FILE, FleetSpec, meter_dir, nth_endpoint, resolve_spec
from twin.fleet.worker import open_meters
from twin.p3.keys import read_keys
from twin.sdnotify import Notifier
from twin.store import DATABASE


def spec(count: int = 50, p3: str = "tcp://127.1.0.1:4059", p1: str = "none") -> FleetSpec:
    return FleetSpec(count, b"unit seed", p3, p1, seeded=True)


def test_identities_are_reproducible_distinct_and_valid_meter_identities() -> None:
    first = [meter_identity(b"seed", i) for i in range(1, 201)]
    again = [meter_identity(b"seed", i) for i in range(1, 201)]
    other = [meter_identity(b"other seed", i) for i in range(1, 201)]
    assert [(m.guek, m.gak, m.master_key, m.hls_secret) for m in first] == [
        (m.guek, m.gak, m.master_key, m.hls_secret) for m in again
    ]
    for name in ("equipment_id", "system_title", "guek", "gak", "master_key", "hls_secret"):
        assert len({getattr(m, name) for m in first}) == 200, name
    assert not {m.guek for m in first} & {m.guek for m in other}
    # Within one meter no two keys are the same.
    assert all(len({m.guek, m.gak, m.master_key, m.gas_default_key}) == 4 for m in first)
    for m in first:
        assert len(m.system_title) == 8
        assert m.system_title.startswith(b"TWN")
        assert int(m.gas_equipment_id[-8:]) == m.index  # P2 §4.2.2: the M-Bus id
        # The configuration accepts them as it accepts an operator's.
        config_from_mapping(
            {
                "meter": {"equipment_id": m.equipment_id},
                "gas": {"equipment_id": m.gas_equipment_id, "default_key": m.gas_default_key.hex()},
                "p3": {"system_title": m.system_title.hex(), "guek": m.guek.hex()},
            }
        )
    assert "guek" not in repr(first[0]).lower()
    with pytest.raises(ValueError, match="index 0"):
        meter_identity(b"seed", 0)


def test_endpoints_step_through_loopback_addresses_or_ports() -> None:
    assert (
        nth_endpoint("tcp://127.1.0.1:4059", 1, "--p3", by_address=True) == "tcp://127.1.0.1:4059"
    )
    assert nth_endpoint("tcp://127.1.0.1:4059", 300, "--p3", by_address=True) == (
        "tcp://127.1.1.44:4059"
    )
    assert nth_endpoint("tcp://10.0.0.5:5000", 3, "--p3", by_address=True) == "tcp://10.0.0.5:5002"
    assert nth_endpoint("tcp://127.0.0.1:7000", 3, "--p1", by_address=False) == (
        "tcp://127.0.0.1:7002"
    )
    assert nth_endpoint("tcp://[::1]:7000", 2, "--p3", by_address=True) == "tcp://[::1]:7001"
    with pytest.raises(ConfigError, match=r"--p3 .* runs past 127.255.255.254"):
        nth_endpoint("tcp://127.255.255.250:4059", 6, "--p3", by_address=True)
    with pytest.raises(ConfigError, match=r"--p1 .* runs past port 65535"):
        nth_endpoint("tcp://127.0.0.1:65535", 2, "--p1", by_address=False)
    with pytest.raises(ConfigError, match=r"--p3 .* fixed port"):
        nth_endpoint("tcp://127.0.0.1:0", 1, "--p3", by_address=True)


def test_a_fleet_refuses_addresses_its_last_meter_would_not_have() -> None:
    with pytest.raises(ConfigError, match="--p3"):
        spec(count=100, p3="tcp://127.255.255.200:4059")
    with pytest.raises(ConfigError, match="--count 0"):
        spec(count=0)


def test_meters_draw_different_households_from_the_fleet_distributions() -> None:
    fleet = spec()
    configs = [fleet.meter_config(Config(), fleet.identity(i)) for i in fleet.indices]
    assert len({c.load.base_w for c in configs}) == fleet.count
    assert len({c.meter.seed for c in configs}) == fleet.count
    assert {c.meter.phases for c in configs} == {1, 3}
    assert {c.pv.enabled for c in configs} == {True, False}
    assert all(80 <= c.load.base_w <= 400 for c in configs)
    # Shares of 0 and 1 hold for every meter.
    none_or_all = dataclasses.replace(
        Config(), fleet=FleetConfig(pv_share=0, ev_share=1, single_phase_share=0, gas_share=0)
    )
    drawn = [fleet.meter_config(none_or_all, fleet.identity(i)) for i in range(1, 21)]
    assert not any(c.pv.enabled for c in drawn)
    assert all(c.load.ev and c.meter.phases == 3 and not c.gas.enabled for c in drawn)
    # Same seed, same fleet.
    assert fleet.meter_config(Config(), fleet.identity(7)) == spec().meter_config(
        Config(), spec().identity(7)
    )


def test_a_fleet_meter_has_its_address_identity_and_no_display_or_modem() -> None:
    ident = meter_identity(b"unit seed", 3)
    config = spec(p1="tcp://127.0.0.1:7000").meter_config(Config(), ident)
    assert config.p3.endpoint == "tcp://127.1.0.3:4059"
    assert config.p1.endpoint == "tcp://127.0.0.1:7002"
    assert config.meter.equipment_id == ident.equipment_id
    assert config.gas.default_key == ident.gas_default_key.hex()
    assert (config.display.device, config.p3.modem) == ("none", "none")
    assert spec().meter_config(Config(), ident).p1.endpoint == "none"


def test_fleet_distributions_are_validated_naming_the_key() -> None:
    with pytest.raises(ConfigError, match=r"'fleet.pv_share' = 1.5"):
        config_from_mapping({"fleet": {"pv_share": 1.5}})
    with pytest.raises(
        ConfigError, match=r"'fleet.base_w_min' = 500.0 is above 'fleet.base_w_max'"
    ):
        config_from_mapping({"fleet": {"base_w_min": 500.0}})
    with pytest.raises(ConfigError, match=r"unknown key 'fleet.ev'"):
        config_from_mapping({"fleet": {"ev": 0.5}})


def test_the_fleet_description_is_kept_and_options_must_agree_with_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"--count \(or --inventory\) is needed"):
        resolve_spec(tmp_path, None, None, None, None)
    made = resolve_spec(tmp_path, 4, "lab", None, None)
    assert (tmp_path / SPEC_FILE).stat().st_mode & 0o777 == 0o600  # the seed opens every key
    assert made.p3 == "tcp://127.1.0.1:4059"
    assert made.seeded
    again = resolve_spec(tmp_path, None, None, None, None)
    assert again.to_record() == made.to_record()
    with pytest.raises(ConfigError, match=r"--count 5: the fleet .* has 4"):
        resolve_spec(tmp_path, 5, None, None, None)
    with pytest.raises(ConfigError, match="--seed"):
        resolve_spec(tmp_path, None, "other", None, None)
    with pytest.raises(ConfigError, match="--p3"):
        resolve_spec(tmp_path, None, None, "tcp://127.2.0.1:4059", None)
    unseeded = resolve_spec(tmp_path / "random", 2, None, None, None)
    assert not unseeded.seeded
    assert len(unseeded.seed) == 32


def test_the_meters_of_an_outage_are_a_seeded_share() -> None:
    fleet = spec(count=40)
    chosen = choose_meters(fleet, 0.25, seed=3)
    assert len(chosen) == 10
    assert chosen == choose_meters(fleet, 0.25, seed=3)
    assert chosen != choose_meters(fleet, 0.25, seed=4)
    assert len(choose_meters(fleet, 0.001, seed=3)) == 1
    for bad in (0.0, 1.5, -0.1):
        with pytest.raises(ConfigError, match="--fraction"):
            choose_meters(fleet, bad, seed=3)


def test_a_worker_gives_new_meters_their_derived_keys_and_skips_a_damaged_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.chdir(tmp_path)  # workers run in the fleet directory
    fleet = spec(count=3)
    fleet.save(tmp_path)
    (tmp_path / meter_dir(2)).mkdir(parents=True)
    (tmp_path / meter_dir(2) / DATABASE).write_bytes(b"not a database" * 100)
    base = dataclasses.replace(
        Config(), store=dataclasses.replace(Config().store, backup_interval_s=0)
    )
    with caplog.at_level(logging.ERROR):
        hosted = open_meters(fleet, base, [1, 2, 3])
    try:
        assert [h.index for h in hosted] == [1, 3]
        assert "meter 0002 left out" in caplog.text
        for h in hosted:
            keys = read_keys(h.twin.store)
            ident = fleet.identity(h.index)
            assert keys is not None
            assert (keys.system_title, keys.guek, keys.gak, keys.hls_secret) == (
                ident.system_title,
                ident.guek,
                ident.gak,
                ident.hls_secret,
            )
            assert h.twin.meter.config.meter.equipment_id == ident.equipment_id
    finally:
        for h in hosted:
            h.twin.store.close()
            h.lock.release()


def test_p1_none_runs_no_p1_service(tmp_path: Path) -> None:
    config = config_from_mapping(
        {"p1": {"endpoint": "none"}, "p3": {"endpoint": "none"}, "display": {"device": "none"}}
    )
    twin = build(config, tmp_path)
    try:
        assert "p1" not in {s.name for s in twin.services}
        assert "p1" not in twin.control.ports
    finally:
        twin.store.close()


def test_a_fleet_takes_the_identities_of_a_head_end_inventory(tmp_path: Path) -> None:
    source = resolve_spec(tmp_path / "a", 5, "source", "tcp://127.9.0.1:4059", None)
    rows = inventory(tmp_path / "a")  # no meter ran: the derived keys
    for form, text in (("json", json.dumps(rows)), ("csv", as_csv(rows))):
        path = tmp_path / f"inventory.{form}"
        path.write_text(text)
        taken = resolve_spec(tmp_path / form, None, None, None, None, inventory=path)
        assert taken.count == 5
        assert taken.seed != source.seed
        for i in source.indices:
            mine, theirs = taken.identity(i), source.identity(i)
            assert (mine.equipment_id, mine.system_title, mine.guek, mine.gak) == (
                theirs.equipment_id,
                theirs.system_title,
                theirs.guek,
                theirs.gak,
            )
            assert (mine.master_key, mine.hls_secret) == (theirs.master_key, theirs.hls_secret)
            assert taken.p3_endpoint(i) == source.p3_endpoint(i)
        # Kept in fleet.json: a later run needs no file, another file is refused.
        assert FleetSpec.load(tmp_path / form).identity(3).guek == source.identity(3).guek
        other = tmp_path / "other.json"
        other.write_text(json.dumps(rows[:4]))
        with pytest.raises(ConfigError, match="made with other meters"):
            resolve_spec(tmp_path / form, None, None, None, None, inventory=other)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"guek": "00ff"}, r"row 2: 'guek' = '00ff': expected 32 hex digits"),
        ({"equipment_id": "E/1"}, r"row 2: 'meter.equipment_id'"),
        ({"system_title": None}, r"row 2: 'system_title' is missing"),
        ({"p3": "udp://x"}, r"row 2: 'p3' = 'udp://x'"),
        ({"gas_equipment_id": "G1"}, r"row 2: 'gas.equipment_id'"),
    ],
)
def test_a_bad_inventory_row_is_named(tmp_path: Path, change: dict[str, Any], message: str) -> None:
    resolve_spec(tmp_path / "a", 3, "source", None, None)
    rows = inventory(tmp_path / "a")
    rows[1] = {k: v for k, v in {**rows[1], **change}.items() if v is not None}
    path = tmp_path / "inventory.json"
    path.write_text(json.dumps(rows))
    with pytest.raises(ConfigError, match=message):
        resolve_spec(tmp_path / "b", None, None, None, None, inventory=path)
    assert not (tmp_path / "b" / SPEC_FILE).exists()


def test_an_inventory_repeating_a_system_title_is_refused(tmp_path: Path) -> None:
    resolve_spec(tmp_path / "a", 3, "source", None, None)
    rows = inventory(tmp_path / "a")
    rows[2]["system_title"] = rows[0]["system_title"]
    path = tmp_path / "inventory.json"
    path.write_text(json.dumps(rows))
    with pytest.raises(ConfigError, match=r"row 3 repeats system_title .* of row 1"):
        resolve_spec(tmp_path / "b", None, None, None, None, inventory=path)


def test_shards_on_several_hosts_take_non_overlapping_index_ranges(tmp_path: Path) -> None:
    whole = resolve_spec(tmp_path / "whole", 6, "shared", None, None)
    one = resolve_spec(tmp_path / "one", 3, "shared", None, None)
    two = resolve_spec(tmp_path / "two", 3, "shared", "tcp://127.2.0.1:4059", None, first=4)
    assert list(two.indices) == [4, 5, 6]
    assert two.p3_endpoint(4) == "tcp://127.2.0.1:4059"  # --p3 is the shard's first meter
    assert two.worker_meters(0, 2) == [4, 6]
    merged = inventory(tmp_path / "one") + inventory(tmp_path / "two")
    keys = ("meter", "equipment_id", "system_title", "guek", "gak", "master_key")
    assert [{k: r[k] for k in keys} for r in merged] == [
        {k: r[k] for k in keys} for r in inventory(tmp_path / "whole")
    ]
    assert one.identity(3).guek == whole.identity(3).guek
    with pytest.raises(ConfigError, match=r"--first 5: the fleet .* has 4"):
        resolve_spec(tmp_path / "two", None, None, None, None, first=5)
    with pytest.raises(ConfigError, match="--first 0"):
        FleetSpec(3, b"s", "tcp://127.1.0.1:4059", "none", seeded=True, first=0)
    with pytest.raises(ConfigError, match="--meter 2: the fleet has meters 4 to 6"):
        check_meter(two, 2)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--count", "0"], "--count 0: expected 1 to"),
        (["--count", "3", "--workers", "0"], "--workers 0: expected 1 to 1024"),
        (["--count", "3", "--p3", "udp://x"], "--p3 'udp://x': expected tcp://HOST:PORT"),
        (["--count", "3", "--seed", ""], "--seed '': give a non-empty seed"),
        (["--count", "3", "--speed", "0"], "'clock.speed' = 0.0 is not allowed"),
    ],
)
def test_fleet_run_refuses_bad_options_before_it_makes_anything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], options: list[str], message: str
) -> None:
    from twin.cli import main
    from twin.cli_common import EXIT_CONFIG

    code = main(["fleet", "run", "--state-dir", str(tmp_path / "fleet"), *options])
    assert code == EXIT_CONFIG
    assert message in capsys.readouterr().err
    assert not (tmp_path / "fleet" / SPEC_FILE).exists()


@pytest.mark.parametrize("key", ["system_title", "guek", "gak", "master_key"])
def test_a_fleet_configuration_giving_p3_keys_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], key: str
) -> None:
    """A fleet meter's keys are its own (the seed's or the --inventory's). A [p3] key in the
    fleet's configuration replaced every meter's own key at its start (a configured key wins
    over the stored one), so every meter shared it and the inventory listed keys no meter
    had: a head-end's keys for one meter opened all of them."""
    from twin.cli import main
    from twin.cli_common import EXIT_CONFIG

    value = "00" * (8 if key == "system_title" else 16)
    (tmp_path / "fleet.toml").write_text(f'[p3]\n{key} = "{value}"\n')
    fleet = tmp_path / "fleet"
    options = ["--count", "2", "--config", str(tmp_path / "fleet.toml")]
    assert main(["fleet", "run", "--state-dir", str(fleet), *options]) == EXIT_CONFIG
    assert f"'p3.{key}'" in capsys.readouterr().err
    assert not (fleet / SPEC_FILE).exists()


def test_a_seed_file_gives_the_seed_without_the_process_list_showing_it(tmp_path: Path) -> None:
    from twin.cli import _parser
    from twin.fleet.cli import _seed

    seed_file = tmp_path / "seed"
    seed_file.write_text("lab seed\n")
    base = ["fleet", "run", "--count", "2", "--state-dir", str(tmp_path / "f")]
    assert _seed(_parser().parse_args([*base, "--seed-file", str(seed_file)])) == "lab seed"
    assert _seed(_parser().parse_args([*base, "--seed", "lab seed"])) == "lab seed"
    assert _seed(_parser().parse_args(base)) is None
    missing = _parser().parse_args([*base, "--seed-file", str(tmp_path / "missing")])
    with pytest.raises(ConfigError, match=r"--seed-file .*missing: cannot read"):
        _seed(missing)


def test_fleet_inventory_before_the_first_run_derives_from_the_run_options(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A deployment exports a shard's inventory before its service ever started: the same
    options as `fleet run` (seed, count, first, addresses) give the same meters, and nothing is
    written (the service's first run creates the fleet)."""
    from twin.cli import main
    from twin.cli_common import EXIT_CONFIG

    seed = tmp_path / "fleet.seed"
    seed.write_text("shared\n")
    options = ["--count", "3", "--first", "4", "--p3", "tcp://127.2.0.1:4059"]
    fresh = tmp_path / "fresh"
    assert (
        main(["fleet", "inventory", "--state-dir", str(fresh), "--seed-file", str(seed), *options])
        == 0
    )
    before = json.loads(capsys.readouterr().out)
    assert not fresh.exists()
    ran = resolve_spec(tmp_path / "ran", 3, "shared", "tcp://127.2.0.1:4059", None, first=4)
    assert before == inventory(tmp_path / "ran")
    assert [row["p3"] for row in before] == [ran.p3_endpoint(i) for i in (4, 5, 6)]
    # Options given for an existing fleet must agree with it, as for `fleet run`.
    code = main(["fleet", "inventory", "--state-dir", str(tmp_path / "ran"), "--first", "5"])
    assert code == EXIT_CONFIG
    assert "--first 5: the fleet" in capsys.readouterr().err
    # A random seed exists only once the fleet ran: no inventory can be promised before.
    assert main(["fleet", "inventory", "--state-dir", str(fresh), "--count", "3"]) == EXIT_CONFIG
    assert "--seed" in capsys.readouterr().err
    assert not fresh.exists()


class RecordingNotifier(Notifier):
    def __init__(self) -> None:
        super().__init__(address="")
        self.sent: list[str] = []

    def notify(self, message: str) -> None:
        self.sent.append(message)


def test_the_head_is_ready_once_every_worker_is_and_a_silent_ready_worker_is_stale(
    tmp_path: Path,
) -> None:
    systemd = RecordingNotifier()
    head = FleetHead(tmp_path, [[0, 2], [1]], [], systemd=systemd)
    for worker in head.workers:
        worker.state = "running"
    head.take_report(b"READY=1\nWORKER=1", now=10.0)
    assert systemd.sent == []  # worker 0 has not started its meters yet
    head.take_report(b"WORKER=7\nREADY=1", now=10.5)  # no such worker: ignored
    assert systemd.sent == []
    head.take_report(b"READY=1\nWORKER=0", now=11.0)
    assert systemd.sent == ["READY=1"]
    head.take_report(b"READY=1\nWORKER=0", now=11.5)  # a restarted worker's READY: no repeat
    assert systemd.sent == ["READY=1"]
    head.take_report(b"WATCHDOG=1\nWORKER=0", now=20.0)
    now = 10.0 + WORKER_STALE_S + 0.1
    assert [w.number for w in head.workers if w.stale(now)] == [1]
    # A worker restarting (not ready, or in backoff) does not count as stuck.
    head.workers[1].ready = False
    assert not head.workers[1].stale(now)
    head.workers[1].ready, head.workers[1].state = True, "backoff"
    assert not head.workers[1].stale(now)
