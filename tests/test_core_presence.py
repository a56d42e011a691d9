"""Presence, exactly: who is announced as joined or gone, to whom, and when.

The room and the hub are driven without sockets (tests/core.py): each step is
a command or a close, and the frames each connection got are checked in order.
"""

from __future__ import annotations

import pytest

from imserver.core.registry import Connection, User
from imserver.core.room import Room
from tests.core import Core, Wire, presence, run, wire

# In-process tests take milliseconds: one that hangs (a fault in the store's close, say)
# is stopped after 30 s rather than the suite's 180.
pytestmark = pytest.mark.timeout(30)


def member(user: str, n: int = 1) -> Connection:
    return Connection(id=f"{user}-{n}", user=User(user, user), transport=Wire())


# --- the room alone ---

def test_a_second_tab_is_no_presence_change_and_closing_one_of_two_tabs_is_none_either():
    room = Room("r")
    tab1, tab2 = member("alice", 1), member("alice", 2)
    assert room.add(tab1) is True
    assert room.add(tab2) is False
    assert room.add(tab2) is False  # added twice: still two tabs, not three
    assert room.members == {"alice": 2}
    room.take_presence()
    assert room.remove(tab1) is False
    assert room.members == {"alice": 1}
    assert room.take_presence() == (None, [])
    assert room.remove(tab1) is False  # not there any more: nothing changes
    assert room.remove(tab2) is True
    assert "alice" not in room.members and room.is_empty()


def test_a_resumed_member_is_counted_once():
    room = Room("r")
    alice, bob = member("alice"), member("bob")
    room.add(alice)
    room.add(bob)
    room.take_presence()
    room.suspend(alice)  # a re-join: paused until its backlog is sent
    assert alice not in room.conns and not room.is_empty()
    assert room.members == {"alice": 1, "bob": 1}
    assert room.add(alice) is False  # resumed: no presence change
    assert alice in room.conns and room.members == {"alice": 1, "bob": 1}
    assert room.take_presence() == (None, [])
    assert room.remove(alice) is True  # one leave is enough to be gone
    assert alice not in room.conns and room.members == {"bob": 1}
    assert room.remove(alice) is False
    frame, receivers = room.take_presence()
    assert frame == {"type": "presence", "room": "r", "joined": [], "left": ["alice"], "names": {}}
    assert receivers == [bob]


def test_a_suspended_member_that_leaves_is_gone():
    room = Room("r")
    alice = member("alice")
    room.add(alice)
    room.take_presence()
    room.suspend(alice)
    room.suspend(member("carol"))  # not a member: nothing to pause
    assert room.remove(alice) is True
    assert room.is_empty() and not room.members
    assert room.take_presence()[0] == {"type": "presence", "room": "r", "joined": [], "left": ["alice"],
        "names": {}}


def test_a_joiner_of_this_window_is_told_of_a_leave_after_its_member_list():
    room = Room("r")
    dave, bob = member("dave"), member("bob")
    room.add(dave)
    room.add(bob)
    room.take_presence()
    carol = member("carol")
    room.add(carol)
    room.snapshot_sent(carol)  # carol's member list holds dave
    room.remove(dave)
    frame, receivers = room.take_presence()
    assert frame == {"type": "presence", "room": "r", "joined": ["carol"], "left": ["dave"],
        "names": {"carol": "carol"}}
    assert sorted(c.id for c in receivers) == ["bob-1", "carol-1"]


def test_a_joiner_whose_member_list_is_up_to_date_gets_no_frame():
    room = Room("r")
    dave, bob = member("dave"), member("bob")
    room.add(dave)
    room.add(bob)
    room.take_presence()
    room.remove(dave)
    carol = member("carol")
    room.add(carol)
    room.snapshot_sent(carol)  # sent after dave left and carol joined: nothing new to carol
    frame, receivers = room.take_presence()
    assert frame == {"type": "presence", "room": "r", "joined": ["carol"], "left": ["dave"],
        "names": {"carol": "carol"}}
    assert receivers == [bob]


def test_a_join_and_leave_in_one_window_is_sent_as_left_and_a_window_resets():
    room = Room("r")
    bob = member("bob")
    room.add(bob)
    assert room.take_presence()[0] == {"type": "presence", "room": "r", "joined": ["bob"], "left": [],
        "names": {"bob": "bob"}}
    assert room.flush_scheduled is False
    ghost = member("ghost")
    room.add(ghost)
    room.remove(ghost)
    frame, receivers = room.take_presence()  # a view taken meanwhile may hold the ghost
    assert frame == {"type": "presence", "room": "r", "joined": [], "left": ["ghost"], "names": {}}
    assert receivers == [bob]
    assert room.take_presence() == (None, [])
    room.flush_scheduled = True
    back = member("ghost", 2)
    room.remove(bob)
    room.add(bob)  # left and came back within the window: there at its end
    room.add(back)
    frame, receivers = room.take_presence()
    assert frame == {"type": "presence", "room": "r", "joined": ["bob", "ghost"], "left": [],
        "names": {"bob": "bob", "ghost": "ghost"}}
    assert sorted(c.id for c in receivers) == ["bob-1", "ghost-2"]
    assert room.flush_scheduled is False
    assert room.take_presence() == (None, [])


# --- through the hub ---

def test_closing_one_of_two_tabs_announces_nothing_and_closing_the_last_announces_the_leave():
    async def scenario() -> None:
        core = Core()
        bob, tab1, tab2 = core.connect("bob"), core.connect("alice"), core.connect("alice")
        for conn in (bob, tab1, tab2):
            core.do(conn, {"type": "join", "room": "r"})
        await core.settle()
        assert wire(tab2).of_type("joined")[0]["members"] == ["alice", "bob"]
        wire(bob).take()
        core.close(tab1)
        await core.settle()
        assert presence(bob) == []
        core.do(tab2, {"type": "say", "room": "r", "text": "still here"})
        await core.settle()
        assert [f["text"] for f in wire(bob).of_type("message")] == ["still here"]
        core.close(tab2)
        await core.settle()
        assert presence(bob) == [([], ["alice"])]
        assert core.hub.rooms["r"].members == {"bob": 1}
        await core.aclose()

    run(scenario())


def test_a_rejoin_with_since_counts_the_member_once_so_its_leave_reaches_the_others():
    async def scenario() -> None:
        core = Core()
        bob, alice = core.connect("bob"), core.connect("alice")
        core.do(bob, {"type": "join", "room": "r"})
        core.do(alice, {"type": "join", "room": "r"})
        core.do(bob, {"type": "say", "room": "r", "text": "one"})
        await core.settle()
        last = wire(alice).of_type("message")[-1]["id"]
        wire(bob).take()
        core.do(alice, {"type": "join", "room": "r", "since": last})  # the reconnect path
        core.do(bob, {"type": "say", "room": "r", "text": "two"})
        await core.settle()
        assert presence(bob) == []  # a re-join is no presence change
        rejoined = wire(alice).of_type("joined")[-1]
        assert rejoined["members"] == ["alice", "bob"] and rejoined["messages"] == []
        assert [f["text"] for f in wire(alice).of_type("message")] == ["one", "two"]  # once each
        core.do(alice, {"type": "leave", "room": "r"})
        await core.settle()
        assert presence(bob) == [([], ["alice"])]
        assert core.hub.rooms["r"].members == {"bob": 1}
        core.do(bob, {"type": "say", "room": "r", "text": "three"})
        await core.settle()
        assert [f["text"] for f in wire(alice).of_type("message")] == ["one", "two"]  # gone
        await core.aclose()

    run(scenario())


def test_a_message_stored_while_a_member_rejoins_comes_in_its_backlog_not_live():
    async def scenario() -> None:
        core = Core()
        bob, alice = core.connect("bob"), core.connect("alice")
        core.do(bob, {"type": "join", "room": "r"})
        core.do(alice, {"type": "join", "room": "r"})
        await core.settle()
        core.do(bob, {"type": "say", "room": "r", "text": "before"})
        core.do(alice, {"type": "join", "room": "r", "since": 0})
        core.do(bob, {"type": "say", "room": "r", "text": "after"})
        await core.settle()
        kinds = [(f["type"], f.get("text")) for f in wire(alice).frames if f["type"] != "presence"]
        # Paused from the re-join on: "before" comes in the backlog only, "after" live only.
        assert kinds == [("joined", None), ("joined", None), ("message", "after")]
        assert [m["text"] for m in wire(alice).of_type("joined")[-1]["messages"]] == ["before"]
        await core.aclose()

    run(scenario())


def test_a_member_who_joined_earlier_in_the_window_is_told_of_a_later_leave():
    async def scenario() -> None:
        core = Core(presence_interval=3600)  # one window for the whole test: flushed by hand
        bob, dave = core.connect("bob"), core.connect("dave")
        core.do(bob, {"type": "join", "room": "r"})
        core.do(dave, {"type": "join", "room": "r"})
        await core.settle()
        room = core.hub.rooms["r"]
        core.hub._flush_presence(room)
        carol = core.connect("carol")
        core.do(carol, {"type": "join", "room": "r"})
        await core.settle()
        assert wire(carol).of_type("joined")[0]["members"] == ["bob", "carol", "dave"]
        core.do(dave, {"type": "leave", "room": "r"})
        early = core.connect("erin")  # joins after the leave: its member list is up to date
        core.do(early, {"type": "join", "room": "r"})
        await core.settle()
        assert wire(early).of_type("joined")[0]["members"] == ["bob", "carol", "erin"]
        for conn in (bob, carol, early, dave):
            wire(conn).take()
        core.hub._flush_presence(room)
        frame = ["carol", "erin"], ["dave"]
        assert presence(bob) == [frame]
        assert presence(carol) == [frame]
        assert presence(early) == []
        assert presence(dave) == []
        await core.aclose()

    run(scenario())


def test_presence_goes_out_once_per_window_and_not_after_the_room_emptied():
    async def scenario() -> None:
        core = Core(presence_interval=3600)
        bob = core.connect("bob")
        core.do(bob, {"type": "join", "room": "r"})
        await core.settle()
        room = core.hub.rooms["r"]
        assert room.flush_scheduled
        core.hub._flush_presence(room)
        others = [core.connect(f"u{i}") for i in range(3)]
        for conn in others:
            core.do(conn, {"type": "join", "room": "r"})
        await core.settle()
        core.hub._flush_presence(room)
        assert presence(bob) == [(["u0", "u1", "u2"], [])]
        for conn in [bob, *others]:
            core.do(conn, {"type": "leave", "room": "r"})
        assert "r" not in core.hub.rooms
        core.hub._flush_presence(room)  # the window's timer fires on a dropped room: nobody to tell
        assert all(presence(c) in ([], [(["u0", "u1", "u2"], [])]) for c in [bob, *others])
        assert core.metrics.registry.get_sample_value("imserver_rooms") == 0
        await core.aclose()

    run(scenario())
