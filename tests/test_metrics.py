"""Metrics agree with reality: read the registry after real clients come, chat and go.

Gauges are read twice: straight from the registry as the events left them
(`raw`), and after a refresh as a scrape sees them (`metric`), so that a gauge
that is only right at scrape time fails here too.
"""

from __future__ import annotations

import asyncio
import json
import os
import struct
import subprocess
import time
from collections.abc import Callable
from typing import Any

import pytest
from prometheus_client import CONTENT_TYPE_LATEST
from tornado.iostream import IOStream, StreamClosedError

from imserver import __version__
from imserver.app import ImServerApp
from imserver.core.protocol import RECONNECT_CAUSES
from imserver.core.registry import CLOSE_REASONS, TERMINATION_REASONS
from imserver.ops.metrics import MESSAGE_TYPES
from imserver.ops.shutdown import graceful_shutdown
from tests.system import require_binary
from tests.test_heartbeat import open_dead_peer

OP_TEXT, OP_PING, OP_PONG = 0x1, 0x9, 0xA


@pytest.fixture
def raw(app: ImServerApp) -> Callable[..., float]:
    """raw(name, **labels): the sample as the registry holds it, without refreshing gauges."""

    def read(name: str, **labels: str) -> float:
        value = app.runtime.metrics.registry.get_sample_value(name, labels)
        return 0.0 if value is None else value

    return read


@pytest.fixture
def promtool() -> str:
    return require_binary("promtool")


async def until(predicate: Callable[[], bool], timeout: float = 5.0, what: str = "") -> None:
    """Poll `predicate` every 10 ms until true; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        await asyncio.sleep(0.01)


def gauges(metric: Callable[..., float], raw: Callable[..., float]) -> dict[str, tuple[float, float]]:
    """Every gauge, as (left by the events, as a scrape sees it)."""
    names = ("imserver_connections", "imserver_users_online", "imserver_rooms")
    before = {name: raw(name) for name in names}
    return {name: (before[name], metric(name)) for name in names}


def assert_gauges(metric: Any, raw: Any, *, connections: int, users: int, rooms: int) -> None:
    expected = {"imserver_connections": connections, "imserver_users_online": users,
                "imserver_rooms": rooms}
    got = gauges(metric, raw)
    assert got == {name: (value, value) for name, value in expected.items()}, got


class RawPeer:
    """A WebSocket client on a raw socket: it sees (and answers) the ping frames itself."""

    def __init__(self, stream: IOStream) -> None:
        self.stream = stream

    async def read_frame(self) -> tuple[int, bytes]:
        first, second = await self.stream.read_bytes(2)
        assert second & 0x80 == 0, "server frames are never masked"
        size = second & 0x7F
        if size == 126:
            (size,) = struct.unpack("!H", await self.stream.read_bytes(2))
        elif size == 127:
            (size,) = struct.unpack("!Q", await self.stream.read_bytes(8))
        payload = await self.stream.read_bytes(size) if size else b""
        return first & 0x0F, payload

    async def read_until(self, opcode: int, timeout: float = 5.0) -> bytes:
        while True:
            op, payload = await asyncio.wait_for(self.read_frame(), timeout)
            if op == opcode:
                return payload

    async def send_frame(self, opcode: int, payload: bytes) -> None:
        assert len(payload) < 126
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        await self.stream.write(struct.pack("!BB", 0x80 | opcode, 0x80 | len(payload)) + mask + masked)

    async def until_dropped(self, timeout: float = 5.0) -> None:
        """Ignore everything until the server drops the TCP connection."""

        async def drain() -> None:
            try:
                while True:
                    await self.stream.read_bytes(4096, partial=True)
            except StreamClosedError:
                pass

        await asyncio.wait_for(drain(), timeout)


async def raw_peer(chat: Any, name: str) -> tuple[RawPeer, dict[str, Any]]:
    """A raw peer that has read its welcome frame (returned too)."""
    peer = RawPeer(await open_dead_peer(chat.host, await chat.login(name)))
    welcome: dict[str, Any] = json.loads(await peer.read_until(OP_TEXT))
    assert welcome["type"] == "welcome", welcome
    return peer, welcome


# --- connections: N connect, M leave by every path, the gauge says N - M ---


@pytest.mark.gen_test(timeout=20)
async def test_connection_counts_follow_every_way_of_leaving(chat, app, metric, raw):
    registry = app.runtime.registry
    assert_gauges(metric, raw, connections=0, users=0, rooms=0)

    # 6 connections of 5 users (carol has two tabs); two rooms in use.
    alice = await chat.connect("alice")
    bob = await chat.connect("bob")
    carol1 = await chat.connect("carol")
    carol2 = await chat.connect("carol")
    dave = await chat.connect("dave")
    ghost, _ = await raw_peer(chat, "ghost")  # never answers: the heartbeat ends it
    assert metric("imserver_connections_opened_total") == 6
    await alice.join("lobby")
    await bob.join("lobby")
    await alice.expect("presence")
    await carol1.join("kitchen")
    assert_gauges(metric, raw, connections=6, users=5, rooms=2)

    # 1. the client closes cleanly (close frame, close handshake)
    bob.close()
    await until(lambda: len(registry) == 5, what="bob's close")
    assert (await alice.expect("presence"))["left"] == [chat.id("bob")]
    assert_gauges(metric, raw, connections=5, users=4, rooms=2)

    # 2. an operator kicks a connection: 4003 with the reason, counted as a termination
    registry.close(carol1.welcome["conn"], 4003, "be nice")
    assert await carol1.closed() == 4003 and carol1.ws.close_reason == "be nice"
    await until(lambda: len(registry) == 4, what="the kick")
    # carol is still online through her other tab; the kitchen is empty now
    assert_gauges(metric, raw, connections=4, users=4, rooms=1)

    # 3. a dead peer: the heartbeat terminates it
    await ghost.until_dropped(timeout=app.runtime.config.heartbeat.ping_timeout * 4)
    await until(lambda: len(registry) == 3, what="the heartbeat termination")
    assert_gauges(metric, raw, connections=3, users=3, rooms=1)

    # 4. an abrupt TCP drop: no close frame at all (opened late, so the heartbeat cannot be first)
    dropper, _ = await raw_peer(chat, "dropper")
    assert_gauges(metric, raw, connections=4, users=4, rooms=1)
    dropper.stream.close()
    await until(lambda: len(registry) == 3, what="the TCP drop")
    assert_gauges(metric, raw, connections=3, users=3, rooms=1)

    # 5. a frame over limits.max_frame_bytes: closed with 1009 by the server
    dave.send("x" * (app.runtime.config.limits.max_frame_bytes + 1))
    assert await dave.closed() == 1009
    await until(lambda: len(registry) == 2, what="the too-big close")
    assert_gauges(metric, raw, connections=2, users=2, rooms=1)

    # N = 7 connected, M = 5 left, each way counted once; N - M = 2 remain.
    assert metric("imserver_connections_opened_total") == 7
    closed = {r: metric("imserver_connections_closed_total", reason=r) for r in CLOSE_REASONS}
    assert closed == {"client_close": 2, "heartbeat_timeout": 1, "kicked": 1, "shutdown": 0,
                      "rate_limited": 0, "too_big": 1, "slow_consumer": 0, "token_expired": 0,
                      "logged_out": 0, "error": 0}
    terminated = {r: metric("imserver_terminations_total", reason=r) for r in TERMINATION_REASONS}
    assert terminated == {"heartbeat_timeout": 1, "kicked": 1, "shutdown": 0, "rate_limited": 0,
                          "too_big": 1, "slow_consumer": 0, "token_expired": 0}
    assert sum(closed.values()) == metric("imserver_connections_opened_total") - len(registry)

    # 6. the survivors are still there, and alive
    alice.send("ping")
    assert await alice.recv_raw() == "pong"
    carol2.send("ping")
    assert await carol2.recv_raw() == "pong"
    assert sorted(c.user.name for c in registry) == ["alice", "carol"]


@pytest.mark.gen_test(timeout=20)
async def test_shutdown_closes_are_counted_and_leave_zero(chat, app, metric, raw):
    clients = [await chat.connect(f"user{i}") for i in range(4)]
    await clients[0].join("lobby")
    assert_gauges(metric, raw, connections=4, users=4, rooms=1)
    await graceful_shutdown(app.runtime, [])
    for client in clients:
        assert await client.closed() == 1001
    assert_gauges(metric, raw, connections=0, users=0, rooms=0)
    assert metric("imserver_connections_closed_total", reason="shutdown") == 4
    assert metric("imserver_terminations_total", reason="shutdown") == 4
    assert metric("imserver_connections_closed_total", reason="client_close") == 0
    assert metric("imserver_connections_opened_total") == 4


@pytest.mark.gen_test(timeout=15)
async def test_heartbeat_rtt_counts_exactly_the_pongs_that_answer_a_ping(chat, app, metric, raw):
    started = time.monotonic()
    peer, _ = await raw_peer(chat, "pinger")
    answered = 3
    for _ in range(answered):
        payload = await peer.read_until(OP_PING)
        # A pong that answers no ping keeps the connection alive but measures nothing.
        await peer.send_frame(OP_PONG, b"stray")
        await peer.send_frame(OP_PONG, payload)
    # Then it falls silent, and is terminated as a dead peer.
    await peer.until_dropped(timeout=app.runtime.config.heartbeat.ping_timeout * 4)
    await until(lambda: len(app.runtime.registry) == 0, what="the termination")
    assert raw("imserver_heartbeat_rtt_seconds_count") == answered
    assert raw("imserver_heartbeat_rtt_seconds_bucket", le="+Inf") == answered
    # Each round trip is positive; together no longer than the test has run.
    assert 0 < raw("imserver_heartbeat_rtt_seconds_sum") <= time.monotonic() - started
    assert metric("imserver_terminations_total", reason="heartbeat_timeout") == 1
    assert metric("imserver_connections_closed_total", reason="heartbeat_timeout") == 1
    assert metric("imserver_connections") == 0
    # no application frame came in: the pongs are control frames
    assert sum(metric("imserver_messages_received_total", type=t) for t in MESSAGE_TYPES) == 0


# --- reconnects ---


@pytest.mark.gen_test(timeout=15)
async def test_reconnects_counted_by_cause_unknown_cause_is_other(chat, metric):
    token = await chat.login("roamer")
    for query in ["",                               # first connect: not a reconnect
                  "&reconnect=0&cause=close",       # still a first connect
                  "&reconnect=abc&cause=close",     # unparsable: taken as 0
                  "&reconnect=1&cause=close",
                  "&reconnect=2&cause=close",
                  "&reconnect=1&cause=error",
                  "&reconnect=5&cause=watchdog",
                  "&reconnect=1&cause=network",
                  "&reconnect=1&cause=shutdown",
                  "&reconnect=1&cause=meteor",      # unknown
                  "&reconnect=3",                   # no cause at all
                  "&reconnect=1&cause=CLOSE"]:      # causes are case-sensitive
        client = await chat.connect(token=token, query=query)
        client.close()
        await client.closed()
    reconnects = {c: metric("imserver_reconnects_total", cause=c) for c in (*RECONNECT_CAUSES, "other")}
    assert reconnects == {"close": 2, "error": 1, "watchdog": 1, "network": 1, "shutdown": 1,
                          "other": 3}
    assert metric("imserver_connections_opened_total") == 12
    # a refused upgrade is neither a connection nor a reconnect
    assert await chat.refused("?token=forged&reconnect=1&cause=close") == 401
    assert metric("imserver_reconnects_total", cause="close") == 2
    assert metric("imserver_connections_opened_total") == 12
    assert metric("imserver_refused_total", reason="unauthenticated") == 1


# --- messages ---


@pytest.mark.gen_test(timeout=15)
async def test_message_counters_match_the_frames_exchanged(chat, app, metric):
    alice = await chat.connect("alice")
    bob = await chat.connect("bob")
    got = {"alice": 1, "bob": 1}  # frames each client received: the welcomes so far

    async def expect(name: str, client: Any, kind: str) -> dict[str, Any]:
        frame = await client.expect(kind)
        got[name] += 1
        return frame

    alice.send("ping")
    assert await alice.recv_raw() == "pong"
    got["alice"] += 1
    bob.send("ping")
    assert await bob.recv_raw() == "pong"
    got["bob"] += 1

    alice.send({"type": "join", "room": "lobby"})
    await expect("alice", alice, "joined")
    bob.send({"type": "join", "room": "lobby"})
    await expect("bob", bob, "joined")
    await expect("alice", alice, "presence")

    alice.send({"type": "say", "room": "lobby", "text": "hello", "cid": "a1"})
    first = await expect("alice", alice, "ack")
    await expect("bob", bob, "message")
    # the same cid again: acked again, neither stored nor delivered twice
    alice.send({"type": "say", "room": "lobby", "text": "hello", "cid": "a1"})
    assert (await expect("alice", alice, "ack"))["id"] == first["id"]

    bob.send({"type": "dm", "to": "alice", "text": "psst", "cid": "b1"})
    await expect("bob", bob, "ack")
    assert (await expect("alice", alice, "message"))["from"] == chat.id("bob")

    alice.send({"type": "history", "room": "lobby"})
    assert len((await expect("alice", alice, "history"))["messages"]) == 1
    bob.send({"type": "dm_sync"})
    assert len((await expect("bob", bob, "dm_sync"))["messages"]) == 1

    alice.send("{not json")
    assert (await expect("alice", alice, "error"))["code"] == "bad_request"
    alice.ws.write_message(b"\x00\x01", binary=True)
    assert (await expect("alice", alice, "error"))["code"] == "bad_request"
    bob.send({"type": "say", "room": "kitchen", "text": "anyone?", "cid": "b2"})
    assert (await expect("bob", bob, "error"))["code"] == "not_in_room"

    bob.send({"type": "leave", "room": "lobby"})
    await expect("bob", bob, "left")
    assert (await expect("alice", alice, "presence"))["left"] == [chat.id("bob")]
    await alice.nothing(0.1)
    await bob.nothing(0.05)

    received = {t: metric("imserver_messages_received_total", type=t) for t in MESSAGE_TYPES}
    assert {t: n for t, n in received.items() if n} == {
        "ping": 2, "join": 2, "leave": 1, "say": 3, "dm": 1, "history": 1, "dm_sync": 1,
        "invalid": 2}
    assert metric("imserver_app_pings_total") == 2
    # every frame the clients got, and no other, was counted as delivered
    assert got == {"alice": 11, "bob": 8}
    assert metric("imserver_messages_delivered_total") == 19 == sum(got.values())
    assert sum(c.frames_out for c in app.runtime.registry) == 19
    # one say and one dm were stored; the duplicate was not
    assert metric("imserver_message_store_seconds_count") == 2
    assert metric("imserver_message_store_seconds_bucket", le="+Inf") == 2
    assert 0 < metric("imserver_message_store_seconds_sum") < 2.0
    assert metric("imserver_protocol_errors_total", code="bad_request") == 2
    assert metric("imserver_protocol_errors_total", code="not_in_room") == 1
    assert metric("imserver_rooms") == 1 and metric("imserver_users_online") == 2


@pytest.mark.gen_test(timeout=15)
async def test_frames_dropped_for_a_closing_connection_are_not_counted_as_delivered(chat, app, metric):
    alice = await chat.connect("alice")
    await alice.join("lobby")
    ghost, welcome = await raw_peer(chat, "ghost")
    await ghost.send_frame(OP_TEXT, b'{"type":"join","room":"lobby"}')
    assert b'"type":"joined"' in await ghost.read_until(OP_TEXT)
    await alice.expect("presence")
    conns = list(app.runtime.registry)
    delivered = metric("imserver_messages_delivered_total")
    frames_out = sum(c.frames_out for c in conns)
    assert delivered == frames_out == 5
    # Kicked, the ghost never answers the close frame: it stays in the room while
    # closing, and the room's next message cannot be written to it.
    app.runtime.registry.close(welcome["conn"], 4003, "kicked")
    alice.send({"type": "say", "room": "lobby", "text": "still there?", "cid": "1"})
    await alice.expect("ack")
    assert len(app.runtime.registry) == 2  # the ghost is still closing
    assert metric("imserver_messages_delivered_total") - delivered == \
        sum(c.frames_out for c in conns) - frames_out  # only alice's ack went out


# --- what is always there ---


@pytest.mark.gen_test
async def test_build_info_process_collector_and_series_created_up_front(app, raw):
    assert raw("imserver_build_info", version=__version__) == 1
    assert raw("process_start_time_seconds") > 0
    assert raw("process_open_fds") > 0
    registry = app.runtime.metrics.registry
    names = {s.name for family in registry.collect() for s in family.samples}
    assert {"process_cpu_seconds_total", "process_resident_memory_bytes", "python_info"} <= names
    assert not [n for n in names if n.endswith("_created")]
    # labelled series exist before the first event of their kind, so alerts can rate() them
    for reason in CLOSE_REASONS:
        assert registry.get_sample_value("imserver_connections_closed_total", {"reason": reason}) == 0
    for reason in TERMINATION_REASONS:
        assert registry.get_sample_value("imserver_terminations_total", {"reason": reason}) == 0
    for cause in (*RECONNECT_CAUSES, "other"):
        assert registry.get_sample_value("imserver_reconnects_total", {"cause": cause}) == 0
    for kind in MESSAGE_TYPES:
        assert registry.get_sample_value("imserver_messages_received_total", {"type": kind}) == 0


# --- the exposition a real Prometheus reads ---


@pytest.mark.prometheus
@pytest.mark.gen_test(timeout=20)
async def test_live_scrape_passes_promtool_check_metrics(chat, app, raw, promtool):
    alice = await chat.connect("alice")
    bob = await chat.connect("bob", query="&reconnect=1&cause=meteor")
    await alice.join("lobby")
    await bob.join("lobby")
    bob.send({"type": "say", "room": "lobby", "text": "hi", "cid": "1"})
    await bob.expect("ack")
    bob.send("{")
    await bob.expect("error")
    await chat.refused("?token=nope")
    await until(lambda: raw("imserver_heartbeat_rtt_seconds_count") > 0, what="a heartbeat round trip")

    response = await chat.http.fetch(f"{chat.url}/metrics")
    assert response.code == 200
    assert response.headers["Content-Type"] == CONTENT_TYPE_LATEST
    body = response.body.decode()
    for line in ["imserver_connections 2.0", "imserver_users_online 2.0", "imserver_rooms 1.0",
                 "imserver_connections_opened_total 2.0", 'imserver_reconnects_total{cause="other"} 1.0',
                 f'imserver_build_info{{version="{__version__}"}} 1.0',
                 'imserver_refused_total{reason="unauthenticated"} 1.0',
                 "imserver_message_store_seconds_count 1.0"]:
        assert line in body.splitlines(), line
    assert "_created" not in body
    assert "\nprocess_cpu_seconds_total " in body

    result = subprocess.run([promtool, "check", "metrics"], input=response.body,
                            capture_output=True, timeout=30)
    assert (result.returncode, result.stderr.decode()) == (0, ""), result.stdout.decode()


def test_a_server_alone_exposes_no_broker_series(app):
    """Its Redis bus is not down: it has none (a 0 would fire ImserverBrokerDown)."""
    registry = app.runtime.metrics.registry
    assert registry.get_sample_value("imserver_broker_connected") is None
    assert registry.get_sample_value("imserver_broker_published_total") is None
    assert registry.get_sample_value("imserver_gaps_filled_total", {"stream": "room"}) == 0
