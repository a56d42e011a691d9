"""The operators' view of a cluster: two real server processes on PostgreSQL and Redis,
clients on both. The admin API of one node lists every node's clients and counts
them all, disconnects a user or a connection wherever it is, and a user's
connections are limited over every node; a killed node's connections leave the
directory and stop counting within its lease.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any, TypeVar

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from tornado.websocket import WebSocketClientConnection, websocket_connect

from imserver.testing import ServerProcess
from tests.chatters import app_token
from tests.cluster import cluster_settings, start_nodes
from tests.core import run
from tests.waiting import until

pytestmark = pytest.mark.timeout(90)

TOKEN = "cluster-admin-token"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
LEASE = 3.0  # cluster_settings' broker.lease_seconds

T = TypeVar("T")


def nodes_for(tmp_path, pg_dsn, pg_schema, redis_url, redis_prefix, **limits: Any) -> list[ServerProcess]:
    settings = cluster_settings(pg_dsn, pg_schema, redis_url, redis_prefix)
    settings["admin"] = {"token": TOKEN}
    settings["limits"] = limits
    return start_nodes(tmp_path, settings)


class Client:
    """One chat connection of a user, reading until it is closed."""

    def __init__(self, ws: WebSocketClientConnection, welcome: dict[str, Any]) -> None:
        self.ws = ws
        self.conn_id: str = welcome["conn"]
        self.ended: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        self._reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        while await self.ws.read_message() is not None:
            pass
        self.ws.close()  # closed from the other side: this side's part
        self.ended.set_result(self.ws.close_code)

    def send(self, frame: dict[str, Any]) -> None:
        self.ws.write_message(json.dumps(frame))

    async def closed(self) -> int | None:
        return await asyncio.wait_for(asyncio.shield(self.ended), 10)

    def close(self) -> None:
        self.ws.close()


async def connect(node: ServerProcess, user: str) -> Client:
    ws = await websocket_connect(f"ws://{node.host}/ws?token={app_token(user, user)}")
    raw = await ws.read_message()
    assert raw is not None
    welcome = json.loads(raw)
    assert welcome["type"] == "welcome"
    return Client(ws, welcome)


async def refused(node: ServerProcess, user: str) -> int:
    """The status of a refused upgrade (fails when it is not refused)."""
    try:
        ws = await websocket_connect(f"ws://{node.host}/ws?token={app_token(user, user)}")
    except HTTPClientError as exc:
        return exc.code
    ws.close()
    raise AssertionError(f"a connection of {user} to {node.host} was not refused")


async def api(node: ServerProcess, method: str, path: str, body: Any = None,
              expect: int = 200) -> Any:
    bodyless = method in ("GET", "DELETE")
    headers = BEARER if bodyless else {**BEARER, "Content-Type": "application/json"}
    request = HTTPRequest(f"http://{node.host}/admin/api{path}", method=method, headers=headers,
                          body=None if bodyless else json.dumps(body or {}))
    try:
        response = await AsyncHTTPClient().fetch(request)
    except HTTPClientError as exc:
        assert exc.code == expect, (path, exc.code, exc.response.body if exc.response else None)
        return json.loads(exc.response.body) if exc.response else None
    assert response.code == expect, (path, response.code)
    return json.loads(response.body) if response.body else None



def test_one_nodes_admin_api_sees_and_disconnects_every_nodes_clients(
        tmp_path, pg_dsn, pg_schema, redis_url, redis_prefix):
    node_a, node_b = nodes = nodes_for(tmp_path, pg_dsn, pg_schema, redis_url, redis_prefix)

    async def scenario() -> None:
        alice_a, carol_a = await connect(node_a, "alice"), await connect(node_a, "carol")
        alice_b, bob_b = await connect(node_b, "alice"), await connect(node_b, "bob")
        bob_b.send({"type": "join", "room": "lobby"})
        carol_a.send({"type": "join", "room": "hall"})
        where = {alice_a.conn_id: "node-a", carol_a.conn_id: "node-a",
                 alice_b.conn_id: "node-b", bob_b.conn_id: "node-b"}

        async def all_listed() -> list[dict[str, Any]] | None:
            rows = (await api(node_a, "GET", "/clients"))["clients"]
            rooms = {r["id"]: r["rooms"] for r in rows}
            return rows if len(rows) == 4 and rooms.get(bob_b.conn_id) == ["lobby"] else None

        rows = await until(all_listed, "node A lists the clients of both nodes")
        assert {r["id"]: r["node"] for r in rows} == where
        by_id = {r["id"]: r for r in rows}
        assert by_id[alice_b.conn_id]["user"] == "alice" and by_id[bob_b.conn_id]["name"] == "bob"
        assert by_id[alice_a.conn_id]["frames_in"] is not None  # this node's: live fields
        assert by_id[alice_b.conn_id]["rtt"] is None  # another node's: what the directory has
        stats = await api(node_a, "GET", "/stats")
        assert (stats["connections"], stats["users"], stats["rooms"]) == (4, 3, 2)
        assert stats["node"] == "node-a" and stats["nodes"] == 2

        # The push channel of node A: the snapshot counts both nodes' clients, the page
        # shows them.
        push = await websocket_connect(HTTPRequest(f"ws://{node_a.host}/admin/ws", headers=BEARER))
        snapshot = json.loads(await push.read_message())
        assert snapshot["stats"]["connections"] == 4
        assert {n["node"]: n["connections"] for n in snapshot["summary"]["nodes"]} == {
            "node-a": 2, "node-b": 2}
        page = json.loads(await push.read_message())
        assert {c["id"]: c["node"] for c in page["rows"]} == where and set(page["ids"]) == set(where)
        tick = json.loads(await push.read_message())
        while tick["type"] != "tick":
            tick = json.loads(await push.read_message())
        assert tick["stats"]["connections"] == 4
        push.close()

        # Nobody anywhere: 404.
        await api(node_a, "POST", "/users/nobody/disconnect", {"reason": "x"}, expect=404)
        await api(node_a, "POST", "/clients/no-such-conn/disconnect", {"reason": "x"}, expect=404)

        # A connection of node B, through node A.
        answer = await api(node_a, "POST", f"/clients/{bob_b.conn_id}/disconnect",
                           {"reason": "spamming"})
        assert answer == {"disconnected": [], "elsewhere": {"node-b": 1}, "told": True}
        assert await bob_b.closed() == 4003 and bob_b.ws.close_reason == "spamming"

        # A user on both nodes, through node A.
        answer = await api(node_a, "POST", "/users/alice/disconnect", {"reason": "suspended"})
        assert answer == {"disconnected": [alice_a.conn_id], "elsewhere": {"node-b": 1},
                          "told": True}
        for client in (alice_a, alice_b):
            assert await client.closed() == 4003 and client.ws.close_reason == "suspended"

        async def only_carol() -> bool:
            return [r["id"] for r in (await api(node_a, "GET", "/clients"))["clients"]] == [carol_a.conn_id]

        await until(only_carol, "the disconnected clients leave the directory")
        await api(node_a, "POST", "/users/alice/disconnect", {"reason": "again"}, expect=404)
        carol_a.close()

    try:
        run(scenario())
    finally:
        for node in nodes:
            node.stop()


def test_connections_per_user_hold_over_the_cluster_and_a_killed_node_stops_counting(
        tmp_path, pg_dsn, pg_schema, redis_url, redis_prefix):
    node_a, node_b = nodes = nodes_for(tmp_path, pg_dsn, pg_schema, redis_url, redis_prefix,
                                       max_connections_per_user=2)

    async def scenario() -> None:
        first = await connect(node_a, "dave")
        second = await connect(node_b, "dave")
        assert await refused(node_a, "dave") == 429
        assert await refused(node_b, "dave") == 429
        other = await connect(node_b, "erin")  # another user is not held back

        # One closes on node B: a new one may open on node A.
        second.close()
        await second.closed()

        async def opened_on_a() -> Client | None:
            try:
                return await connect(node_a, "dave")
            except HTTPClientError as exc:
                assert exc.code == 429
                return None

        third = await until(opened_on_a, "a closed connection stops counting")
        assert await refused(node_b, "dave") == 429
        third.close()
        await third.closed()
        on_b = await until(lambda: _connect_or_none(node_b, "dave"), "dave back on node B")

        # Node B dies: its rows leave the directory, its connection stops counting.
        async def both_listed() -> bool:
            return len((await api(node_a, "GET", "/clients"))["clients"]) == 3

        await until(both_listed, "node A lists node B's clients")
        node_b.kill()
        killed_at = time.monotonic()

        async def b_gone() -> bool:
            rows = (await api(node_a, "GET", "/clients"))["clients"]
            return [r["id"] for r in rows] == [first.conn_id]

        await until(b_gone, "node B's rows leave the directory", timeout=LEASE + 5)
        stats = await api(node_a, "GET", "/stats")
        assert stats["connections"] == 1 and stats["users"] == 1
        again = await until(lambda: _connect_or_none(node_a, "dave"),
                            "node B's connection stops counting", timeout=LEASE + 5)
        gone_after = time.monotonic() - killed_at
        assert gone_after < LEASE + 2.0, gone_after
        assert await refused(node_a, "dave") == 429
        for client in (first, again, on_b, other):
            client.close()

    try:
        run(scenario())
    finally:
        for node in nodes:
            node.stop()


async def _connect_or_none(node: ServerProcess, user: str) -> Client | None:
    try:
        return await connect(node, user)
    except HTTPClientError as exc:
        assert exc.code == 429
        return None


def test_a_ban_through_one_node_closes_and_refuses_on_both_and_a_lift_through_the_other_lets_in(
        tmp_path, pg_dsn, pg_schema, redis_url, redis_prefix):
    node_a, node_b = nodes = nodes_for(tmp_path, pg_dsn, pg_schema, redis_url, redis_prefix)

    async def scenario() -> None:
        frank_a, frank_b = await connect(node_a, "frank"), await connect(node_b, "frank")
        grace_b = await connect(node_b, "grace")
        answer = await api(node_a, "POST", "/users/frank/ban", {"reason": "raiding", "seconds": 600})
        assert answer["user"] == "frank" and answer["disconnected"] == [frank_a.conn_id]
        for client in (frank_a, frank_b):
            assert await client.closed() == 4003 and client.ws.close_reason == "raiding"
        # Node B closed frank's connection: it has the ban, and refuses at once.
        assert await refused(node_b, "frank") == 403
        assert await refused(node_a, "frank") == 403
        assert [b["user"] for b in await api(node_b, "GET", "/bans")] == ["frank"]
        grace_b.send({"type": "ping"})  # others stay

        assert await api(node_b, "DELETE", "/users/frank/ban") == {"lifted": "frank"}

        async def let_in_on_a() -> Client | None:
            try:
                return await connect(node_a, "frank")
            except HTTPClientError as exc:
                assert exc.code == 403
                return None

        back = await until(let_in_on_a, "a lift through node B reaches node A")
        assert await api(node_a, "GET", "/bans") == []
        for client in (back, grace_b):
            client.close()

    try:
        run(scenario())
    finally:
        for node in nodes:
            node.stop()
