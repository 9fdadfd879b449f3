"""`dsmr-twin web-token [--state-dir DIR]`: print the web console's token.

A command extension (see EXTENSIONS in twin/cli.py). It reads the token file itself, not over
the control socket: the file is the service user's alone (mode 0600), so only the service user
(and root) can print it, while the operators' group, who reach the control socket, cannot.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from twin.cli_common import EXIT_CONFIG, default_state_dir
from twin.web.token import TokenError, read_token


def add_commands(commands: Any) -> None:
    token = commands.add_parser(
        "web-token", help="print the web console's token (for a non-loopback [web] endpoint)"
    )
    token.add_argument("--state-dir", type=Path, default=None)


def add_ctl_commands(ctl: Any) -> None:
    """No ctl commands."""


def ctl_request(args: argparse.Namespace) -> dict[str, Any] | None:
    return None


def run(args: argparse.Namespace) -> int | None:
    if args.command != "web-token":
        return None
    state_dir = args.state_dir or default_state_dir()
    try:
        print(read_token(state_dir))
    except TokenError as exc:
        print(f"dsmr-twin: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    return 0
