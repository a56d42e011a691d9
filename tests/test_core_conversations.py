"""The hub's conversation features against a real in-memory store, without sockets:
an operator's deletion, mutes, the typing throttle and expiry, a refused join that
leaves nothing behind, and the events a cluster node hears from the others."""

from __future__ import annotations

import asyncio
import time

import pytest

from imserver.core.errors import Refused
from tests.core import Core, presence, run, wire


def frames(conn, kind: str) -> list[dict]:
    return wire(conn).of_type(kind)


def test_an_operator_deletes_anyones_message_and_everyone_in_the_room_sees_it():
    async def scenario() -> None:
        core = Core()
        alice, bob = core.connect("alice"), core.connect("bob")
        for conn in (alice, bob):
            core.do(conn, {"type": "join", "room": "r"})
        core.do(alice, {"type": "say", "room": "r", "text": "spam", "cid": "a1"})
        await core.settle()
        (ack,) = frames(alice, "ack")
        deleted = await core.hub.operator_delete(ack["id"])
        await core.settle()
        for conn in (alice, bob):
            (event,) = frames(conn, "delete")
            assert (event["id"], event["target"], event["by"], event["from"]) == (
                deleted.message.id, ack["id"], "operator", "alice")
        with pytest.raises(Refused) as caught:
            await core.hub.operator_delete(10**9)
        assert caught.value.code == "not_found"
        await core.aclose()

    run(scenario())


def test_a_muted_user_is_told_why_and_nobody_gets_its_message():
    async def scenario() -> None:
        core = Core()
        alice, bob = core.connect("alice"), core.connect("bob")
        for conn in (alice, bob):
            core.do(conn, {"type": "join", "room": "r"})
        await core.settle()
        core.store._db.db.execute(
            "INSERT INTO mutes (room, user_id, reason, until, muted_by, muted_at)"
            " VALUES ('r', 'alice', 'spam', NULL, 'op', 0)")
        core.do(alice, {"type": "say", "room": "r", "text": "more spam", "cid": "a1"})
        await core.settle()
        (error,) = frames(alice, "error")
        assert (error["code"], error["cid"]) == ("muted", "a1") and "spam" in error["message"]
        assert frames(bob, "message") == []
        await core.aclose()

    run(scenario())


def test_typing_is_throttled_per_connection_and_ends_when_not_refreshed():
    async def scenario() -> None:
        core = Core(typing_seconds=0.2)
        alice, bob = core.connect("alice"), core.connect("bob")
        for conn in (alice, bob):
            core.do(conn, {"type": "join", "room": "r"})
        await core.settle()
        for _ in range(5):
            core.do(alice, {"type": "typing", "room": "r"})
        assert [f["typing"] for f in frames(bob, "typing")] == [True]
        started = time.monotonic()
        for _ in range(3):  # refreshes keep it on
            await asyncio.sleep(0.1)
            core.do(alice, {"type": "typing", "room": "r"})
        assert [f["typing"] for f in frames(bob, "typing")] == [True]
        while len(frames(bob, "typing")) < 2:
            await asyncio.sleep(0.02)
            assert time.monotonic() - started < 5
        assert frames(bob, "typing")[-1]["typing"] is False
        assert frames(alice, "typing") == []
        assert core.hub.typing_indicators.typists == {}
        core.do(alice, {"type": "typing", "room": "r", "typing": False})  # not typing: nothing
        assert len(frames(bob, "typing")) == 2
        await core.aclose()

    run(scenario())


def test_a_refused_join_leaves_no_membership_and_no_room_behind():
    async def scenario() -> None:
        core = Core()
        owner, outsider = core.connect("owner"), core.connect("outsider")
        core.do(owner, {"type": "create", "room": "p", "private": True})
        core.do(outsider, {"type": "join", "room": "p"})
        await core.settle()
        assert frames(outsider, "error")[0]["code"] == "forbidden"
        assert "p" not in outsider.rooms and "p" not in core.hub.rooms
        core.do(owner, {"type": "join", "room": "p"})
        core.do(outsider, {"type": "join", "room": "p"})
        await core.settle()
        assert core.hub.rooms["p"].members == {"owner": 1}
        assert presence(owner) == []
        await core.aclose()

    run(scenario())


def test_events_from_other_nodes_reach_the_users_and_rooms_here():
    async def scenario() -> None:
        core = Core(typing_seconds=0.2)
        alice, bob = core.connect("alice"), core.connect("bob")
        core.do(alice, {"type": "join", "room": "r"})
        await core.settle()
        hub = core.hub
        hub.room_event("r", {"e": "typing", "user": "carol", "name": "Carol", "typing": True})
        hub.room_event("r", {"e": "typing", "user": "carol", "name": "Carol", "typing": True})
        assert [(f["user"], f["typing"]) for f in frames(alice, "typing")] == [("carol", True)]
        while len(frames(alice, "typing")) < 2:  # another node's typist expires here too
            await asyncio.sleep(0.02)
        hub.user_event("bob", {"e": "frame", "frame": {"type": "read", "room": "x", "id": 3,
                                                        "unread": 0}})
        assert frames(bob, "read") == [{"type": "read", "room": "x", "id": 3, "unread": 0}]
        hub.user_event("alice", {"e": "removed", "room": "r"})
        assert frames(alice, "left") == [{"type": "left", "room": "r", "reason": "removed"}]
        assert "r" not in alice.rooms and "r" not in hub.rooms
        hub.user_event("bob", {"e": "typing", "user": "carol", "name": "Carol", "typing": True})
        assert frames(bob, "typing") == [{"type": "typing", "user": "carol", "name": "Carol",
                                          "typing": True}]
        await core.aclose()

    run(scenario())


def test_a_room_made_private_while_a_join_was_read_sends_the_joiner_out():
    async def scenario() -> None:
        core = Core()
        alice, owner = core.connect("alice"), core.connect("owner")
        core.do(alice, {"type": "join", "room": "x"})  # read first: a public room, no member
        core.do(owner, {"type": "create", "room": "x", "private": True})  # before her membership
        await core.settle()
        await core.settle()
        assert [f["type"] for f in wire(alice).frames] == ["joined", "left"]
        assert frames(alice, "left") == [{"type": "left", "room": "x", "reason": "removed"}]
        assert "x" not in alice.rooms and "x" not in core.hub.rooms
        core.do(owner, {"type": "join", "room": "x"})
        core.do(owner, {"type": "say", "room": "x", "text": "private", "cid": "o1"})
        await core.settle()
        assert frames(alice, "message") == []
        await core.aclose()

    run(scenario())
