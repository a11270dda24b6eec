"""A real headless Chromium (Debian's chromium + chromium-driver) driven by Selenium, and the app served by
uvicorn on a free loopback port in a thread: fixtures `browser` and helper `LiveServer`.

Nothing is downloaded by Selenium Manager: the driver and browser paths are given. When chromedriver is
missing and we run as root, the Debian packages are installed (apt-get); otherwise the test fails with
what to install. A browser test never skips.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import pytest
import uvicorn
from fastapi import FastAPI
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS = Path(__file__).resolve().parents[1] / "build" / "test-artifacts"
PACKAGES = ("chromium", "chromium-driver")


def ensure_chromium() -> None:
    """Install Debian's chromium and chromium-driver when they are missing (as root), else fail clearly."""
    if CHROMEDRIVER.exists() and CHROMIUM.exists():
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.fail(f"{CHROMEDRIVER} or {CHROMIUM} is missing: install the Debian packages "
                    f"{' and '.join(PACKAGES)} (sudo apt-get install -y {' '.join(PACKAGES)})", pytrace=False)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update"], ["apt-get", "install", "-y", *PACKAGES]):
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900, check=False)
        if done.returncode != 0:
            pytest.fail(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr[-2000:]}", pytrace=False)
    if not CHROMEDRIVER.exists():
        pytest.fail(f"{CHROMEDRIVER} still missing after installing {' '.join(PACKAGES)}", pytrace=False)


@pytest.fixture
def browser() -> Iterator[webdriver.Chrome]:
    """A headless Chromium at laptop size (1366 wide)."""
    ensure_chromium()
    os.environ["SE_OFFLINE"] = "true"  # belt and braces: Selenium Manager must never reach the network
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1366,900", "--hide-scrollbars", "--lang=en-GB", "--no-first-run",
                "--disable-extensions", "--disable-background-networking"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def screenshot(driver: webdriver.Chrome, name: str, width: int, *, mobile: bool = False) -> Path:
    """A full-page PNG at `width` CSS pixels into build/test-artifacts/ (a phone: mobile viewport, 2x pixels)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    metrics = {"width": width, "height": 900, "deviceScaleFactor": 2 if mobile else 1, "mobile": mobile}
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
    height = int(driver.execute_script("return document.documentElement.scrollHeight"))
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {**metrics, "height": min(height, 6000)})
    path = ARTIFACTS / name
    driver.save_screenshot(str(path))
    driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LiveServer:
    """The app under uvicorn on 127.0.0.1 in a thread, for as long as the `with` block lasts."""

    def __init__(self, app: FastAPI) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on",
                                timeout_graceful_shutdown=2)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="live-server", daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn did not start on {self.url}")
            time.sleep(0.05)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)
