"""The admin dashboard in Chromium with thousands of connections on a two-node cluster.

A Node load generator (bench/loadgen/idle.mjs) holds CONNECTIONS connections spread
over two real server processes (PostgreSQL, Redis); one more user, the needle, is
connected to node B from this test. With the dashboard of node A open:

- the first rows show within 1 s of the login;
- the page's main thread stays responsive while the load generator replaces
  CHURN connections a second (a small reconnect storm): a trivial script call
  from the test is answered within 100 ms at p99, sampled every 0.05 s over 10 s
  (the issue measured 0.8 s median, 1.4 s worst, sampled every 0.5 s, at 5,000
  connections, before);
- the search finds the needle among all, on the other node;
- a disconnect from the filtered view reaches the needle (4003 and the reason).

About 40 s on the 2-core VM. Sync Playwright only (see /work/shared/TESTING.md).
"""

from __future__ import annotations

import asyncio
import json
import math
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect
from tornado.websocket import WebSocketClientConnection, websocket_connect

from imserver.testing import ServerProcess
from tests.browser import checked_page, launch_chromium
from tests.chatters import JWT_SETTINGS, app_token
from tests.cluster import cluster_settings

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]

TOKEN = "dashboard-scale-admin-token"
CONNECTIONS = 5000  # the figures are at 5,000
PER_USER = 20
CHURN = 100  # connections replaced each second while the main thread is sampled
SAMPLE_EVERY = 0.05  # s: 200 calls, so that p99 is not the one worst (a busy CI machine stalls now and then)
SAMPLE_FOR = 10.0  # s
FIRST_ROWS = 1.0  # s, from the login
RESPONSIVE_P99 = 0.100  # s
NEEDLE = "needle-7f3a"


def node(tmp_path: Path, name: str, pg_dsn: str, pg_schema: str, redis_url: str,
         redis_prefix: str) -> ServerProcess:
    settings: dict[str, Any] = cluster_settings(pg_dsn, pg_schema, redis_url, redis_prefix)
    settings["broker"]["node_id"] = f"node-{name}"
    settings["auth"] = JWT_SETTINGS
    settings["admin"] = {"token": TOKEN}
    # One address opens thousands of connections: the abuse limits would refuse it.
    settings["limits"] = {"max_connections_per_address": 100_000, "max_connections_per_user": 100_000,
                          "max_pending_per_address": 1000, "max_pending_connections": 1000}
    workdir = tmp_path / f"node-{name}"
    workdir.mkdir()
    return ServerProcess(workdir, settings)


class Needle:
    """One user's connection, on a loop of its own in a thread: is it closed, and how."""

    def __init__(self, host: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="needle", daemon=True)
        self.thread.start()
        self.closed = threading.Event()
        self.close: tuple[int | None, str | None] = (None, None)
        self.ws: WebSocketClientConnection | None = None
        url = f"ws://{host}/ws?token={app_token('needle-user', NEEDLE)}"

        def on_message(message: str | bytes | None) -> None:
            if message is None:
                assert self.ws is not None
                self.close = (self.ws.close_code, self.ws.close_reason)
                self.closed.set()

        async def open_it() -> WebSocketClientConnection:
            return await websocket_connect(url, on_message_callback=on_message)

        self.ws = asyncio.run_coroutine_threadsafe(open_it(), self.loop).result(10)

    def stop(self) -> None:
        async def close() -> None:
            if self.ws is not None:
                self.ws.close()
            await asyncio.sleep(0.1)

        try:
            asyncio.run_coroutine_threadsafe(close(), self.loop).result(5)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)
            self.loop.close()


@pytest.fixture
def nodes(tmp_path: Path, pg_dsn: str, pg_schema: str, redis_url: str,
          redis_prefix: str) -> Iterator[list[ServerProcess]]:
    started = []
    try:
        for name in ("a", "b"):
            started.append(node(tmp_path, name, pg_dsn, pg_schema, redis_url, redis_prefix).start())
        yield started
    finally:
        for server in started:
            server.stop()
    for server in started:
        assert "Traceback" not in server.output(), server.output()


@pytest.fixture
def loadgen(nodes: list[ServerProcess]) -> Iterator[Any]:
    from bench.node import NodeLoadgen, ensure_installed

    try:
        ensure_installed()
    except (OSError, SystemExit, Exception) as exc:  # no node, or npm could not install ws
        from tests import pg
        pg.need(f"the Node load generator cannot run here: {exc!r}")
    users = math.ceil(CONNECTIONS / PER_USER)
    gen = NodeLoadgen("idle.mjs", {
        "base": f"http://{nodes[0].host}", "ws": [f"ws://{n.host}" for n in nodes],
        "connections": CONNECTIONS, "per_user": PER_USER, "concurrency": 64, "lean": True,
        "user_tokens": [app_token(f"load{u}", f"load{u}") for u in range(users)]})
    try:
        gen.expect("logged_in", timeout=60)
        gen.send("open")
        opened = gen.expect("opened", timeout=120)
        assert opened["connected"] == CONNECTIONS, opened
        yield gen
    finally:
        gen.close()


@pytest.fixture
def browser() -> Iterator[Browser]:
    with launch_chromium() as chromium:
        yield chromium


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    with checked_page(browser, timeout=10_000, viewport={"width": 1280, "height": 800},
                      color_scheme="light") as page:
        yield page


def percentile(values: list[float], q: float) -> float:
    ranked = sorted(values)
    return ranked[max(0, math.ceil(q / 100 * len(ranked)) - 1)]


def test_the_dashboard_stays_fast_with_thousands_of_connections_across_two_nodes(
        nodes: list[ServerProcess], loadgen: Any, page: Page) -> None:
    node_a, node_b = nodes
    needle = Needle(node_b.host)
    try:
        # Node A counts every connection of both nodes (B's through the directory).
        deadline = time.monotonic() + 30
        while _connections(node_a) < CONNECTIONS + 1:
            assert time.monotonic() < deadline, f"node A lists {_connections(node_a)} connections"
            time.sleep(0.2)

        page.goto(f"http://{node_a.host}/admin")
        page.get_by_test_id("admin-token").fill(TOKEN)
        started = time.perf_counter()
        page.get_by_test_id("admin-login").click()
        page.wait_for_selector('[data-testid="client-row"]', state="visible")
        first_rows = time.perf_counter() - started
        expect(page.get_by_test_id("total-connections")).to_have_text(f"{CONNECTIONS + 1:,}")
        shown = page.get_by_test_id("client-row").count()
        assert shown <= 25, f"{shown} rows rendered: the page must show a window, not the world"

        # A trivial script call, every 0.1 s for 10 s, while connections come and go.
        loadgen.send("churn", per_second=CHURN, seconds=int(SAMPLE_FOR) + 1)
        waits = []
        end = time.monotonic() + SAMPLE_FOR
        while time.monotonic() < end:
            asked = time.perf_counter()
            page.evaluate("() => 1")
            waits.append(time.perf_counter() - asked)
            time.sleep(max(0.0, SAMPLE_EVERY - (time.perf_counter() - asked)))
        churned = loadgen.expect("churned", timeout=60)
        p50, p99 = percentile(waits, 50), percentile(waits, 99)
        print(f"\nfirst rows {1000 * first_rows:.0f} ms after the login; script calls answered in "
              f"p50 {1000 * p50:.1f} ms, p99 {1000 * p99:.1f} ms, max {1000 * max(waits):.1f} ms "
              f"({len(waits)} samples while {churned['closed']} connections were replaced)")
        assert first_rows < FIRST_ROWS, f"first rows after {first_rows:.2f} s"
        assert p99 < RESPONSIVE_P99, f"p99 {p99 * 1000:.0f} ms over {len(waits)} calls"
        assert churned["failed"] == 0, churned

        # The search finds the needle among all, on node B; its row disconnects it there.
        page.get_by_test_id("filter").fill("needle")
        rows = page.get_by_test_id("client-row")
        expect(rows).to_have_count(1)
        row = page.locator(f'[data-testid="client-row"][data-name="{NEEDLE}"]')
        expect(row.locator('[data-col="node"]')).to_have_text("node-b")
        expect(page.locator('[data-part="clients-count"]')).to_have_text(f"1 of {CONNECTIONS + 1:,}")
        row.get_by_test_id("disconnect").click()
        page.get_by_test_id("reason-input").fill("Found you")
        page.get_by_test_id("confirm").click()
        assert needle.closed.wait(10), "the needle is still connected"
        assert needle.close == (4003, "Found you")
        expect(rows).to_have_count(0, timeout=10_000)
    finally:
        needle.stop()


def _connections(server: ServerProcess) -> int:
    import urllib.request

    request = urllib.request.Request(f"http://{server.host}/admin/api/stats",
                                     headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return int(json.loads(response.read())["connections"])
