"""Feeds: each stream delivered in id order, once, with no hole, whatever order and
however often its messages arrive; and what the hub takes from other nodes.

The other node of a cluster is played by the test: it stores messages in the
same store and hands them to the hub as the broker would (room_published,
direct_published), out of order, twice, or not at all.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from imserver.core import room as room_module
from imserver.core.feed import Feed
from imserver.core.store import Message, Page
from imserver.storage.sqlite import MessageStore
from tests.core import Core, presence, run, wire

pytestmark = pytest.mark.timeout(30)


def msg(id_: int, room: str = "r") -> Message:
    return Message(id=id_, sender="x", text=f"m{id_}", ts=0.0, cid=None, room=room)


def ids(ready: list[Any]) -> list[int]:
    return [held.message.id for held in ready]


# --- the feed alone ---

def test_a_feed_delivers_in_order_drops_what_it_delivered_and_holds_what_follows_a_gap():
    feed: Feed[str] = Feed(delivered=10)
    assert ids(feed.offer(msg(11), 10)) == [11]
    assert feed.offer(msg(11), 10) == []  # heard twice
    assert feed.offer(msg(9), 8) == []  # older than what went out
    assert feed.offer(msg(14), 13) == [] and feed.needs_fill  # 12 and 13 are missing
    assert feed.offer(msg(13), 12) == []
    feed.filling = True
    assert not feed.needs_fill
    ready = feed.filled([msg(12), msg(13), msg(14)])
    assert ids(ready) == [12, 13, 14] and feed.delivered == 14
    assert feed.fill_done() == [] and not feed.held


def test_messages_that_arrive_during_a_fill_wait_for_it_even_in_order():
    feed: Feed[str] = Feed(delivered=1)
    feed.offer(msg(3), 2)
    feed.filling = True
    assert feed.offer(msg(4), 3) == []  # in order after 3, but 2 is not out yet
    assert ids(feed.filled([msg(2), msg(3)])) == [2, 3]
    assert ids(feed.fill_done()) == [4] and feed.delivered == 4


def test_a_fill_keeps_the_origin_of_a_held_message_so_its_sender_is_skipped():
    feed: Feed[str] = Feed(delivered=1)
    feed.offer(msg(3), 2, origin="alice's tab")
    feed.filling = True
    ready = feed.filled([msg(2), msg(3)])
    assert [(h.message.id, h.origin) for h in ready] == [(2, None), (3, "alice's tab")]


def test_a_feed_whose_start_is_unknown_holds_until_it_is_and_then_drops_what_the_start_covers():
    feed: Feed[str] = Feed()
    assert feed.offer(msg(5), 4) == [] and not feed.needs_fill
    assert feed.offer(msg(6), 5) == []
    assert ids(feed.start(5)) == [6]  # 5 came in the first read already
    assert feed.delivered == 6 and not feed.held
    assert ids(feed.start(3)) == [] and feed.delivered == 6  # an older start moves nothing back


# --- the hub, with another node played by the test ---

class OtherNode:
    """Stores room messages as another node would, and tells what each follows."""

    def __init__(self, core: Core) -> None:
        self.core = core
        self.last: dict[str, int] = {}

    async def say(self, room: str, text: str) -> tuple[Message, int]:
        done = await self.core.store.append_room("carol", room, text, None, "Carol")
        previous = self.last.get(room, 0)
        self.last[room] = done.message.id
        return done.message, previous


def texts(frames: list[dict[str, Any]]) -> list[str]:
    return [f["text"] for f in frames if f["type"] == "message"]


def test_messages_from_another_node_reach_members_in_order_once_with_lost_ones_read_from_the_store():
    async def scenario() -> None:
        core = Core()
        other = OtherNode(core)
        alice = core.connect("alice")
        core.do(alice, {"type": "join", "room": "r"})
        await core.settle()
        sent = [await other.say("r", f"m{i}") for i in range(1, 7)]
        hub = core.hub
        hub.room_published(*sent[0])
        hub.room_published(*sent[0])  # heard twice
        hub.room_published(*sent[2])  # m2 was lost on the way: m3 waits for it
        hub.room_published(*sent[1])  # and m2 arrives late, while the gap is being read
        hub.room_published(*sent[4])  # m4 lost for good
        await core.settle()
        await core.settle()
        hub.room_published(*sent[5])
        await core.settle()
        await core.settle()
        assert texts(wire(alice).frames) == ["m1", "m2", "m3", "m4", "m5", "m6"]
        await core.aclose()

    run(scenario())


def test_a_local_message_that_overtakes_another_nodes_goes_out_after_it_and_not_to_its_sender():
    async def scenario() -> None:
        core = Core()
        other = OtherNode(core)
        alice, bob = core.connect("alice"), core.connect("bob")
        for conn in (alice, bob):
            core.do(conn, {"type": "join", "room": "r"})
        await core.settle()
        theirs = await other.say("r", "from carol")  # stored, its publish not heard yet
        core.do(alice, {"type": "say", "room": "r", "text": "from alice"})
        await core.settle()
        await core.settle()
        core.hub.room_published(*theirs)  # it arrives after the fill delivered it
        await core.settle()
        assert texts(wire(bob).frames) == ["from carol", "from alice"]
        assert texts(wire(alice).frames) == ["from carol"]  # its own comes as an ack
        await core.aclose()

    run(scenario())


def test_resync_reads_what_another_node_stored_while_its_publishes_could_not_be_heard():
    async def scenario() -> None:
        core = Core()
        other = OtherNode(core)
        alice = core.connect("alice")
        core.do(alice, {"type": "join", "room": "r"})
        await core.settle()
        await other.say("r", "unheard 1")
        await other.say("r", "unheard 2")
        core.hub.resync()
        await core.settle()
        await core.settle()
        assert texts(wire(alice).frames) == ["unheard 1", "unheard 2"]
        core.hub.room_published(*await other.say("r", "heard"))
        await core.settle()
        assert texts(wire(alice).frames) == ["unheard 1", "unheard 2", "heard"]
        await core.aclose()

    run(scenario())


def test_direct_messages_from_another_node_follow_each_users_stream():
    async def scenario() -> None:
        core = Core()
        await core.known("alice", "carol")
        alice = core.connect("alice")
        store = core.store
        d1 = (await store.append_direct("carol", "alice", "d1", None)).message
        d2 = (await store.append_direct("carol", "alice", "d2", None)).message
        d3 = (await store.append_direct("carol", "alice", "d3", None)).message
        core.hub.direct_published(d1, 0, 0)  # alice's first here: its stream starts at d1
        assert fills(core, "direct") == 0
        core.hub.direct_published(d3, d2.id, d2.id)  # d2 lost
        core.hub.direct_published(d1, 0, 0)
        await core.settle()
        await core.settle()
        assert texts(wire(alice).frames) == ["d1", "d2", "d3"]
        assert fills(core, "direct") == 1  # one read of alice's direct messages
        await core.aclose()

    run(scenario())


def test_members_on_another_node_are_in_the_member_list_and_leave_when_that_node_is_gone():
    async def scenario() -> None:
        core = Core()
        alice = core.connect("alice")
        core.do(alice, {"type": "join", "room": "r"})
        await core.settle()
        hub = core.hub
        hub.remote_presence("node-b", "r", "carol", "Carol", True)
        hub.remote_presence("node-c", "r", "carol", "Carol", True)  # a tab on a third node
        hub.remote_presence("node-b", "r", "dave", "Dave", True)
        await core.settle()
        assert presence(alice) == [(["carol", "dave"], [])]
        bob = core.connect("bob")
        core.do(bob, {"type": "join", "room": "r"})
        await core.settle()
        joined = wire(bob).of_type("joined")[0]
        assert joined["members"] == ["alice", "bob", "carol", "dave"]
        assert joined["names"]["carol"] == "Carol"
        hub.node_gone("node-b")  # carol is still on node-c, dave is gone
        await core.settle()
        assert presence(alice)[-1] == ([], ["dave"])
        hub.remote_presence("node-c", "r", "carol", "Carol", False)
        await core.settle()
        assert presence(alice)[-1] == ([], ["carol"])
        hub.remote_presence("node-b", "elsewhere", "erin", "Erin", True)  # no member here
        assert "elsewhere" not in hub.rooms
        await core.aclose()

    run(scenario())


class SlowReads:
    """The real store, but one kind of read (`join_room`: a join's backlog, or
    `room_after`: a fill) is answered only when the test says: the answers of a store
    whose reads and writes run on different connections. The read is taken at once
    (what is stored meanwhile is not in it), or with `read_late` when released."""

    def __init__(self, store: MessageStore, method: str = "join_room", *,
                 read_late: bool = False) -> None:
        self.store = store
        self.method = method
        self.read_late = read_late
        self.waiting: list[tuple[Any, asyncio.Future[Any]]] = []

    def __getattr__(self, name: str) -> Any:
        if name == self.method:
            return self._held
        return getattr(self.store, name)

    def _held(self, *args: Any) -> asyncio.Future[Any]:
        held: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        read = getattr(self.store, self.method)
        self.waiting.append((args if self.read_late else read(*args), held))
        return held

    async def release(self) -> None:
        read = getattr(self.store, self.method)
        while self.waiting:
            real, held = self.waiting.pop(0)
            held.set_result(await (read(*real) if self.read_late else real))


def test_a_connections_answers_go_out_in_the_order_of_its_commands_whatever_the_store_does():
    async def scenario() -> None:
        slow = SlowReads(MessageStore(":memory:"))
        core = Core(store=slow)  # type: ignore[arg-type]
        alice = core.connect("alice")
        core.do(alice, {"type": "join", "room": "r"})
        core.do(alice, {"type": "say", "room": "r", "text": "hi", "cid": "c1"})
        await core.store.room_before("r", None, 1)  # the write is answered by now
        await asyncio.sleep(0)
        assert wire(alice).frames == []  # its ack waits for the join's answer
        await slow.release()
        await core.settle()
        assert [f["type"] for f in wire(alice).frames] == ["joined", "ack"]
        await slow.store.close()
        core.pool.close()

    run(scenario())


@pytest.mark.parametrize("recent", [256, 0])
def test_a_join_whose_read_saw_less_than_the_room_delivered_gets_the_rest_too(recent, monkeypatch):
    """From the room's recent messages; or, when they do not reach back so far, by
    reading the backlog again."""
    monkeypatch.setattr(room_module, "RECENT", recent)

    async def scenario() -> None:
        slow = SlowReads(MessageStore(":memory:"))
        core = Core(store=slow)  # type: ignore[arg-type]
        other = OtherNode(core)
        alice, bob = core.connect("alice"), core.connect("bob")
        core.do(alice, {"type": "join", "room": "r"})
        await slow.release()
        await core.settle()
        core.do(bob, {"type": "join", "room": "r"})
        await asyncio.sleep(0)
        stale = slow.waiting[0][0]
        await stale  # bob's read is taken before carol's message is stored ...
        core.hub.room_published(*await other.say("r", "carol's"))
        await core.settle()
        assert texts(wire(alice).frames) == ["carol's"]
        await slow.release()  # ... and answered after alice got it: it is read again
        await core.settle()
        await slow.release()
        await core.settle()
        joined = wire(bob).of_type("joined")
        assert len(joined) == 1 and texts(joined[0]["messages"]) == ["carol's"]
        assert texts(wire(bob).frames) == []  # not live as well
        assert core.hub.rooms["r"].joining == 0  # every read of the join counted off
        await slow.store.close()
        core.pool.close()

    run(scenario())


def test_a_member_whose_backlog_saw_more_than_the_room_delivered_is_not_sent_those_again():
    async def scenario() -> None:
        core = Core()
        other = OtherNode(core)
        alice = core.connect("alice")
        core.do(alice, {"type": "join", "room": "r"})
        await core.settle()
        m1 = await other.say("r", "m1")  # stored; its publish is still on its way
        bob = core.connect("bob")
        core.do(bob, {"type": "join", "room": "r"})
        await core.settle()
        assert texts(wire(bob).of_type("joined")[0]["messages"]) == ["m1"]
        core.hub.room_published(*m1)
        assert not core.hub.rooms["r"].ahead  # caught up: nothing to skip any more
        core.hub.room_published(*await other.say("r", "m2"))
        await core.settle()
        assert texts(wire(alice).frames) == ["m1", "m2"]
        assert texts(wire(bob).frames) == ["m2"]
        assert not core.hub.rooms["r"].ahead
        await core.aclose()

    run(scenario())


def test_a_fill_that_fails_is_tried_again_and_nothing_newer_goes_out_meanwhile():
    async def scenario() -> None:
        core = Core()
        other = OtherNode(core)
        alice = core.connect("alice")
        core.do(alice, {"type": "join", "room": "r"})
        await core.settle()
        sent = [await other.say("r", f"m{i}") for i in (1, 2, 3)]
        failing = {"left": 1}
        real_after = core.store.room_after

        def room_after(*args: Any) -> asyncio.Future[Page]:
            if failing["left"]:
                failing["left"] -= 1
                broken: asyncio.Future[Page] = asyncio.get_running_loop().create_future()
                broken.set_exception(OSError("store down"))
                return broken
            return real_after(*args)

        core.store.room_after = room_after  # type: ignore[method-assign]
        core.hub.room_published(*sent[2])  # m1 and m2 lost
        await core.settle()
        assert texts(wire(alice).frames) == []
        deadline = asyncio.get_running_loop().time() + 10
        while len(texts(wire(alice).frames)) < 3 and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
        assert texts(wire(alice).frames) == ["m1", "m2", "m3"]
        await core.aclose()

    run(scenario())


def test_messages_heard_before_the_first_join_is_answered_wait_for_it_and_a_gap_behind_them_is_read():
    async def scenario() -> None:
        slow = SlowReads(MessageStore(":memory:"))
        core = Core(store=slow)  # type: ignore[arg-type]
        other = OtherNode(core)
        alice = core.connect("alice")
        core.do(alice, {"type": "join", "room": "r"})  # the first member here: read under way
        await asyncio.sleep(0)
        await slow.waiting[0][0]  # the read saw an empty room
        sent = [await other.say("r", f"m{i}") for i in (1, 2, 3)]
        core.hub.room_published(*sent[0])  # heard before the join's answer: held
        core.hub.room_published(*sent[2])  # and m2 lost
        await asyncio.sleep(0)
        assert wire(alice).frames == []
        await slow.release()
        await core.settle()
        await core.settle()
        frames = wire(alice).frames
        assert frames[0]["type"] == "joined" and frames[0]["messages"] == []
        assert texts(frames) == ["m1", "m2", "m3"]
        await slow.store.close()
        core.pool.close()

    run(scenario())


def test_a_fill_skips_what_was_delivered_before_it():
    feed: Feed[str] = Feed(delivered=2)
    feed.filling = True
    assert ids(feed.filled([msg(1), msg(2), msg(3)])) == [3]


def fills(core: Core, stream: str) -> float:
    value = core.metrics.registry.get_sample_value("imserver_gaps_filled_total", {"stream": stream})
    return value or 0.0


def test_one_fill_at_a_time_and_what_the_fill_could_not_see_is_read_next():
    async def scenario() -> None:
        slow = SlowReads(MessageStore(":memory:"), "room_after")
        core = Core(store=slow)  # type: ignore[arg-type]
        other = OtherNode(core)
        alice = core.connect("alice")
        core.do(alice, {"type": "join", "room": "r"})
        await core.settle()
        first = [await other.say("r", f"m{i}") for i in (1, 2, 3)]
        core.hub.room_published(*first[2])  # m1, m2 lost: a fill starts
        await asyncio.sleep(0)
        assert len(slow.waiting) == 1
        await slow.waiting[0][0]  # the fill's read is taken now, before m4 and m5 exist
        later = [await other.say("r", f"m{i}") for i in (4, 5)]
        core.hub.room_published(*later[1])  # m4 lost too, while the fill is under way
        core.hub.room_published(*first[2])  # and a repeat
        await asyncio.sleep(0)
        assert len(slow.waiting) == 1 and fills(core, "room") == 1  # no second fill meanwhile
        await slow.release()  # m1-m3: m5 is still behind m4, which the first read missed
        await core.settle()
        await slow.release()
        await core.settle()
        assert texts(wire(alice).frames) == ["m1", "m2", "m3", "m4", "m5"]
        assert fills(core, "room") == 2
        await slow.store.close()
        core.pool.close()

    run(scenario())


def test_the_hub_tells_which_members_of_a_room_are_on_other_nodes():
    async def scenario() -> None:
        core = Core()
        alice = core.connect("alice")
        core.do(alice, {"type": "join", "room": "r"})
        await core.settle()
        assert core.hub.remote_members("r") == set()
        assert core.hub.remote_members("nowhere") == set()
        core.hub.remote_presence("node-b", "r", "carol", "Carol", True)
        core.hub.remote_presence("node-c", "r", "dave", "Dave", True)
        assert core.hub.remote_members("r") == {("node-b", "carol"), ("node-c", "dave")}
        assert not core.hub.rooms["r"].ahead  # an ordinary join is not ahead of the room
        await core.aclose()

    run(scenario())


def test_a_gap_the_store_no_longer_has_is_stepped_over_rather_than_waited_on_forever():
    async def scenario() -> None:
        slow = SlowReads(MessageStore(":memory:"), "room_after", read_late=True)
        core = Core(store=slow)  # type: ignore[arg-type]
        other = OtherNode(core)
        alice = core.connect("alice")
        core.do(alice, {"type": "join", "room": "r"})
        await core.settle()
        sent = [await other.say("r", f"m{i}") for i in (1, 2, 3, 4, 5)]
        core.hub.room_published(*sent[2])  # m1, m2 lost: a fill starts ...
        core.hub.room_published(*sent[4])  # (and m4)
        await asyncio.sleep(0)
        # ... and retention removes them all before the fill reads them.
        await slow.store._submit(True, lambda db: db.db.execute("DELETE FROM messages"))
        for _ in range(3):
            await slow.release()
            await core.settle()
        assert texts(wire(alice).frames) == ["m3", "m5"]  # what it holds goes out, in order
        core.hub.room_published(*await other.say("r", "m6"))
        await core.settle()
        assert texts(wire(alice).frames) == ["m3", "m5", "m6"]
        await slow.store.close()
        core.pool.close()

    run(scenario())


def test_resync_reads_the_direct_messages_missed_too():
    async def scenario() -> None:
        core = Core()
        await core.known("alice", "carol")
        alice = core.connect("alice")
        store = core.store
        d1 = (await store.append_direct("carol", "alice", "d1", None)).message
        core.hub.direct_published(d1, 0, 0)
        await store.append_direct("carol", "alice", "unheard", None)
        core.hub.resync()
        await core.settle()
        await core.settle()
        assert texts(wire(alice).frames) == ["d1", "unheard"]
        await core.aclose()

    run(scenario())


def test_a_connection_with_nothing_waiting_holds_no_answer_queue():
    async def scenario() -> None:
        core = Core()
        alice = core.connect("alice")
        core.do(alice, {"type": "join", "room": "r"})
        core.do(alice, {"type": "say", "room": "r", "text": "hi", "cid": "1"})
        await core.settle()
        assert [f["type"] for f in wire(alice).frames] == ["joined", "ack"]
        assert alice not in core.hub._answers  # no list left behind per connection
        await core.aclose()

    run(scenario())
