"""A two-node cluster under faults: real server processes on PostgreSQL and Redis,
clients chatting on both nodes while a node is killed, Redis restarts or drops a
node's connections, or PostgreSQL restarts. Afterwards every acknowledged message
is stored once, and every client was given every message of the room once, in
order (tests/chatters.py keeps the books).
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable

import pytest

from imserver.testing import ServerProcess
from tests import pg
from tests.chatters import Chatter, Tally
from tests.cluster import ROOM, cluster_settings, free_port, start_nodes, stored_messages
from tests.core import run

pytestmark = pytest.mark.timeout(150)

ROUNDS = 40
INTERVAL = 0.03  # between rounds: every chatter says one message per round


async def chat_through(chatters: list[Chatter], fault: Callable[[], Awaitable[None]],
                       *, fault_at: int = ROUNDS // 3) -> None:
    for chatter in chatters:
        await chatter.start()
    for number in range(ROUNDS):
        if number == fault_at:
            await fault()
        for chatter in chatters:
            chatter.say()
        await asyncio.sleep(INTERVAL)


async def settled(chatters: list[Chatter], dsn: str, schema: str, timeout: float = 60) -> Tally:
    """Wait until every message is acked and every client was given all it must get."""
    deadline = time.monotonic() + timeout
    while True:
        stored = await stored_messages(dsn, schema)
        tally = Tally.of(chatters, stored)
        if tally.clean() or time.monotonic() > deadline:
            return tally
        await asyncio.sleep(0.2)


def report(name: str, tally: Tally, chatters: list[Chatter]) -> None:
    print(f"{name}: {tally} reconnects={sum(c.reconnects for c in chatters)} "
          f"unavailable={sum(c.unavailable for c in chatters)}")


def chatters_on(nodes: list[ServerProcess], per_node: int = 3) -> list[Chatter]:
    hosts = [n.host for n in nodes]
    return [Chatter(f"{chr(ord('a') + i)}{j}", hosts[i:] + hosts[:i], ROOM)
            for i in range(len(nodes)) for j in range(per_node)]


def in_loop(chatters: list[Chatter], scenario: Callable[[], Awaitable[None]]) -> None:
    """Run a scenario, closing its clients on the same loop at the end."""
    async def main() -> None:
        try:
            await scenario()
        finally:
            for chatter in chatters:
                await chatter.close()
    run(main())


def stop_all(nodes: list[ServerProcess]) -> None:
    for node in nodes:
        if node.proc is not None and node.proc.poll() is None:
            node.stop()


def test_a_node_killed_mid_stream_loses_and_doubles_nothing_and_its_members_leave(
        tmp_path, pg_dsn, pg_schema, redis_url, redis_prefix):
    settings = cluster_settings(pg_dsn, pg_schema, redis_url, redis_prefix)
    nodes = start_nodes(tmp_path, settings)
    node_a = nodes[0]
    chatters = chatters_on(nodes)
    # Someone on node A who does not come back: the others must see it leave.
    onlooker = Chatter("onlooker", [node_a.host], ROOM, reconnect=False)
    killed_at: list[float] = []

    async def kill_a() -> None:
        node_a.kill()  # SIGKILL: no goodbye, its lease runs out
        killed_at.append(time.monotonic())

    async def scenario() -> None:
        await onlooker.start()
        await chat_through(chatters, kill_a)
        tally = await settled(chatters, pg_dsn, pg_schema)
        report("node killed", tally, chatters)
        assert tally.clean(), tally
        on_b = [c for c in chatters if c.name.startswith("b")]
        deadline = time.monotonic() + 20
        while not all("onlooker" in c.left_seen or onlooker.user_id in c.left_seen for c in on_b):
            assert time.monotonic() < deadline, "the killed node's member never left"
            await asyncio.sleep(0.1)
        gone_after = time.monotonic() - killed_at[0]
        # The lease (3 s), a check period (1 s), the presence window, and slack.
        assert gone_after < 3.0 + 1.0 + 3.0, gone_after
        assert all(c.reconnects >= 1 for c in chatters if c.name.startswith("a"))

    try:
        in_loop([*chatters, onlooker], scenario)
    finally:
        stop_all(nodes)


def test_redis_restarted_mid_stream_loses_and_doubles_nothing(
        tmp_path, pg_dsn, pg_schema, redis_prefix):
    port = free_port()
    redis = PrivateRedis(port)
    settings = cluster_settings(pg_dsn, pg_schema, f"redis://127.0.0.1:{port}/0", redis_prefix)
    nodes = start_nodes(tmp_path, settings)
    chatters = chatters_on(nodes)

    async def restart_redis() -> None:
        redis.kill()
        await asyncio.sleep(1.0)
        redis.start()

    async def scenario() -> None:
        await chat_through(chatters, restart_redis)
        tally = await settled(chatters, pg_dsn, pg_schema)
        report("redis restarted", tally, chatters)
        assert tally.clean(), tally
        assert all(c.reconnects == 0 for c in chatters)  # no node went away

    try:
        in_loop(chatters, scenario)
    finally:
        stop_all(nodes)
        redis.kill()


def test_a_nodes_redis_connections_killed_mid_stream_lose_and_double_nothing(
        tmp_path, pg_dsn, pg_schema, redis_url, redis_prefix):
    settings = cluster_settings(pg_dsn, pg_schema, redis_url, redis_prefix)
    nodes = start_nodes(tmp_path, settings)
    chatters = chatters_on(nodes)

    async def kill_connections() -> None:
        killed = client_kill(redis_url, f"{redis_prefix}:node-a")
        assert killed >= 2, "node A's publish and subscribe connections"

    async def scenario() -> None:
        await chat_through(chatters, kill_connections)
        tally = await settled(chatters, pg_dsn, pg_schema)
        report("client kill", tally, chatters)
        assert tally.clean(), tally

    try:
        in_loop(chatters, scenario)
    finally:
        stop_all(nodes)


def test_postgres_restarted_mid_stream_loses_and_stores_twice_nothing(
        tmp_path, redis_url, redis_prefix):
    private = pg.PrivatePostgres()
    private.start()
    try:
        schema = "faults"
        settings = cluster_settings(private.dsn, schema, redis_url, redis_prefix)
        nodes = start_nodes(tmp_path, settings)
        chatters = chatters_on(nodes)

        async def restart_postgres() -> None:
            private.stop("immediate")
            await asyncio.sleep(1.0)
            private.start()

        async def scenario() -> None:
            await chat_through(chatters, restart_postgres)
            tally = await settled(chatters, private.dsn, schema)
            report("postgres restarted", tally, chatters)
            assert tally.clean(), tally

        try:
            in_loop(chatters, scenario)
        finally:
            stop_all(nodes)
    finally:
        private.remove()


# --- the services' faults ---

class PrivateRedis:
    """A redis-server of the test's own on a given port, killed and started again."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def client_kill(url: str, name_prefix: str) -> int:
    """CLIENT KILL every connection whose client name starts with `name_prefix`."""
    host_port = url.split("://", 1)[1].split("/", 1)[0]
    host, _, port = host_port.rpartition(":")
    out = subprocess.run(["redis-cli", "-h", host, "-p", port, "CLIENT", "LIST"],
                         capture_output=True, text=True, timeout=10, check=True).stdout
    killed = 0
    for line in out.splitlines():
        fields = dict(part.split("=", 1) for part in line.split() if "=" in part)
        if fields.get("name", "").startswith(name_prefix):
            subprocess.run(["redis-cli", "-h", host, "-p", port, "CLIENT", "KILL", "ID",
                            fields["id"]], capture_output=True, timeout=10, check=True)
            killed += 1
    return killed

