"""The hub without sockets: commands in, frames out, in order; the races between a
store answer and a leave or a close; what the hub does when the store fails or
answering a result fails."""

from __future__ import annotations

from pathlib import Path

import pytest

from imserver.storage.sqlite import MessageStore
from tests.core import Core, presence, run, wire

# In-process tests take milliseconds: one that hangs (a fault in the store's close, say)
# is stopped after 30 s rather than the suite's 180.
pytestmark = pytest.mark.timeout(30)


def texts(conn) -> list[str]:
    return [f["text"] for f in wire(conn).of_type("message")]


def test_a_say_after_leave_is_refused_not_stored_and_not_sent():
    async def scenario() -> None:
        core = Core()
        alice, bob = core.connect("alice"), core.connect("bob")
        for conn in (alice, bob):
            core.do(conn, {"type": "join", "room": "r"})
        await core.settle()
        core.do(alice, {"type": "leave", "room": "r"})
        core.do(alice, {"type": "say", "room": "r", "text": "gone", "cid": "c1"})
        await core.settle()
        assert wire(alice).frames[-2:] == [
            {"type": "left", "room": "r"},
            {"type": "error", "code": "not_in_room", "message": "join r before sending to it", "cid": "c1",
             "room": "r"}]
        assert texts(bob) == []
        assert await core.stored() == 0
        assert presence(bob)[-1] == ([], ["alice"])
        await core.aclose()

    run(scenario())


def test_leave_of_a_room_not_joined_is_an_error_and_changes_nothing():
    async def scenario() -> None:
        core = Core()
        alice, bob = core.connect("alice"), core.connect("bob")
        core.do(bob, {"type": "join", "room": "r"})
        await core.settle()
        core.do(alice, {"type": "leave", "room": "r"})
        assert wire(alice).take() == [{"type": "error", "code": "not_in_room", "message": "not in room r",
                                       "room": "r"}]
        assert core.hub.rooms["r"].members == {"bob": 1}
        assert core.metrics.registry.get_sample_value(
            "imserver_protocol_errors_total", {"code": "not_in_room"}) == 1
        await core.aclose()

    run(scenario())


def test_a_join_answered_after_the_client_left_does_not_add_it_to_the_room():
    async def scenario() -> None:
        core = Core()
        alice, bob = core.connect("alice"), core.connect("bob")
        core.do(bob, {"type": "join", "room": "r"})
        await core.settle()
        wire(bob).take()
        core.do(alice, {"type": "join", "room": "r"})
        core.do(alice, {"type": "leave", "room": "r"})  # before the join's read is answered
        await core.settle()
        assert wire(alice).frames == [{"type": "left", "room": "r"}]
        assert core.hub.rooms["r"].members == {"bob": 1}
        assert alice not in core.hub.rooms["r"].conns
        core.do(bob, {"type": "say", "room": "r", "text": "hello"})
        await core.settle()
        assert texts(alice) == [] and presence(bob) == []
        await core.aclose()

    run(scenario())


def test_a_join_answered_after_the_client_closed_does_not_add_it_to_the_room():
    async def scenario() -> None:
        core = Core()
        alice, bob = core.connect("alice"), core.connect("bob")
        core.do(bob, {"type": "join", "room": "r"})
        core.do(alice, {"type": "join", "room": "fresh"})
        await core.settle()
        core.do(alice, {"type": "join", "room": "r"})
        core.close(alice)  # before the join's read is answered
        await core.settle()
        assert core.hub.rooms["r"].members == {"bob": 1}
        assert "fresh" not in core.hub.rooms  # its only member closed: the room is dropped
        assert presence(bob) == []  # neither alice's join nor her leave
        assert [(f["type"], f["room"]) for f in wire(alice).frames] == [("joined", "fresh")]
        assert alice.rooms == set()
        await core.aclose()

    run(scenario())


def test_a_message_sent_just_before_its_sender_closed_still_reaches_the_others():
    async def scenario() -> None:
        core = Core()
        alice, bob = core.connect("alice"), core.connect("bob")
        for conn in (alice, bob):
            core.do(conn, {"type": "join", "room": "r"})
        await core.settle()
        core.do(alice, {"type": "say", "room": "r", "text": "last words", "cid": "x"})
        core.close(alice)
        await core.settle()
        assert texts(bob) == ["last words"]
        assert wire(alice).of_type("ack") == []  # closed: nothing more is sent to it
        await core.aclose()

    run(scenario())


def test_room_messages_go_to_every_member_but_the_sender_and_a_resend_is_acked_not_sent_again():
    async def scenario() -> None:
        core = Core()
        alice, bob, carol = core.connect("alice"), core.connect("bob"), core.connect("carol")
        for conn in (alice, bob):
            core.do(conn, {"type": "join", "room": "r"})
        await core.settle()
        core.do(alice, {"type": "say", "room": "r", "text": "hi", "cid": "m1"})
        await core.settle()
        (ack,) = wire(alice).of_type("ack")
        assert ack["cid"] == "m1" and isinstance(ack["id"], int)
        assert texts(alice) == [] and texts(bob) == ["hi"] and texts(carol) == []
        message = wire(bob).of_type("message")[0]
        assert message == {"type": "message", "id": ack["id"], "from": "alice", "name": "alice",
                           "room": "r", "text": "hi", "ts": ack["ts"], "cid": "m1"}
        core.do(alice, {"type": "say", "room": "r", "text": "hi", "cid": "m1"})
        await core.settle()
        assert wire(alice).of_type("ack")[1] == ack
        assert texts(bob) == ["hi"]
        assert await core.stored() == 1
        assert core.metrics.frames.delivered == len(wire(alice).frames) + len(wire(bob).frames)
        await core.aclose()

    run(scenario())


def test_direct_messages_reach_both_users_other_connections_and_an_unknown_user_is_refused():
    async def scenario() -> None:
        core = Core()
        await core.known("alice", "bob")
        alice, alice2, bob, carol = (core.connect("alice"), core.connect("alice"),
                                     core.connect("bob"), core.connect("carol"))
        core.do(alice, {"type": "dm", "to": "bob", "text": "psst", "cid": "d1"})
        await core.settle()
        assert [f["type"] for f in wire(alice).frames] == ["ack"]
        assert texts(alice2) == ["psst"] and texts(bob) == ["psst"] and texts(carol) == []
        assert wire(bob).frames[0]["to"] == "bob" and "room" not in wire(bob).frames[0]
        core.do(alice, {"type": "dm", "to": "bob", "text": "psst", "cid": "d1"})  # a resend
        core.do(alice, {"type": "dm", "to": "nobody", "text": "hello?", "cid": "d2"})
        await core.settle()
        assert wire(alice).frames[1]["type"] == "ack" and texts(bob) == ["psst"]
        assert wire(alice).frames[2] == {"type": "error", "code": "unknown_user",
                                         "message": "no user 'nobody'", "cid": "d2"}
        core.do(bob, {"type": "dm_sync", "since": 0})
        core.do(bob, {"type": "history", "with": "alice"})
        await core.settle()
        sync, history = wire(bob).frames[-2:]
        assert sync["type"] == "dm_sync" and [m["text"] for m in sync["messages"]] == ["psst"]
        assert sync["truncated"] is False
        assert history["with"] == "alice" and [m["text"] for m in history["messages"]] == ["psst"]
        assert history["more"] is False
        await core.aclose()

    run(scenario())


def test_history_pages_are_capped_at_the_configured_page():
    async def scenario() -> None:
        core = Core(history_page=3)
        alice = core.connect("alice")
        core.do(alice, {"type": "join", "room": "r"})
        for i in range(5):
            core.do(alice, {"type": "say", "room": "r", "text": f"m{i}"})
        await core.settle()
        wire(alice).take()
        core.do(alice, {"type": "history", "room": "r", "limit": 100})
        core.do(alice, {"type": "history", "room": "r", "limit": 2})
        await core.settle()
        full, two = wire(alice).take()
        assert full["room"] == "r" and [m["text"] for m in full["messages"]] == ["m2", "m3", "m4"]
        assert full["more"] is True
        assert [m["text"] for m in two["messages"]] == ["m3", "m4"]
        core.do(alice, {"type": "history", "room": "r", "before": two["messages"][0]["id"]})
        await core.settle()
        (older,) = wire(alice).take()
        assert [m["text"] for m in older["messages"]] == ["m0", "m1", "m2"] and older["more"] is False
        await core.aclose()

    run(scenario())


def test_rooms_per_connection_are_limited_but_a_rejoin_is_not_a_new_room():
    async def scenario() -> None:
        core = Core(max_rooms_per_connection=2)
        alice = core.connect("alice")
        for room in ("a", "b", "b", "c"):
            core.do(alice, {"type": "join", "room": room})
        await core.settle()
        frames = wire(alice).frames
        kinds = [f["type"] for f in frames if f["type"] != "presence"]
        assert kinds == ["error", "joined", "joined", "joined"]
        assert frames[0] == {"type": "error", "code": "bad_request",
                             "message": "at most 2 rooms per connection", "room": "c"}
        assert alice.rooms == {"a", "b"}
        await core.aclose()

    run(scenario())


# --- the store fails ---

def read_only_store(tmp_path: Path) -> MessageStore:
    """A store whose writes fail at commit, as on a full or read-only disk."""
    store = MessageStore(str(tmp_path / "ro.db"))
    store._db.db.execute("PRAGMA query_only = ON")  # before the store thread starts
    return store


def test_a_failed_write_is_answered_unavailable_and_nobody_gets_the_message(tmp_path):
    async def scenario() -> None:
        core = Core(read_only_store(tmp_path))
        alice, bob = core.connect("alice"), core.connect("bob")
        for conn in (alice, bob):
            core.do(conn, {"type": "join", "room": "r"})
        await core.settle()
        core.do(alice, {"type": "say", "room": "r", "text": "lost", "cid": "c9"})
        await core.settle()
        assert wire(alice).frames[-1] == {"type": "error", "code": "unavailable",
                                          "message": "message store unavailable, try again", "cid": "c9",
                                          "room": "r"}
        assert texts(bob) == []
        assert core.metrics.registry.get_sample_value(
            "imserver_protocol_errors_total", {"code": "unavailable"}) == 1
        # The sender closed before the failure was known: nothing is sent to it.
        core.do(alice, {"type": "say", "room": "r", "text": "lost too", "cid": "c10"})
        core.close(alice)
        before = len(wire(alice).frames)
        await core.settle()
        assert len(wire(alice).frames) == before
        await core.aclose()

    run(scenario())


def test_a_failed_read_is_answered_unavailable_and_the_join_does_not_happen(tmp_path):
    async def scenario() -> None:
        store = MessageStore(str(tmp_path / "gone.db"))
        store._db.db.execute("DROP TABLE messages")  # every read fails
        core = Core(store)
        alice = core.connect("alice")
        core.do(alice, {"type": "join", "room": "r"})
        await core.settle()
        assert wire(alice).frames == [{"type": "error", "code": "unavailable",
                                       "message": "message store unavailable, try again", "room": "r"}]
        assert "r" not in core.hub.rooms and "r" not in alice.rooms
        core.do(alice, {"type": "say", "room": "r", "text": "x", "cid": "c1"})  # not a member
        assert wire(alice).frames[-1]["code"] == "not_in_room"
        await core.aclose()

    run(scenario())


def test_an_exception_answering_a_store_result_closes_that_connection_only():
    async def scenario() -> None:
        core = Core()
        bob = core.connect("bob")
        core.do(bob, {"type": "join", "room": "r"})
        broken = core.connect("mallory", broken=True)  # its socket side raises on every send
        core.do(broken, {"type": "join", "room": "r"})
        await core.settle()
        assert wire(broken).closed == (1011, "internal error")
        assert broken.close_reason == "error" and broken.close_code == 1011
        assert wire(bob).closed is None and wire(bob).of_type("joined")
        await core.aclose()

    run(scenario())


def test_a_send_that_raises_does_not_stop_a_fan_out():
    async def scenario() -> None:
        core = Core()
        alice, broken, bob = core.connect("alice"), core.connect("zed"), core.connect("bob")
        for conn in (alice, broken, bob):
            core.do(conn, {"type": "join", "room": "r"})
        await core.settle()
        wire(broken).broken = True
        core.do(alice, {"type": "say", "room": "r", "text": "to all"})
        await core.settle()
        assert texts(bob) == ["to all"]
        assert wire(broken).aborted and broken.close_reason == "error"
        assert wire(alice).of_type("ack")
        await core.aclose()

    run(scenario())


def test_joins_and_leaves_move_the_registrys_generation_for_whoever_keeps_a_list():
    async def scenario() -> None:
        core = Core()
        alice = core.connect("alice")
        seen = core.registry.generation
        core.do(alice, {"type": "join", "room": "r"})
        assert core.registry.generation > seen, "a join"
        await core.settle()
        seen = core.registry.generation
        core.do(alice, {"type": "leave", "room": "r"})
        assert core.registry.generation > seen, "a leave"
        core.do(alice, {"type": "join", "room": "q"})
        await core.settle()
        seen = core.registry.generation
        core.hub.user_event(alice.user.id, {"e": "removed", "room": "q"})
        assert core.registry.generation > seen, "removed by its owner"
        seen = core.registry.generation
        core.do(alice, {"type": "say", "room": "nowhere", "text": "x"})
        await core.settle()
        assert core.registry.generation == seen, "nothing the list shows changed"
        await core.aclose()

    run(scenario())
