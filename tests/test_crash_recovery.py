"""Kill -9 the server mid-stream: nothing acked is lost, nothing is stored or seen twice.

The clients are imserver.client's: they resend what was not acked with its cid,
recover rooms with `since` and direct messages with `dm_sync`.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import pytest

from imserver.client import Ack, ChatClient, Message, Policy, login
from imserver.testing import ServerProcess, SyncClient, login_user

ROOM = "crash"
PER_CLIENT = 60
WINDOW = 4  # messages in flight per client
DM_EVERY = 5  # every fifth message also goes as a direct message to the next client


@dataclass
class Sender:
    """A client that says PER_CLIENT numbered messages, WINDOW of them unacked at a time,
    and books what it was given: the frames as the server sent them (`on_frame`), and
    what the client handed on, which must be the same for the room."""
    name: str
    user_id: str = ""
    client: ChatClient | None = None
    given: list[int] = field(default_factory=list)  # others' room message ids, as sent
    handed: list[int] = field(default_factory=list)  # others' room messages handed on
    direct: list[int] = field(default_factory=list)  # direct messages handed on
    acks: dict[str, Ack] = field(default_factory=dict)  # cid -> ack, room and direct
    futures: list[asyncio.Future[Ack]] = field(default_factory=list)

    async def start(self, host: str) -> None:
        session = await login(f"http://{host}", self.name)
        self.user_id = session.user_id
        self.client = ChatClient(f"ws://{host}/ws", token=session.token, on_event=self._event,
                                 on_frame=self._frame, policy=Policy(base=0.05, cap=0.5))
        await self.client.connect()
        await self.client.join(ROOM)

    def _frame(self, frame: dict[str, Any]) -> None:
        page = frame["messages"] if frame["type"] == "joined" else [frame] \
            if frame["type"] == "message" and frame.get("room") == ROOM else []
        self.given += [m["id"] for m in page if m["from"] != self.user_id]

    def _event(self, event: object) -> None:
        if isinstance(event, Message):
            (self.handed if event.room == ROOM else self.direct).append(event.id)

    async def run(self, neighbour: str) -> None:
        assert self.client is not None
        window: deque[asyncio.Future[Ack]] = deque()
        for n in range(PER_CLIENT):
            if len(window) >= WINDOW:
                await window.popleft()
            sent = [self.client.say(ROOM, f"{self.name} message {n}", cid=f"{self.name}-{n}")]
            if n % DM_EVERY == 0:
                sent.append(self.client.dm(neighbour, f"{self.name} to you {n}",
                                           cid=f"{self.name}-dm-{n}"))
            window.append(sent[0])
            self.futures += sent
        for ack in await asyncio.gather(*self.futures):
            self.acks[ack.cid] = ack

    def acked(self) -> int:
        return sum(f.done() for f in self.futures)


@pytest.fixture
def server(tmp_path):
    proc = ServerProcess(tmp_path, {"heartbeat": {"ping_interval": 1, "ping_timeout": 3,
                                                  "client_interval": 1, "client_timeout": 3},
                                    "limits": {"messages_per_second": 10_000, "burst": 10_000}})
    proc.start()
    yield proc
    proc.kill()


async def caught_up(sender: Sender, room: int, direct: int, timeout: float = 15) -> None:
    """Wait (a while) until `sender` has been given as many messages as it must get."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline and not (
            len(sender.given) >= room and len(sender.handed) >= room and len(sender.direct) >= direct):
        await asyncio.sleep(0.05)


@pytest.mark.gen_test(timeout=60)
async def test_sigkill_mid_stream_loses_nothing_acked_and_doubles_nothing(server, tmp_path):
    senders = [Sender(f"user{i}") for i in range(3)]
    try:
        for sender in senders:
            await sender.start(server.host)
        runs = [asyncio.ensure_future(s.run(senders[(i + 1) % 3].user_id))
                for i, s in enumerate(senders)]
        # Kill while every client is mid-stream.
        while min(s.acked() for s in senders) < PER_CLIENT // 3:
            await asyncio.sleep(0.005)
        acked_before_kill = {f.result().cid: f.result().id for s in senders for f in s.futures
                             if f.done()}
        in_flight = sum(len(s.client.pending()) for s in senders if s.client)
        server.kill()
        assert in_flight > 0  # the crash hit messages that were sent but not acked
        await asyncio.sleep(0.2)
        server.start()
        await asyncio.wait_for(asyncio.gather(*runs), 40)
        assert all(s.client is not None and s.client.connects >= 2 for s in senders)

        db = sqlite3.connect(tmp_path / "data" / "imserver.db")
        rows = db.execute("SELECT id, sender, cid FROM messages WHERE room = ? ORDER BY id",
                          (ROOM,)).fetchall()
        direct = db.execute("SELECT id, sender, recipient, cid FROM messages"
                            " WHERE dm_key IS NOT NULL ORDER BY id").fetchall()
        db.close()
        stored = {cid: msg_id for msg_id, _, cid in rows}
        stored |= {cid: msg_id for msg_id, _, _, cid in direct}
        # Every acked message is stored exactly once, under the id its ack gave.
        assert len(rows) == 3 * PER_CLIENT and len(direct) == 3 * PER_CLIENT // DM_EVERY
        assert len(stored) == len(rows) + len(direct)
        for s in senders:
            assert len(s.acks) == PER_CLIENT + PER_CLIENT // DM_EVERY
            for cid, ack in s.acks.items():
                assert stored[cid] == ack.id
        for cid, msg_id in acked_before_kill.items():
            assert stored[cid] == msg_id
        # Every client was given every other client's message of the room once, in id
        # order (the server's frames, and what the client handed on), and every direct
        # message to it.
        for s in senders:
            others = [msg_id for msg_id, sender, _ in rows if sender != s.user_id]
            to_it = [msg_id for msg_id, _, recipient, _ in direct if recipient == s.user_id]
            await caught_up(s, len(others), len(to_it))
            assert s.given == others, f"{s.name}: the server's frames"
            assert s.handed == others, f"{s.name}: the client's messages"
            assert s.direct == to_it, f"{s.name}: direct messages"
    finally:
        for s in senders:
            if s.client is not None:
                await s.client.close()


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
