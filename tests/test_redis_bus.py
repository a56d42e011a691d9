"""The Redis bus against real Redis: delivery, order, and what each fault does to it.

Two buses (two nodes, A and B) run on one loop against the machine's Redis
(127.0.0.1:6379), each test under a fresh random prefix. The restart test runs a
private `redis-server` of its own, on a port the OS chose, and kills it. The
faults that need to sit between a node and Redis (a Redis that refuses, a
connection that goes silent without closing) go through `Forwarder`, a small TCP
forwarder (tests/forwarder.py).

Without Redis these tests are skipped, except on CI (CI set), where they fail.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import random
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from imserver.ops.metrics import Metrics
from tests.forwarder import Forwarder
from tests.system import find_binary

if os.environ.get("CI"):
    import redis  # on CI the `test` extra must have it
else:
    redis = pytest.importorskip("redis", reason="the `cluster` extra (redis) is not installed")

import redis.asyncio as aredis

from imserver.cluster.redisbus import RedisBus, backoff_delay

HOST, PORT = "127.0.0.1", 6379
START_REDIS = ('redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" '
               '--appendonly no')
# Bus settings for tests that are not about timing: generous, for a busy machine.
CALM = {"retry_base": 0.05, "retry_cap": 0.5, "liveness_interval": 0.5, "liveness_timeout": 5.0}
TIMEOUT = 30.0  # for any one wait of a test; a test fails long before pytest's own timeout


def unavailable(reason: str) -> None:
    """Fail on CI (nothing may be skipped there), skip elsewhere."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set: these tests may not be skipped)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def redis_url() -> str:
    """The machine's Redis, or a skip (a failure on CI) that says how to start it."""
    client = redis.Redis(host=HOST, port=PORT, socket_timeout=2, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        unavailable(f"no Redis at {HOST}:{PORT} ({exc}): start one with `{START_REDIS}` "
                    f"(/work/shared/TESTING.md; `apt-get install -y redis-server` if missing)")
    finally:
        client.close()
    return f"redis://{HOST}:{PORT}/0"


@pytest.fixture
def prefix() -> str:
    return f"t{uuid.uuid4().hex[:12]}"


# --- running a scenario ---


def run(scenario: Callable[[], Awaitable[None]], timeout: float = 90.0) -> None:
    """Run a scenario on a loop of its own, and fail if anything reached the loop's exception
    handler (a task's unretrieved exception, a callback's traceback): the bus must keep its own."""
    loop = asyncio.new_event_loop()
    reported: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    try:
        loop.run_until_complete(asyncio.wait_for(scenario(), timeout))
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        gc.collect()
        loop.close()
    assert not reported, f"the loop's exception handler was called: {reported}"


async def until(predicate: Callable[[], bool], what: str, timeout: float = TIMEOUT) -> float:
    """Poll every 5 ms until `predicate()`; returns the seconds it took."""
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.005)
    return time.monotonic() - started


class Recorder:
    """A bus handler that records what it gets; raises for payloads in `fail_on`."""

    def __init__(self, fail_on: tuple[bytes, ...] = ()) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self.resyncs = 0
        self.fail_on = fail_on

    def on_message(self, topic: str, payload: bytes) -> None:
        self.messages.append((topic, payload))
        if payload in self.fail_on:
            raise RuntimeError(f"handler failure on {payload!r}")

    def on_resync(self) -> None:
        self.resyncs += 1

    def payloads(self, topic: str | None = None) -> list[bytes]:
        return [p for t, p in self.messages if topic is None or t == topic]


class Node:
    """A bus with its recorder and its own metrics registry."""

    def __init__(self, url: str, prefix: str, node_id: str, **settings: Any) -> None:
        self.recorder = Recorder(settings.pop("fail_on", ()))
        self.metrics = Metrics(CollectorRegistry(), cluster=True)
        self.bus = RedisBus(url, prefix, node_id, self.recorder, self.metrics, **{**CALM, **settings})

    def metric(self, name: str, **labels: str) -> float:
        value = self.metrics.registry.get_sample_value(name, labels)
        return 0.0 if value is None else value


class Nodes:
    """The buses and clients of one scenario, all closed at its end."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.nodes: list[Node] = []
        self.admins: list[aredis.Redis] = []
        self.forwarders: list[Forwarder] = []

    def node(self, url: str, node_id: str, **settings: Any) -> Node:
        made = Node(url, self.prefix, node_id, **settings)
        self.nodes.append(made)
        return made

    def admin(self, url: str) -> aredis.Redis:
        client = aredis.Redis.from_url(url, socket_timeout=5)
        self.admins.append(client)
        return client

    async def forwarder(self, port: int) -> Forwarder:
        made = Forwarder(HOST, port)
        await made.start()
        self.forwarders.append(made)
        return made

    async def close(self) -> None:
        for node in self.nodes:
            await node.bus.close()
        for client in self.admins:
            await client.aclose()
        for forwarder in self.forwarders:
            await forwarder.close()


def scenario(prefix: str, body: Callable[[Nodes], Awaitable[None]]) -> None:
    async def main() -> None:
        nodes = Nodes(prefix)
        try:
            await body(nodes)
        finally:
            await nodes.close()
    run(main)


async def kill_client(admin: aredis.Redis, name: str) -> None:
    """CLIENT KILL the one connection named `name`."""
    found = [c for c in await admin.client_list() if c.get("name") == name]
    assert len(found) == 1, f"connections named {name}: {found}"
    await admin.client_kill_filter(_id=found[0]["id"])


async def subscribers(admin: aredis.Redis, channel: str) -> int:
    counts = await admin.pubsub_numsub(channel)
    return int(counts[0][1])


def bus_lines(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "imserver.bus" and text in r.getMessage()]


# --- faults between a node and Redis ---


# --- a private redis-server ---


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


class PrivateRedis:
    """A redis-server of the test's own, that it can kill and start again on the same port."""

    def __init__(self, binary: str, workdir: Path) -> None:
        self.binary = binary
        self.workdir = workdir
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    @property
    def unix_url(self) -> str:
        return f"unix://{self.workdir / 'redis.sock'}"

    def start(self) -> None:
        log = open(self.workdir / "redis.log", "ab")  # noqa: SIM115 (the child holds it)
        self.proc = subprocess.Popen(
            [self.binary, "--bind", HOST, "--port", str(self.port), "--save", "", "--appendonly", "no",
             "--dir", str(self.workdir), "--unixsocket", str(self.workdir / "redis.sock")],
            stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection((HOST, self.port), timeout=1) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            assert self.proc.poll() is None, (self.workdir / "redis.log").read_text()
            assert time.monotonic() < deadline, "the private redis-server did not start"
            time.sleep(0.02)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    binary = find_binary("redis-server")
    if binary is None:
        unavailable("redis-server is not installed: `apt-get install -y redis-server`")
    assert binary is not None
    server = PrivateRedis(binary, tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.kill()


# --- the tests ---


def test_backoff_grows_to_the_cap_with_jitter() -> None:
    rand = random.Random(7)
    for attempt, ceiling in ((0, 0.1), (1, 0.2), (3, 0.8), (6, 5.0), (10_000, 5.0)):
        delays = [backoff_delay(attempt, 0.1, 5.0, rand) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays), (attempt, min(delays), max(delays))
        assert max(delays) - min(delays) > ceiling / 4  # spread, not one value for every node


def test_the_server_without_cluster_mode_never_imports_redis() -> None:
    code = ("import sys, imserver.app, imserver.cli, imserver.cluster; "
            "sys.exit('redis' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)})
    assert done.returncode == 0, done.stderr.decode() or "imserver imported redis"


def test_messages_reach_the_subscribed_node_once_in_order(redis_url: str, prefix: str) -> None:
    async def body(nodes: Nodes) -> None:
        a, b = nodes.node(redis_url, "A", outbox_limit=100_000), nodes.node(redis_url, "B")
        admin = nodes.admin(redis_url)
        b.bus.subscribe("room:lobby")
        b.bus.subscribe("user:u1")
        b.bus.subscribe("room:lobby")  # idempotent
        await a.bus.start()
        await b.bus.start()
        await until(lambda: a.bus.connected and b.bus.connected, "both connected")
        assert b.recorder.resyncs == 1  # the first subscription counts: whatever came before is missed
        n = 5000
        for i in range(n):
            a.bus.publish("room:lobby", b"l%d" % i)
            a.bus.publish("room:elsewhere", b"e%d" % i)  # B does not hear it
            if i % 5 == 0:
                a.bus.publish("user:u1", b"u%d" % i)
        await until(lambda: len(b.recorder.messages) >= n + n // 5, "B to get every message")
        await asyncio.sleep(0.2)  # anything more (a repeat) would come now
        assert b.recorder.payloads("room:lobby") == [b"l%d" % i for i in range(n)]
        assert b.recorder.payloads("user:u1") == [b"u%d" % i for i in range(0, n, 5)]
        assert len(b.recorder.messages) == n + n // 5  # nothing else: no pings, no other topic
        assert b.metric("imserver_broker_received_total") == n + n // 5
        await until(lambda: a.metric("imserver_broker_published_total") == 2 * n + n // 5,
                    "A's published count")
        assert a.recorder.messages == []  # A subscribed to nothing; its own pings are not messages

        # unsubscribe: nothing more of the topic from that call on, even what is already on its way
        a.bus.publish("user:u1", b"late")
        b.bus.unsubscribe("user:u1")
        a.bus.publish("user:u1", b"later")
        a.bus.publish("room:lobby", b"marker")  # after the others, from the same publisher
        await until(lambda: b.recorder.payloads("room:lobby")[-1:] == [b"marker"], "the marker")
        assert b.recorder.payloads("user:u1")[-1] == b"u%d" % (n - 5)
        # subscribe at run time, then a message on the new topic
        b.bus.subscribe("room:new")
        channel = f"{prefix}:room:new"
        deadline = time.monotonic() + TIMEOUT
        while await subscribers(admin, channel) < 1:
            assert time.monotonic() < deadline, "B's subscription to room:new never reached Redis"
            await asyncio.sleep(0.01)
        a.bus.publish("room:new", b"fresh")
        await until(lambda: b.recorder.payloads("room:new") == [b"fresh"], "the new topic's message")
        assert await subscribers(admin, f"{prefix}:user:u1") == 0

        # the key/value client: same Redis, its own named connection
        kv = b.bus.redis
        await kv.set(f"{prefix}:k", b"v", px=60_000)
        assert await kv.get(f"{prefix}:k") == b"v"
        names = {c.get("name") for c in await admin.client_list()}
        assert {f"{prefix}:{n}:{role}" for n in "AB" for role in ("pub", "sub")} <= names
        assert f"{prefix}:B:kv" in names
        assert a.bus.health() is None and b.bus.health() is None
        assert b.metric("imserver_broker_connected") == 1

    scenario(prefix, body)


def test_a_message_sent_twice_is_delivered_once(redis_url: str, prefix: str) -> None:
    """A batch whose answer was lost goes out again; the receiver knows it by its sequence number."""

    async def body(nodes: Nodes) -> None:
        a, b = nodes.node(redis_url, "A"), nodes.node(redis_url, "B")
        admin = nodes.admin(redis_url)
        b.bus.subscribe("room:x")
        await a.bus.start()
        await b.bus.start()
        await until(lambda: a.bus.connected and b.bus.connected, "both connected")
        # Copy A's messages off the wire with a subscriber of the test's own...
        spy = admin.pubsub()
        await spy.subscribe(f"{prefix}:room:x")
        assert (await spy.get_message(timeout=5))["type"] == "subscribe"
        for i in range(3):
            a.bus.publish("room:x", b"m%d" % i)
        raw = []
        while len(raw) < 3:
            message = await spy.get_message(timeout=5)
            assert message is not None, "the spy got nothing"
            raw.append(message["data"])
        await spy.aclose()
        # ... and publish them again, as a resend after a failure would.
        for data in raw:
            await admin.publish(f"{prefix}:room:x", data)
        a.bus.publish("room:x", b"m3")
        await until(lambda: b.recorder.payloads()[-1:] == [b"m3"], "the last message")
        assert b.recorder.payloads() == [b"m0", b"m1", b"m2", b"m3"]
        # Something that is not a bus's message is dropped, and said once.
        await admin.publish(f"{prefix}:room:x", b"not an envelope")
        a.bus.publish("room:x", b"m4")
        await until(lambda: b.recorder.payloads()[-1:] == [b"m4"], "the message after")
        assert b.recorder.payloads() == [b"m0", b"m1", b"m2", b"m3", b"m4"]

    scenario(prefix, body)


def test_a_batch_whose_answer_was_lost_goes_out_again_and_arrives_once(redis_url: str,
                                                                      prefix: str) -> None:
    """Redis takes A's batch but its answer never reaches A: A times out, reconnects and
    sends the batch again; B gets each message once."""

    async def body(nodes: Nodes) -> None:
        middle = await nodes.forwarder(PORT)
        a = nodes.node(middle.url, "A", liveness_interval=0.25, liveness_timeout=1.0)
        b = nodes.node(redis_url, "B")
        admin = nodes.admin(redis_url)
        b.bus.subscribe("room:z")
        await a.bus.start()
        await b.bus.start()
        await until(lambda: a.bus.connected and b.bus.connected, "both connected")
        spy = admin.pubsub()  # counts what reaches Redis, repeats included
        await spy.subscribe(f"{prefix}:room:z")
        assert (await spy.get_message(timeout=5))["type"] == "subscribe"
        for i in range(10):
            a.bus.publish("room:z", b"m%d" % i)
        await until(lambda: len(b.recorder.messages) == 10, "the first ten")
        assert middle.freeze(f"{prefix}:A:pub".encode(), upstream=False) == 1  # answers lost
        for i in range(10, 20):
            a.bus.publish("room:z", b"m%d" % i)
        await until(lambda: len(b.recorder.messages) == 20, "the ten whose answers were lost")
        await until(lambda: a.metric("imserver_broker_reconnects_total", connection="publish") == 1,
                    "A to give up on the answers and reconnect")
        for i in range(20, 30):
            a.bus.publish("room:z", b"m%d" % i)
        await until(lambda: len(b.recorder.messages) >= 30, "the ten after")
        raw = 0
        while (message := await spy.get_message(timeout=0.5)) is not None:
            raw += message["type"] == "message"
        await spy.aclose()
        assert raw >= 40, f"Redis saw {raw} messages: the lost batch was not sent again"
        assert b.recorder.payloads() == [b"m%d" % i for i in range(30)]
        assert a.metric("imserver_broker_published_total") == 30  # counted when answered

    scenario(prefix, body)


def test_a_killed_subscription_comes_back_and_resyncs_once(redis_url: str, prefix: str,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="imserver.bus")

    async def body(nodes: Nodes) -> None:
        a, b = nodes.node(redis_url, "A"), nodes.node(redis_url, "B")
        admin = nodes.admin(redis_url)
        b.bus.subscribe("room:x")
        b.bus.subscribe("room:y")
        await a.bus.start()
        await b.bus.start()
        await until(lambda: a.bus.connected and b.bus.connected, "both connected")
        a.bus.publish("room:x", b"before")
        await until(lambda: b.recorder.payloads() == [b"before"], "the first message")
        assert b.recorder.resyncs == 1
        caplog.clear()

        killed = time.monotonic()
        await kill_client(admin, f"{prefix}:B:sub")
        back = await until(lambda: b.bus.connected and b.recorder.resyncs == 2, "B back and resynced")
        print(f"\nsubscription killed: B back and resynced after {back * 1000:.0f} ms")
        for i in range(100):
            a.bus.publish("room:y" if i % 2 else "room:x", b"after%d" % i)
        await until(lambda: len(b.recorder.messages) == 101, "the messages after the kill")
        assert b.recorder.payloads()[1:] == [b"after%d" % i for i in range(100)]
        await asyncio.sleep(0.3)
        assert b.recorder.resyncs == 2
        assert b.metric("imserver_broker_reconnects_total", connection="subscribe") == 1
        assert b.metric("imserver_broker_reconnects_total", connection="publish") == 0
        assert a.metric("imserver_broker_reconnects_total", connection="subscribe") == 0
        assert b.metric("imserver_broker_deaf_total") == 0
        # one line down (with the reason), one line up (with how long it was down)
        down, up = bus_lines(caplog, "down"), bus_lines(caplog, "back on")
        assert len(down) == 1 and "B" in down[0] and "subscription" in down[0], down
        assert len(up) == 1 and " B " in up[0], up
        assert time.monotonic() - killed < TIMEOUT

    scenario(prefix, body)


def test_a_killed_publish_connection_loses_and_doubles_nothing(redis_url: str, prefix: str) -> None:
    async def body(nodes: Nodes) -> None:
        a = nodes.node(redis_url, "A", outbox_limit=100_000)
        b = nodes.node(redis_url, "B")
        admin = nodes.admin(redis_url)
        b.bus.subscribe("room:k")
        await a.bus.start()
        await b.bus.start()
        await until(lambda: a.bus.connected and b.bus.connected, "both connected")
        n = 30_000

        async def publish_all() -> None:
            for i in range(n):
                a.bus.publish("room:k", b"%d" % i)
                if i % 200 == 199:
                    await asyncio.sleep(0.002)

        publisher = asyncio.create_task(publish_all())
        await until(lambda: len(b.recorder.messages) >= 3000, "B to get the first messages")
        await kill_client(admin, f"{prefix}:A:pub")
        taken_at_kill = a.metric("imserver_broker_published_total")
        await publisher
        await until(lambda: len(b.recorder.messages) >= n, "B to get every message", timeout=60)
        await asyncio.sleep(0.3)  # a repeat would come now
        assert taken_at_kill < n, "the kill came after the stream: the test proves nothing"
        got = [int(p) for p in b.recorder.payloads()]
        assert got == list(range(n)), "lost, doubled or out of order"
        assert a.metric("imserver_broker_reconnects_total", connection="publish") == 1
        assert a.metric("imserver_broker_published_total") == n
        assert a.metric("imserver_broker_dropped_total") == 0
        print(f"\npublish connection killed with {n - taken_at_kill:.0f} of {n} messages not yet "
              f"taken: all {n} arrived once, in order")

    scenario(prefix, body)


def test_a_redis_restart(private_redis: PrivateRedis, prefix: str,
                         caplog: pytest.LogCaptureFixture) -> None:
    """Both nodes notice, report it, reconnect and resync; what A published meanwhile goes out
    after, in order. A reaches Redis through a forwarder that the test opens only once B is
    back, so that B surely hears what A held."""
    caplog.set_level(logging.INFO, logger="imserver.bus")

    async def body(nodes: Nodes) -> None:
        gate = await nodes.forwarder(private_redis.port)
        a = nodes.node(gate.url, "A")
        b = nodes.node(private_redis.url, "B")
        a.bus.subscribe("ctl")
        b.bus.subscribe("room:r")
        await a.bus.start()
        await b.bus.start()
        await until(lambda: a.bus.connected and b.bus.connected, "both connected")
        sent = 0
        stop = asyncio.Event()

        async def stream() -> None:
            nonlocal sent
            while not stop.is_set():
                a.bus.publish("room:r", b"%d" % sent)
                sent += 1
                await asyncio.sleep(0.002)

        streaming = asyncio.create_task(stream())
        await until(lambda: len(b.recorder.messages) >= 100, "the stream to flow")
        gate.refuse = True
        private_redis.kill()
        killed_at = sent  # published from here on: Redis took none of it
        killed = time.monotonic()
        noticed = await until(lambda: a.bus.health() is not None and b.bus.health() is not None,
                              "both to report the loss")
        print(f"\nRedis killed: both buses reported it after {noticed * 1000:.0f} ms")
        for node in (a, b):
            reason = node.bus.health()
            assert reason is not None and "redis bus:" in reason and " down for " in reason, reason
            assert not node.bus.connected
            assert node.metric("imserver_broker_connected") == 0
        await asyncio.sleep(0.5)  # down a while, publishing all along
        assert "publish connection down" in (a.bus.health() or "")

        private_redis.start()
        await until(lambda: b.bus.connected and b.recorder.resyncs == 2, "B back and resynced")
        assert b.metric("imserver_broker_connected") == 1
        assert not a.bus.connected
        held = sent - killed_at
        assert held > 0
        gate.refuse = False
        await until(lambda: a.bus.connected and a.recorder.resyncs == 2, "A back and resynced")
        stop.set()
        await streaming
        await until(lambda: b.recorder.payloads()[-1:] == [b"%d" % (sent - 1)], "the last message")
        got = [int(p) for p in b.recorder.payloads()]
        assert got == sorted(set(got)), "doubled or out of order"
        assert got[-(sent - killed_at):] == list(range(killed_at, sent)), \
            "a message published while Redis was down did not arrive"
        for node in (a, b):
            assert node.metric("imserver_broker_connected") == 1
            assert node.bus.health() is None
            assert node.metric("imserver_broker_reconnects_total", connection="subscribe") == 1
        assert a.metric("imserver_broker_reconnects_total", connection="publish") == 1
        assert len(bus_lines(caplog, "redis bus down")) == 2  # one per node
        assert len(bus_lines(caplog, "back on")) == 2
        print(f"{held} messages published while Redis was down went out after it, in order; "
              f"down {time.monotonic() - killed:.1f} s")

    scenario(prefix, body)


def test_a_deaf_subscription_is_found_and_made_again(redis_url: str, prefix: str,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    """B's subscription goes silent behind a connection that stays open: its own pings stop
    coming back, and it says so, counts it, reconnects and resyncs."""
    caplog.set_level(logging.INFO, logger="imserver.bus")
    interval, timeout = 0.25, 1.0

    async def body(nodes: Nodes) -> None:
        middle = await nodes.forwarder(PORT)
        a = nodes.node(redis_url, "A")
        b = nodes.node(middle.url, "B", liveness_interval=interval, liveness_timeout=timeout,
                       retry_base=0.6, retry_cap=1.0)
        b.bus.subscribe("room:d")
        await a.bus.start()
        await b.bus.start()
        await until(lambda: a.bus.connected and b.bus.connected, "both connected")
        a.bus.publish("room:d", b"before")
        await until(lambda: b.recorder.payloads() == [b"before"], "the first message")

        seen: list[str] = []

        async def watch() -> None:
            while True:
                reason = b.bus.health()
                if reason and (not seen or seen[-1] != reason):
                    seen.append(reason)
                await asyncio.sleep(0.005)

        watcher = asyncio.create_task(watch())
        assert middle.freeze(f"{prefix}:B:sub".encode()) == 1
        frozen = time.monotonic()
        a.bus.publish("room:d", b"unheard")  # lost in the frozen connection: the resync's to fill
        noticed = await until(lambda: b.metric("imserver_broker_deaf_total") == 1, "B to notice")
        print(f"\nsubscription frozen: B noticed after {noticed * 1000:.0f} ms "
              f"(interval {interval} s, timeout {timeout} s)")
        # A busy machine may stall the loop: allow for it, but not for a missed check.
        assert noticed <= timeout + interval + 2.0
        assert b.metric("imserver_broker_connected") == 0
        back = await until(lambda: b.bus.connected and b.recorder.resyncs == 2, "B back and resynced")
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
        print(f"B back and resynced {back * 1000:.0f} ms later, through a new connection")
        assert any("deaf: own ping not heard for" in s for s in seen), seen
        assert b.metric("imserver_broker_connected") == 1
        assert b.metric("imserver_broker_reconnects_total", connection="subscribe") == 1
        assert b.metric("imserver_broker_reconnects_total", connection="publish") == 0
        a.bus.publish("room:d", b"after")
        await until(lambda: b.recorder.payloads()[-1:] == [b"after"], "a message after")
        assert b.recorder.payloads() == [b"before", b"after"]
        lines = bus_lines(caplog, "deaf")
        assert len(lines) == 1, lines  # one line at the transition, not one per check
        assert time.monotonic() - frozen < TIMEOUT

    scenario(prefix, body)


def test_a_full_outbox_drops_the_oldest_and_sends_the_rest_in_order(
        redis_url: str, prefix: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="imserver.bus")

    async def body(nodes: Nodes) -> None:
        gate = await nodes.forwarder(PORT)
        gate.refuse = True
        a = nodes.node(gate.url, "A", outbox_limit=10)
        b = nodes.node(redis_url, "B")
        b.bus.subscribe("room:o")
        await b.bus.start()
        await until(lambda: b.bus.connected, "B connected")
        started = time.monotonic()
        await a.bus.start()
        assert time.monotonic() - started < 0.1, "start() waited for Redis"
        await until(lambda: a.bus.health() is not None and "publish" in (a.bus.health() or ""),
                    "A to report that it cannot publish")
        slowest = 0.0
        for i in range(25):
            t = time.perf_counter()
            a.bus.publish("room:o", b"%d" % i)
            slowest = max(slowest, time.perf_counter() - t)
        assert slowest < 0.01, f"publish() took {slowest * 1000:.1f} ms"
        assert a.metric("imserver_broker_dropped_total") == 15
        await asyncio.sleep(0.3)  # retries meanwhile change nothing
        assert a.metric("imserver_broker_dropped_total") == 15
        assert len(bus_lines(caplog, "outbox full")) == 1
        gate.refuse = False
        await until(lambda: len(b.recorder.messages) == 10, "the newest ten")
        assert b.recorder.payloads() == [b"%d" % i for i in range(15, 25)]
        await until(lambda: a.bus.connected, "A connected")
        assert a.metric("imserver_broker_published_total") == 10
        assert a.metric("imserver_broker_reconnects_total", connection="publish") == 0  # a first connect
        # Down from the start: said once, however many attempts failed; then up, once.
        assert len(bus_lines(caplog, "redis bus down (node A)")) == 1
        assert len(bus_lines(caplog, "redis bus connected to redis://127.0.0.1")) == 2

    scenario(prefix, body)


def test_a_failing_handler_does_not_stop_delivery(redis_url: str, prefix: str,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="imserver.bus")

    async def body(nodes: Nodes) -> None:
        a = nodes.node(redis_url, "A")
        b = nodes.node(redis_url, "B", fail_on=(b"boom", b"boom again"))
        b.bus.subscribe("room:h")
        await a.bus.start()
        await b.bus.start()
        await until(lambda: a.bus.connected and b.bus.connected, "both connected")
        for payload in (b"one", b"boom", b"two", b"boom again", b"three"):
            a.bus.publish("room:h", payload)
        await until(lambda: b.recorder.payloads()[-1:] == [b"three"], "the message after the failures")
        assert b.recorder.payloads() == [b"one", b"boom", b"two", b"boom again", b"three"]
        failures = [r for r in caplog.records if r.name == "imserver.bus" and r.levelno == logging.ERROR]
        assert len(failures) == 1, "a failing handler is logged, but not once per message"
        assert failures[0].exc_info is not None and "on_message" in failures[0].getMessage()
        assert b.bus.connected and b.recorder.resyncs == 1

    scenario(prefix, body)


def test_a_bus_over_a_unix_socket(private_redis: PrivateRedis, prefix: str) -> None:
    async def body(nodes: Nodes) -> None:
        a = nodes.node(private_redis.unix_url, "A")
        b = nodes.node(private_redis.unix_url, "B")
        b.bus.subscribe("room:u")
        await a.bus.start()
        await b.bus.start()
        await until(lambda: a.bus.connected and b.bus.connected, "both connected")
        a.bus.publish("room:u", b"over the socket")
        await until(lambda: b.recorder.payloads() == [b"over the socket"], "the message")
        assert await b.bus.redis.incr(f"{prefix}:n") == 1

    scenario(prefix, body)


def test_two_nodes_with_one_id_are_told(redis_url: str, prefix: str,
                                        caplog: pytest.LogCaptureFixture) -> None:
    """Each hears the other's pings on their shared channel: said once, and neither is fooled
    into thinking its own subscription is alive by the other's pings."""
    caplog.set_level(logging.INFO, logger="imserver.bus")

    async def body(nodes: Nodes) -> None:
        first = nodes.node(redis_url, "twin", liveness_interval=0.1, liveness_timeout=1.0)
        second = nodes.node(redis_url, "twin", liveness_interval=0.1, liveness_timeout=1.0)
        await first.bus.start()
        await second.bus.start()
        await until(lambda: first.bus.connected and second.bus.connected, "both connected")
        await until(lambda: len(bus_lines(caplog, "node ids must differ")) == 2, "each to say so")
        await asyncio.sleep(0.5)
        assert len(bus_lines(caplog, "node ids must differ")) == 2

    scenario(prefix, body)
