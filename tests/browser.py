"""Debian's Chromium through Playwright's sync API, for browser tests.

Use it from test files that hold no `gen_test` tests (see /work/shared/TESTING.md:
while `sync_playwright()` is alive, asyncio believes a loop is running), and
drive a server started as a subprocess (`imserver.testing.ServerProcess`):

    @pytest.fixture
    def browser() -> Iterator[Browser]:
        with launch_chromium() as chromium:
            yield chromium

When /usr/bin/chromium is missing the test fails on CI (CI=true) and is
skipped elsewhere. Playwright's own browser downloads are never used.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, sync_playwright

CHROMIUM = "/usr/bin/chromium"
IMAGES = Path(__file__).resolve().parent.parent / "docs" / "images"

# --disable-quic etc.: no traffic besides the test's own; --disable-dev-shm-usage:
# small /dev/shm in containers.
CHROMIUM_ARGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage",
)


def chromium_path() -> str:
    """The Chromium executable; when missing, fail on CI and skip elsewhere."""
    if os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK):
        return CHROMIUM
    message = f"{CHROMIUM} is not installed: `make system-deps` installs it"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message} (CI=true: browser tests may not be skipped)", pytrace=False)
    pytest.skip(message)


@contextmanager
def launch_chromium(*extra_args: str, **launch_options: Any) -> Iterator[Browser]:
    """A running headless Chromium, with `extra_args` besides CHROMIUM_ARGS; closed
    (and Playwright stopped) on exit."""
    path = chromium_path()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=path, args=[*CHROMIUM_ARGS, *extra_args], **launch_options)
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def checked_page(browser: Browser, *, timeout: float = 5_000, **context: Any) -> Iterator[Any]:
    """A page in a context of its own (`context`: Playwright's context options),
    `timeout` ms for its waits; at the end, the test fails if the page raised an
    error or its Content-Security-Policy blocked anything."""
    browser_context = browser.new_context(**context)
    page = browser_context.new_page()
    page.set_default_timeout(timeout)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    watch_csp(page, errors)  # a CSP violation counts as a page error
    try:
        yield page
    finally:
        browser_context.close()
    assert not errors, errors


def screenshot_path(name: str, tmp_path: Path) -> Path:
    """Where a test keeps its screenshot: docs/images/ for the README when
    UPDATE_SCREENSHOTS=1 (`make screenshots`), else a temporary file, so that
    running the tests leaves the work tree as it was."""
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        IMAGES.mkdir(parents=True, exist_ok=True)
        return IMAGES / name
    return tmp_path / name


def watch_csp(page: Any, violations: list[str]) -> None:
    """Collect into `violations` what the page's Content-Security-Policy blocks: Chromium
    reports each on the console ("Refused to ... Content Security Policy ...")."""
    def console(message: Any) -> None:
        if "Content Security Policy" in message.text:
            violations.append(message.text)

    page.on("console", console)
