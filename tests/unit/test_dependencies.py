"""What the twin needs at run time: test peers stay out of it."""

from __future__ import annotations

import subprocess
import sys

IMPORT_EVERYTHING = """
import importlib, pkgutil, sys
import hardware, twin
for package in (twin, hardware):
    for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        if not module.name.endswith("__main__"):
            importlib.import_module(module.name)
print(" ".join(sorted(name for name in sys.modules if name.split(".")[0] == "gurux_dlms")))
"""


def test_no_module_of_the_twin_loads_gurux() -> None:
    """gurux-dlms is an independent DLMS peer for the tests (the `test` extra), not a part of
    the meter: the P3 server encodes its own values, so a twin with or without P3 runs
    without it."""
    result = subprocess.run(
        [sys.executable, "-c", IMPORT_EVERYTHING],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert result.stdout.split() == []
