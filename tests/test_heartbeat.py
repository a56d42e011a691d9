"""Heartbeat: the sweep's decisions, dead peers terminated, live ones kept."""

from __future__ import annotations

import base64
import os
import time

import pytest
from tornado.iostream import StreamClosedError
from tornado.tcpclient import TCPClient

from imserver.heartbeat import Action, decide, sweep_period


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
    dead = await open_dead_peer(chat.host, await chat.login("ghost"))
    opened = time.monotonic()
    assert metric("imserver_connections") == 2
    try:
        while True:  # read (and ignore) the server's frames until it drops us
            await dead.read_bytes(1, partial=True)
    except StreamClosedError:
        pass
    elapsed = time.monotonic() - opened
    hb = config.heartbeat
    # Detection must happen within ping_timeout + ping_interval (plus scheduling slack).
    assert hb.ping_timeout <= elapsed <= hb.ping_timeout + hb.ping_interval + 0.25, elapsed
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
    client = await chat.connect("alice")
    await client.nothing(app.runtime.config.heartbeat.ping_interval * 2)
    (conn,) = list(app.runtime.registry)
    assert conn.rtt is not None and 0 < conn.rtt < 0.5
    assert conn.frames_out >= 1 and conn.user.id == "alice"
