"""Limits: rate limit and flood close, frame size, connection and login caps,
rooms per connection, and slow consumers."""

from __future__ import annotations

import asyncio

import pytest
from tornado.httpclient import HTTPClientError

from imserver.core.ratelimit import FloodGuard, KeyedLimiter, TokenBucket
from tests.conftest import make_config


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_token_bucket_allows_burst_then_rate():
    clock = FakeClock()
    bucket = TokenBucket(rate=2, burst=3, clock=clock)
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    clock.now = 0.5
    assert bucket.take() and not bucket.take()
    clock.now = 100
    assert sum(bucket.take() for _ in range(10)) == 3  # never more than the burst


def test_flood_guard_counts_within_a_window():
    clock = FakeClock()
    guard = FloodGuard(limit=3, window=2.0, clock=clock)
    assert not guard.strike() and not guard.strike()
    clock.now = 2.5  # a new window
    assert not guard.strike() and not guard.strike() and guard.strike()


def test_keyed_limiter_is_per_key_and_bounded():
    clock = FakeClock()
    limiter = KeyedLimiter(rate=1, burst=1, max_keys=2, clock=clock)
    assert limiter.take("a") and not limiter.take("a") and limiter.take("b")
    limiter.take("c")  # evicts "a", the least recently used
    assert limiter.take("a")


@pytest.fixture
def config(tmp_path):
    return make_config(tmp_path, limits={
        "messages_per_second": 5, "burst": 5, "flood_strikes": 30, "max_frame_bytes": 1024,
        "max_connections": 6, "max_connections_per_user": 2, "max_connections_per_address": 5,
        "max_rooms_per_connection": 3, "login_attempts_per_minute": 6,
        "max_text_chars": 900},
        # pongs count against the rate limit too: no heartbeat pings within these tests
        heartbeat={"ping_interval": 60, "ping_timeout": 120})


@pytest.mark.gen_test
async def test_excess_messages_get_rate_limited_and_are_not_delivered(chat, metric):
    alice, bob = await chat.connect("alice"), await chat.connect("bob")
    await alice.join("r")  # 1 token
    await bob.join("r")
    await alice.expect("presence")
    for i in range(8):
        alice.send({"type": "say", "room": "r", "text": f"m{i}", "cid": f"c{i}"})
    frames = [await alice.recv() for _ in range(8)]
    # refusals are answered at once, acks once the message is stored
    assert sorted(f["cid"] for f in frames if f["type"] == "ack") == ["c0", "c1", "c2", "c3"]
    errors = [f for f in frames if f["type"] == "error"]
    assert [f["cid"] for f in errors] == ["c4", "c5", "c6", "c7"]
    assert all(f["code"] == "rate_limited" for f in errors)
    assert [(await bob.expect("message"))["text"] for _ in range(4)] == ["m0", "m1", "m2", "m3"]
    await bob.nothing()
    assert metric("imserver_refused_total", reason="rate_limited") == 4
    await asyncio.sleep(0.25)  # the bucket refills: the connection is usable again
    alice.send({"type": "say", "room": "r", "text": "later", "cid": "c8"})
    assert (await alice.expect("ack"))["cid"] == "c8"


@pytest.mark.gen_test
async def test_flooder_is_closed_with_4008_while_others_chat(chat, metric):
    flooder, alice, bob = (await chat.connect("flooder"), await chat.connect("alice"),
                           await chat.connect("bob"))
    for c in (flooder, alice, bob):
        await c.join("r")
    for _ in range(200):
        flooder.send({"type": "say", "room": "r", "text": "spam"})
    assert await flooder.closed() == 4008
    assert metric("imserver_terminations_total", reason="rate_limited") == 1
    alice.send({"type": "say", "room": "r", "text": "still here", "cid": "a"})
    while True:
        frame = await bob.recv()
        if frame["type"] == "message" and frame["from"] == chat.id("alice"):
            assert frame["text"] == "still here"
            break


@pytest.mark.gen_test
async def test_too_big_frame_closes_with_1009_and_is_counted(chat, metric):
    alice = await chat.connect("alice")
    alice.send({"type": "say", "room": "r", "text": "x" * 2000})
    assert await alice.closed() == 1009
    assert metric("imserver_connections_closed_total", reason="too_big") == 1
    assert metric("imserver_terminations_total", reason="too_big") == 1


@pytest.mark.gen_test
async def test_rooms_per_connection(chat):
    alice = await chat.connect("alice")
    for room in ("a", "b", "c"):
        await alice.join(room)
    alice.send({"type": "join", "room": "d"})
    assert "at most 3 rooms" in (await alice.expect("error"))["message"]
    await alice.join("a")  # re-joining a room it has is fine


@pytest.mark.gen_test
async def test_connection_caps_per_user_per_address_and_in_all(chat, metric):
    token = await chat.login("alice")
    await chat.connect(token=token)
    await chat.connect(token=token)
    assert await chat.refused(f"?token={token}") == 429  # per user: 2
    for name in ("b", "c", "d"):
        await chat.connect(name)
    assert await chat.refused(f"?token={await chat.login('e')}") == 429  # per address: 5
    assert metric("imserver_refused_total", reason="too_many_connections") == 2
    assert metric("imserver_connections") == 5


@pytest.mark.gen_test
async def test_login_attempts_per_address(chat, metric):
    for i in range(6):
        await chat.login(f"user{i}")
    with pytest.raises(HTTPClientError) as info:
        await chat.login("one-too-many")
    assert info.value.code == 429
    assert metric("imserver_refused_total", reason="login_rate") == 1


@pytest.mark.gen_test
async def test_unexpected_error_closes_only_that_connection_and_is_counted(chat, app, metric):
    """Fault injection: the hub fails on one user's command; the others go on."""
    alice, bob = await chat.connect("alice"), await chat.connect("bob")
    await alice.join("r")
    await bob.join("r")
    await alice.expect("presence")
    handle = app.runtime.hub.handle

    def failing(conn, command):
        if conn.user.name == "bob":
            raise RuntimeError("injected")
        handle(conn, command)

    app.runtime.hub.handle = failing
    bob.send({"type": "leave", "room": "r"})
    assert await bob.closed() == 1011
    await alice.expect("presence")  # bob's connection is gone
    assert metric("imserver_connections_closed_total", reason="error") == 1
    alice.send({"type": "say", "room": "r", "text": "still fine", "cid": "1"})
    assert (await alice.expect("ack"))["cid"] == "1"
