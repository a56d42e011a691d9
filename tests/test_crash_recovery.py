"""Kill -9 the server mid-stream: nothing acked is lost, nothing is stored or seen twice."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from dataclasses import dataclass, field

import pytest
from tornado.httpclient import AsyncHTTPClient
from tornado.websocket import WebSocketClientConnection, WebSocketClosedError, websocket_connect

from imserver.testing import ServerProcess, SyncClient, login_user

ROOM = "crash"
PER_CLIENT = 60
WINDOW = 4  # messages in flight per client


@dataclass
class CrashClient:
    """A client that resends unacked messages with their cid and recovers with `since`."""
    name: str
    host: str
    token: str = ""
    user_id: str = ""
    next_number: int = 0
    unacked: dict[str, str] = field(default_factory=dict)  # cid -> text, in send order
    acked: dict[str, int] = field(default_factory=dict)  # cid -> id
    received: list[int] = field(default_factory=list)  # ids of others' messages, as delivered
    last_id: int | None = None
    connects: int = 0
    ws: WebSocketClientConnection | None = None

    async def login(self) -> None:
        r = await AsyncHTTPClient().fetch(
            f"http://{self.host}/api/login", method="POST", body=json.dumps({"name": self.name}),
            headers={"Content-Type": "application/json"})
        body = json.loads(r.body)
        self.token, self.user_id = body["token"], body["user"]["id"]

    def _send_new(self) -> None:
        assert self.ws is not None
        while len(self.unacked) < WINDOW and self.next_number < PER_CLIENT:
            cid = f"{self.name}-{self.next_number}"
            self.unacked[cid] = f"{self.name} message {self.next_number}"
            self.next_number += 1
            self._write({"type": "say", "room": ROOM, "text": self.unacked[cid], "cid": cid})

    def _write(self, frame: dict) -> None:
        """Send, ignoring a socket that the crash already closed (the resend covers it)."""
        assert self.ws is not None
        try:
            sent = self.ws.write_message(json.dumps(frame))
        except WebSocketClosedError:
            return
        sent.add_done_callback(lambda f: f.exception())

    def _seen(self, msg_id: int) -> None:
        self.last_id = msg_id if self.last_id is None else max(self.last_id, msg_id)

    async def run(self) -> None:
        while len(self.acked) < PER_CLIENT:
            query = f"&reconnect={self.connects}&cause=close" if self.connects else ""
            try:
                self.ws = await websocket_connect(f"ws://{self.host}/ws?token={self.token}{query}")
            except OSError:
                await asyncio.sleep(0.05)  # the server is down: try again
                continue
            self.connects += 1
            try:
                await self._session()
            finally:
                self.ws.close()

    async def _session(self) -> None:
        assert self.ws is not None
        join = {"type": "join", "room": ROOM}
        if self.last_id is not None:
            join["since"] = self.last_id
        self._write(join)
        for cid, text in self.unacked.items():  # resend with the original cid
            self._write({"type": "say", "room": ROOM, "text": text, "cid": cid})
        while len(self.acked) < PER_CLIENT:
            raw = await self.ws.read_message()
            if raw is None:
                return
            if raw == "pong":
                continue
            frame = json.loads(raw)
            kind = frame["type"]
            if kind == "joined":
                for m in frame["messages"]:
                    self._receive(m)
                self._send_new()
            elif kind == "message":
                self._receive(frame)
            elif kind == "ack":
                assert frame["cid"] in self.unacked, frame
                del self.unacked[frame["cid"]]
                self.acked[frame["cid"]] = frame["id"]
                self._seen(frame["id"])
                self._send_new()
            elif kind == "error":
                raise AssertionError(f"{self.name} got {frame}")

    def _receive(self, m: dict) -> None:
        if m["from"] == self.user_id:  # own message, known from its ack (or recovered after a crash)
            self._seen(m["id"])
            return
        self.received.append(m["id"])
        self._seen(m["id"])


async def drain_remaining(client: CrashClient) -> None:
    """Reconnect once more and recover whatever others sent after this client finished."""
    ws = await websocket_connect(f"ws://{client.host}/ws?token={client.token}")
    ws.write_message(json.dumps({"type": "join", "room": ROOM, "since": client.last_id}))
    while True:
        frame = json.loads(await ws.read_message())
        if frame["type"] == "joined":
            for m in frame["messages"]:
                client._receive(m)
            break
    ws.close()


@pytest.fixture
def server(tmp_path):
    proc = ServerProcess(tmp_path, {"heartbeat": {"ping_interval": 1, "ping_timeout": 3,
                                                  "client_interval": 1, "client_timeout": 3},
                                    "limits": {"messages_per_second": 10_000, "burst": 10_000}})
    proc.start()
    yield proc
    proc.kill()


@pytest.mark.gen_test(timeout=60)
async def test_sigkill_mid_stream_loses_nothing_acked_and_doubles_nothing(server, tmp_path):
    clients = [CrashClient(f"user{i}", server.host) for i in range(3)]
    for c in clients:
        await c.login()
    runs = [asyncio.ensure_future(c.run()) for c in clients]
    # Kill while every client is mid-stream.
    while min(len(c.acked) for c in clients) < PER_CLIENT // 3:
        await asyncio.sleep(0.005)
    acked_before_kill = {cid: i for c in clients for cid, i in c.acked.items()}
    in_flight = sum(len(c.unacked) for c in clients)
    server.kill()
    assert in_flight > 0  # the crash hit messages that were sent but not acked
    await asyncio.sleep(0.2)
    server.start()
    await asyncio.wait_for(asyncio.gather(*runs), 40)
    assert all(c.connects >= 2 for c in clients)

    db = sqlite3.connect(tmp_path / "data" / "imserver.db")
    rows = db.execute("SELECT id, sender, cid FROM messages WHERE room = ? ORDER BY id", (ROOM,)).fetchall()
    db.close()
    stored = {cid: msg_id for msg_id, _, cid in rows}
    # Every acked message is stored exactly once, under the id its ack gave.
    assert len(rows) == len(stored) == 3 * PER_CLIENT
    for c in clients:
        for cid, msg_id in c.acked.items():
            assert stored[cid] == msg_id
    for cid, msg_id in acked_before_kill.items():
        assert stored[cid] == msg_id
    # Every client has seen every message of the room once, in id order.
    for c in clients:
        await drain_remaining(c)
        assert c.received == sorted(c.received), f"{c.name} saw messages out of order"
        assert len(c.received) == len(set(c.received)), f"{c.name} saw a message twice"
        others = [msg_id for msg_id, sender, _ in rows if sender != c.user_id]
        assert c.received == others


def test_conversations_survive_a_sigkill_and_restart(server):
    """Membership, a private room, read marks and an edit are in the store before their
    answers: a SIGKILL right after loses none of them."""
    def connect(token: str) -> SyncClient:
        client = SyncClient(server.host, f"/ws?token={token}")
        welcome = client.recv_json()
        assert welcome["type"] == "welcome"
        client.welcome = welcome  # type: ignore[attr-defined]
        return client

    def next_of(client: SyncClient, kind: str) -> dict:
        """The next frame of `kind`, over others (presence, live messages), but no error."""
        while (frame := client.recv_json())["type"] != kind:
            assert frame["type"] != "error", frame
        return frame

    owner_token, _ = login_user(server.host, "owner")
    bob_token, bob = login_user(server.host, "bob")
    carol_token, _ = login_user(server.host, "carol")
    owner, guest = connect(owner_token), connect(bob_token)
    owner.send_json({"type": "create", "room": "p", "topic": "kept", "private": True})
    next_of(owner, "created")
    owner.send_json({"type": "invite", "room": "p", "user": bob["id"]})
    next_of(owner, "invited")
    for client in (owner, guest):
        client.send_json({"type": "join", "room": "p"})
        next_of(client, "joined")
    owner.send_json({"type": "say", "room": "p", "text": "helo", "cid": "o1"})
    target = next_of(owner, "ack")["id"]
    owner.send_json({"type": "say", "room": "p", "text": "unread", "cid": "o2"})
    next_of(owner, "ack")
    owner.send_json({"type": "edit", "room": "p", "target": target, "text": "hello", "cid": "o3"})
    next_of(owner, "ack")
    guest.send_json({"type": "read", "room": "p", "id": target})
    guest.send_json({"type": "history", "room": "p"})  # answered after the mark is written
    next_of(guest, "history")
    server.kill()
    server.start()

    again = connect(bob_token)
    assert again.welcome["unread"]["rooms"]["p"] == {"read": target, "unread": 1}
    again.send_json({"type": "join", "room": "p", "since": 0})
    joined = next_of(again, "joined")
    assert (joined["topic"], joined["private"]) == ("kept", True)
    assert [m["text"] for m in joined["messages"]] == ["hello", "unread"]
    assert [e["type"] for e in joined["events"]] == ["edit"]
    outsider = connect(carol_token)
    outsider.send_json({"type": "join", "room": "p"})
    assert next_of(outsider, "error")["code"] == "forbidden"
    for client in (owner, guest, again, outsider):
        client.close()
