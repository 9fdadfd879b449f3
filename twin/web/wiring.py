"""Wires the web console into a running twin (`[web] endpoint`, `--web`).

twin/app.py calls `web_services(twin)` last, after every port has added its commands and
status to the control server, unless the endpoint is "none". aiohttp is imported only then.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from twin.config import ConfigError, http_host_port

if TYPE_CHECKING:
    from twin.parts import Twin
    from twin.supervisor import Service


def web_services(twin: Twin) -> list[Service]:
    from twin.supervisor import Service
    from twin.web.server import WebConsole
    from twin.web.token import TokenError, load_or_create_token

    settings = twin.config.web
    found = http_host_port(settings.endpoint)
    if found is None:  # the configuration refused it already
        raise ConfigError(f"'web.endpoint' = {settings.endpoint!r}: expected http://HOST:PORT")
    try:
        token = load_or_create_token(twin.state_dir)
    except TokenError as exc:
        raise ConfigError(f"web console: {exc}") from exc
    console = WebConsole(twin, *found, token=token, refresh_s=settings.refresh_s)
    twin.control.ports["web"] = console.status
    return [Service("web", console.run)]
