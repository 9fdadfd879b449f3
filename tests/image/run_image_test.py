"""`make image-test`: the SD-card image of `make image`, booted in qemu-system-aarch64, checked.

The image's own kernel and initrd (from its RASPIFIRM partition) boot its root file system on
the emulated `virt` board (Cortex-A72, software emulation: no KVM for arm64 on an x86 host),
with user-mode networking forwarding SSH, P1 (TCP) and P3 to loopback. Writes go to a qcow2
overlay, so the image stays as built. Every check prints one line; the first failure stops the
run (the later checks build on the earlier ones) with the guest's console log named.

Run by `make image-test` as root (the image is read through a loop device):
    python -m tests.image.run_image_test --image build/image/dsmr-twin-raspi-arm64.img \
        --ssh-key build/image/id_ed25519
Not collected by pytest (no test_ prefix): it takes many minutes.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from dlms_cosem import utils
from dsmr_parser import telegram_specifications
from dsmr_parser.clients.telegram_buffer import TelegramBuffer
from dsmr_parser.objects import Telegram
from dsmr_parser.parsers import TelegramParser
from PIL import Image

from tests.support import P1_FIELDS, REGISTERS, free_port
from tests.unit.p3 import tcp_peers

REPO = Path(__file__).resolve().parents[2]
ANSIBLE_DIR = REPO / "deploy" / "ansible"
IMAGE_INVENTORY = REPO / "deploy" / "image" / "inventory.yml"
VENV_BIN = Path(sys.executable).parent
# The recipe's partitions (deploy/image/raspi-bookworm.yaml): RASPIFIRM at 4 MiB.
FIRMWARE_OFFSET = "4M"
TWIN = "/opt/dsmr-twin/venv/bin/dsmr-twin"
STATE = "/var/lib/dsmr-twin"
GUEST_P1, GUEST_P3 = 8201, 4059
# The test configuration the playbook puts on the guest: P1 on TCP for the forwarded port, P3
# on the network, the display rendered to PNG files (no OLED on the emulated board).
TEST_CONFIG = {
    "p1": {"endpoint": f"tcp://0.0.0.0:{GUEST_P1}"},
    "p3": {"endpoint": f"tcp://0.0.0.0:{GUEST_P3}", "modem": "simulated"},
    "display": {"device": f"simulated:{STATE}/display"},
}
# Software emulation: a boot takes minutes, the twin's start tens of seconds.
BOOT_TIMEOUT_S = 1200
SERVICE_TIMEOUT_S = 600


class CheckError(Exception):
    """A check did not hold; the message says what was seen."""


def say(text: str) -> None:
    print(f"[image-test] {text}", flush=True)


@contextlib.contextmanager
def check(name: str) -> Iterator[None]:
    started = time.monotonic()
    say(f"CHECK {name} ...")
    yield
    say(f"  ok: {name} ({time.monotonic() - started:.0f} s)")


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise CheckError(message)


def run(*args: str | Path, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, check=False, **kwargs
    )


def wait_for(what: str, probe: Callable[[], bool], timeout_s: float, every_s: float = 5) -> None:
    deadline = time.monotonic() + timeout_s
    while not probe():
        if time.monotonic() > deadline:
            raise CheckError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(every_s)


# ---- the image on the build machine ---------------------------------------------------------


def boot_files(image: Path, into: Path) -> tuple[Path, Path]:
    """The kernel and initrd raspi-firmware put in RASPIFIRM (what a Pi's firmware loads)."""
    listing = run("mdir", "-b", "-i", f"{image}@@{FIRMWARE_OFFSET}", "::/")
    expect(listing.returncode == 0, f"cannot list RASPIFIRM: {listing.stderr}")
    names = [line.rsplit("/", 1)[-1] for line in listing.stdout.split()]
    kernels = sorted(n for n in names if n.startswith("vmlinuz-"))
    initrds = sorted(n for n in names if n.startswith("initrd.img-"))
    expect(bool(kernels and initrds), f"no kernel/initrd in RASPIFIRM: {names}")
    files = []
    for name in (kernels[-1], initrds[-1]):
        got = run("mcopy", "-n", "-i", f"{image}@@{FIRMWARE_OFFSET}", f"::/{name}", into / name)
        expect(got.returncode == 0, f"mcopy {name}: {got.stderr}")
        files.append(into / name)
    return files[0], files[1]


def root_partition_offset(image: Path) -> tuple[int, int]:
    table = run("partx", "--noheadings", "--raw", "--output", "NR,START,SECTORS", image)
    rows = [line.split() for line in table.stdout.splitlines()]
    root = next((r for r in rows if r[0] == "2"), None)
    expect(root is not None, f"no partition 2 in {image}: {table.stdout}{table.stderr}")
    assert root is not None
    return int(root[1]) * 512, int(root[2]) * 512


def debugfs(image: Path, *requests: str) -> dict[str, str]:
    """debugfs requests (`ls -l PATH`, `stat PATH`) on the image's root file system, through a
    read-only loop device: what a card holds before its first boot."""
    offset, size = root_partition_offset(image)
    loop = run(
        "losetup",
        "--show",
        "--find",
        "--read-only",
        "--offset",
        str(offset),
        "--sizelimit",
        str(size),
        image,
    )
    expect(loop.returncode == 0, f"losetup: {loop.stderr}")
    device = loop.stdout.strip()
    try:
        answers = {r: run("debugfs", "-R", r, device) for r in requests}
        return {r: a.stdout + a.stderr for r, a in answers.items()}
    finally:
        run("losetup", "--detach", device)


# ---- the guest ------------------------------------------------------------------------------


class Guest:
    """qemu-system-aarch64 on the image (through an overlay), reached over forwarded ports."""

    def __init__(self, image: Path, key: Path, work: Path) -> None:
        self.key, self.work = key, work
        self.kernel, self.initrd = boot_files(image, work)
        self.disk = work / "guest.qcow2"
        made = run(
            "qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", image.resolve(), self.disk
        )
        expect(made.returncode == 0, f"qemu-img: {made.stderr}")
        self.ssh_port, self.p1_port, self.p3_port = free_port(), free_port(), free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.boots = 0

    @property
    def console(self) -> Path:
        return self.work / f"console-{self.boots}.log"

    def start(self) -> None:
        self.boots += 1
        forwards = ",".join(
            f"hostfwd=tcp:127.0.0.1:{host}-:{guest}"
            for host, guest in (
                (self.ssh_port, 22),
                (self.p1_port, GUEST_P1),
                (self.p3_port, GUEST_P3),
            )
        )
        command = [
            "qemu-system-aarch64",
            "-M",
            "virt",
            "-cpu",
            "cortex-a72",
            "-smp",
            "2",
            "-m",
            "1024",
            "-display",
            "none",
            "-serial",
            f"file:{self.console}",
            "-monitor",
            "none",
            "-kernel",
            str(self.kernel),
            "-initrd",
            str(self.initrd),
            "-append",
            "root=LABEL=RASPIROOT rw console=ttyAMA0 fsck.repair=yes",
            "-drive",
            f"if=none,id=disk,format=qcow2,file={self.disk}",
            "-device",
            "virtio-blk-pci,drive=disk",
            "-netdev",
            f"user,id=net,{forwards}",
            "-device",
            "virtio-net-pci,netdev=net",
            "-device",
            "virtio-rng-pci",
        ]
        self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL)

    def power_cut(self) -> None:
        """SIGKILL to qemu: the guest loses power, no shutdown, no flush of its own."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)
        self.process = None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.power_cut()

    def ssh_args(self) -> list[str]:
        return [
            "ssh",
            "-i",
            str(self.key),
            "-p",
            str(self.ssh_port),
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
            "-o",
            "ConnectTimeout=20",
            "pi@127.0.0.1",
        ]

    def ssh(self, command: str, *, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return run(*self.ssh_args(), command, timeout=timeout)

    def out(self, command: str, *, timeout: float = 300) -> str:
        done = self.ssh(command, timeout=timeout)
        expect(done.returncode == 0, f"`{command}` failed ({done.returncode}): {done.stderr}")
        return done.stdout

    def wait_ssh(self) -> None:
        def up() -> bool:
            assert self.process is not None
            expect(self.process.poll() is None, f"qemu ended; see {self.console}")
            try:
                return self.ssh("true", timeout=60).returncode == 0
            except subprocess.TimeoutExpired:
                return False

        wait_for(f"SSH (console: {self.console})", up, BOOT_TIMEOUT_S, every_s=10)

    def unit(self, *properties: str) -> dict[str, str]:
        shown = self.out(f"systemctl show dsmr-twin.service -p {' -p '.join(properties)}")
        return dict(line.split("=", 1) for line in shown.splitlines() if "=" in line)

    def wait_active(self) -> dict[str, str]:
        state: dict[str, str] = {}

        def active() -> bool:
            state.update(self.unit("ActiveState", "SubState", "MainPID", "NRestarts"))
            expect(state["ActiveState"] != "failed", f"dsmr-twin.service failed: {self.log()}")
            return state["ActiveState"] == "active"

        wait_for("dsmr-twin.service active", active, SERVICE_TIMEOUT_S)
        return state

    def log(self) -> str:
        return self.ssh("sudo journalctl -u dsmr-twin.service -n 30 --no-pager").stdout

    def status(self) -> dict[str, Any]:
        # As the operator `pi` (group dsmr-twin): the control socket, no sudo.
        return json.loads(self.out(f"{TWIN} ctl --state-dir {STATE} status --json"))  # type: ignore[no-any-return]

    def keys(self) -> dict[str, str]:
        shown = self.out(f"sudo -u dsmr-twin {TWIN} keys show --json --state-dir {STATE}")
        return json.loads(shown)  # type: ignore[no-any-return]


# ---- the checks -----------------------------------------------------------------------------


def check_image_carries_nothing_per_device(image: Path) -> None:
    with check("the image holds no meter state, keys or SSH host keys (made on the device)"):
        wants = "/etc/systemd/system/multi-user.target.wants/dsmr-twin.service"
        seen = debugfs(
            image,
            "ls /var/lib",
            "ls /etc/ssh",
            "stat /etc/machine-id",
            "ls /opt/dsmr-twin/venv/bin",
            f"stat {wants}",
            "cat /etc/systemd/system/dsmr-twin.service",
        )
        expect("dsmr-twin" not in seen["ls /var/lib"], f"state in the image: {seen['ls /var/lib']}")
        expect("ssh_host_" not in seen["ls /etc/ssh"], f"host keys: {seen['ls /etc/ssh']}")
        expect("Size: 0" in seen["stat /etc/machine-id"], "the machine-id is baked in")
        expect("dsmr-twin" in seen["ls /opt/dsmr-twin/venv/bin"], "no twin in the venv")
        expect(
            '"/etc/systemd/system/dsmr-twin.service"' in seen[f"stat {wants}"],
            f"dsmr-twin.service not enabled: {seen[f'stat {wants}']}",
        )
        expect("Type=notify" in seen["cat /etc/systemd/system/dsmr-twin.service"], "no unit")


def check_first_boot(guest: Guest) -> None:
    with check("first boot in qemu-system-aarch64 (virt, cortex-a72, TCG): SSH as pi with the key"):
        guest.start()
        guest.wait_ssh()
        say(f"  {guest.out('uname -srm').strip()}; {guest.out('cat /etc/debian_version').strip()}")
    with check("first boot created SSH host keys and a machine-id on the device"):
        expect(guest.out("ls /etc/ssh").count("_key.pub") >= 2, "no host keys")
        expect(len(guest.out("cat /etc/machine-id").strip()) == 32, "no machine-id")


def check_service_notify(guest: Guest) -> dict[str, str]:
    with check("systemd: dsmr-twin.service active after Type=notify READY=1, watchdog armed"):
        state = guest.wait_active()
        unit = guest.unit("Type", "NotifyAccess", "WatchdogUSec", "StatusText", "User")
        say(f"  {state} {unit}")
        expect(unit["Type"] == "notify", f"not Type=notify: {unit}")
        expect(unit["WatchdogUSec"] not in ("0", "infinity"), f"no watchdog: {unit}")
        expect(unit["User"] == "dsmr-twin", f"runs as {unit['User']}")
        # "active" for a notify unit means systemd received READY=1 (else it stays activating).
        ready = guest.out("sudo journalctl -u dsmr-twin.service -o cat --no-pager")
        expect("Started dsmr-twin" in ready, f"no start in the journal: {ready[-2000:]}")
    return state


def check_keys_made_on_device(guest: Guest) -> dict[str, str]:
    with check("the meter's keys were created on the device at its first start (keys show)"):
        keys = guest.keys()
        expect(
            all(len(bytes.fromhex(keys[k])) == 16 for k in ("guek", "gak", "master_key")),
            f"keys: {sorted(keys)}",
        )
        mode = guest.out(f"sudo stat -c '%a %U' {STATE}/meter.sqlite3").split()
        expect(mode == ["600", "dsmr-twin"], f"meter.sqlite3 is {mode}")
        say(f"  system title {keys['system_title']}")
    return keys


def ansible(guest: Guest, wheel: Path, extra: Path) -> tuple[int, str]:
    env = dict(
        os.environ,
        ANSIBLE_CONFIG=str(ANSIBLE_DIR / "ansible.cfg"),
        ANSIBLE_HOST_KEY_CHECKING="False",
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_SSH_ARGS="-o UserKnownHostsFile=/dev/null -o ControlMaster=auto "
        "-o ControlPersist=120s",
    )
    done = run(
        VENV_BIN / "ansible-playbook",
        "-i",
        IMAGE_INVENTORY,
        "--limit",
        "guest",
        "-e",
        "ansible_host=127.0.0.1",
        "-e",
        f"ansible_port={guest.ssh_port}",
        "-e",
        f"ansible_ssh_private_key_file={guest.key}",
        "-e",
        f"dsmr_twin_package_src={wheel}",
        "-e",
        f"@{extra}",
        ANSIBLE_DIR / "site.yml",
        env=env,
        timeout=3600,
    )
    recap = re.search(r"guest\s*:\s*ok=\d+\s+changed=(\d+)\s+unreachable=0\s+failed=0", done.stdout)
    expect(
        done.returncode == 0 and recap is not None,
        f"ansible-playbook failed ({done.returncode}):\n{done.stdout[-4000:]}{done.stderr}",
    )
    assert recap is not None
    return int(recap.group(1)), done.stdout


def check_ansible(guest: Guest, wheel: Path, work: Path) -> None:
    extra = work / "test-vars.json"
    extra.write_text(json.dumps({"dsmr_twin_config": TEST_CONFIG}))
    before = guest.unit("MainPID")["MainPID"]
    with check("ansible-playbook site.yml over SSH, system changes on: the test config, restart"):
        changed, output = ansible(guest, wheel, extra)
        say(f"  first run: changed={changed}")
        expect(changed > 0, "the test configuration changed nothing")
        expect("RUNNING HANDLER [dsmr_twin : Restart the twins]" in output, "no restart")
        guest.wait_active()
        expect(guest.unit("MainPID")["MainPID"] != before, "the twin was not restarted")
    with check("ansible-playbook again: changed=0"):
        changed, output = ansible(guest, wheel, extra)
        say(f"  second run: changed={changed}")
        expect(changed == 0, f"second run changed {changed}:\n{output[-3000:]}")


def check_ctl_status(guest: Guest) -> dict[str, Any]:
    with check("`dsmr-twin ctl status --json` as the operator pi (group dsmr-twin)"):
        groups = guest.out("id -nG").split()
        expect("dsmr-twin" in groups, f"pi is in {groups}")
        status = guest.status()
        say(
            f"  meter_time {status['meter_time']} "
            + " ".join(f"{c}={status[c]}" for c in REGISTERS)
        )
        expect(all(isinstance(status[c], float) for c in REGISTERS), f"status: {status}")
    return status


def read_p1(port: int, timeout_s: float = 60) -> Telegram:
    parser = TelegramParser(telegram_specifications.V4, apply_checksum_validation=True)
    buffer = TelegramBuffer()
    deadline = time.monotonic() + timeout_s
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        while time.monotonic() < deadline:
            chunk = sock.recv(4096)
            expect(bool(chunk), "P1 connection closed by the guest")
            buffer.append(chunk.decode("ascii"))
            for text in buffer.get_all():
                return parser.parse(text)
    raise CheckError(f"no whole P1 telegram in {timeout_s} s")


def check_p1(guest: Guest) -> None:
    with check("P1 telegram over TCP (forwarded port), parsed and CRC-checked by dsmr_parser"):
        telegram = read_p1(guest.p1_port)
        say(
            "  "
            + " ".join(f"{c}={getattr(telegram, P1_FIELDS[c]).value}" for c in REGISTERS)
            + f" id={telegram.EQUIPMENT_IDENTIFIER.value}"
        )


def p3_counter(guest: Guest, keys: dict[str, str]) -> tuple[int, int]:
    """A management session (client 1, HLS-GMAC) reading 1-0:1.8.1; the meter's invocation
    counter of that session."""
    client = tcp_peers.management_client(
        guest.p3_port,
        bytes.fromhex(keys["guek"]),
        bytes.fromhex(keys["gak"]),
        invocation_counter=int(time.time()),
    )
    # dlms-cosem 21.3.2 prints every APDU it parses; the check's own line says what counts.
    with contextlib.redirect_stdout(io.StringIO()):
        client.connect()
        try:
            client.associate()
            raw = client.get(tcp_peers.attribute(3, "1-0:1.8.1", 2))
            with contextlib.suppress(Exception):
                client.release_association()
        finally:
            client.disconnect()
    return int(utils.parse_as_dlms_data(raw)), int(client.dlms_connection.meter_invocation_counter)


def check_p3(guest: Guest, keys: dict[str, str]) -> int:
    with check("P3 session, client 1 (HLS-GMAC) with the keys of `keys show`, dlms-cosem"):
        wh, counter = p3_counter(guest, keys)
        say(f"  1-0:1.8.1 = {wh} Wh, meter invocation counter {counter}")
        expect(counter > 0, "no ciphered reply")
    return counter


def check_display(guest: Guest, work: Path) -> None:
    with check("the display renders (simulated OLED frame, copied as display.png)"):
        latest = f"{STATE}/display/latest.png"
        wait_for(
            "a display frame", lambda: guest.ssh(f"sudo test -s {latest}").returncode == 0, 120
        )
        png = run(*guest.ssh_args(), f"sudo base64 {latest}", timeout=120)
        target = work / "display.png"
        target.write_bytes(base64.b64decode(png.stdout))
        with Image.open(target) as frame:
            lit = frame.convert("1").histogram()[255]
            say(f"  {target} {frame.size[0]}x{frame.size[1]}, {lit} pixels lit")
            expect(frame.size[0] >= 128 and lit > 50, "blank frame")


def check_watchdog(guest: Guest) -> None:
    with check("watchdog: SIGSTOP the twin, systemd kills and restarts it (WatchdogSec)"):
        before = guest.unit("MainPID", "NRestarts")
        guest.out("sudo systemctl kill --kill-whom=main --signal=SIGSTOP dsmr-twin.service")
        stopped_at = time.monotonic()

        def restarted() -> bool:
            now = guest.unit("MainPID", "NRestarts", "ActiveState")
            return (
                now["ActiveState"] == "active"
                and now["MainPID"] != before["MainPID"]
                and int(now["NRestarts"]) > int(before["NRestarts"])
            )

        wait_for("a watchdog restart", restarted, SERVICE_TIMEOUT_S)
        journal = guest.out("sudo journalctl -u dsmr-twin.service -o cat --no-pager")
        expect("Watchdog timeout" in journal, "no watchdog timeout in the journal")
        say(f"  restarted {time.monotonic() - stopped_at:.0f} s after SIGSTOP")


def check_power_cut(guest: Guest, keys: dict[str, str]) -> None:
    with check(
        "power cut (qemu SIGKILL), reboot: registers back, power failure, no counter reused"
    ):
        before = guest.status()
        _, counter_before = p3_counter(guest, keys)
        # One checkpoint after the reading ([store] checkpoint_interval_s = 30).
        time.sleep(40)
        guest.power_cut()
        guest.start()
        guest.wait_ssh()
        guest.wait_active()
        after = guest.status()
        _, counter_after = p3_counter(guest, keys)
        for code in REGISTERS:
            expect(after[code] >= before[code], f"{code}: {before[code]} -> {after[code]}")
        expect(
            after["power_failures"] > before["power_failures"],
            f"power failures {before['power_failures']} -> {after['power_failures']}",
        )
        expect(
            counter_after > counter_before,
            f"P3 counter reused: {counter_before} -> {counter_after}",
        )
        expect(guest.keys() == keys, "keys changed across the power cut")
        say(f"  registers {[before[c] for c in REGISTERS]} -> {[after[c] for c in REGISTERS]}")
        say(
            f"  power failures {before['power_failures']} -> {after['power_failures']}, "
            f"log {after['power_failure_log'][-1:]}; P3 counter {counter_before} -> {counter_after}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--image", type=Path, required=True)
    parser.add_argument("--ssh-key", type=Path, required=True, help="private key of pi")
    parser.add_argument("--work", type=Path, default=None, help="keep logs here")
    args = parser.parse_args()
    # Ansible resolves relative paths against the role, not here.
    args.image, args.ssh_key = args.image.resolve(), args.ssh_key.resolve()
    for tool in ("qemu-system-aarch64", "qemu-img", "mcopy", "debugfs", "losetup"):
        if shutil.which(tool) is None:
            say(f"{tool} is missing: apt install qemu-system-arm qemu-utils mtools e2fsprogs")
            return 2
    (wheel,) = (args.image.parent / "dist").glob("dsmr_twin-*.whl")
    work = args.work or Path(tempfile.mkdtemp(prefix="image-test-", dir=args.image.parent))
    work.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    say(f"image {args.image} ({args.image.stat().st_size >> 20} MiB), logs in {work}")
    guest: Guest | None = None
    try:
        check_image_carries_nothing_per_device(args.image)
        guest = Guest(args.image, args.ssh_key, work)
        check_first_boot(guest)
        check_service_notify(guest)
        keys = check_keys_made_on_device(guest)
        check_ansible(guest, wheel, work)
        check_ctl_status(guest)
        check_p1(guest)
        check_p3(guest, keys)
        check_display(guest, work)
        check_watchdog(guest)
        check_power_cut(guest, keys)
    except (CheckError, subprocess.TimeoutExpired, OSError, ValueError) as error:
        say(f"FAILED: {error}")
        if guest is not None:
            say(f"guest console: {guest.console}")
        return 1
    finally:
        if guest is not None:
            guest.stop()
        say(f"total {time.monotonic() - started:.0f} s")
    say("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
