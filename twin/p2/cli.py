"""Command-line commands of this port (see EXTENSIONS in twin/cli.py)."""

from __future__ import annotations

import argparse
from typing import Any


def add_commands(commands: Any) -> None:
    """Top-level `dsmr-twin` sub-commands of this port (none yet)."""


def add_ctl_commands(ctl: Any) -> None:
    """`dsmr-twin ctl` sub-commands of this port (none yet)."""


def ctl_request(args: argparse.Namespace) -> dict[str, Any] | None:
    return None


def run(args: argparse.Namespace) -> int | None:
    return None
