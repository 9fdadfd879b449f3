"""The SD-card image recipe (deploy/image), checked without building or booting it.

`make image` (vmdb2, minutes to tens of minutes, root) and `make image-test` (the image booted in
qemu-system-aarch64) are not part of the fast suite; these checks are: the recipe parses and
installs what a Pi 3/4 needs, the steps it runs exist, nothing per-device is baked in, the role
writes the UART and I2C overlays for the image's variables, and the make targets exist.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import yaml

from tests.deploy.conftest import ANSIBLE_DIR, REPO, ansible_tool

IMAGE_DIR = REPO / "deploy" / "image"
RECIPE = IMAGE_DIR / "raspi-bookworm.yaml"
INVENTORY = IMAGE_DIR / "inventory.yml"
# What raspi-firmware's kernel hook writes (bookworm, 1.20220830+ds-1), with the recipe's
# /etc/default/raspi-firmware: the role adds its block to this.
RASPI_FIRMWARE_CONFIG_TXT = """\
# Do not modify this file!
arm_64bit=1
enable_uart=1
upstream_kernel=1
kernel=vmlinuz-6.1.0-41-arm64
initramfs initrd.img-6.1.0-41-arm64
"""
RASPI_FIRMWARE_CMDLINE = "console=tty0 root=LABEL=RASPIROOT rw fsck.repair=yes net.ifnames=0\n"


def steps() -> list[dict[str, object]]:
    recipe = yaml.safe_load(RECIPE.read_text())
    assert isinstance(recipe["steps"], list)
    return recipe["steps"]  # type: ignore[no-any-return]


def step(key: str) -> dict[str, object]:
    (found,) = [s for s in steps() if key in s]
    return found


def test_recipe_builds_debian_bookworm_arm64_with_the_pi_kernel_and_firmware() -> None:
    assert step("mkimg")["mkimg"] == "{{ output }}"
    debootstrap = step("qemu-debootstrap")
    assert debootstrap["qemu-debootstrap"] == "bookworm"
    assert debootstrap["arch"] == "arm64"
    assert "non-free-firmware" in debootstrap["components"]  # type: ignore[operator]
    packages = step("apt")["packages"]
    assert isinstance(packages, list)
    for needed in ("linux-image-arm64", "raspi-firmware", "openssh-server", "python3-venv"):
        assert needed in packages, needed
    labels = {s["label"] for s in steps() if "mkfs" in s}
    assert labels == {"RASPIFIRM", "RASPIROOT"}  # what files/fstab and raspi-firmware use
    fstab = (IMAGE_DIR / "files" / "fstab").read_text()
    assert "LABEL=RASPIROOT  /  " in fstab
    assert "LABEL=RASPIFIRM  /boot/firmware" in fstab


def test_recipe_shell_steps_run_scripts_that_exist() -> None:
    shells = [str(s["shell"]) for s in steps() if "root-fs" in s]
    assert len(shells) == 3
    for shell in shells:
        (script,) = [w for w in shell.split() if "deploy/image/" in w]
        path = IMAGE_DIR / script.strip('"').rsplit("/", 1)[-1]
        assert path.is_file(), path
        assert os.access(path, os.X_OK), path
    for name in ("build-image", "kpartx-loop"):
        assert (IMAGE_DIR / name).stat().st_mode & stat.S_IXUSR, name
    # Every file configure-root installs is in the tree.
    configure = (IMAGE_DIR / "configure-root").read_text()
    for name in (p.name for p in (IMAGE_DIR / "files").iterdir()):
        assert f"files/{name}" in configure, name


def test_nothing_per_device_is_baked_into_the_image() -> None:
    seal = (IMAGE_DIR / "seal-root").read_text()
    assert 'rm -f "$ROOT"/etc/ssh/ssh_host_*' in seal
    assert ': > "$ROOT/etc/machine-id"' in seal
    assert 'rm -rf "$ROOT/var/lib/dsmr-twin"' in seal
    firstboot = (IMAGE_DIR / "files" / "dsmr-twin-firstboot.service").read_text()
    assert "ExecStart=/usr/bin/ssh-keygen -A" in firstboot
    assert "Before=ssh.service" in firstboot
    # No key or system title in the image's config: the twin makes them on the Pi.
    inventory = yaml.safe_load(INVENTORY.read_text())
    config = inventory["meters"]["vars"]["dsmr_twin_config"]
    for table in config.values():
        assert not {"guek", "gak", "master_key", "system_title", "default_key"} & set(table)
    sshd = (IMAGE_DIR / "files" / "sshd-dsmr-twin.conf").read_text()
    assert "PasswordAuthentication no" in sshd
    assert "PermitRootLogin no" in sshd


def test_image_host_enables_the_unit_without_starting_anything() -> None:
    hosts = yaml.safe_load(INVENTORY.read_text())["meters"]["children"]
    image = hosts["image_build"]["hosts"]["image"]
    assert image["ansible_connection"] == "dsmr_twin_chroot"
    assert image["dsmr_twin_start"] is False
    assert image["dsmr_twin_reboot"] is False
    service = yaml.safe_load((ANSIBLE_DIR / "roles/dsmr_twin/tasks/service.yml").read_text())
    enable = next(t for t in service if t["name"] == "Enable and start the twins")
    args = enable["ansible.builtin.systemd_service"]
    assert args["enabled"] is True
    assert "dsmr_twin_start" in args["state"]
    assert (IMAGE_DIR / "connection_plugins" / "dsmr_twin_chroot.py").is_file()


def test_role_writes_uart_and_i2c_overlays_for_the_image(
    ansible_env: dict[str, str], tmp_path: Path
) -> None:
    root = tmp_path / "root"
    firmware = root / "boot" / "firmware"
    firmware.mkdir(parents=True)
    (root / "etc" / "modules-load.d").mkdir(parents=True)  # there on every Debian
    (firmware / "config.txt").write_text(RASPI_FIRMWARE_CONFIG_TXT)
    (firmware / "cmdline.txt").write_text(RASPI_FIRMWARE_CMDLINE)
    playbook = tmp_path / "boot.yml"
    playbook.write_text(
        "- hosts: image\n  gather_facts: false\n  tasks:\n"
        "    - ansible.builtin.include_role: {name: dsmr_twin, tasks_from: boot.yml}\n"
    )
    extra = {
        "ansible_connection": "local",
        "ansible_python_interpreter": sys.executable,
        "dsmr_twin_root": str(root),
        "dsmr_twin_manage_system": False,
    }
    result = subprocess.run(
        [
            ansible_tool("ansible-playbook"),
            "-i",
            str(INVENTORY),
            "--limit",
            "image",
            "-e",
            json.dumps(extra),
            str(playbook),
        ],
        env=ansible_env,
        cwd=ANSIBLE_DIR,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    config = (firmware / "config.txt").read_text()
    block = config.split("# BEGIN dsmr-twin", 1)[1].split("# END dsmr-twin", 1)[0]
    for line in ("enable_uart=1", "dtoverlay=disable-bt", "dtparam=i2c_arm=on"):
        assert f"\n{line}\n" in block, block
    assert config.startswith(RASPI_FIRMWARE_CONFIG_TXT)  # raspi-firmware's lines kept
    assert (firmware / "cmdline.txt").read_text() == RASPI_FIRMWARE_CMDLINE  # no serial console
    assert (root / "etc/modules-load.d/dsmr-twin.conf").read_text().endswith("i2c-dev\n")


def test_make_has_image_targets_outside_make_test() -> None:
    for target, command in (
        ("image", "deploy/image/build-image"),
        ("image-test", "-m tests.image.run_image_test"),
    ):
        dry = subprocess.run(
            ["make", "-n", "-o", ".venv/.installed-test", target],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert dry.returncode == 0, dry.stderr
        assert command in dry.stdout, dry.stdout
    test = subprocess.run(
        ["make", "-n", "-o", ".venv/.installed-test", "test"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert "build-image" not in test.stdout
    assert "run_image_test" not in test.stdout


def test_packages_configure_with_proc_mounted_and_one_initramfs() -> None:
    names = [next(iter(s)) for s in steps()]
    # raspi-firmware's hooks need /proc to see a chroot (ischroot) and not a Pi without its
    # firmware partition mounted: the virtual file systems come before the packages.
    assert names.index("virtual-filesystems") < names.index("apt")
    chroots = [str(s["shell"]) for s in steps() if "chroot" in s]
    diverted, restored = chroots
    assert "dpkg-divert --local --rename --add /usr/sbin/update-initramfs" in diverted
    assert "dpkg-divert --local --rename --remove /usr/sbin/update-initramfs" in restored
    assert "update-initramfs -c -k all" in restored
    apt = names.index("apt")
    chroot_at = [i for i, name in enumerate(names) if name == "chroot"]
    assert chroot_at[0] < apt < chroot_at[1] < names.index("cache-rootfs")
