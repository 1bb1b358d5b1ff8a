"""Headless Chromium for page tests (Debian ``chromium`` + ``chromium-driver``, driven by Selenium).

:func:`chromium` yields a WebDriver with a fresh profile and downloads going to a given
folder, or skips the test with a reason when Chromium, its driver or Selenium is absent
(``make system-deps`` installs the Debian packages). The browser is stopped by the
driver (its own process), never by name.
"""
from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1400,1000")


def _binaries() -> tuple[str, str]:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver") or shutil.which("chromium-driver")
    if not browser or not driver:
        pytest.skip("Debian chromium and chromium-driver are not installed (make system-deps)")
    return browser, driver


@contextlib.contextmanager
def chromium(download_dir: Path) -> Iterator:
    """A headless Chromium WebDriver (see module docstring)."""
    selenium = pytest.importorskip("selenium", reason="selenium is not installed (pip install -e '.[test]')")
    del selenium
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver_path = _binaries()
    profile = tempfile.mkdtemp(prefix="breastlab-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = browser
    for flag in FLAGS:
        opts.add_argument(flag)
    opts.add_argument(f"--user-data-dir={profile}")
    opts.add_experimental_option("prefs", {"download.default_directory": str(download_dir),
                                           "download.prompt_for_download": False})
    driver = webdriver.Chrome(service=Service(driver_path), options=opts)
    try:
        driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow",
                                                               "downloadPath": str(download_dir)})
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
