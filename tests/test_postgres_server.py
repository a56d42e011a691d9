"""The real server on `storage.backend: postgres`: a chat exchange, a reconnect that
recovers with `since`, direct messages and dm_sync, and a restart of the server that
keeps every message and every guest login in the database."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from imserver.testing import ServerProcess, SyncClient, login_user
from tests import pg

pg.require_asyncpg()

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def server(tmp_path: Path, pg_dsn: str, pg_schema: str) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path, {
        "storage": {"backend": "postgres", "dsn": pg_dsn, "schema": pg_schema},
        "limits": {"messages_per_second": 10_000, "burst": 10_000}})
    proc.start()
    yield proc
    proc.stop()


def frame_where(client: SyncClient, match: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """The next frame that matches, skipping presence and the like."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        frame = client.recv_json()
        if match(frame):
            return frame
        assert frame["type"] != "error", frame
    raise AssertionError("no matching frame in 10 s")


def of_type(kind: str, **fields: Any) -> Callable[[dict[str, Any]], bool]:
    return lambda f: f["type"] == kind and all(f.get(k) == v for k, v in fields.items())


def say(client: SyncClient, room: str, text: str, cid: str) -> int:
    client.send_json({"type": "say", "room": room, "text": text, "cid": cid})
    ack: int = frame_where(client, of_type("ack", cid=cid))["id"]
    return ack


def connect(server: ServerProcess, token: str) -> SyncClient:
    client = SyncClient(server.host, f"/ws?token={token}", timeout=10)
    assert client.recv_json()["type"] == "welcome"
    return client


def join(client: SyncClient, room: str, **extra: Any) -> dict[str, Any]:
    client.send_json({"type": "join", "room": room, **extra})
    return frame_where(client, of_type("joined", room=room))


def test_chat_and_recovery_through_a_server_on_postgres(server, pg_dsn, pg_schema):
    alice_token, alice = login_user(server.host, "alice")
    bob_token, bob = login_user(server.host, "bob")
    a, b = connect(server, alice_token), connect(server, bob_token)
    join(a, "lobby")
    join(b, "lobby")
    hello = say(a, "lobby", "hello bob", "a1")
    got = frame_where(b, of_type("message", id=hello))
    assert (got["from"], got["name"], got["text"]) == (alice["id"], "alice", "hello bob")
    assert say(a, "lobby", "hello bob", "a1") == hello  # a resend is the same message
    b.close()

    missed = [say(a, "lobby", f"while you were away {i}", f"a{i}") for i in range(2, 5)]
    a.send_json({"type": "dm", "to": "bob", "text": "psst", "cid": "d1"})
    dm = frame_where(a, of_type("ack", cid="d1"))["id"]

    b = connect(server, bob_token)
    joined = join(b, "lobby", since=hello)
    assert [m["id"] for m in joined["messages"]] == missed and not joined["truncated"]
    b.send_json({"type": "dm_sync", "since": 0})
    synced = frame_where(b, of_type("dm_sync"))
    assert [(m["id"], m["to"], m["text"]) for m in synced["messages"]] == [(dm, bob["id"], "psst")]
    b.send_json({"type": "dm", "to": "alice", "text": "hi back", "cid": "d2"})
    reply = frame_where(a, of_type("message", text="hi back"))
    assert reply["from"] == bob["id"] and reply["to"] == alice["id"]
    a.close()
    b.close()

    server.stop()  # the server goes, the database stays
    server.start()
    a = connect(server, alice_token)  # the guest login was kept in PostgreSQL
    assert login_user_conflict(server, "alice") == 409
    history = join(a, "lobby", since=0)
    assert [m["id"] for m in history["messages"]] == [hello, *missed]
    a.close()

    rows = pg.in_thread(lambda: pg.execute(
        pg_dsn, pg_schema, "SELECT id FROM messages WHERE room = 'lobby' ORDER BY id"))
    assert rows == [(hello,), *[(i,) for i in missed]]
    rooms = pg.in_thread(lambda: pg.execute(pg_dsn, pg_schema, "SELECT name, last_id FROM rooms"))
    assert rooms == [("lobby", missed[-1])]
    assert "Traceback" not in server.output()
    assert not (Path(server.workdir) / "data" / "imserver.db").exists()  # no SQLite file on the side


def login_user_conflict(server: ServerProcess, name: str) -> int:
    """The HTTP status of a login for a name someone holds."""
    import urllib.error
    import urllib.request
    request = urllib.request.Request(
        f"http://{server.host}/api/login", data=json.dumps({"name": name}).encode(),
        headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_a_server_on_postgres_that_cannot_connect_stops_with_a_clear_error(tmp_path):
    port = pg.free_port()
    proc = ServerProcess(tmp_path, {"storage": {
        "backend": "postgres", "dsn": f"postgresql://imserver:hunter2@127.0.0.1:{port}/chat",
        "timeout_seconds": 2}})
    with pytest.raises(RuntimeError, match="did not start"):
        proc.start(timeout=15)
    output = proc.output()
    assert proc.wait() == 2
    assert "cannot connect to PostgreSQL" in output and "hunter2" not in output
    assert "Traceback" not in output


def upgrade(server: ServerProcess, token: str) -> SyncClient | int:
    """A chat socket with the token (welcomed), or the HTTP status that refused it."""
    try:
        return connect(server, token)
    except ConnectionRefusedError as exc:
        return int(str(exc).rsplit(" ", 1)[-1])


def test_two_servers_on_one_database_share_guest_logins_names_and_logouts(tmp_path, pg_dsn, pg_schema):
    """Two servers on one schema with one secret, and nothing else between them (no
    bus): a login on one opens a socket on the other, whose check reads the token from
    the database; the name is held on both; a logout on the first reaches the second
    at its next check of the token, which reads it again (the second heard no event),
    refuses it and closes the socket opened with it there; and a new login on the first
    passes on the second at once, whatever was refused there before."""
    settings = {"storage": {"backend": "postgres", "dsn": pg_dsn, "schema": pg_schema},
                "auth": {"secret": "t" * 64}}
    servers = []
    for name in ("one", "two"):
        (tmp_path / name).mkdir()
        servers.append(ServerProcess(tmp_path / name, settings))
    one, two = servers
    try:
        for server in servers:
            server.start()
        token, alice = login_user(one.host, "alice")
        on_two = connect(two, token)  # the store read on two
        assert login_user_conflict(two, "ALICE") == 409  # the name is held on both
        assert http(one, "POST", "/api/logout", token) == 204
        deadline = time.monotonic() + 20
        while isinstance(answer := upgrade(two, token), SyncClient):
            answer.close()
            assert time.monotonic() < deadline, "the logout never reached the second server"
            time.sleep(0.2)
        assert answer == 401
        assert on_two.recv() is None and on_two.close_code == 4001  # closed there too
        on_two.close()
        again, new_alice = login_user(one.host, "alice")  # the name was freed
        assert new_alice["id"] != alice["id"]
        client = upgrade(two, again)  # straight to the other server
        assert isinstance(client, SyncClient), client
        client.close()
        # /api/me and a logout on the server that did not issue the token
        third, _ = login_user(one.host, "bob")
        assert http(two, "GET", "/api/me", third) == 200
        assert http(two, "POST", "/api/logout", third) == 204
        assert upgrade(two, third) == 401
        assert login_user_conflict(one, "bob") == 200  # the name is free in the database
    finally:
        for server in servers:
            server.stop()
    for server in servers:
        assert "Traceback" not in server.output()


def http(server: ServerProcess, method: str, path: str, token: str) -> int:
    request = urllib.request.Request(f"http://{server.host}{path}", method=method,
                                     data=b"" if method == "POST" else None,
                                     headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
