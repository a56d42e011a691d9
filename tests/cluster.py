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
from tests import pg

REDIS_CANDIDATES = ("redis://127.0.0.1:6379/0",)
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
