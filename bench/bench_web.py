"""The web console in a browser: first paint, update latency, the twin's CPU with a page open.

    python bench/bench_web.py [--loads 5] [--changes 8] [--cpu-s 30] [--screenshot PNG]

Starts `dsmr-twin run` at speed 1 (the default ports: P1 on a pty, P2 with the simulated gas
meter, P3 with the simulated modem; P3 and the console on free loopback ports), lives through
30 hours of meter time with `ctl advance` (so the chart and the load profile have something to
show), then drives Debian's headless chromium (through /usr/bin/chromedriver;
`scripts/ensure-browser` installs both):

- first paint: the page loaded `--loads` times, the Paint Timing API's first-contentful-paint
  (target <= 300 ms);
- update latency: `--changes` controls (`tamper`) sent by the page itself with fetch, from
  just before the request to the moment the new event's row is in the fraud log view, by
  a MutationObserver (target <= 200 ms);
- CPU: the twin's process CPU time (utime + stime from /proc) over `--cpu-s` real seconds with
  the page open and the stream live, as a share of one core (target <= 5 %), and the same
  with no page open for comparison.

`--screenshot PNG` saves the page (the README's picture, docs/web-console.png).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from PIL import Image
from selenium import webdriver

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests package
from tests.browser import headless_chromium
from tests.support import free_port

ROOT = Path(__file__).resolve().parents[1]
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

# Sends one tamper control from the page and resolves with the milliseconds until the fraud
# log view shows it (the row count of its table changes).
UPDATE_LATENCY_JS = """
const [code, done] = [arguments[0], arguments[arguments.length - 1]];
const body = document.querySelector("#events-fraud tbody");
const before = body.firstChild ? body.firstChild.textContent : "";
const t0 = performance.now();
const observer = new MutationObserver(() => {
  if (body.firstChild && body.firstChild.textContent !== before) {
    observer.disconnect();
    done(performance.now() - t0);
  }
});
observer.observe(body, {childList: true, subtree: true, characterData: true});
fetch("/api/control", {method: "POST",
  headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf},
  body: JSON.stringify({cmd: "tamper", code: code})});
"""


def ctl(state_dir: Path, *args: str) -> Any:
    command = [sys.executable, "-m", "twin", "ctl", "--state-dir", str(state_dir), *args]
    out = subprocess.run(command, capture_output=True, text=True, check=True, timeout=900)
    return json.loads(out.stdout) if args[0] == "status" else out.stdout


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime


def cpu_share(pid: int, seconds: float) -> float:
    began, cpu = time.monotonic(), cpu_seconds(pid)
    time.sleep(seconds)
    return (cpu_seconds(pid) - cpu) / (time.monotonic() - began)


def start_twin(state_dir: Path, port: int) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "twin", "run", "--state-dir", str(state_dir)]
    command += ["--speed", "1", "--p1", "pty://p1", "--p3", f"tcp://127.0.0.1:{free_port()}"]
    command += ["--web", f"http://127.0.0.1:{port}"]
    twin = subprocess.Popen(command, stderr=subprocess.DEVNULL, cwd=ROOT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if "web" in ctl(state_dir, "status", "--json")["ports"]:
                return twin
        except subprocess.CalledProcessError:
            time.sleep(0.2)
    twin.kill()
    raise SystemExit("the twin did not start")


def wait_live(driver: webdriver.Chrome) -> None:
    deadline = time.monotonic() + 10
    script = "return document.querySelector('#link').textContent"
    while driver.execute_script(script) != "live":
        if time.monotonic() > deadline:
            raise SystemExit("the page's stream did not connect")
        time.sleep(0.02)


def first_contentful_paint(driver: webdriver.Chrome) -> float:
    """The page's first-contentful-paint (ms since navigation), once the browser reports it."""
    script = "return performance.getEntriesByName('first-contentful-paint').map(e => e.startTime)"
    deadline = time.monotonic() + 10
    while not (found := driver.execute_script(script)):
        if time.monotonic() > deadline:
            raise SystemExit("the browser reported no first-contentful-paint")
        time.sleep(0.02)
    return float(found[0])


def first_paints(driver: webdriver.Chrome, url: str, loads: int) -> list[float]:
    paints = []
    for _ in range(loads):
        driver.get(url)
        wait_live(driver)
        paints.append(first_contentful_paint(driver))
    return paints


def save_screenshot(driver: webdriver.Chrome, path: Path) -> None:
    """The page as a PNG of 256 colours (a UI has few; a third of the size in the repository)."""
    image = Image.open(io.BytesIO(driver.get_screenshot_as_png())).convert("RGB")
    image.quantize(256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loads", type=int, default=5)
    parser.add_argument("--changes", type=int, default=8)
    parser.add_argument("--cpu-s", type=float, default=30.0)
    parser.add_argument("--advance-hours", type=float, default=30.0)
    parser.add_argument("--screenshot", type=Path)
    args = parser.parse_args()
    state_dir = Path(tempfile.mkdtemp(prefix="bench-web-"))
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    twin = start_twin(state_dir, port)
    driver = None
    try:
        ctl(state_dir, "advance", "--hours", str(args.advance_hours))
        idle = cpu_share(twin.pid, args.cpu_s)
        driver = headless_chromium(1400, 2000)
        paints = first_paints(driver, url, args.loads)
        latencies = [
            driver.execute_async_script(UPDATE_LATENCY_JS, 40 + i % 8) for i in range(args.changes)
        ]
        open_page = cpu_share(twin.pid, args.cpu_s)
        if args.screenshot is not None:
            driver.get(url)
            wait_live(driver)
            time.sleep(2.5)  # a display frame and the charts drawn
            height = driver.execute_script("return document.body.scrollHeight")
            driver.set_window_size(1400, int(height) + 40)
            time.sleep(0.5)
            save_screenshot(driver, args.screenshot)
    finally:
        if driver is not None:
            driver.quit()
        twin.terminate()
        twin.wait(timeout=20)
    print(
        f"first paint (first-contentful-paint) over {len(paints)} loads: median"
        f" {statistics.median(paints):.0f} ms, max {max(paints):.0f} ms (target <= 300 ms)"
    )
    print(
        f"update latency, control to the log view, over {len(latencies)} changes: median"
        f" {statistics.median(latencies):.0f} ms, max {max(latencies):.0f} ms (target <= 200 ms)"
    )
    print(
        f"twin CPU at speed 1 over {args.cpu_s:g} s: one page open {open_page * 100:.1f} % of a"
        f" core, no page {idle * 100:.1f} % (target <= 5 %)"
    )
    if args.screenshot is not None:
        print(f"screenshot: {args.screenshot}")


if __name__ == "__main__":
    main()
