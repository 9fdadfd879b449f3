"""The web console in a real browser: Debian's headless chromium, driven through its
chromedriver by selenium, against `dsmr-twin run` processes.

`make test` installs chromium and chromium-driver first (scripts/ensure-browser). One browser
serves the module; the twin runs at speed 1 with P1 on a pty (Request held high: a telegram
every 10 s) and P3 off. The last test runs a fleet of three meters and `dsmr-twin fleet web`.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from dsmr_parser import telegram_specifications
from dsmr_parser.parsers import TelegramParser
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.select import Select

from tests.browser import MISSING, headless_chromium, installed
from tests.support import dsmr_twin, free_port
from twin.fleet.control import fleet_outage, fleet_status

STARTUP_S = 20.0
WAIT_S = 10.0
T = TypeVar("T")


def until(what: Callable[[], T | None], timeout_s: float = WAIT_S, why: str = "") -> T:
    """Poll `what` until it gives something truthy (the page updates by itself)."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = what()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s} s: {why}")
        time.sleep(0.05)


class TwinProcess:
    """`dsmr-twin run` with its web console on `endpoint`."""

    def __init__(self, state_dir: Path, endpoint: str) -> None:
        self.state_dir, self.endpoint = state_dir, endpoint
        self.process = self._start()

    def _start(self) -> subprocess.Popen[bytes]:
        command = [sys.executable, "-m", "twin", "run", "--state-dir", str(self.state_dir)]
        command += ["--p1", "pty://p1", "--p3", "none", "--web", self.endpoint]
        process = subprocess.Popen(command, stderr=subprocess.DEVNULL)
        until(self._answers, STARTUP_S, "the twin did not start")
        return process

    def restart(self) -> None:
        self.stop()
        self.process = self._start()

    def _answers(self) -> bool:
        try:
            return "web" in self.status()["ports"]
        except subprocess.CalledProcessError:
            return False

    def ctl(self, *args: str) -> str:
        return dsmr_twin("ctl", "--state-dir", str(self.state_dir), *args)

    def status(self) -> dict[str, Any]:
        status: dict[str, Any] = json.loads(self.ctl("status", "--json"))
        return status

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=20)


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    if not installed():
        pytest.fail(MISSING)
    driver = headless_chromium()
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def twin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwinProcess]:
    # Unix socket paths are short: not under pytest's long temporary path.
    state_dir = Path(tempfile.mkdtemp(prefix="twin-web-"))
    running = TwinProcess(state_dir, f"http://127.0.0.1:{free_port()}")
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def page(browser: WebDriver, twin: TwinProcess) -> WebDriver:
    browser.get(twin.status()["ports"]["web"]["url"])
    until(lambda: _text(browser, "#link") == "live", why="the live stream did not connect")
    return browser


def _text(driver: WebDriver, selector: str) -> str:
    script = "const e = document.querySelector(arguments[0]); return e ? e.textContent : null;"
    found = driver.execute_script(script, selector)
    return str(found) if found is not None else ""


def _starting(driver: WebDriver, selector: str, prefix: str) -> str:
    """The text of `selector` once it starts with `prefix` (an acknowledgement arrives)."""

    def shown() -> str | None:
        text = _text(driver, selector)
        return text if text.startswith(prefix) else None

    return until(shown, why=f"{selector}: no {prefix!r}")


def _ack(driver: WebDriver, command: str, outcome: str) -> str:
    """The acknowledgement under a control's form, once it starts with `outcome`."""
    return _starting(driver, f'form[data-cmd="{command}"] .ack', outcome)


def _registers(driver: WebDriver) -> dict[str, str]:
    cells = driver.find_elements(By.CSS_SELECTOR, "[data-register]")
    return {cell.get_attribute("data-register") or "": cell.text for cell in cells}


def _send_form(driver: WebDriver, command: str, values: dict[str, str]) -> None:
    """Fill a control's form as a user types (a value too long to type is set) and send it."""
    form = driver.find_element(By.CSS_SELECTOR, f'form[data-cmd="{command}"]')
    for name, text in values.items():
        field = form.find_element(By.NAME, name)
        if field.tag_name == "select":
            Select(field).select_by_value(text)
        elif len(text) > 100:
            driver.execute_script("arguments[0].value = arguments[1];", field, text)
        else:
            field.clear()
            field.send_keys(text)
    form.find_element(By.CSS_SELECTOR, "button.send").click()


def test_the_register_values_shown_equal_ctl_status(page: WebDriver, twin: TwinProcess) -> None:
    twin.ctl("load", "--watts", "0")  # the registers stand still: nothing to race
    status = twin.status()
    expected = {code: f"{status[code]:.3f}" for code in _registers(page)}
    assert len(expected) == 4
    until(lambda: _registers(page) == expected, why=f"{_registers(page)} != {expected}")
    assert twin.status()["1-0:1.8.1"] == status["1-0:1.8.1"]  # and still are
    assert _text(page, "#equipment") == status["equipment_id"]
    assert _text(page, "#tariff").startswith(str(status["tariff"]))
    assert len(page.find_elements(By.CSS_SELECTOR, "#phases tbody tr")) == len(status["phases"])


def test_the_display_button_on_the_page_presses_the_meters_button(
    page: WebDriver, twin: TwinProcess
) -> None:
    page.find_element(By.CSS_SELECTOR, 'button[data-press="long"]').click()
    ack = until(
        lambda: _text(page, "#button-ack").startswith("done") and _text(page, "#button-ack")
    )
    assert '"mode":"service"' in ack
    until(lambda: _text(page, "#display-page").startswith("service"), why="the display mode")
    assert twin.status()["ports"]["display"]["mode"] == "service"
    page.find_element(By.CSS_SELECTOR, 'button[data-press="long"]').click()  # back to auto
    until(lambda: _text(page, "#display-page").startswith("auto"), why="back to auto scroll")


def test_a_telegram_on_the_page_has_a_valid_crc(page: WebDriver) -> None:
    until(lambda: _text(page, "#telegram-text").startswith("/"), why="no telegram shown")
    text = _text(page, "#telegram-text")
    assert "\r\n" in text  # shown as it went out: CR LF line ends
    crc = page.find_element(By.CSS_SELECTOR, "#telegrams tbody tr td:nth-child(3)").text
    assert text.rstrip("\r\n").endswith("!" + crc)
    # dsmr_parser, the P1 oracle, checks the CRC-16/ARC (P1 §6.2) and parses it.
    parser = TelegramParser(telegram_specifications.V4, apply_checksum_validation=True)
    telegram = parser.parse(text)
    assert telegram.ELECTRICITY_USED_TARIFF_1.value is not None


def test_power_failure_shows_in_the_log_and_on_the_display_mirror(
    page: WebDriver, twin: TwinProcess
) -> None:
    frame_before = page.find_element(By.ID, "display").get_attribute("src")
    _send_form(page, "power-failure", {"seconds": "600"})
    ack = _ack(page, "power-failure", "done")
    assert '"seconds":600' in ack
    until(lambda: _text(page, "#supply") == "POWER FAILURE", why="the supply badge")
    until(
        lambda: "Power down" in _text(page, "#events-standard"),
        why="no power down in the standard event log",
    )
    until(
        lambda: page.find_element(By.ID, "display").get_attribute("src") != frame_before,
        why="the display mirror did not change",
    )
    assert twin.status()["powered"] is False


def test_a_refused_control_is_acknowledged_with_the_servers_error(page: WebDriver) -> None:
    _send_form(page, "tamper", {"code": "50"})
    ack = _ack(page, "tamper", "refused")
    assert ack == "refused (field): 'code' must be a whole number from 40 to 47; got 50"


def test_out_of_range_and_oversized_values_are_refused_with_a_clear_error(
    page: WebDriver,
) -> None:
    """The server decides (the page checks nothing): 1e30 W, NaN (a number field cannot
    hold it, so none is sent), 1025 characters and 20 000 characters each get their reason."""
    _send_form(page, "load", {"watts": "1e30"})
    assert _ack(page, "load", "refused").startswith(
        "refused (field): 'watts' must be a number from"
    )
    _send_form(page, "load", {"watts": "NaN"})
    assert _ack(page, "load", "refused (field): 'watts' is required")
    _send_form(page, "message", {"text": "x" * 1025})
    assert _ack(page, "message", "refused (field): 'text' must be up to 1024 printable")
    _send_form(page, "message", {"text": "x" * 20_000})
    ack = _ack(page, "message", "refused (too-long)")
    assert ack == "refused (too-long): a control request is at most 16 KiB"


def test_the_gas_meter_controls_show_in_its_view(page: WebDriver, twin: TwinProcess) -> None:
    _send_form(page, "gas", {"battery_low": "true", "fraud": "true"})
    _ack(page, "gas", "done")
    until(lambda: "(battery low, fraud)" in _text(page, "#gasmeter"), why="the status byte")
    _send_form(page, "gas", {"battery_low": "false", "fraud": "false"})
    _ack(page, "gas", "done")
    until(lambda: "battery low" not in _text(page, "#gasmeter"), why="the bits cleared")
    assert twin.status()["ports"]["gasmeter"]["status"] & 0x44 == 0


def test_after_the_twin_restarts_the_open_page_controls_it_again(
    page: WebDriver, twin: TwinProcess
) -> None:
    """The page reconnects by itself and takes the new process's CSRF token."""
    twin.restart()
    until(lambda: _text(page, "#link") == "live", why="the page did not reconnect")
    _send_form(page, "message", {"text": "back again"})
    _ack(page, "message", "done")
    until(lambda: "back again" in _text(page, "#message"), why="the message view")
    assert twin.status()["message"]["text"] == "back again"


def test_without_the_token_a_non_local_binding_refuses_control(browser: WebDriver) -> None:
    state_dir = Path(tempfile.mkdtemp(prefix="twin-web-"))
    port = free_port()
    remote = TwinProcess(state_dir, f"http://0.0.0.0:{port}")
    try:
        url = f"http://127.0.0.1:{port}/"
        browser.get(url)
        notice = until(lambda: _text(browser, "#notice"), why="no refusal shown")
        assert "needs its token" in notice
        assert browser.find_elements(By.CSS_SELECTOR, "form.control") == []
        answer = browser.execute_async_script(
            """const done = arguments[arguments.length - 1];
            fetch("/api/control", {method: "POST", headers: {"Content-Type": "application/json"},
                body: JSON.stringify({cmd: "admin", state: 1})})
              .then(async (r) => done([r.status, await r.text()]));"""
        )
        assert answer[0] == 401
        assert remote.status()["admin_state"] == 2
        # With the token (printed to the service user) the same page controls the meter.
        token = dsmr_twin("web-token", "--state-dir", str(state_dir)).strip()
        browser.get(f"{url}?token={token}")
        until(lambda: browser.current_url == url, why="the token stays in the address")
        until(lambda: _text(browser, "#link") == "live", why="the live stream did not connect")
        form = browser.find_element(By.CSS_SELECTOR, 'form[data-cmd="admin"]')
        form.find_element(By.NAME, "state").send_keys("1")
        form.find_element(By.CSS_SELECTOR, "button.send").click()
        _ack(browser, "admin", "done")
        assert remote.status()["admin_state"] == 1
    finally:
        remote.stop()


def test_the_fleet_overview_filters_sorts_by_status_and_drills_down(browser: WebDriver) -> None:
    fleet_dir = Path(tempfile.mkdtemp(prefix="twin-fleet-"))
    command = [sys.executable, "-m", "twin", "--log-level", "WARNING", "fleet", "run"]
    command += ["--count", "3", "--workers", "1", "--seed", "web lab", "--state-dir"]
    command += [str(fleet_dir), "--p3", f"tcp://127.1.0.1:{free_port()}"]
    fleet = subprocess.Popen(command, stderr=subprocess.DEVNULL)
    port = free_port()
    web = [sys.executable, "-m", "twin", "fleet", "web", "--state-dir", str(fleet_dir)]
    console: subprocess.Popen[bytes] | None = None
    try:
        until((fleet_dir / "fleet.json").exists, STARTUP_S, "no fleet.json")
        console = subprocess.Popen([*web, "--web", f"http://127.0.0.1:{port}"])

        def meters_up() -> bool:
            return bool(asyncio.run(fleet_status(fleet_dir))["meters_up"] == 3)

        until(meters_up, STARTUP_S, "the fleet did not come up")
        asyncio.run(fleet_outage(fleet_dir, [3], 600))
        browser.get(f"http://127.0.0.1:{port}/")
        rows = "#fleet tbody tr"
        until(lambda: len(browser.find_elements(By.CSS_SELECTOR, rows)) == 3, why="3 rows")
        # Sorted by status: what needs a look first (meter 3 is in a power failure).
        until(
            lambda: (
                browser.find_element(By.CSS_SELECTOR, rows).get_attribute("data-state")
                == "power failure"
            ),
            why="the meter in a power failure first",
        )
        assert browser.find_element(By.CSS_SELECTOR, rows).get_attribute("data-meter") == "3"
        browser.find_element(By.CSS_SELECTOR, 'th[data-key="meter"]').click()
        order = [
            r.get_attribute("data-meter") for r in browser.find_elements(By.CSS_SELECTOR, rows)
        ]
        assert order == ["1", "2", "3"]
        second = browser.find_elements(By.CSS_SELECTOR, rows)[1]
        equipment = second.find_elements(By.TAG_NAME, "td")[1].text
        browser.find_element(By.ID, "filter").send_keys(equipment)
        until(lambda: len(browser.find_elements(By.CSS_SELECTOR, rows)) == 1, why="the filter")
        browser.find_element(By.CSS_SELECTOR, f"{rows} a").click()  # meter 2's own console
        until(lambda: browser.current_url.endswith("/meter/2/"), why="the drill-down")
        until(lambda: _text(browser, "#link") == "live", why="meter 2's stream")
        until(lambda: _text(browser, "#equipment") == equipment, why="meter 2's status")
        form = browser.find_element(By.CSS_SELECTOR, 'form[data-cmd="tamper"]')
        form.find_element(By.NAME, "code").send_keys("45")
        form.find_element(By.CSS_SELECTOR, "button.send").click()
        _ack(browser, "tamper", "done")
        until(lambda: "Meter cover closed" in _text(browser, "#events-fraud"), why="its log")
        fleet.terminate()  # the meters go away; the console and the open page stay
        fleet.wait(timeout=30)
        until(
            lambda: "cannot be reached" in _text(browser, "#notice"),
            why="the page does not say its meter is gone",
        )
        assert "Meter cover closed" in _text(browser, "#events-fraud")  # its last views stay
    finally:
        for process in (console, fleet):
            if process is not None:
                process.terminate()
                process.wait(timeout=30)
