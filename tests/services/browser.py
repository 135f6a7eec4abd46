"""Headless Debian Chromium driven by Selenium (``/usr/bin/chromedriver``); no browser is ever downloaded.

``open_browser(tmp_dir)`` yields a ``Browser`` (a WebDriver with a 1280x800 viewport and a fresh profile) and
stops Chromium and chromedriver at the end, checking that no process of that profile is left.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
VIEWPORT = (1280, 800)
#: without the background-networking flags Chromium's own connections are refused by this closed network
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    f"--window-size={VIEWPORT[0]},{VIEWPORT[1]}",
)


def browser_missing() -> str | None:
    """Why the browser test cannot run here, or None."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.access(path, os.X_OK):
            return f"{path} is missing: run `bash scripts/setup_browser.sh` (Debian chromium + chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "the selenium package is missing: run `bash scripts/setup.sh`"
    return None


class Browser:
    """A thin layer over a Selenium WebDriver: explicit waits and lookups by label, role and text."""

    def __init__(self, driver: Any, timeout: float = 90.0) -> None:
        from selenium.webdriver.support.ui import WebDriverWait

        self.driver = driver
        self.timeout = timeout
        self.wait = WebDriverWait(driver, timeout, poll_frequency=0.25)

    def get(self, url: str) -> None:
        self.driver.get(url)

    def until(self, condition: Callable[[Any], Any], timeout: float | None = None, message: str = "") -> Any:
        from selenium.webdriver.support.ui import WebDriverWait

        wait = self.wait if timeout is None else WebDriverWait(self.driver, timeout, poll_frequency=0.25)
        return wait.until(condition, message)

    def xpath(self, xpath: str, root: Any = None, timeout: float | None = None) -> Any:
        """The first visible element for ``xpath`` (under ``root``), waiting for it."""
        from selenium.webdriver.common.by import By

        def visible(_: Any) -> Any:
            for element in (root or self.driver).find_elements(By.XPATH, xpath):
                with contextlib.suppress(Exception):
                    if element.is_displayed():
                        return element
            return False

        return self.until(visible, timeout, f"no visible element for {xpath}")

    def present(self, xpath: str, timeout: float | None = None) -> Any:
        """The first element for ``xpath``, visible or not: Selenium counts an element scrolled out of a
        scrolling container (a long table) as not displayed."""
        from selenium.webdriver.common.by import By

        return self.until(
            lambda d: (d.find_elements(By.XPATH, xpath) or [False])[0], timeout, f"no element for {xpath}"
        )

    def visible(self, xpath: str) -> bool:
        """Whether some element for ``xpath`` is displayed right now."""
        from selenium.webdriver.common.by import By

        for element in self.driver.find_elements(By.XPATH, xpath):
            with contextlib.suppress(Exception):
                if element.is_displayed():
                    return True
        return False

    def button(self, text: str, root: Any = None) -> Any:
        element = self.xpath(f".//button[normalize-space()={_literal(text)}]", root)
        self.until(lambda _: element.is_enabled(), message=f"button {text!r} stays disabled")
        return element

    def dialog(self, title: str) -> Any:
        return self.xpath(f"//*[@role='dialog'][.//h2[contains(normalize-space(), {_literal(title)})]]")

    def field_group(self, label: str, root: Any = None) -> Any:
        """The visible form field (Chakra field group: label, input, help text) whose label starts with ``label``.

        Found through the label's text: Airflow's extra fields have labels whose ``for`` names no input."""
        return self.xpath(f".//div[@role='group'][.//label[starts-with(normalize-space(), {_literal(label)})]]", root)

    def field(self, label: str, root: Any = None, tag: str = "input") -> Any:
        """The input of the form field whose label starts with ``label``."""
        return self.xpath(
            f".//div[@role='group'][.//label[starts-with(normalize-space(), {_literal(label)})]]"
            f"//{tag}[not(@type='hidden') and not(@aria-hidden='true')]",
            root,
        )

    def type_into(self, element: Any, text: str) -> None:
        """Replace the element's value by typing (React sees real key events)."""
        from selenium.webdriver.common.keys import Keys

        self.click(element)
        element.send_keys(Keys.CONTROL, "a")
        element.send_keys(Keys.DELETE)
        element.send_keys(text)

    def choose(self, combobox: Any, typed: str, option: str) -> None:
        """Pick ``option`` in a react-select combobox: type ``typed`` to filter, then click the option whose text is
        exactly ``option`` (Enter would take the first match: "devnet" also matches "devnet_bloxberg")."""
        self.click(combobox)
        combobox.send_keys(typed)
        self.click(self.xpath(f"//*[@role='option' and normalize-space()={_literal(option)}]"))

    def click(self, element: Any) -> Any:
        """Click ``element`` once nothing covers it: a form that is still animating (an accordion opening, a
        dialog sliding in) moves elements under the pointer, and Chrome then refuses the click."""
        from selenium.common.exceptions import ElementClickInterceptedException, ElementNotInteractableException

        def clicked(_: Any) -> bool:
            self.scroll_to(element)
            try:
                element.click()
            except (ElementClickInterceptedException, ElementNotInteractableException):
                return False
            return True

        self.until(clicked, message="the element stayed covered or not interactable")
        return element

    def scroll_to(self, element: Any, block: str = "center") -> None:
        self.driver.execute_script(f"arguments[0].scrollIntoView({{block: '{block}', inline: 'nearest'}})", element)

    def screenshot(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        time.sleep(0.5)  # let transitions settle
        self.driver.save_screenshot(str(path))
        return path

    def save_source(self, path: Path) -> None:
        path.write_text(self.driver.page_source)


def _literal(text: str) -> str:
    """An XPath string literal for ``text``."""
    if "'" not in text:
        return f"'{text}'"
    parts = text.split("'")
    return "concat(" + ', "\'", '.join(f"'{p}'" for p in parts) + ")"


@contextlib.contextmanager
def open_browser(workdir: Path) -> Iterator[Browser]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    # Selenium logs every command (typed text included) at DEBUG: keep the key out of any log
    logging.getLogger("selenium").setLevel(logging.WARNING)
    logging.getLogger("urllib3").setLevel(logging.WARNING)
    profile = workdir / "chromium-profile"
    profile.mkdir(parents=True, exist_ok=True)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    # chromedriver's INFO log records every command with its text: WARNING keeps typed secrets out of it
    service = Service(CHROMEDRIVER, service_args=["--log-level=WARNING"], log_output=str(workdir / "chromedriver.log"))
    driver = webdriver.Chrome(service=service, options=options)
    try:
        driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": VIEWPORT[0], "height": VIEWPORT[1], "deviceScaleFactor": 1, "mobile": False},
        )
        yield Browser(driver)
    finally:
        driver.quit()
        _kill_profile_processes(str(profile))
        shutil.rmtree(profile, ignore_errors=True)


def _kill_profile_processes(profile: str) -> None:
    """Chromium helpers of this profile that outlived ``quit()`` (there should be none)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        pids = [pid for pid, cmd in _processes() if profile in cmd]
        if not pids:
            return
        time.sleep(0.2)
    for pid, cmd in _processes():
        if profile in cmd:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _processes() -> Iterator[tuple[int, str]]:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                yield int(entry.name), (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
