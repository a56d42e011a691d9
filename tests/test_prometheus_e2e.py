"""End to end: a real Prometheus scrapes a real imserver process every second.

Clients connect, a dead peer is terminated by the heartbeat, a client leaves, and
what Prometheus stored (read through its query API) must match. Prometheus runs
with the shipped docs/prometheus/prometheus.yml (target, intervals and rule path
adapted), so the shipped alerting rules are loaded and evaluated too.

Plain synchronous tests (no gen_test): the WebSocket clients run on a private
asyncio loop in a helper thread.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml
from tornado.websocket import WebSocketClientConnection, websocket_connect

from imserver.testing import ServerProcess, login
from tests.system import require_binary

pytestmark = pytest.mark.prometheus

DOCS = Path(__file__).resolve().parent.parent / "docs" / "prometheus"
HEARTBEAT = {"ping_interval": 0.5, "ping_timeout": 2.0, "client_interval": 1, "client_timeout": 3}
T = TypeVar("T")


# --- helpers ---


def wait_for(check: Callable[[], T], timeout: float, what: str, every: float = 0.2) -> T:
    """Call `check` until it returns something truthy; fail after `timeout` s with the last result."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {result!r}")
        time.sleep(every)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def http_json(url: str, data: dict[str, Any] | None = None, timeout: float = 5.0) -> Any:
    body = None if data is None else json.dumps(data).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


class Prometheus:
    """A real Prometheus process, and its query API."""

    def __init__(self, binary: str, workdir: Path, target: str) -> None:
        self.binary = binary
        self.workdir = workdir
        self.config_path = workdir / "prometheus.yml"
        config = yaml.safe_load((DOCS / "prometheus.yml").read_text())
        config["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
        config["rule_files"] = [str(DOCS / "alerts.yml")]
        (job,) = config["scrape_configs"]
        job["static_configs"] = [{"targets": [target]}]
        self.config_path.write_text(yaml.safe_dump(config))
        self.log_path = workdir / "prometheus.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, attempts: int = 3) -> Prometheus:
        for _ in range(attempts):  # the free port may be taken between our probe and its bind
            self.port = free_port()
            with open(self.log_path, "ab") as log:
                self.proc = subprocess.Popen(
                    [self.binary, f"--config.file={self.config_path}",
                     f"--storage.tsdb.path={self.workdir / 'tsdb'}",
                     f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
                    stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir)
            deadline = time.monotonic() + 15
            while self.proc.poll() is None and time.monotonic() < deadline:
                try:
                    with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as response:
                        if response.status == 200:
                            return self
                except (urllib.error.URLError, ConnectionError, TimeoutError):
                    pass
                time.sleep(0.05)
            self.kill()
        raise RuntimeError(f"prometheus did not start:\n{self.log()}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def query(self, promql: str) -> dict[tuple[tuple[str, str], ...], float]:
        """An instant query: {labels (sorted, without __name__): value}."""
        url = f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
        answer = http_json(url)
        assert answer["status"] == "success", answer
        assert answer["data"]["resultType"] == "vector", answer
        return {tuple(sorted((k, v) for k, v in r["metric"].items() if k != "__name__")):
                float(r["value"][1]) for r in answer["data"]["result"]}

    def value(self, promql: str) -> float | None:
        """The value of a query that yields at most one series (None: none yet)."""
        result = self.query(promql)
        assert len(result) <= 1, result
        return next(iter(result.values()), None)

    def wait_value(self, promql: str, expected: float, timeout: float) -> None:
        got: list[float | None] = []

        def check() -> bool:
            got.append(self.value(promql))
            return got[-1] == expected

        try:
            wait_for(check, timeout, f"{promql} == {expected}")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; values seen: {sorted(set(map(str, got)))}") from None


Coro = Coroutine[Any, Any, T]


class LoopThread:
    """A private asyncio loop in a thread, for tornado WebSocket clients in sync tests."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="ws-clients", daemon=True)
        self.thread.start()

    def run(self, coro: Coro[T], timeout: float = 10.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        async def cancel_rest() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        self.run(cancel_rest())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


class Clients:
    """Live chat clients: tornado's client answers the server's ping frames by itself."""

    def __init__(self, host: str) -> None:
        self.host = host
        self.loop = LoopThread()
        self.open: list[WebSocketClientConnection] = []

    def connect(self, name: str) -> WebSocketClientConnection:
        token = login(self.host, name)

        async def go() -> WebSocketClientConnection:
            ws = await websocket_connect(f"ws://{self.host}/ws?token={token}")
            welcome = json.loads(await ws.read_message())
            assert welcome["type"] == "welcome", welcome
            return ws

        ws = self.loop.run(go())
        self.open.append(ws)
        return ws

    def close(self, ws: WebSocketClientConnection) -> None:
        async def go() -> None:
            ws.close()
            while await ws.read_message() is not None:
                pass

        self.loop.run(go())
        self.open.remove(ws)

    def close_all(self) -> None:
        for ws in list(self.open):
            try:
                self.close(ws)
            except Exception:  # teardown: the server may be gone already
                self.open.remove(ws)
        self.loop.stop()


def open_dead_peer(host: str, token: str) -> socket.socket:
    """Complete the WebSocket upgrade on a raw socket, then never read or answer anything."""
    hostname, port = host.split(":")
    sock = socket.create_connection((hostname, int(port)), timeout=5)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f"GET /ws?token={token} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
                  f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                  f"Sec-WebSocket-Version: 13\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)
        assert chunk, f"connection closed during the upgrade: {head!r}"
        head += chunk
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


def dropped_by_server(sock: socket.socket, timeout: float) -> bool:
    """Read (and ignore) until the server closes or resets the connection."""
    sock.settimeout(timeout)
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        pass
    return True


# --- fixtures ---


@pytest.fixture
def prometheus_binary() -> str:
    return require_binary("prometheus")


@pytest.fixture
def imserver(tmp_path: Path) -> Iterator[ServerProcess]:
    workdir = tmp_path / "imserver"
    workdir.mkdir()
    server = ServerProcess(workdir, {"heartbeat": HEARTBEAT})
    server.start()
    yield server
    server.kill()


@pytest.fixture
def prometheus(prometheus_binary: str, imserver: ServerProcess, tmp_path: Path) -> Iterator[Prometheus]:
    workdir = tmp_path / "prometheus"
    workdir.mkdir()
    prom = Prometheus(prometheus_binary, workdir, imserver.host).start()
    yield prom
    prom.kill()


@pytest.fixture
def clients(imserver: ServerProcess) -> Iterator[Clients]:
    c = Clients(imserver.host)
    yield c
    c.close_all()


# --- the test ---


def test_prometheus_sees_connections_and_heartbeat_terminations(imserver, prometheus, clients):
    started = time.monotonic()
    live = [clients.connect(f"user{i}") for i in range(3)]

    # The first scrape lands some 5-6 s after Prometheus starts.
    try:
        prometheus.wait_value('up{job="imserver"}', 1, timeout=15)
        prometheus.wait_value("imserver_connections", 3, timeout=5)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nprometheus log:\n{prometheus.log()}") from None

    # A dead peer: upgraded, then silent. It is counted until the heartbeat ends it,
    # ping_timeout (2 s) later: long enough for at least one 1 s scrape to see it.
    dead = open_dead_peer(imserver.host, login(imserver.host, "ghost"))
    opened = time.monotonic()
    try:
        assert dropped_by_server(dead, timeout=HEARTBEAT["ping_timeout"] + 3)
    finally:
        dead.close()
    lived = time.monotonic() - opened
    assert HEARTBEAT["ping_timeout"] <= lived <= HEARTBEAT["ping_timeout"] + HEARTBEAT["ping_interval"] + 1

    prometheus.wait_value('imserver_terminations_total{reason="heartbeat_timeout"}', 1, timeout=5)
    prometheus.wait_value("imserver_connections", 3, timeout=5)
    # Prometheus did see the dead peer while it was connected.
    assert prometheus.value("max_over_time(imserver_connections[1m])") == 4

    # One live client leaves cleanly: N = 4 connected, M = 2 left.
    clients.close(live.pop())
    prometheus.wait_value("imserver_connections", 2, timeout=5)

    closed = prometheus.query("imserver_connections_closed_total")
    assert closed[(("instance", imserver.host), ("job", "imserver"), ("reason", "client_close"))] == 1
    assert closed[(("instance", imserver.host), ("job", "imserver"), ("reason", "heartbeat_timeout"))] == 1
    assert sum(closed.values()) == 2
    terminated = prometheus.query("imserver_terminations_total")
    assert {dict(k)["reason"]: v for k, v in terminated.items() if v} == {"heartbeat_timeout": 1}
    assert prometheus.value("imserver_connections_opened_total") == 4
    assert prometheus.value("imserver_users_online") == 2
    assert prometheus.value("imserver_heartbeat_rtt_seconds_count") > 0
    assert prometheus.value('imserver_build_info{job="imserver"}') == 1

    # The shipped rules are loaded and evaluate cleanly; nothing fires.
    def rules_evaluated() -> list[dict[str, Any]]:
        groups = http_json(f"{prometheus.url}/api/v1/rules")["data"]["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        return rules if rules and all(r["health"] == "ok" for r in rules) else []

    rules = wait_for(rules_evaluated, 5, "the alerting rules to be evaluated")
    assert {r["name"]: r["state"] for r in rules} == {
        "ImserverDown": "inactive", "ImserverHeartbeatTerminationsRising": "inactive",
        "ImserverReconnectStorm": "inactive", "ImserverNoConnections": "inactive",
        # A server alone has no Redis bus and exposes none of its series: quiet.
        "ImserverBrokerDown": "inactive", "ImserverBrokerDeaf": "inactive",
        "ImserverBrokerLagHigh": "inactive"}
    assert time.monotonic() - started < 20
