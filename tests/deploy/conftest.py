"""Shared tools for the deployment tests: a throwaway systemd root, a wheel of the twin, Ansible.

Nothing here writes outside pytest's temporary directories: Ansible's home, temp and cache go
there too, and systemd units are checked with `systemd-analyze verify --root` against a copy of
the host's unit directory, so nothing is installed system-wide.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SYSTEMD_DIR = REPO / "systemd"
ANSIBLE_DIR = REPO / "deploy" / "ansible"
VENV_BIN = Path(sys.executable).parent
# Where systemd's own units live on Debian (merged /usr) and older layouts.
HOST_UNIT_DIRS = (Path("/usr/lib/systemd/system"), Path("/lib/systemd/system"))


def systemd_analyze() -> str:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed (apt install systemd)")
    return tool


def make_systemd_root(root: Path) -> Path:
    """Give `root` the host's systemd units (targets the twin's units depend on) and unit dirs."""
    source = next((d for d in HOST_UNIT_DIRS if (d / "multi-user.target").is_file()), None)
    if source is None:
        pytest.skip("no systemd unit directory with multi-user.target on this machine")
    target = root / "usr" / "lib" / "systemd" / "system"
    if not target.exists():
        shutil.copytree(source, target, symlinks=True)
    (root / "etc" / "systemd" / "system").mkdir(parents=True, exist_ok=True)
    return root


def exec_start_binary(unit_text: str) -> str:
    match = re.search(r"^ExecStart=[-@:+!]*(\S+)", unit_text, re.MULTILINE)
    assert match, "no ExecStart= in the unit"
    return match.group(1)


def verify_units(root: Path, *units: str) -> subprocess.CompletedProcess[str]:
    """`systemd-analyze verify --root ROOT UNIT...`; warnings go to stderr with rc 0."""
    return subprocess.run(
        [systemd_analyze(), "verify", f"--root={root}", "--man=no", *units],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def problems(result: subprocess.CompletedProcess[str]) -> list[str]:
    """Every diagnostic systemd printed (it reports unknown keys or bad values with rc 0)."""
    return [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]


def build_wheel(out_dir: Path) -> Path:
    """The twin's wheel, built by pip with the venv's setuptools (no build isolation, so no
    download): what an operator copies to a fleet (`dsmr_twin_package_src`)."""
    pip = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet"]
    result = subprocess.run(
        [*pip, "--wheel-dir", str(out_dir), str(REPO)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    (wheel,) = out_dir.glob("dsmr_twin-*.whl")
    return wheel


def ansible_tool(name: str) -> str:
    tool = VENV_BIN / name
    if not tool.exists():
        found = shutil.which(name)
        if found is None:
            pytest.skip(f"{name} is not installed (pip install -e '.[test]')")
        return found
    return str(tool)


@pytest.fixture(scope="session")
def ansible_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment for ansible-*: home, temp, caches and collections all in a temp directory."""
    home = tmp_path_factory.mktemp("ansible-home")
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("ANSIBLE_", "PIP_", "VIRTUAL_ENV"))
    }
    env.update(
        HOME=str(home),
        XDG_CACHE_HOME=str(home / ".cache"),
        XDG_CONFIG_HOME=str(home / ".config"),
        ANSIBLE_HOME=str(home / ".ansible"),
        ANSIBLE_LOCAL_TEMP=str(home / "local-tmp"),
        ANSIBLE_REMOTE_TEMP=str(home / "remote-tmp"),
        ANSIBLE_COLLECTIONS_PATH=str(home / "collections"),
        ANSIBLE_ROLES_PATH=str(ANSIBLE_DIR / "roles"),
        ANSIBLE_CONFIG=str(ANSIBLE_DIR / "ansible.cfg"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
        ANSIBLE_RETRY_FILES_ENABLED="0",
        PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        PIP_NO_INPUT="1",
        # No pip.conf of this machine (indexes, constraints): installs are --no-index anyway.
        PIP_CONFIG_FILE=os.devnull,
    )
    return env
