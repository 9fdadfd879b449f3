"""P2 runs without P3: importing its wiring or the stand-alone gas meter loads no P3 code.

The types P2 and P3 share (the class 72 `MbusPort`) live in the neutral `twin.ports`, so a
twin with P3 off, or a `dsmr-twin gasmeter` process, never loads the COSEM object model or
gurux-dlms. Checked in a fresh interpreter with `-X importtime`, which lists every module
the import really loaded (including those pulled in indirectly).
"""

from __future__ import annotations

import subprocess
import sys

import pytest


def _loaded(module: str) -> set[str]:
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    # Lines look like "import time:   self |  cumulative | <indent>package.module".
    rows = [line.rsplit("|", 1) for line in result.stderr.splitlines() if "|" in line]
    return {row[-1].strip() for row in rows}


@pytest.mark.parametrize("module", ["twin.p2.aio.wiring", "twin.p2.aio.standalone", "twin.p2.port"])
def test_p2_loads_nothing_of_p3_or_gurux(module: str) -> None:
    loaded = _loaded(module)
    assert module in loaded  # the listing is real: the module itself is in it
    foreign = sorted(m for m in loaded if m.startswith(("gurux", "twin.p3")))
    assert foreign == []
