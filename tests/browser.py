"""Debian's headless chromium, driven by selenium through Debian's chromedriver: the browser
of the web console's tests (tests/e2e/test_web_browser.py) and benchmark (bench/bench_web.py).

`make test` installs both packages first (scripts/ensure-browser); nothing is downloaded.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
MISSING = (
    "the web console's browser tests need Debian's chromium and chromium-driver: run"
    " scripts/ensure-browser as root (apt-get install -y chromium chromium-driver)"
)
FLAGS = (
    "--headless",
    "--no-sandbox",  # as root in a container
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def installed() -> bool:
    return CHROMIUM.exists() and CHROMEDRIVER.exists()


def headless_chromium(width: int = 1280, height: int = 2400) -> webdriver.Chrome:
    """A new browser with a fresh profile of its own."""
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tempfile.mkdtemp(prefix='twin-chromium-')}")
    options.add_argument(f"--window-size={width},{height}")
    return webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
