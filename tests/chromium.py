"""Headless Chromium for the browser tests: Debian's ``chromium`` + ``chromedriver`` through current selenium.

Our own small driver wrapper instead of ``dash[testing]``: that extra caps selenium at 4.2, which pins
urllib3 1.26 and breaks ``import locust``. :class:`Page` keeps the few waits the tests use.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
CHROMEDRIVER = shutil.which("chromedriver")
MISSING = None if (CHROMIUM and CHROMEDRIVER) else "needs Debian's chromium and chromium-driver"
"""Why browser tests cannot run here, or ``None`` when they can."""

BASE_ARGUMENTS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def chrome(width: int, height: int, *extra: str) -> Any:
    """A new headless Chromium with a ``width`` x ``height`` window; the caller quits it."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    if MISSING:
        raise RuntimeError(MISSING)
    options = webdriver.ChromeOptions()
    for argument in (*BASE_ARGUMENTS, f"--window-size={width},{height}", *extra):
        options.add_argument(argument)
    options.binary_location = CHROMIUM
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    return driver


class Page:
    """A driver plus the CSS-selector waits the browser tests use."""

    def __init__(self, driver: Any) -> None:
        self.driver = driver

    def find_element(self, selector: str) -> Any:
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.CSS_SELECTOR, selector)

    def find_elements(self, selector: str) -> list[Any]:
        from selenium.webdriver.common.by import By

        return self.driver.find_elements(By.CSS_SELECTOR, selector)

    def wait_for_element_by_css_selector(self, selector: str, timeout: float = 10) -> Any:
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support import expected_conditions as ec
        from selenium.webdriver.support.ui import WebDriverWait

        return WebDriverWait(self.driver, timeout).until(
            ec.presence_of_element_located((By.CSS_SELECTOR, selector)),
            f"no element matches {selector!r} after {timeout} s",
        )

    def wait_for_contains_text(self, selector: str, text: str, timeout: float = 10) -> None:
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support import expected_conditions as ec
        from selenium.webdriver.support.ui import WebDriverWait

        WebDriverWait(self.driver, timeout).until(
            ec.text_to_be_present_in_element((By.CSS_SELECTOR, selector), text),
            f"{selector!r} does not contain {text!r} after {timeout} s",
        )

    def select_dcc_dropdown(self, selector: str, index: int) -> None:
        """Open the ``dcc.Dropdown`` at ``selector`` and pick its option number ``index``."""
        from selenium.webdriver.common.by import By

        self.find_element(selector).click()
        menu = self.wait_for_element_by_css_selector(".dash-dropdown-options")
        options = menu.find_elements(By.CSS_SELECTOR, ".dash-dropdown-option")
        if len(options) <= index:
            raise AssertionError(f"{selector!r} offers {len(options)} option(s), not option {index}")
        options[index].click()


@contextmanager
def page(width: int, height: int, *extra: str) -> Iterator[Page]:
    """A :class:`Page` on a fresh headless Chromium, quit on exit."""
    driver = chrome(width, height, *extra)
    try:
        yield Page(driver)
    finally:
        driver.quit()
