"""Graceful shutdown of a real server process: bye, spread retry, 1001, exit 0."""

from __future__ import annotations

import json
import random
import signal
import time

import pytest
from tornado.httpclient import AsyncHTTPClient
from tornado.websocket import websocket_connect

from imserver.ops.shutdown import spread_delays
from imserver.testing import ServerProcess


def test_spread_delays_fill_the_window_one_per_slot():
    delays = spread_delays(100, 10.0, random.Random(7))
    assert len(delays) == 100 and len(set(delays)) == 100
    assert all(0 <= d < 10.0 for d in delays)
    # exactly one client per 0.1 s slot: no two clients come back in the same slot
    assert sorted(int(d / 0.1) for d in delays) == list(range(100))
    assert delays != sorted(delays)  # handed out in random order
    assert spread_delays(0, 10.0) == []
    assert spread_delays(3, 0.0) == [0.0, 0.0, 0.0]
    late = spread_delays(50, 5.0, random.Random(1), start=2.0)
    assert all(2.0 <= d < 7.0 for d in late)


@pytest.fixture
def server(tmp_path):
    proc = ServerProcess(tmp_path, {"shutdown": {"spread_seconds": 3.0, "retry_min_seconds": 0.5,
                                                 "grace_seconds": 2.0}})
    proc.start()
    yield proc
    proc.kill()


async def connect_clients(host: str, count: int) -> list:
    http = AsyncHTTPClient()
    clients = []
    for i in range(count):
        r = await http.fetch(f"http://{host}/api/login", method="POST",
                             body=json.dumps({"name": f"user{i}"}),
                             headers={"Content-Type": "application/json"})
        ws = await websocket_connect(f"ws://{host}/ws?token={json.loads(r.body)['token']}")
        assert json.loads(await ws.read_message())["type"] == "welcome"
        clients.append(ws)
    return clients


@pytest.mark.gen_test(timeout=30)
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_signal_says_bye_with_spread_retry_closes_1001_and_exits_0(server, sig):
    clients = await connect_clients(server.host, 20)
    started = time.monotonic()
    server.signal(sig)
    retry = []
    for ws in clients:
        bye = json.loads(await ws.read_message())
        assert bye["type"] == "bye" and bye["reason"] == "shutdown"
        retry.append(bye["retry_after"])
        assert await ws.read_message() is None
        assert ws.close_code == 1001
        ws.close()
    assert all(0.5 <= r < 3.5 for r in retry)
    assert len(set(retry)) == len(retry)
    assert max(retry) - min(retry) > 1.5  # spread over the window, not bunched
    assert server.wait(10) == 0
    assert time.monotonic() - started < 5
    out = server.output()
    assert "shutdown complete" in out and "reason=shutdown code=1001" in out
    assert "Traceback" not in out


@pytest.mark.gen_test(timeout=30)
async def test_shutdown_stops_accepting(server):
    (ws,) = await connect_clients(server.host, 1)
    server.signal(signal.SIGTERM)
    await ws.read_message()  # bye
    ws.close()
    with pytest.raises(OSError):
        await connect_clients(server.host, 1)
    assert server.wait(10) == 0
