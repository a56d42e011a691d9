"""Two nodes of a cluster for the tests: one PostgreSQL schema, one Redis key prefix,
one auth secret; each node a whole server (its own Runtime, metrics and port).

`redis_url` and `redis_prefix` are fixtures (imported into conftest.py): the
machine's Redis (or $IMSERVER_TEST_REDIS), a fresh prefix per test. Without
Redis the tests that need it skip, saying why; on CI they fail instead.
"""

from __future__ import annotations

import functools
import os
import secrets
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from tornado.httpserver import HTTPServer

from imserver.app import make_app
from imserver.config import Config, replace
from imserver.testing import ServerProcess
from tests import pg
from tests.chatters import JWT_SETTINGS

REDIS_CANDIDATES = ("redis://127.0.0.1:6379/0",)
ROOM = "faults"  # the room the fault tests chat in
CLUSTER_SECRET = "cluster-test-secret-" + "x" * 24


def cluster_settings(dsn: str, schema: str, redis: str, prefix: str) -> dict[str, dict[str, Any]]:
    """The config sections every node of one test cluster shares."""
    return {
        "storage": {"backend": "postgres", "dsn": dsn, "schema": schema},
        "broker": {"backend": "redis", "url": redis, "prefix": prefix,
                   "lease_seconds": 3.0, "liveness_interval_seconds": 0.5},
        "auth": {"secret": CLUSTER_SECRET},
    }


@functools.cache
def find_redis() -> tuple[str | None, str]:
    """The URL of a reachable Redis, or None and why none is."""
    candidates = [os.environ["IMSERVER_TEST_REDIS"]] if os.environ.get("IMSERVER_TEST_REDIS") \
        else list(REDIS_CANDIDATES)
    problems = []
    for url in candidates:
        host_port = url.split("://", 1)[1].split("/", 1)[0]
        host, _, port = host_port.rpartition(":")
        try:
            with socket.create_connection((host, int(port)), timeout=2) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return url, ""
                problems.append(f"{url}: no PONG")
        except OSError as exc:
            problems.append(f"{url}: {exc}")
    return None, ("no Redis reachable (" + "; ".join(problems) + "); start one with: redis-server "
                  "--daemonize yes --bind 127.0.0.1 --port 6379 --save '' --appendonly no")


@pytest.fixture(scope="session")
def redis_url() -> str:
    url, why = find_redis()
    if url is None:
        pg.need(why)
    assert url is not None
    return url


@pytest.fixture
def redis_prefix() -> str:
    """Keys and channels of this test only."""
    return f"imtest-{secrets.token_hex(6)}"


@contextmanager
def second_node(config: Config, data_dir: Path, io_loop: Any) -> Iterator[int]:
    """Another node of the cluster `config` describes, serving on an OS-chosen port."""
    data_dir.mkdir(parents=True, exist_ok=True)
    app = make_app(replace(config, server={"data_dir": str(data_dir)}),
                   registry=CollectorRegistry())
    io_loop.run_sync(app.runtime.open)
    server = HTTPServer(app)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    sock.setblocking(False)
    server.add_sockets([sock])
    try:
        yield sock.getsockname()[1]
    finally:
        server.stop()
        io_loop.run_sync(app.runtime.close, timeout=10)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_nodes(tmp_path: Path, settings: dict[str, dict[str, Any]],
                names: tuple[str, ...] = ("a", "b")) -> list[ServerProcess]:
    """Server processes, one per name, as nodes `node-<name>` of one cluster, in jwt
    mode (tests/chatters.py makes the tokens)."""
    nodes = []
    for name in names:
        workdir = tmp_path / f"node-{name}"
        workdir.mkdir()
        node_settings = {k: dict(v) for k, v in settings.items()}
        node_settings["broker"]["node_id"] = f"node-{name}"
        node_settings["auth"] = JWT_SETTINGS
        node_settings["heartbeat"] = {"ping_interval": 1.0, "ping_timeout": 3.0}
        # Resends after a fault come in bursts far above a person's typing.
        node_settings["limits"] = {"presence_interval": 0.05, "messages_per_second": 1000,
                                   "burst": 1000, **settings.get("limits", {})}
        nodes.append(ServerProcess(workdir, node_settings).start())
    return nodes


async def stored_messages(dsn: str, schema: str) -> list[tuple[int, str]]:
    """(id, cid) of every message of ROOM, in id order, read from the database itself."""
    rows = await pg.execute(dsn, schema, "SELECT id, cid FROM messages WHERE room = $1 ORDER BY id",
                            ROOM)
    return [(int(r[0]), str(r[1])) for r in rows]
