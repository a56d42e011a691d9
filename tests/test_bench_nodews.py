"""The benchmarks' Node `ws` comparison server (bench/loadgen/wsserver.mjs), started as the
bench starts it: it must speak enough of the protocol for the load generators to drive it."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.servers import NODE_WS, start_server
from imserver.testing import ServerProcess, SyncClient, login_user
from tests.system import require_binary


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    require_binary("node", "the benchmarks need Node.js 18 or later")  # fails on CI, skips elsewhere
    proc = start_server(tmp_path, NODE_WS)
    yield proc
    proc.stop()


def connect(server: ServerProcess, name: str) -> tuple[SyncClient, dict[str, Any]]:
    token, user = login_user(server.host, name)
    assert user == {"id": name, "name": name}
    client = SyncClient(server.host, f"/ws?token={token}")
    return client, client.recv_json()


def test_login_welcome_ping_join_and_say(server: ServerProcess) -> None:
    alice, welcome = connect(server, "alice")
    assert welcome["type"] == "welcome"
    assert welcome["user"] == {"id": "alice", "name": "alice"}
    assert welcome["heartbeat"] == {"interval": 30, "timeout": 60}
    bob, _ = connect(server, "bob")
    alice.send_text("ping")
    assert alice.recv() == "pong"

    alice.send_json({"type": "join", "room": "lobby"})
    assert alice.recv_json() == {"type": "joined", "room": "lobby", "members": ["alice"], "messages": [],
                                 "truncated": False}
    bob.send_json({"type": "join", "room": "lobby"})
    assert bob.recv_json()["members"] == ["alice", "bob"]
    assert alice.recv_json() == {"type": "presence", "room": "lobby", "joined": ["bob"], "left": []}

    alice.send_json({"type": "say", "room": "lobby", "text": "hi", "cid": "c1"})
    ack = alice.recv_json()
    assert ack["type"] == "ack" and ack["cid"] == "c1" and isinstance(ack["id"], int)
    raw = bob.recv()
    assert raw is not None and raw.startswith('{"type":"message",')  # what fanout.mjs reads from the bytes
    assert json.loads(raw) == {"type": "message", "id": ack["id"], "room": "lobby", "from": "alice",
                               "text": "hi", "ts": ack["ts"], "cid": "c1"}

    with urllib.request.urlopen(f"http://{server.host}/healthz", timeout=10) as response:
        assert json.loads(response.read()) == {"connections": 2}
    alice.close()
    bob.close()


def test_a_bad_frame_gets_an_error_and_the_socket_stays_open(server: ServerProcess) -> None:
    client, _ = connect(server, "carol")
    client.send_text("{not json")
    assert client.recv_json()["type"] == "error"
    client.send_json({"type": "say", "room": "nowhere", "text": "hi", "cid": "c2"})
    assert client.recv_json() == {"type": "error", "code": "not_in_room", "message": "not in nowhere",
                                  "cid": "c2"}
    client.send_text("ping")
    assert client.recv() == "pong"
    client.close()


def test_an_unknown_token_is_refused(server: ServerProcess) -> None:
    with pytest.raises(ConnectionRefusedError, match="401"):
        SyncClient(server.host, "/ws?token=nope")
