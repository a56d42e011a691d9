"""Heartbeat: the sweep's decisions, dead peers terminated, live ones kept."""

from __future__ import annotations

import asyncio
import base64
import os
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tornado.iostream import StreamClosedError
from tornado.tcpclient import TCPClient

from imserver.core.frames import text_frame
from imserver.core.registry import Connection, User
from imserver.ops.heartbeat import Action, Heartbeat, decide, ride_along_after, sweep_period
from imserver.testing import ServerProcess, SyncClient, login

# The chat tests run against one server and against two nodes of a cluster.
CLUSTER_TOO = True


def test_decide_pings_when_due_and_terminates_when_silent():
    kw = {"interval": 10.0, "timeout": 20.0}
    assert decide(now=100, last_seen=100, ping_sent_at=None, **kw) is Action.PING
    assert decide(now=100, last_seen=99, ping_sent_at=95, **kw) is Action.NONE
    assert decide(now=100, last_seen=99, ping_sent_at=90, **kw) is Action.PING
    assert decide(now=100, last_seen=80.5, ping_sent_at=95, **kw) is Action.NONE
    assert decide(now=100, last_seen=80, ping_sent_at=95, **kw) is Action.TERMINATE


def test_sweep_period_bounds_detection_within_timeout_plus_interval():
    for interval, timeout in [(10, 20), (20, 10), (0.3, 0.8), (25, 60)]:
        assert timeout + sweep_period(interval, timeout) <= timeout + interval


class RecordingTransport:
    """A connection's socket side that only notes what was asked of it."""

    def __init__(self) -> None:
        self.pings: list[bytes] = []
        self.ended: list[tuple[int, str]] = []
        self.aborted = False

    def send(self, frame):
        return True

    def send_ping(self, payload: bytes) -> None:
        self.pings.append(payload)

    def close(self, code: int, reason: str) -> None:
        self.ended.append((code, reason))

    def abort(self) -> None:
        self.aborted = True


def heartbeat_of(conns, now, *, interval=10.0, timeout=20.0, client_interval=10.0):
    hb = Heartbeat(interval=interval, timeout=timeout, client_interval=client_interval,
                   send_ping=lambda conn, payload: conn.transport.send_ping(payload), clock=lambda: now)
    for conn in conns:
        hb.watch(conn)
    return hb


def connection(**fields) -> Connection:
    return Connection(id="c", user=User("u", "u"), transport=RecordingTransport(), **fields)


# now = 60, timeout 20, interval 10: the edges are at 40 (silent) and 51 (ping due).
seconds = st.floats(0, 60) | st.sampled_from([39.5, 40.0, 40.5, 50.5, 51.0, 51.5])


@given(last_seen=seconds, ping_sent_at=st.none() | seconds, text_ping_at=st.none() | seconds,
       expires_in=st.floats(-5, -0.5) | st.floats(0.5, 5))
def test_the_sweep_does_what_decide_says_for_every_connection(last_seen, ping_sent_at, text_ping_at,
                                                              expires_in):
    """The sweep skips the common case inline; it must agree with decide() everywhere."""
    now = 60.0
    conn = connection(last_seen=last_seen, ping_sent_at=ping_sent_at, text_ping_at=text_ping_at,
                      expires_at=time.time() + expires_in)
    heartbeat_of([conn], now).sweep()
    transport = conn.transport
    if expires_in <= 0:
        assert transport.ended == [(4001, "token expired")] and not transport.pings
        return
    action = decide(now=now, last_seen=last_seen, ping_sent_at=ping_sent_at, interval=10.0, timeout=20.0,
                    next_text_ping=None if text_ping_at is None else text_ping_at + 10.0)
    assert transport.aborted == (action is Action.TERMINATE)
    assert len(transport.pings) == (action is Action.PING)
    # A ping sets ping_sent_at to now; otherwise it is left as it was (which may be now too).
    assert conn.ping_sent_at == (now if action is Action.PING else ping_sent_at)


def test_ride_along_threshold():
    assert ride_along_after(10, 10) == 1.0  # the ping would fall due before the next text ping
    assert ride_along_after(30, 10) == 17.0  # at 17 s the next text ping (27 s) still comes first
    assert ride_along_after(0.3, 0.5) == pytest.approx(0.03)


def test_a_ping_rides_along_only_when_it_would_fall_due_before_the_next_text_ping():
    conn = connection(ping_sent_at=100.0)
    heartbeat = heartbeat_of([conn], 100.0)
    heartbeat.ride_along(conn, 100.5)
    assert conn.transport.pings == [] and conn.ping_sent_at == 100.0
    heartbeat.ride_along(conn, 101.0)
    assert len(conn.transport.pings) == 1 and conn.ping_sent_at == 101.0
    fresh = connection()  # never pinged yet
    heartbeat.ride_along(fresh, 101.0)
    assert len(fresh.transport.pings) == 1


def test_ride_along_ping_leaves_in_the_same_send_as_the_pong(tmp_path):
    """With a long interval no sweep runs during the test: only the ride-along pings."""
    server = ServerProcess(tmp_path, {"heartbeat": {"ping_interval": 60, "ping_timeout": 120}}).start()
    try:
        client = SyncClient(server.host, f"/ws?token={login(server.host, 'rider')}", answer_pings=False)
        assert client.recv_json()["type"] == "welcome"
        assert client._buffer == b""
        client.send_text("ping")
        data = client.sock.recv(100)  # one send arrives as one segment on loopback
        assert data[:6] == text_frame(b"pong") and data[6:8] == b"\x89\x04" and len(data) == 12, data
        client.send_text("ping")  # a ping went out just now: the next pong goes alone
        assert client.sock.recv(100) == text_frame(b"pong")
        client.close()
    finally:
        server.stop()


async def open_dead_peer(host: str, token: str):
    """Complete the WebSocket upgrade over a raw socket, then never answer anything."""
    hostname, port = host.split(":")
    stream = await TCPClient().connect(hostname, int(port))
    key = base64.b64encode(os.urandom(16)).decode()
    request = (f"GET /ws?token={token} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n")
    await stream.write(request.encode())
    head = await stream.read_until(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101"), head
    return stream


@pytest.mark.gen_test(timeout=15)
async def test_dead_peer_terminated_within_bound_live_idle_client_kept(chat, config, metric):
    live = await chat.connect("alive")  # tornado's client answers ping frames by itself
    token = await chat.login("ghost")
    opened = time.monotonic()  # before the server sees the connection: elapsed >= its silence
    dead = await open_dead_peer(chat.host, token)
    assert metric("imserver_connections") == 2
    try:
        while True:  # read (and ignore) the server's frames until it drops us
            await dead.read_bytes(1, partial=True)
    except StreamClosedError:
        pass
    elapsed = time.monotonic() - opened
    hb = config.heartbeat
    # Never before ping_timeout of silence. That it comes within ping_timeout + ping_interval
    # is the sweep's schedule, pinned without wall-clock bounds in test_core_heartbeat.py.
    assert hb.ping_timeout <= elapsed, elapsed
    assert metric("imserver_terminations_total", reason="heartbeat_timeout") == 1
    assert metric("imserver_connections_closed_total", reason="heartbeat_timeout") == 1
    assert metric("imserver_connections") == 1
    # The idle but live client survived several timeouts' worth of pings.
    await live.nothing(hb.ping_timeout * 2)
    live.send("ping")
    assert await live.recv_raw() == "pong"
    assert metric("imserver_terminations_total", reason="heartbeat_timeout") == 1
    assert metric("imserver_heartbeat_rtt_seconds_count") >= 2


@pytest.mark.gen_test(timeout=10)
async def test_round_trip_recorded_in_registry(chat, app):
    started = time.monotonic()
    await chat.connect("alice")
    (conn,) = list(app.runtime.registry)
    deadline = time.monotonic() + 8
    while conn.rtt is None:  # the first ping is answered by tornado's client by itself
        assert time.monotonic() < deadline, "no round trip recorded"
        await asyncio.sleep(0.01)
    # A round trip is positive and no longer than the time the connection has existed.
    assert 0 < conn.rtt <= time.monotonic() - started
    assert conn.frames_out >= 1 and conn.user.id == chat.id("alice")
