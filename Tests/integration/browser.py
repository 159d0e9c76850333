"""Headless Chromium (Debian's chromium + chromedriver) for the browser tests, and a polling helper."""
import time
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
BASE_ARGUMENTS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--mute-audio",
                  "--autoplay-policy=no-user-gesture-required")


def make_chrome(*arguments, width=1280, height=720, script_timeout=10):
    """A headless Chromium with the browser console log captured (`driver.get_log("browser")`)."""
    assert CHROMIUM.exists() and CHROMEDRIVER.exists(), "the browser tests need Debian's chromium and chromium-driver (make test-deps)"
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (*BASE_ARGUMENTS, f"--window-size={width},{height}", *arguments):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    browser = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    browser.set_page_load_timeout(15)
    browser.set_script_timeout(script_timeout)
    return browser


def wait_for(predicate, timeout=10.0, interval=0.05, message="condition"):
    """Polls `predicate` until it returns something truthy; fails with the last value seen. An exception in the
    predicate (a stale element while the page re-renders) counts as not yet."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
        except Exception as err:  # noqa: BLE001
            last = err
        if last and not isinstance(last, Exception):
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message} (last value: {last!r})")
