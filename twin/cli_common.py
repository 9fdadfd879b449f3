"""What the `dsmr-twin` command and the command modules of the ports share (twin/cli.py loads
those modules, so they take these from here rather than from it): the exit statuses and where
the state directory is when the command line does not say."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_STATE_DIR = "state"

# Exit statuses (docs/operations.md "Exit statuses"; the systemd units act on them).
EXIT_CONFIG = 2  # the configuration or the command line is wrong: a restart cannot help
EXIT_STORAGE = 3  # the state directory or database is failing: restarted with a delay
EXIT_STATE_DIR_BUSY = 4  # another twin holds the state directory: restarted with a delay
EXIT_PORT = 5  # `p1 record|replay`: the P1 line could not be opened or failed


def default_state_dir() -> Path:
    """$DSMR_TWIN_STATE_DIR, systemd's $STATE_DIRECTORY, or ./state."""
    for variable in ("DSMR_TWIN_STATE_DIR", "STATE_DIRECTORY"):
        if value := os.environ.get(variable):
            return Path(value.split(":")[0])
    return Path(DEFAULT_STATE_DIR)
