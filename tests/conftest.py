"""Shared fixtures: an app built from a test config, real WebSocket clients."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from tornado.websocket import WebSocketClientConnection, websocket_connect

from imserver.app import ImServerApp, make_app
from imserver.config import Config, config_from_dict, replace
from tests import pg
from tests.backends import Stores
from tests.cluster import cluster_settings, redis_prefix, redis_url, second_node  # noqa: F401

# Short heartbeat settings keep the timing tests fast.
TEST_SETTINGS: dict[str, Any] = {
    "heartbeat": {"ping_interval": 0.3, "ping_timeout": 0.8,
                  "client_interval": 0.5, "client_timeout": 1.5},
    "shutdown": {"spread_seconds": 2.0, "grace_seconds": 1.0},
    # Tests send bursts far above a person's typing; the rate-limit tests set their own.
    "limits": {"messages_per_second": 10_000, "burst": 10_000,
               # presence at the next loop pass, so that tests see one frame per change
               "presence_interval": 0},
}


def make_config(tmp_path: Path, **sections: dict[str, Any]) -> Config:
    data: dict[str, Any] = {k: dict(v) for k, v in TEST_SETTINGS.items()}
    data["server"] = {"data_dir": str(tmp_path)}
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    return config_from_dict(data)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A test module with CLUSTER_TOO = True runs its chat tests twice: against one
    server, and against two nodes of a cluster with the clients spread over both
    (only the latter for a test marked `cluster_only`)."""
    if getattr(metafunc.module, "CLUSTER_TOO", False) and "chat" in metafunc.fixturenames:
        only_two = metafunc.definition.get_closest_marker("cluster_only") is not None
        metafunc.parametrize("topology", ["two"] if only_two else ["one", "two"], indirect=True)


@pytest.fixture
def topology(request: pytest.FixtureRequest) -> str:
    return getattr(request, "param", "one")


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return make_config(tmp_path)


@pytest.fixture
def served_config(config: Config, topology: str, request: pytest.FixtureRequest) -> Config:
    """The config the test server runs: a module's `config`, made a node of a cluster
    (PostgreSQL, Redis, one secret) when the topology is two nodes."""
    if topology == "one":
        return config
    sections = cluster_settings(
        request.getfixturevalue("pg_dsn"), request.getfixturevalue("pg_schema"),
        request.getfixturevalue("redis_url"), request.getfixturevalue("redis_prefix"))
    if config.auth.mode == "jwt":  # the module's own tokens: keep its auth settings
        del sections["auth"]
    return replace(config, **sections)


@pytest.fixture
def app(served_config: Config, io_loop: Any) -> Iterator[ImServerApp]:
    application = make_app(served_config, registry=CollectorRegistry())
    io_loop.run_sync(application.runtime.open)
    yield application
    io_loop.run_sync(application.runtime.close, timeout=10)


@pytest.fixture(scope="session")
def pg_dsn() -> str:
    """The shared PostgreSQL server (skips, or fails on CI, when it is not there)."""
    return pg.require_postgres()


@pytest.fixture
def pg_schema(pg_dsn: str) -> Iterator[str]:
    """A fresh schema name on the shared server, dropped after the test."""
    with pg.fresh_schema(pg_dsn) as schema:
        yield schema


@pytest.fixture(params=["sqlite", "postgres"])
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Stores:
    """Each store test that holds for both stores runs on both."""
    if request.param == "sqlite":
        return Stores("sqlite", path=tmp_path / "data" / "chat.db")
    return Stores("postgres", dsn=request.getfixturevalue("pg_dsn"),
                  schema=request.getfixturevalue("pg_schema"))


@pytest.fixture
def metric(app: ImServerApp) -> Any:
    """metric(name, **labels) -> the current sample value (0 when absent)."""

    def read(name: str, **labels: str) -> float:
        app.runtime.refresh_gauges()
        value = app.runtime.metrics.registry.get_sample_value(name, labels)
        return 0.0 if value is None else value

    return read


class Client:
    """A real WebSocket chat client for tests."""

    def __init__(self, ws: WebSocketClientConnection) -> None:
        self.ws = ws
        self.welcome: dict[str, Any] = {}

    def send(self, frame: dict[str, Any] | str) -> None:
        self.ws.write_message(frame if isinstance(frame, str) else json.dumps(frame))

    async def recv_raw(self, timeout: float = 5.0) -> str | None:
        msg = await asyncio.wait_for(self.ws.read_message(), timeout)
        assert not isinstance(msg, bytes)
        return msg

    async def recv(self, timeout: float = 5.0) -> dict[str, Any]:
        msg = await self.recv_raw(timeout)
        assert msg is not None, f"connection closed ({self.ws.close_code} {self.ws.close_reason})"
        frame: dict[str, Any] = json.loads(msg)
        return frame

    async def expect(self, kind: str, timeout: float = 5.0) -> dict[str, Any]:
        frame = await self.recv(timeout)
        assert frame["type"] == kind, frame
        return frame

    async def nothing(self, wait: float = 0.3) -> None:
        """Assert that no frame arrives within `wait` seconds."""
        try:
            msg = await asyncio.wait_for(self.ws.read_message(), wait)
        except TimeoutError:
            return
        raise AssertionError(f"unexpected frame {msg!r}")

    async def closed(self, timeout: float = 5.0) -> int | None:
        """Wait for the server to close; returns the close code."""
        while True:
            msg = await asyncio.wait_for(self.ws.read_message(), timeout)
            if msg is None:
                return self.ws.close_code

    async def join(self, room: str, **extra: Any) -> dict[str, Any]:
        self.send({"type": "join", "room": room, **extra})
        return await self.expect("joined")

    def close(self) -> None:
        self.ws.close()


class ChatServer:
    """Logs users in and opens clients against the test server; closes them all at teardown."""

    def __init__(self, host: str, http_client: AsyncHTTPClient, *,
                 others: list[str] | None = None) -> None:
        self.host = host
        # With other nodes, each new client goes to the next node in turn.
        self.hosts = [host, *(others or [])]
        self.http = http_client
        self.clients: list[Client] = []
        # A name logged in again within a test is the same person: the login carries
        # that user's last token, and keeps its (opaque) user id.
        self.tokens: dict[str, str] = {}
        self.ids: dict[str, str] = {}

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    async def login(self, name: str) -> str:
        headers = {"Content-Type": "application/json"}
        if name in self.tokens:
            headers["Authorization"] = f"Bearer {self.tokens[name]}"
        response = await self.http.fetch(
            f"{self.url}/api/login", method="POST", body=json.dumps({"name": name}),
            headers=headers)
        body = json.loads(response.body)
        token: str = body["token"]
        self.tokens[name] = token
        self.ids[name] = body["user"]["id"]
        return token

    def id(self, name: str) -> str:
        """The user id of a name logged in through this helper."""
        return self.ids[name]

    async def connect(self, name: str | None = None, *, token: str | None = None,
                      query: str = "", headers: dict[str, str] | None = None) -> Client:
        if token is None:
            assert name is not None
            token = await self.login(name)
        node = self.hosts[len(self.clients) % len(self.hosts)]
        url = f"ws://{node}/ws?token={token}{query}"
        ws = await websocket_connect(HTTPRequest(url, headers=headers))
        client = Client(ws)
        self.clients.append(client)
        client.welcome = await client.expect("welcome")
        return client

    async def refused(self, url_suffix: str, headers: dict[str, str] | None = None) -> int:
        """Try an upgrade that must be refused; returns the HTTP status."""
        with pytest.raises(HTTPClientError) as info:
            await websocket_connect(HTTPRequest(f"ws://{self.host}/ws{url_suffix}", headers=headers))
        return info.value.code

    def close_all(self) -> None:
        for client in self.clients:
            client.close()


@pytest.fixture
def chat(http_server: Any, http_client: AsyncHTTPClient, http_port: int, topology: str,
         served_config: Config, io_loop: Any, tmp_path: Path) -> Iterator[ChatServer]:
    if topology == "one":
        server = ChatServer(f"127.0.0.1:{http_port}", http_client)
        yield server
        server.close_all()
        return
    with second_node(served_config, tmp_path / "node-b", io_loop) as other_port:
        server = ChatServer(f"127.0.0.1:{http_port}", http_client,
                            others=[f"127.0.0.1:{other_port}"])
        yield server
        server.close_all()
