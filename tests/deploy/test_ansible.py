"""The Ansible role: syntax, ansible-lint (production profile, offline) and a real converge.

The converge runs site.yml with the example inventory (its vault decrypted with the documented
example password) against this machine over the local connection, each meter into its own
scratch root with system changes off, twice: the second run must change nothing. Then the
files it wrote are checked: every config passes the twin's validator, the units pass
`systemd-analyze verify` with ExecStart resolved inside the scratch root (the venv the role
built), and the firmware config has the overlays of each Pi model.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest

from tests.deploy.conftest import (
    ANSIBLE_DIR,
    SYSTEMD_DIR,
    ansible_tool,
    build_wheel,
    make_systemd_root,
    problems,
    verify_units,
)
from twin.config import load_config
from twin.fleet.spec import resolve_spec

INVENTORY = ANSIBLE_DIR / "inventory" / "example" / "hosts.yml"
VAULT_PASSWORD = ANSIBLE_DIR / "inventory" / "example" / "vault-password.example.txt"
INVENTORY_HOSTS = ("meter-01", "meter-02", "rack-01")
# Converged here: a Pi 4 with the M-Bus HAT (single twin, pre-Bookworm /boot layout), a Pi 5
# with the HAT running three instances, and two load-test hosts each running a shard of one
# fleet (10 + 15 meters). meter-02 (a Pi 5 like rack-01) is left out to keep the run short;
# syntax-check, lint and the vault test still cover it.
PI_HOSTS = ("meter-01", "rack-01")
FLEET_HOSTS = ("fleet-01", "fleet-02")
HOSTS = (*PI_HOSTS, *FLEET_HOSTS)
FLEET_SEED = "example fleet seed 0001"  # inventory/example/group_vars/fleet/vault.yml

CONFIG_TXT = """\
# Raspberry Pi OS Bookworm default (shortened)
dtparam=audio=on
camera_auto_detect=1
display_auto_detect=1
auto_initramfs=1
dtoverlay=vc4-kms-v3d
max_framebuffers=2
arm_64bit=1

[cm4]
otg_mode=1

[all]
"""
CMDLINE_TXT = (
    "console=serial0,115200 console=tty1 root=PARTUUID=4e639091-02 rootfstype=ext4 "
    "fsck.repair=yes console=ttyS0,115200 rootwait\n"
)


def run(
    command: list[str], env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command,
        cwd=ANSIBLE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_syntax_check(ansible_env: dict[str, str]) -> None:
    result = run(
        [
            ansible_tool("ansible-playbook"),
            "-i",
            str(INVENTORY),
            "--vault-password-file",
            str(VAULT_PASSWORD),
            "--syntax-check",
            "site.yml",
        ],
        ansible_env,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "playbook: site.yml" in result.stdout


def test_example_vault_is_encrypted_and_opens_with_the_example_password(
    ansible_env: dict[str, str],
) -> None:
    vaults = sorted((ANSIBLE_DIR / "inventory" / "example" / "host_vars").glob("*/vault.yml"))
    assert [v.parent.name for v in vaults] == sorted(INVENTORY_HOSTS)
    for vault in vaults:
        assert vault.read_text().startswith("$ANSIBLE_VAULT;1.1;AES256\n"), vault
    result = run(
        [
            ansible_tool("ansible-inventory"),
            "-i",
            str(INVENTORY),
            "--vault-password-file",
            str(VAULT_PASSWORD),
            "--host",
            "meter-01",
        ],
        ansible_env,
    )
    assert result.returncode == 0, result.stderr
    host = json.loads(result.stdout)
    assert re.fullmatch(r"[0-9A-F]{32}", host["vault_dsmr_twin_guek"])
    assert host["dsmr_twin_pi_model"] == 4


def test_ansible_lint_production_profile_offline(ansible_env: dict[str, str]) -> None:
    result = run(
        [
            ansible_tool("ansible-lint"),
            "--offline",
            "--profile",
            "production",
            "--nocolor",
            "site.yml",
            "roles/dsmr_twin",
            "inventory/example",
        ],
        ansible_env,
        timeout=180,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    # "Passed: 0 failure(s), 0 warning(s) ... Profile 'production' was required, and it passed."
    assert re.search(r"Passed: 0 failure\(s\), 0 warning\(s\)", output), output
    assert re.search(r"profile 'production' was required, and it passed", output, re.I), output


# --- converge -----------------------------------------------------------------------------


RECAP = re.compile(
    r"^(?P<host>\S+)\s*:\s*ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+"
    r"unreachable=(?P<unreachable>\d+)\s+failed=(?P<failed>\d+)",
    re.MULTILINE,
)


class PlaybookRun:
    """The default callback's output: the recap per host and which tasks changed what."""

    def __init__(self, output: str) -> None:
        self.output = output
        self.stats = {
            m["host"]: {k: int(m[k]) for k in ("ok", "changed", "unreachable", "failed")}
            for m in RECAP.finditer(output)
        }

    def changed_tasks(self) -> list[str]:
        task, found = "", []
        for line in self.output.splitlines():
            if line.startswith("TASK [") or line.startswith("RUNNING HANDLER ["):
                task = line.split("[", 1)[1].rsplit("]", 1)[0]
            elif line.startswith("changed:"):
                found.append(f"{task}: {line}")
        return found


def run_site(
    env: dict[str, str], extra_vars: Path, hosts: tuple[str, ...]
) -> subprocess.CompletedProcess[str]:
    """site.yml with the example inventory, its vault and `extra_vars`, on `hosts` only."""
    return run(
        [
            ansible_tool("ansible-playbook"),
            "-i",
            str(INVENTORY),
            "--vault-password-file",
            str(VAULT_PASSWORD),
            "-e",
            f"@{extra_vars}",
            "--limit",
            ",".join(hosts),
            "site.yml",
        ],
        env,
        timeout=300,
    )


def _playbook(env: dict[str, str], extra_vars: Path) -> PlaybookRun:
    # "free": each scratch host goes at its own pace (the fleet merge is a play of its own).
    free = {**env, "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.default", "ANSIBLE_STRATEGY": "free"}
    result = run_site(free, extra_vars, HOSTS)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    return PlaybookRun(output)


class Converged:
    def __init__(self, base: Path, first: PlaybookRun, second: PlaybookRun) -> None:
        self.base = base
        self.first = first
        self.second = second

    def root(self, host: str) -> Path:
        return self.base / host


@pytest.fixture(scope="module")
def converged(ansible_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Converged:
    base = tmp_path_factory.mktemp("roots")
    wheel = build_wheel(tmp_path_factory.mktemp("wheel"))
    for host in HOSTS:
        # Directories every Debian / Raspberry Pi OS root has (the role writes into them).
        for directory in ("etc/systemd/system", "etc/modules-load.d"):
            (base / host / directory).mkdir(parents=True)
    for host in PI_HOSTS:
        # meter-01 has the pre-Bookworm layout (/boot/config.txt): the role must find either.
        boot = base / host / ("boot" if host == "meter-01" else "boot/firmware")
        boot.mkdir(parents=True)
        (boot / "config.txt").write_text(CONFIG_TXT)
        (boot / "cmdline.txt").write_text(CMDLINE_TXT)
    extra_vars = base / "extra-vars.json"
    extra_vars.write_text(
        json.dumps(
            {
                "ansible_connection": "local",
                "ansible_python_interpreter": sys.executable,
                "ansible_become": False,
                "dsmr_twin_root": f"{base}/{{{{ inventory_hostname }}}}",
                "dsmr_twin_manage_system": False,
                # Load-test hosts have no meter hardware (group_vars/fleet/vars.yml).
                "dsmr_twin_manage_boot": "{{ inventory_hostname not in groups['fleet'] }}",
                "dsmr_twin_fleet_inventory_file": str(base / "fleet_inventory.json"),
                "dsmr_twin_python": sys.executable,
                "dsmr_twin_package_src": str(wheel),
                # Offline: the scratch venv gets the twin itself, not its dependencies; the
                # twin's commands the role runs (fleet inventory) find them in this venv's.
                "dsmr_twin_pip_extra_args": "--no-deps --no-index",
                "dsmr_twin_command_environment": {"PYTHONPATH": sysconfig.get_path("purelib")},
            }
        )
    )
    first = _playbook(ansible_env, extra_vars)
    second = _playbook(ansible_env, extra_vars)
    return Converged(base, first, second)


def test_converge_changes_every_host_then_is_idempotent(converged: Converged) -> None:
    first = converged.first.stats
    assert sorted(first) == sorted(HOSTS), converged.first.output
    for host in HOSTS:
        assert first[host]["failed"] == 0
        assert first[host]["unreachable"] == 0
        assert first[host]["changed"] > 0, host
    second = converged.second.stats
    assert sorted(second) == sorted(HOSTS), converged.second.output
    assert {host: second[host]["changed"] for host in HOSTS} == dict.fromkeys(HOSTS, 0), (
        converged.second.changed_tasks()
    )


def test_each_host_reports_the_units_it_manages(converged: Converged) -> None:
    units = re.findall(r"dsmr-twin units: ([^\"]+)", converged.first.output)
    assert sorted(units) == [
        "dsmr-twin-fleet.service",
        "dsmr-twin-fleet.service",
        "dsmr-twin.service",
        "dsmr-twin@lab1.service dsmr-twin@lab2.service dsmr-twin@lab3.service",
    ]


def _configs(converged: Converged) -> dict[tuple[str, str], Path]:
    found = {}
    for host in HOSTS:
        for path in sorted((converged.root(host) / "etc" / "dsmr-twin").glob("*.toml")):
            if not path.name.endswith(".keys.toml") and path.name != "keys.toml":
                found[host, path.stem] = path
    return found


def test_rendered_configs_pass_the_twins_validator(converged: Converged) -> None:
    configs = _configs(converged)
    assert sorted(configs) == [
        ("fleet-01", "fleet"),
        ("fleet-02", "fleet"),
        ("meter-01", "config"),
        ("rack-01", "lab1"),
        ("rack-01", "lab2"),
        ("rack-01", "lab3"),
    ]
    for path in configs.values():
        tomllib.loads(path.read_text())
        load_config(path)  # raises ConfigError naming the key
        # Keys inside: the service user's only, not the operators' (its group).
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    meter_01 = load_config(configs["meter-01", "config"])
    assert meter_01.meter.equipment_id == "E0099000000000101"
    assert (meter_01.p1.endpoint, meter_01.p1.request) == ("uart:///dev/ttyAMA1", "gpio:17")
    assert (meter_01.p2.bus, meter_01.p2.bus_power_gpio) == ("uart:///dev/ttyAMA0", 26)
    assert meter_01.display.device == "ssd1306:1:0x3C"
    lab2 = load_config(configs["rack-01", "lab2"])
    # Host-wide settings merged under the instance's own.
    assert (lab2.meter.phases, lab2.pv.enabled, lab2.p1.endpoint) == (
        1,
        False,
        "tcp://0.0.0.0:8202",
    )
    assert lab2.store.checkpoint_interval_s == 60.0
    assert load_config(configs["rack-01", "lab3"]).load.ev is True


def test_the_installed_twin_and_its_cli_accept_the_configs(converged: Converged) -> None:
    for (host, _), path in _configs(converged).items():
        venv_python = converged.root(host) / "opt" / "dsmr-twin" / "venv" / "bin" / "python"
        # The twin as the role installed it (config validation is stdlib-only) ...
        installed = subprocess.run(
            [
                str(venv_python),
                "-I",  # isolated: not the repository's twin/ through the working directory
                "-c",
                "import sys, pathlib, twin.config;"
                "twin.config.load_config(pathlib.Path(sys.argv[1]));"
                "print(twin.config.__file__)",
                str(path),
            ],
            cwd=converged.base,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert installed.returncode == 0, installed.stderr
        assert installed.stdout.startswith(str(converged.root(host))), installed.stdout
        # ... and the CLI's own check, as an operator runs it.
        check = subprocess.run(
            [sys.executable, "-m", "twin", "run", "--config", str(path), "--check"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert check.returncode == 0, check.stderr
        assert "configuration is valid" in check.stdout


def test_keys_come_from_the_vault_and_stay_private(converged: Converged) -> None:
    meter_01 = load_config(converged.root("meter-01") / "etc/dsmr-twin/config.toml")
    assert meter_01.p3.guek == "000102030405060708090A0B0C0D0E01"
    assert meter_01.p3.master_key == "101112131415161718191A1B1C1D1E01"
    lab1 = load_config(converged.root("rack-01") / "etc/dsmr-twin/lab1.toml")
    assert lab1.p3.gak == "D0D1D2D3D4D5D6D7D8D9DADBDCDDDE31"
    assert lab1.gas.default_key == "404142434445464748494A4B4C4D4E31"
    # Instances without keys of their own leave them to the twin (generated, then stored).
    lab2 = load_config(converged.root("rack-01") / "etc/dsmr-twin/lab2.toml")
    assert (lab2.p3.guek, lab2.p3.gak) == ("", "")
    # Vault values never reach Ansible's output (the config tasks are no_log).
    log = converged.first.output + converged.second.output
    for secret in ("0C0D0E01", "DCDDDE31", "4C4D4E31", "1C1D1E01"):
        assert secret not in log


def test_rendered_units_match_the_repository_and_verify(converged: Converged) -> None:
    for host in HOSTS:
        root = converged.root(host)
        units = root / "etc" / "systemd" / "system"
        for name in ("dsmr-twin.service", "dsmr-twin@.service", "dsmr-twin-fleet.service"):
            assert (units / name).read_text() == (SYSTEMD_DIR / name).read_text(), name
        make_systemd_root(root)
        # ExecStart=/opt/dsmr-twin/venv/bin/dsmr-twin resolves inside the root: the role's venv.
        assert os.access(root / "opt/dsmr-twin/venv/bin/dsmr-twin", os.X_OK)
        instance = {"rack-01": "dsmr-twin@lab1.service", "meter-01": "dsmr-twin.service"}.get(
            host, "dsmr-twin-fleet.service"
        )
        result = verify_units(root, "/etc/systemd/system/dsmr-twin.service", instance)
        assert result.returncode == 0, problems(result)
        assert problems(result) == []


def _boot(converged: Converged, host: str) -> tuple[list[str], str]:
    boot = converged.root(host) / ("boot" if host == "meter-01" else "boot/firmware")
    config = (boot / "config.txt").read_text()
    assert config.startswith(CONFIG_TXT), "the role keeps the existing config.txt"
    block = config[len(CONFIG_TXT) :].splitlines()
    return block, (boot / "cmdline.txt").read_text()


def test_firmware_config_per_pi_model(converged: Converged) -> None:
    begin, end = (
        "# BEGIN dsmr-twin (ansible role dsmr_twin)",
        "# END dsmr-twin (ansible role dsmr_twin)",
    )
    # Pi 4 + M-Bus HAT: Bluetooth off for a full PL011 on GPIO14/15, P1 on uart5, I2C on.
    assert _boot(converged, "meter-01")[0] == [
        begin,
        "[all]",
        "enable_uart=1",
        "dtoverlay=disable-bt",
        "dtoverlay=uart5",
        "dtparam=i2c_arm=on",
        end,
    ]
    # Pi 5 + M-Bus HAT: uart0 on GPIO14/15, P1 on uart4-pi5.
    assert _boot(converged, "rack-01")[0] == [
        begin,
        "[all]",
        "dtparam=uart0=on",
        "dtoverlay=uart4-pi5",
        "dtparam=i2c_arm=on",
        end,
    ]
    for host in PI_HOSTS:
        cmdline = _boot(converged, host)[1]
        assert cmdline == (
            "console=tty1 root=PARTUUID=4e639091-02 rootfstype=ext4 fsck.repair=yes rootwait\n"
        )
        modules = converged.root(host) / "etc" / "modules-load.d" / "dsmr-twin.conf"
        assert "i2c-dev" in modules.read_text().split()


# --- a fleet across hosts -----------------------------------------------------------------


def test_fleet_shards_take_consecutive_ranges_with_the_vault_seed(converged: Converged) -> None:
    options = {}
    for host in FLEET_HOSTS:
        etc = converged.root(host) / "etc" / "dsmr-twin"
        seed = etc / "fleet.seed"
        assert seed.read_text() == FLEET_SEED + "\n"
        assert stat.S_IMODE(seed.stat().st_mode) == 0o600
        (line,) = [x for x in (etc / "fleet.env").read_text().splitlines() if x[:1] != "#"]
        key, _, value = line.partition("=")
        assert key == "DSMR_TWIN_FLEET_ARGS"
        options[host] = " ".join(value.split())
    # fleet-01 takes meters 1-10, fleet-02 the next 15 (inventory order), each on its address.
    assert options == {
        "fleet-01": "--count 10 --first 1 --p3 tcp://192.0.2.31:4059 --workers 2",
        "fleet-02": "--count 15 --first 11 --p3 tcp://192.0.2.32:4059 --workers 2",
    }
    log = converged.first.output + converged.second.output
    assert FLEET_SEED not in log


def test_the_merged_inventory_has_every_meter_of_every_shard_once(converged: Converged) -> None:
    path = converged.base / "fleet_inventory.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # keys inside
    rows = json.loads(path.read_text())
    assert [row["meter"] for row in rows] == list(range(1, 26))
    for column in ("equipment_id", "system_title", "guek", "gak", "master_key", "p3"):
        assert len({row[column] for row in rows}) == 25, column
    assert [row["p3"] for row in rows[:10]] == [f"tcp://192.0.2.31:{p}" for p in range(4059, 4069)]
    assert [row["p3"] for row in rows[10:]] == [f"tcp://192.0.2.32:{p}" for p in range(4059, 4074)]
    # Exactly the meters (and keys) the shards' services will make from the seed and range.
    for first, count, p3 in ((1, 10, "tcp://192.0.2.31:4059"), (11, 15, "tcp://192.0.2.32:4059")):
        spec = resolve_spec(
            converged.base / "nothing", count, FLEET_SEED, p3, None, first=first, create=False
        )
        for index in spec.indices:
            ident = spec.identity(index)
            row = rows[index - 1]
            assert (row["equipment_id"], row["system_title"], row["guek"]) == (
                ident.equipment_id,
                ident.system_title.hex(),
                ident.guek.hex(),
            )
    assert "example fleet seed" not in converged.first.output


def test_overlapping_fleet_ranges_fail_the_play_naming_the_shards(
    ansible_env: dict[str, str], converged: Converged
) -> None:
    """Both shards told to start at meter 5: refused before anything is installed."""
    extra_vars = converged.base / "overlap.json"
    extra_vars.write_text(
        json.dumps(
            {
                **json.loads((converged.base / "extra-vars.json").read_text()),
                "dsmr_twin_root": f"{converged.base}/overlap-{{{{ inventory_hostname }}}}",
                "dsmr_twin_fleet": {"count": 10, "first": 5},
            }
        )
    )
    result = run_site(ansible_env, extra_vars, FLEET_HOSTS)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "fleet-01 (meters 5-14) and fleet-02 (meters 5-14) overlap" in output, output
    assert not (converged.base / "overlap-fleet-01").exists()


def test_shards_the_head_end_cannot_tell_apart_fail_the_merge(
    ansible_env: dict[str, str], converged: Converged
) -> None:
    """Both shards on 127.1.0.1 (loopback: the same string on every host): the merge names the
    repeated endpoint and writes no inventory. Run on copies of the converged roots."""
    for host in FLEET_HOSTS:
        shutil.copytree(converged.root(host), converged.base / f"loopback-{host}", symlinks=True)
    merged = converged.base / "loopback-inventory.json"
    extra_vars = converged.base / "loopback.json"
    extra_vars.write_text(
        json.dumps(
            {
                **json.loads((converged.base / "extra-vars.json").read_text()),
                "dsmr_twin_root": f"{converged.base}/loopback-{{{{ inventory_hostname }}}}",
                "dsmr_twin_fleet": {"count": 10, "p3": "tcp://127.1.0.1:4059"},
                "dsmr_twin_fleet_inventory_file": str(merged),
            }
        )
    )
    result = run_site(ansible_env, extra_vars, FLEET_HOSTS)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "p3 tcp://127.1.0.1:4059 is both meter 1 and meter 11" in output, output
    assert not merged.exists()
