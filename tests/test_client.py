"""imserver.client against a real server: in process (the `chat` fixture), through a TCP
forwarder that cuts or freezes its connection, and as a child process that shuts down.

The SIGKILL test of the client is tests/test_crash_recovery.py, whose clients it is.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from imserver.client import (
    Cause,
    ChatClient,
    ChatError,
    ClientStopped,
    Frame,
    Gap,
    LoginError,
    Message,
    Policy,
    State,
    StateChange,
    StopReason,
    login,
)
from imserver.testing import ServerProcess
from tests.client_events import Seen
from tests.conftest import ChatServer, make_config
from tests.forwarder import Forwarder

ADMIN = "admin-token-for-client-tests"
PAGE = 3  # history_page: a first join's backlog
RECOVERY = 5  # recovery_limit: more missed than this is a truncated recovery
FAST = Policy(base=0.05, cap=0.2, connect_timeout=3)

@pytest.fixture
def config(tmp_path: Path) -> Any:
    return make_config(tmp_path, admin={"token": ADMIN},
                       limits={"history_page": PAGE, "recovery_limit": RECOVERY})


Make = Callable[..., Awaitable[tuple[ChatClient, Seen]]]


@pytest.fixture
def clients(chat: ChatServer, io_loop: Any) -> Iterator[Make]:
    made: list[ChatClient] = []

    async def make(name: str, *, host: str | None = None, **options: Any) -> tuple[ChatClient, Seen]:
        seen = Seen()
        client = ChatClient(f"ws://{host or chat.host}/ws", token=await chat.login(name),
                            policy=options.pop("policy", FAST), on_event=seen, **options)
        made.append(client)
        await client.connect()
        return client, seen

    yield make
    for client in made:
        io_loop.run_sync(client.close)


@pytest.fixture
def forwarder(chat: ChatServer, io_loop: Any) -> Iterator[Forwarder]:
    host, port = chat.host.rsplit(":", 1)
    made = Forwarder(host, int(port))
    io_loop.run_sync(made.start)
    yield made
    io_loop.run_sync(made.close)


def stored(tmp_path: Path, cid: str) -> list[int]:
    db = sqlite3.connect(tmp_path / "imserver.db")
    try:
        return [r[0] for r in db.execute("SELECT id FROM messages WHERE cid = ?", (cid,))]
    finally:
        db.close()


@pytest.mark.gen_test(timeout=20)
async def test_say_returns_the_ack_and_the_others_get_each_message_once_in_order(clients: Make):
    alice, alice_seen = await clients("alice")
    bob, bob_seen = await clients("bob")
    joined = await alice.join("lobby")
    assert joined.room == "lobby" and alice.user_id in joined.members
    await bob.join("lobby")
    acks = await asyncio.gather(*(alice.say("lobby", f"hi {n}") for n in range(3)))
    assert [a.id for a in acks] == sorted({a.id for a in acks})
    got = await bob_seen.until(lambda: len(bob_seen.messages("lobby")) == 3 and bob_seen.messages("lobby"))
    assert [(m.id, m.text, m.sender, m.name, m.cid, m.backlog) for m in got] == [
        (a.id, f"hi {n}", alice.user_id, "alice", a.cid, False) for n, a in enumerate(acks)]
    assert alice_seen.messages("lobby") == []  # its own come back as acks
    assert alice.pending() == [] and alice.highest_id("lobby") is None
    assert bob.highest_id("lobby") == acks[-1].id


@pytest.mark.gen_test(timeout=20)
async def test_a_refused_frame_fails_its_future_and_leaves_the_outbox(clients: Make):
    alice, seen = await clients("alice")
    with pytest.raises(ChatError) as info:
        await alice.say("nowhere", "hello?")
    assert info.value.code == "not_in_room" and info.value.cid
    with pytest.raises(ChatError, match="unknown_user"):
        await alice.dm("nobody-at-all", "hello?")
    assert alice.pending() == []
    assert [f.data["code"] for f in seen.frames("error")] == ["not_in_room", "unknown_user"]


@pytest.mark.gen_test(timeout=20)
async def test_a_cut_connection_comes_back_and_recovers_rooms_direct_messages_and_the_outbox(
        clients: Make, forwarder: Forwarder):
    alice, seen = await clients("alice", host=forwarder.host)
    bob, bob_seen = await clients("bob")
    await alice.join("lobby")
    await bob.join("lobby")
    before = await bob.say("lobby", "before")
    await seen.until(lambda: seen.messages("lobby"))

    forwarder.refuse = True
    assert forwarder.cut() == 1
    await seen.until(lambda: seen.states(State.WAITING))
    during = [await bob.say("lobby", f"during {n}") for n in range(2)]
    edit = await bob.edit(before.id, "before, edited", room="lobby")
    direct = await bob.dm(alice.user_id or "", "psst")
    queued = alice.say("lobby", "said while away")  # waits in the outbox
    await asyncio.sleep(0.2)  # attempts refused meanwhile
    assert alice.state is not State.OPEN and [f["text"] for f in alice.pending()] == ["said while away"]
    forwarder.refuse = False

    ack = await asyncio.wait_for(queued, 10)
    room = await seen.until(lambda: len(seen.messages("lobby")) == 4 and seen.messages("lobby"))
    assert [(m.id, m.kind, m.backlog) for m in room] == [
        (before.id, "message", False), (during[0].id, "message", True),
        (during[1].id, "message", True), (edit.id, "edit", True)]
    assert room[3].target == before.id and room[3].text == "before, edited"
    dms = await seen.until(lambda: seen.messages(None))
    assert [(m.id, m.text, m.sender) for m in dms] == [(direct.id, "psst", bob.user_id)]
    assert alice.highest_dm_id == direct.id and alice.highest_id("lobby") == edit.id
    got = await bob_seen.until(lambda: [m for m in bob_seen.messages("lobby") if m.sender == alice.user_id])
    assert [(m.id, m.text) for m in got] == [(ack.id, "said while away")]
    retry = [s for s in seen.states(State.CONNECTING) if s.attempt >= 1]
    assert retry and retry[0].cause is Cause.ERROR
    assert alice.connects == 2 and alice.rooms == ["lobby"]
    # Nothing is handed on twice when the stream brings it again: a re-join with an
    # old `since` is answered with what the client has.
    await asyncio.sleep(0.2)
    assert len(seen.messages("lobby")) == 4 and len(seen.messages(None)) == 1


@pytest.mark.gen_test(timeout=30)
async def test_an_ack_lost_on_a_dead_connection_is_got_by_resending_the_same_cid_stored_once(
        clients: Make, forwarder: Forwarder, tmp_path: Path):
    alice, seen = await clients("alice", host=forwarder.host)
    bob, bob_seen = await clients("bob")
    await alice.join("lobby")
    await bob.join("lobby")
    # The server's side of alice's connection goes silent: what it sends (the ack, the
    # pongs) never arrives, and nothing says the connection is gone but the watchdog.
    assert forwarder.freeze(b"GET /ws", upstream=False) == 1
    sent = alice.say("lobby", "exactly once", cid="alice-once")
    ack = await asyncio.wait_for(sent, 15)
    assert [s.cause for s in seen.states(State.WAITING)] == [Cause.WATCHDOG]
    assert stored(tmp_path, "alice-once") == [ack.id]
    got = await bob_seen.until(lambda: bob_seen.messages("lobby"))
    await asyncio.sleep(0.2)
    assert [m.id for m in bob_seen.messages("lobby")] == [ack.id] == [m.id for m in got]
    # The resend's ack is the original one; alice's recovery brought the message back,
    # as its own: not handed on.
    assert seen.messages("lobby") == [] and alice.highest_id("lobby") == ack.id


@pytest.mark.gen_test(timeout=20)
async def test_recovery_that_misses_more_than_a_page_says_where_the_gap_is(
        clients: Make, forwarder: Forwarder):
    bob, _ = await clients("bob")
    await bob.join("lobby")
    older = [await bob.say("lobby", f"older {n}") for n in range(PAGE + 1)]
    alice, seen = await clients("alice", host=forwarder.host)
    await alice.join("lobby")
    first = await seen.until(lambda: len(seen.messages("lobby")) == PAGE and seen.messages("lobby"))
    assert [(m.id, m.backlog) for m in first] == [(a.id, True) for a in older[-PAGE:]]

    forwarder.refuse = True
    forwarder.cut()
    await seen.until(lambda: seen.states(State.WAITING))
    missed = [await bob.say("lobby", f"missed {n}") for n in range(RECOVERY + 2)]
    forwarder.refuse = False
    await seen.until(lambda: len(seen.messages("lobby")) == 2 * PAGE)
    assert [m.id for m in seen.messages("lobby")[PAGE:]] == [a.id for a in missed[-PAGE:]]
    assert seen.of(Gap) == [Gap("lobby", older[-1].id, missed[-PAGE].id)]


@pytest.mark.gen_test(timeout=20)
async def test_a_private_room_refuses_a_join_and_a_removal_is_not_undone_by_the_reconnect(
        clients: Make, forwarder: Forwarder):
    owner, owner_seen = await clients("owner")
    bob, seen = await clients("bob", host=forwarder.host)
    assert owner.send({"type": "create", "room": "inner", "private": True})
    await owner_seen.until(lambda: owner_seen.frames("created"))
    with pytest.raises(ChatError) as refused:
        await bob.join("inner")
    assert refused.value.code == "forbidden" and bob.rooms == []
    owner.send({"type": "invite", "room": "inner", "user": bob.user_id})
    await owner_seen.until(lambda: owner_seen.frames("invited"))
    await owner.join("inner")
    joined = await bob.join("inner")
    assert (joined.private, joined.owner) == (True, owner.user_id)
    await bob.join("lobby")
    owner.send({"type": "remove", "room": "inner", "user": bob.user_id})
    await seen.until(lambda: seen.frames("left"))
    assert bob.rooms == ["lobby"]
    forwarder.cut()
    await seen.until(lambda: len(seen.states(State.OPEN)) == 2)
    await seen.until(lambda: len(seen.frames("joined")) == 3)  # inner, lobby; lobby again
    assert [f.data["room"] for f in seen.frames("joined")] == ["inner", "lobby", "lobby"]
    assert [f.data["code"] for f in seen.frames("error")] == ["forbidden"]  # the first join


@pytest.mark.gen_test(timeout=20)
async def test_an_operators_disconnect_stops_it_for_good(clients: Make, chat: ChatServer):
    alice, seen = await clients("alice")
    await alice.join("lobby")
    response = await chat.http.fetch(
        f"{chat.url}/admin/api/users/{alice.user_id}/disconnect", method="POST",
        headers={"Authorization": f"Bearer {ADMIN}", "Content-Type": "application/json"},
        body=json.dumps({"reason": "enough"}))
    assert response.code == 200
    stopped = await seen.until(lambda: seen.states(State.STOPPED))
    assert [(s.reason, s.message) for s in stopped] == [(StopReason.KICKED, "enough")]
    await asyncio.sleep(0.3)
    assert alice.state is State.STOPPED and alice.stop_reason is StopReason.KICKED
    assert [s.attempt for s in seen.states(State.CONNECTING)] == [0]  # no attempt since
    # A manual reconnect is the caller's choice; it recovers as any reconnect does.
    await alice.connect()
    assert alice.connects == 2 and (await alice.join("lobby")).room == "lobby"


@pytest.mark.gen_test(timeout=20)
async def test_close_fails_what_waits_with_its_cid_and_ends_the_iteration(
        chat: ChatServer, forwarder: Forwarder):
    client = ChatClient(f"ws://{forwarder.host}/ws", token=await chat.login("alice"), policy=FAST)
    async with client:
        await client.join("lobby")
        forwarder.freeze(b"GET /ws", upstream=False)
        waiting = client.say("lobby", "never acked", cid="c-1")
        await asyncio.sleep(0.1)
    with pytest.raises(ClientStopped) as info:
        await waiting
    assert info.value.reason is StopReason.CLOSED and info.value.cid == "c-1"
    events = [event async for event in client]
    assert [type(e).__name__ for e in events][-1] == "StateChange"
    assert events[-1] == StateChange(State.STOPPED, State.OPEN, 0, reason=StopReason.CLOSED)
    assert any(isinstance(e, Frame) and e.type == "joined" for e in events)


@pytest.mark.gen_test(timeout=20)
async def test_events_by_iteration(clients: Make, chat: ChatServer):
    bob, _ = await clients("bob")
    await bob.join("lobby")
    async with ChatClient(f"ws://{chat.host}/ws", token=await chat.login("alice")) as alice:
        await alice.join("lobby")
        acks = [await bob.say("lobby", text) for text in ("one", "two")]
        texts = []
        async for event in alice:
            if isinstance(event, Message):
                texts.append((event.id, event.text))
                if len(texts) == 2:
                    break
    assert texts == [(acks[0].id, "one"), (acks[1].id, "two")]


@pytest.mark.gen_test(timeout=20)
async def test_a_refused_token_stops_with_auth_and_logins_say_what_is_wrong(chat: ChatServer):
    with pytest.raises(ValueError, match="ws://"):
        ChatClient(f"http://{chat.host}/ws", token="whatever")
    client = ChatClient(f"ws://{chat.host}/ws", token="not-a-token", policy=FAST)
    with pytest.raises(ClientStopped) as info:
        await client.connect()
    assert info.value.reason is StopReason.AUTH and client.stop_reason is StopReason.AUTH
    await client.close()

    session = await login(chat.url, "carol")
    assert session.name == "carol" and session.user_id.startswith("g:")
    again = await login(chat.url, "Carol", token=session.token)  # the holder keeps its id
    assert again.user_id == session.user_id
    with pytest.raises(LoginError) as taken:
        await login(chat.url, "CAROL")
    assert (taken.value.status, taken.value.code) == (409, "name_taken")
    with pytest.raises(LoginError) as bad:
        await login(chat.url, "no spaces")
    assert (bad.value.status, bad.value.code) == (400, "bad_name")


@pytest.mark.gen_test(timeout=40)
async def test_after_a_bye_it_waits_retry_after_and_comes_back_to_the_restarted_server(tmp_path):
    server = ServerProcess(tmp_path, {"shutdown": {"spread_seconds": 1.0, "retry_min_seconds": 1.0,
                                                   "grace_seconds": 1.0}})
    server.start()
    seen = Seen()
    client = None
    try:
        session = await login(f"http://{server.host}", "bot")
        client = ChatClient(f"ws://{server.host}/ws", token=session.token, on_event=seen,
                            policy=Policy(base=0.05, cap=0.1, connect_timeout=3))
        await client.connect()
        await client.join("lobby")
        server.signal(signal.SIGTERM)
        waiting = await seen.until(lambda: seen.states(State.WAITING))
        (bye,) = [f.data for f in seen.frames("bye")]
        assert waiting[0].cause is Cause.SHUTDOWN and waiting[0].delay == bye["retry_after"] >= 1.0
        assert server.wait(10) == 0
        server.start()
        await seen.until(lambda: len(seen.states(State.OPEN)) == 2, timeout=15)
        waited_at = next(t for t, e in seen.events if e is waiting[0])
        back_at = next(t for t, e in seen.events
                       if isinstance(e, StateChange) and e.state is State.CONNECTING and e.attempt)
        assert back_at - waited_at >= bye["retry_after"] - 0.01  # not one attempt before
        assert next(s.cause for s in seen.states(State.CONNECTING) if s.attempt) is Cause.SHUTDOWN
        assert client.rooms == ["lobby"] and (await client.say("lobby", "back")).id > 0
    finally:
        if client is not None:
            await client.close()
        server.kill()
