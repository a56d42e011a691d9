"""The Vue example (examples/vue.html) in Chromium against a real server: the
npm package's files as the server serves them (/static/sdk/), useChat over a
real connection, a message of mine from pending to acknowledged, and one
from someone else arriving live.

The example loads Vue from a CDN: the test serves Vue's browser build from
the client tests' node_modules/ (`make test-js` installs it) in its place, and
the example's files under /examples/ on the server's origin, as the nginx of
examples/README.md would. Without them it fails on CI (CI=true) and is
skipped elsewhere.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Route, expect

from imserver.testing import ServerProcess
from tests.browser import launch_chromium
from tests.test_chat_browser import say_from_outside

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
VUE_BUILD = ROOT / "node_modules" / "vue" / "dist" / "vue.esm-browser.prod.js"
TYPES = {".html": "text/html", ".js": "text/javascript"}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path).start()
    yield proc
    proc.stop()
    log = proc.log_path.read_text(encoding="utf-8")
    assert "Traceback" not in log, log


@pytest.fixture
def browser() -> Iterator[Browser]:
    if not VUE_BUILD.is_file():
        message = f"{VUE_BUILD} is missing: `make test-js` installs it"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message} (CI=true: this test may not be skipped)", pytrace=False)
        pytest.skip(message)
    # A page the test serves itself (page.route) has no address, which Chromium counts
    # as public: its WebSocket to 127.0.0.1 would be blocked as a request into the local
    # network. Served by nginx on the server's origin, as in examples/README.md, it is not.
    with launch_chromium("--disable-features=LocalNetworkAccessChecks") as chromium:
        yield chromium


def test_the_vue_example_chats_through_the_package(browser: Browser, server: ServerProcess) -> None:
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))

    def example(route: Route) -> None:
        path = EXAMPLES / route.request.url.split("/examples/", 1)[1]
        route.fulfill(body=path.read_bytes(), content_type=TYPES[path.suffix])

    def vue(route: Route) -> None:
        route.fulfill(body=VUE_BUILD.read_bytes(), content_type="text/javascript")

    page.route(f"http://{server.host}/examples/**", example)
    page.route(re.compile(r"^https://unpkg\.com/vue@"), vue)
    page.goto(f"http://{server.host}/examples/vue.html")

    status = page.locator("main > p")
    expect(status).to_have_text(re.compile(r"^guest-\w+ · open$"))
    me = status.inner_text().split(" · ")[0]
    page.get_by_label("Message").fill("hello from vue")
    page.get_by_role("button", name="Send").click()
    mine = page.locator("li", has_text=f"{me}: hello from vue")
    expect(mine).to_have_count(1)
    expect(mine).not_to_have_class("pending")  # acknowledged
    expect(page.get_by_label("Message")).to_have_value("")

    say_from_outside(server, "bob", "general", ["hi vue"])
    expect(page.locator("li", has_text="bob: hi vue")).to_have_count(1)
    expect(page.locator("li")).to_have_count(2)
    assert errors == []
    page.close()
