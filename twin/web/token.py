"""The web console's access token, kept in the state directory for the service user alone.

Generated once with `secrets` (256 bits) and written with the database's mode: whoever can
read it may drive the meter from a browser on a non-loopback address. `dsmr-twin web-token`
prints it to whoever can read the file (the service user, root).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from twin.store import DATABASE_MODE

TOKEN_NAME = "web-token"  # noqa: S105  (the file's name, not a secret)
TOKEN_BYTES = 32


class TokenError(OSError):
    """The token file cannot be read or written."""


def token_path(state_dir: Path) -> Path:
    return state_dir / TOKEN_NAME


def read_token(state_dir: Path) -> str:
    """The stored token (TokenError when there is none or it cannot be read)."""
    path = token_path(state_dir)
    try:
        token = path.read_text(encoding="ascii").strip()
    except FileNotFoundError as exc:
        raise TokenError(
            f"no web token in {state_dir}: it is made when the twin first serves the console"
        ) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise TokenError(f"cannot read {path}: {exc}") from exc
    if not token:
        raise TokenError(f"{path} is empty: remove it and restart the twin to make a new one")
    return token


def load_or_create_token(state_dir: Path) -> str:
    """The stored token, or a new one written atomically with mode 0600 (never readable by
    others, not even for a moment: the mode is set as the file is created)."""
    path = token_path(state_dir)
    if path.exists():
        return read_token(state_dir)
    token = secrets.token_urlsafe(TOKEN_BYTES)
    temporary = path.with_name(f".{TOKEN_NAME}.{os.getpid()}")
    try:
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, DATABASE_MODE)
        with os.fdopen(descriptor, "w", encoding="ascii") as file:
            file.write(token + "\n")
        os.replace(temporary, path)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise TokenError(f"cannot write {path}: {exc.strerror or exc}") from exc
    return token
