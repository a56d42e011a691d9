"""Conversations over real sockets, on one server and on two nodes of a cluster (the
clients alternate between the nodes): read marks on every device of a user, typing,
edits and deletions live and after a reconnect, the room directory, private rooms,
and the refusals of each (docs/PROTOCOL.md, "Conversations")."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.conftest import Client, make_config

CLUSTER_TOO = True
TYPING_SECONDS = 0.6


@pytest.fixture
def config(tmp_path):
    return make_config(tmp_path, limits={"typing_seconds": TYPING_SECONDS})


async def next_frame(client: Client, kind: str, timeout: float = 5.0) -> dict[str, Any]:
    """The next frame of `kind`, over the presence changes that may come before it."""
    while True:
        frame = await client.recv(timeout)
        if frame["type"] != "presence":
            assert frame["type"] == kind, frame
            return frame


async def nothing_but_presence(client: Client, wait: float = 0.3) -> None:
    deadline = time.monotonic() + wait
    while (left := deadline - time.monotonic()) > 0:
        try:
            frame = await client.recv(left)
        except TimeoutError:
            return
        assert frame["type"] == "presence", frame


async def say(client: Client, room: str, text: str, cid: str) -> int:
    client.send({"type": "say", "room": room, "text": text, "cid": cid})
    return int((await next_frame(client, "ack"))["id"])


async def error_of(client: Client, frame: dict[str, Any]) -> str:
    client.send(frame)
    return str((await next_frame(client, "error"))["code"])


@pytest.mark.gen_test(timeout=30)
async def test_reading_on_one_device_clears_the_count_on_the_others(chat):
    laptop, phone, bob = [await chat.connect(n) for n in ("alice", "alice", "bob")]
    for client in (laptop, phone, bob):
        joined = await client.join("general")
        assert (joined["unread"], joined["topic"], joined["private"]) == (0, "", False)
    ids = [await say(bob, "general", f"m{i}", f"b{i}") for i in range(3)]
    for device in (laptop, phone):
        assert [(await next_frame(device, "message"))["id"] for _ in ids] == ids
    later = await chat.connect("alice")
    assert later.welcome["unread"]["rooms"]["general"]["unread"] == 3
    assert (await later.join("general"))["unread"] == 3

    phone.send({"type": "read", "room": "general", "id": ids[1]})
    for device in (laptop, later):
        assert await next_frame(device, "read") == {
            "type": "read", "room": "general", "id": ids[1], "unread": 1}
    phone.send({"type": "read", "room": "general", "id": ids[0]})  # backwards: nothing
    await nothing_but_presence(phone)
    await nothing_but_presence(laptop)
    fresh = await chat.connect("alice")
    assert fresh.welcome["unread"]["rooms"] == {"general": {"read": ids[1], "unread": 1}}

    bob.send({"type": "dm", "to": chat.id("alice"), "text": "psst", "cid": "d1"})
    dm = (await next_frame(bob, "ack"))["id"]
    other = await chat.connect("alice")
    assert other.welcome["unread"]["direct"] == {
        chat.id("bob"): {"name": "bob", "read": 0, "unread": 1}}
    laptop.send({"type": "read", "with": chat.id("bob"), "id": dm})
    assert (await next_frame(other, "read"))["with"] == chat.id("bob")
    assert (await chat.connect("alice")).welcome["unread"]["direct"] == {}


@pytest.mark.gen_test(timeout=30)
async def test_typing_reaches_the_others_never_the_typist_and_ends_by_itself(chat):
    alice, alice2, bob = [await chat.connect(n) for n in ("alice", "alice", "bob")]
    for client in (alice, alice2, bob):
        await client.join("general")
    a = chat.id("alice")
    alice.send({"type": "typing", "room": "general", "typing": True})
    assert await next_frame(bob, "typing") == {
        "type": "typing", "room": "general", "user": a, "name": "alice", "typing": True}
    alice.send({"type": "typing", "room": "general", "typing": False})
    assert (await next_frame(bob, "typing"))["typing"] is False
    await nothing_but_presence(alice2, 0.1)  # never to the typing user's devices

    alice.send({"type": "typing", "room": "general"})
    assert (await next_frame(bob, "typing"))["typing"] is True
    started = time.monotonic()
    assert (await next_frame(bob, "typing"))["typing"] is False  # no refresh: it ends
    assert time.monotonic() - started >= TYPING_SECONDS * 0.5

    alice.send({"type": "typing", "room": "general"})
    assert (await next_frame(bob, "typing"))["typing"] is True
    alice.close()  # gone while typing: the others are told at once
    assert (await next_frame(bob, "typing", timeout=TYPING_SECONDS * 0.9))["typing"] is False

    bob.send({"type": "typing", "to": chat.id("alice")})
    assert await next_frame(alice2, "typing") == {
        "type": "typing", "user": chat.id("bob"), "name": "bob", "typing": True}
    assert await error_of(bob, {"type": "typing", "room": "elsewhere"}) == "not_in_room"
    assert await error_of(bob, {"type": "typing", "room": "general", "typing": "yes"}) == "bad_request"


@pytest.mark.gen_test(timeout=30)
async def test_edits_and_deletions_reach_everyone_live_and_after_a_reconnect(chat):
    alice, alice2, bob = [await chat.connect(n) for n in ("alice", "alice", "bob")]
    for client in (alice, alice2, bob):
        await client.join("general")
    before = await say(bob, "general", "first", "b0")
    for client in (alice, alice2):
        await next_frame(client, "message")
    target = await say(alice, "general", "helo", "a1")
    await next_frame(alice2, "message")
    assert (await next_frame(bob, "message"))["id"] == target

    alice.send({"type": "edit", "room": "general", "target": target, "text": "hello", "cid": "e1"})
    ack = await next_frame(alice, "ack")
    assert ack["cid"] == "e1" and ack["id"] > target
    for client in (bob, alice2):  # the author's other device too
        assert await next_frame(client, "edit") == {
            "type": "edit", "id": ack["id"], "target": target, "from": chat.id("alice"),
            "name": "alice", "room": "general", "text": "hello", "ts": ack["ts"], "cid": "e1"}
    assert await error_of(bob, {"type": "delete", "room": "general", "target": target}) == "forbidden"
    assert await error_of(alice, {"type": "edit", "room": "general", "target": 10**12,
                                  "text": "x"}) == "not_found"
    assert await error_of(alice, {"type": "edit", "room": "nowhere", "target": target,
                                  "text": "x"}) == "not_in_room"

    again = await chat.connect("bob")  # a reconnect with `since`: the edit comes too
    joined = await again.join("general", since=before)
    (message,) = joined["messages"]
    assert (message["text"], message["id"]) == ("hello", target) and "edited" in message
    assert [(e["type"], e["target"]) for e in joined["events"]] == [("edit", target)]

    alice.send({"type": "delete", "room": "general", "target": target, "cid": "x1"})
    deletion = (await next_frame(alice, "ack"))["id"]
    for client in (bob, again):
        frame = await next_frame(client, "delete")
        assert (frame["id"], frame["target"], frame["text"]) == (deletion, target, "")
    assert await error_of(alice, {"type": "edit", "room": "general", "target": target,
                                  "text": "back"}) == "deleted"
    bob.send({"type": "history", "room": "general"})
    page = await next_frame(bob, "history")
    assert [(m["id"], m["text"], m.get("deleted")) for m in page["messages"]] == [
        (before, "first", None), (target, "", True)]


@pytest.mark.gen_test(timeout=30)
async def test_a_direct_message_is_edited_for_both_and_in_dm_sync(chat):
    alice, bob = await chat.connect("alice"), await chat.connect("bob")
    alice.send({"type": "dm", "to": chat.id("bob"), "text": "hi bob", "cid": "d1"})
    sent = (await next_frame(alice, "ack"))["id"]
    await next_frame(bob, "message")
    alice.send({"type": "edit", "target": sent, "text": "hi Bob", "cid": "d2"})
    await next_frame(alice, "ack")
    edit = await next_frame(bob, "edit")
    assert (edit["target"], edit["to"], edit["text"]) == (sent, chat.id("bob"), "hi Bob")
    assert "room" not in edit
    bob.send({"type": "dm_sync", "since": sent - 1})
    synced = await next_frame(bob, "dm_sync")
    assert [m["text"] for m in synced["messages"]] == ["hi Bob"]
    assert [e["target"] for e in synced["events"]] == [sent]
    assert await error_of(bob, {"type": "edit", "target": sent, "text": "x"}) == "forbidden"


@pytest.mark.gen_test(timeout=30)
async def test_a_private_room_is_refused_to_outsiders_until_invited(chat):
    owner, bob, carol = [await chat.connect(n) for n in ("alice", "bob", "carol")]
    await owner.join("lobby")
    await bob.join("lobby")
    owner.send({"type": "create", "room": "plans", "topic": "the new logo", "private": True})
    assert await next_frame(owner, "created") == {
        "type": "created", "room": "plans", "topic": "the new logo", "private": True}
    assert await error_of(bob, {"type": "create", "room": "plans"}) == "room_exists"
    assert await error_of(bob, {"type": "create", "room": "lobby"}) == "room_exists"
    joined = await owner.join("plans")
    assert (joined["private"], joined["topic"]) == (True, "the new logo")
    await say(owner, "plans", "secret", "o1")

    assert await error_of(bob, {"type": "join", "room": "plans", "since": 0}) == "forbidden"
    assert await error_of(bob, {"type": "say", "room": "plans", "text": "x"}) == "not_in_room"
    assert await error_of(bob, {"type": "history", "room": "plans"}) == "forbidden"
    assert await error_of(bob, {"type": "invite", "room": "plans", "user": "carol"}) == "forbidden"
    assert await error_of(owner, {"type": "invite", "room": "lobby", "user": "bob"}) == "bad_request"
    assert await error_of(owner, {"type": "invite", "room": "plans", "user": "nobody"}) == "unknown_user"
    bob.send({"type": "rooms"})
    assert [r["room"] for r in (await next_frame(bob, "rooms"))["rooms"]] == ["lobby"]

    owner.send({"type": "invite", "room": "plans", "user": chat.id("bob")})
    assert await next_frame(owner, "invited") == {"type": "invited", "room": "plans",
                                                  "user": chat.id("bob")}
    assert await next_frame(bob, "invited") == {
        "type": "invited", "room": "plans", "topic": "the new logo", "by": chat.id("alice"),
        "name": "alice"}
    joined = await bob.join("plans")
    assert [m["text"] for m in joined["messages"]] == ["secret"]
    bob.send({"type": "rooms"})
    assert [(r["room"], r["members"], r["private"], r["member"])
            for r in (await next_frame(bob, "rooms"))["rooms"]] == [
        ("lobby", 2, False, True), ("plans", 2, True, True)]

    owner.send({"type": "remove", "room": "plans", "user": "bob"})  # a guest name held now
    assert (await next_frame(owner, "removed"))["user"] == chat.id("bob")
    assert await next_frame(bob, "left") == {"type": "left", "room": "plans", "reason": "removed"}
    assert await error_of(bob, {"type": "say", "room": "plans", "text": "x"}) == "not_in_room"
    assert await error_of(bob, {"type": "join", "room": "plans"}) == "forbidden"
    await carol.join("lobby")
    assert await error_of(carol, {"type": "create", "room": "bad room"}) == "bad_request"
    assert await error_of(carol, {"type": "create", "room": "x", "topic": "t" * 201}) == "bad_request"
    assert await error_of(carol, {"type": "create", "room": "x", "private": 1}) == "bad_request"


@pytest.mark.gen_test(timeout=30)
async def test_membership_and_marks_outlive_the_connection_and_leave_ends_them(chat):
    alice, bob = await chat.connect("alice"), await chat.connect("bob")
    await alice.join("r")
    await bob.join("r")
    ids = [await say(bob, "r", f"m{i}", f"b{i}") for i in range(2)]
    alice.close()
    back = await chat.connect("alice")
    assert back.welcome["unread"]["rooms"]["r"]["unread"] == 2
    joined = await back.join("r", since=ids[-1])
    assert (joined["read"], joined["unread"]) == (0, 2)  # it came before any message
    back.send({"type": "leave", "room": "r"})
    await next_frame(back, "left")

    async def members() -> int:  # the leave is written after its answer, maybe on another node
        bob.send({"type": "rooms"})
        (room,) = (await next_frame(bob, "rooms"))["rooms"]
        return int(room["members"])
    deadline = time.monotonic() + 5
    while await members() != 1:
        assert time.monotonic() < deadline, "the leave was never recorded"
    assert "r" not in (await chat.connect("alice")).welcome["unread"]["rooms"]
