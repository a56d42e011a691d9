"""What the stores keep of conversations, on SQLite and PostgreSQL alike: durable room
membership with read marks and unread counts, private rooms, the directory, edits
and deletions as events in their stream, and mutes."""

from __future__ import annotations

import asyncio
import time

import pytest

from imserver.core.errors import Refused, UnknownUser
from imserver.core.store import DELETE, EDIT, UNREAD_MAX, UNREAD_ROOMS
from tests.backends import Stores
from tests.store_reads import dm_after, room_after


async def refused(future: asyncio.Future, code: str) -> str:
    with pytest.raises(Refused) as caught:
        await future
    assert caught.value.code == code, caught.value
    return str(caught.value)


async def say(store, sender: str, room: str, text: str) -> int:
    return (await store.append_room(sender, room, text, None, sender)).message.id


@pytest.mark.gen_test(timeout=30)
async def test_a_member_reads_forward_and_counts_only_what_others_sent(stores: Stores):
    store = await stores.open()
    first = await say(store, "bob", "r", "before alice came")
    joined = await store.join_room("alice", "r", None, 100, 50)
    assert (joined.read, joined.unread, joined.topic, joined.private, joined.member) == \
        (first, 0, "", False, False)
    await store.add_member("alice", "r", joined.read)
    ids = [await say(store, "bob", "r", f"m{i}") for i in range(3)]
    await say(store, "alice", "r", "mine does not count")
    again = await store.join_room("alice", "r", ids[0], 100, 50)
    assert (again.read, again.unread) == (first, 3)
    assert [m.id for m in again.recovery.messages][:2] == ids[1:]
    mark = await store.mark_read("alice", "r", None, ids[1])
    assert (mark.read, mark.unread) == (ids[1], 1)
    assert await store.mark_read("alice", "r", None, ids[0]) is None  # never backwards
    assert await store.mark_read("carol", "r", None, ids[2]) is None  # not a member
    unread = await store.unread("alice")
    assert unread.rooms["r"].read == ids[1] and unread.rooms["r"].unread == 1
    await store.close()
    reopened = await stores.open()  # kept across a restart
    rejoined = await reopened.join_room("alice", "r", None, 100, 50)
    assert rejoined.member and rejoined.read == ids[1]
    await reopened.leave_room("alice", "r")
    assert "r" not in (await reopened.unread("alice")).rooms
    await reopened.close()


async def member(store, user: str, room: str) -> None:
    joined = await store.join_room(user, room, None, 10, 10)
    await store.add_member(user, room, joined.read)


@pytest.mark.gen_test(timeout=30)
async def test_direct_unread_counts_per_conversation_and_marks_move_forward(stores: Stores):
    store = await stores.open()
    for user in ("alice", "bob", "carol"):
        await store.touch_user(user, user.title())
    b1 = (await store.append_direct("bob", "alice", "one", None, "Bob")).message.id
    await store.append_direct("bob", "alice", "two", None, "Bob")
    await store.append_direct("carol", "alice", "three", None, "Carol")
    await store.append_direct("alice", "bob", "mine", None, "Alice")
    unread = await store.unread("alice")
    assert {k: (name, m.unread) for k, (name, m) in unread.direct.items()} == {
        "bob": ("Bob", 2), "carol": ("Carol", 1)}
    mark = await store.mark_read("alice", None, "bob", b1)
    assert (mark.read, mark.unread) == (b1, 1)
    assert await store.mark_read("alice", None, "bob", b1) is None
    assert (await store.unread("alice")).direct["bob"][1].read == b1
    await store.close()


@pytest.mark.gen_test(timeout=30)
async def test_unread_counts_stop_at_the_cap(stores: Stores):
    store = await stores.open()
    await member(store, "alice", "r")
    await asyncio.gather(*[store.append_room("bob", "r", f"m{i}", None, "bob")
                           for i in range(UNREAD_MAX + 5)])
    assert (await store.join_room("alice", "r", None, 10, 10)).unread == UNREAD_MAX
    await store.close()


@pytest.mark.gen_test(timeout=30)
async def test_a_private_room_is_only_for_its_members(stores: Stores):
    store = await stores.open()
    for user in ("owner", "guest", "outsider"):
        await store.touch_user(user, user)
    info = await store.create_room("owner", "secret", "plans", True)
    assert (info.private, info.topic, info.members, info.member, info.owner) == \
        (True, "plans", 1, True, "owner")
    await refused(store.create_room("guest", "secret", "", False), "room_exists")
    await say(store, "bob", "old", "a room with messages exists")
    await refused(store.create_room("guest", "old", "", False), "room_exists")
    assert (await store.join_room("owner", "secret", None, 10, 10)).member
    await say(store, "owner", "secret", "hidden")
    await refused(store.join_room("outsider", "secret", 0, 10, 10), "forbidden")
    await refused(store.room_history("outsider", "secret", None, 10), "forbidden")
    await refused(store.invite("guest", "secret", "outsider"), "forbidden")
    await refused(store.invite("owner", "nowhere", "guest"), "not_found")
    with pytest.raises(UnknownUser):
        await store.invite("owner", "secret", "nobody")
    invited = await store.invite("owner", "secret", "guest")
    assert invited.members == 2 and invited.topic == "plans"
    joined = await store.join_room("guest", "secret", None, 10, 10)
    assert [m.text for m in joined.recovery.messages] == ["hidden"] and joined.unread == 0
    assert joined.member
    assert [m.text for m in (await store.room_history("guest", "secret", None, 10)).messages] == ["hidden"]
    await store.remove_member("owner", "secret", "guest")
    await refused(store.join_room("guest", "secret", None, 10, 10), "forbidden")
    await refused(store.remove_member("guest", "secret", "owner"), "forbidden")
    await member(store, "x", "public")
    await refused(store.invite("x", "public", "guest"), "bad_request")
    await store.close()


@pytest.mark.gen_test(timeout=30)
async def test_a_joiner_is_no_member_of_a_room_made_private_after_its_join_was_read(stores: Stores):
    """join_room reads and add_member writes after: a room created private in between
    (by someone else) refuses the joiner as a member; its owner may rejoin."""
    store = await stores.open()
    joined = await store.join_room("bob", "x", None, 10, 10)
    assert not joined.member and not joined.private
    await store.create_room("alice", "x", "", True)
    await refused(store.add_member("bob", "x", joined.read), "forbidden")
    await refused(store.join_room("bob", "x", None, 10, 10), "forbidden")
    assert [r.members for r in await store.list_rooms("alice", 10)] == [1]
    await store.leave_room("alice", "x")
    rejoined = await store.join_room("alice", "x", None, 10, 10)
    assert not rejoined.member and rejoined.private
    await store.add_member("alice", "x", rejoined.read)
    assert (await store.join_room("alice", "x", None, 10, 10)).member
    await store.close()

@pytest.mark.gen_test(timeout=30)
async def test_the_directory_lists_public_rooms_by_members_and_ones_own_private_rooms(stores: Stores):
    store = await stores.open()
    for user in ("a", "b", "c"):
        await member(store, user, "big")
    await member(store, "a", "small")
    await store.create_room("a", "mine", "just me", True)
    await store.create_room("b", "theirs", "", True)
    seen = await store.list_rooms("a", 200)
    assert [(r.room, r.members, r.private, r.member) for r in seen] == [
        ("big", 3, False, True), ("mine", 1, True, True), ("small", 1, False, True)]
    assert [r.room for r in await store.list_rooms("c", 200)] == ["big", "small"]
    assert [r.room for r in await store.list_rooms("c", 1)] == ["big"]
    await store.close()


@pytest.mark.gen_test(timeout=30)
async def test_edits_and_deletions_are_events_in_the_stream_and_rows_keep_the_latest(stores: Stores):
    store = await stores.open()
    target = await say(store, "alice", "r", "helo")
    await refused(store.append_event("bob", EDIT, target, "x", None, "r"), "forbidden")
    await refused(store.append_event("alice", EDIT, target, "x", None, "other"), "not_found")
    await refused(store.append_event("alice", EDIT, target, "x", None, None), "not_found")
    await refused(store.append_event("alice", EDIT, 10**9, "x", None, "r"), "not_found")
    edit = await store.append_event("alice", EDIT, target, "hello", "e1", "r")
    assert edit.previous == target and not edit.duplicate
    ev = edit.message
    assert (ev.kind, ev.target, ev.text, ev.room, ev.sender, ev.cid) == \
        (EDIT, target, "hello", "r", "alice", "e1")
    again = await store.append_event("alice", EDIT, target, "hello", "e1", "r")
    assert again.duplicate and again.message.id == ev.id
    await refused(store.append_event("alice", EDIT, ev.id, "x", None, "r"), "not_found")  # an event
    (latest,) = (await store.room_before("r", None, 10)).messages  # history: messages only
    assert (latest.id, latest.text, latest.edited is not None, latest.deleted) == \
        (target, "hello", True, False)
    deletion = await store.append_event("op", DELETE, target, "", None, None, operator=True)
    assert (deletion.message.actor, deletion.message.sender, deletion.previous) == \
        ("operator", "alice", ev.id)
    await refused(store.append_event("alice", EDIT, target, "x", None, "r"), "deleted")
    stream = (await room_after(store, "r", 0, 10)).messages
    assert [(m.id, m.kind, m.text) for m in stream] == [
        (target, None, ""), (ev.id, EDIT, "hello"), (deletion.message.id, DELETE, "")]
    assert stream[0].deleted
    recovered = await store.join_room("bob", "r", target, 100, 10)
    assert [m.kind for m in recovered.recovery.messages] == [EDIT, DELETE]
    await store.close()


@pytest.mark.gen_test(timeout=30)
async def test_a_direct_message_is_edited_in_both_streams(stores: Stores):
    store = await stores.open()
    for user in ("alice", "bob"):
        await store.touch_user(user, user)
    sent = await store.append_direct("alice", "bob", "hi", None, "alice")
    await refused(store.append_event("alice", EDIT, sent.message.id, "x", None, "r"), "not_found")
    edit = await store.append_event("alice", EDIT, sent.message.id, "hi!", None, None)
    assert (edit.previous, edit.previous_recipient) == (sent.message.id, sent.message.id)
    assert edit.message.recipient == "bob" and edit.message.room is None
    assert [m.kind for m in (await dm_after(store, "bob", 0, 10)).messages] == [None, EDIT]
    (page,) = (await store.dm_before("bob", "alice", None, 10)).messages
    assert page.text == "hi!"
    await store.close()


@pytest.mark.gen_test(timeout=30)
async def test_a_muted_user_cannot_say_or_edit_in_that_room(stores: Stores):
    store = await stores.open()
    target = await say(store, "alice", "r", "before")
    await stores.sql("INSERT INTO mutes (room, user_id, reason, until, muted_by, muted_at)"
                     " VALUES (?, ?, ?, ?, ?, ?)", "r", "alice", "calm down", None, "op", time.time())
    message = await refused(store.append_room("alice", "r", "x", None, "alice"), "muted")
    assert "calm down" in message and "until lifted" in message
    await refused(store.append_event("alice", EDIT, target, "x", None, "r"), "muted")
    await store.append_event("alice", DELETE, target, "", None, "r")  # one may still delete
    await say(store, "alice", "elsewhere", "fine")
    await stores.sql("UPDATE mutes SET until = ?", time.time() - 1)
    await say(store, "alice", "r", "over")
    await store.close()


@pytest.mark.gen_test(timeout=30)
async def test_the_welcome_counts_cover_the_rooms_joined_last(stores: Stores):
    store = await stores.open()

    for i in range(UNREAD_ROOMS + 3):
        await stores.sql("INSERT INTO room_members (room, user_id, read_id, joined_at)"
                         " VALUES (?, ?, 0, ?)", f"r{i:03d}", "alice", float(i))
    rooms = (await store.unread("alice")).rooms
    assert len(rooms) == UNREAD_ROOMS and "r000" not in rooms and f"r{UNREAD_ROOMS + 2:03d}" in rooms
    await store.close()


@pytest.mark.gen_test(timeout=30)
async def test_a_refusal_in_a_batch_is_an_answer_for_its_operation_alone(stores: Stores):
    """Refused and UnknownUser answer one operation: the operations queued with it (one
    batch) are stored, and a refused append leaves no gap in the room's links."""
    store = await stores.open()
    for user in ("owner", "alice"):
        await store.touch_user(user, user)
    await store.create_room("owner", "secret", "", True)
    target = await say(store, "alice", "r", "mine")
    await stores.sql("INSERT INTO mutes (room, user_id, reason, until, muted_by, muted_at)"
                     " VALUES (?, ?, ?, ?, ?, ?)", "r", "muted", "spam", None, "op", time.time())
    results = await asyncio.gather(
        store.append_room("alice", "r", "one", "c1"),
        store.append_room("muted", "r", "refused", "c2"),
        store.create_room("alice", "secret", "", False),
        store.invite("owner", "secret", "nobody"),
        store.append_event("owner", EDIT, target, "not mine", None, "r"),
        store.append_room("alice", "r", "two", "c3"),
        store.append_event("alice", EDIT, target, "mine!", None, "r"),
        store.invite("owner", "secret", "alice"),
        return_exceptions=True)
    one, muted, exists, unknown, forbidden, two, edit, invited = results
    assert isinstance(muted, Refused) and muted.code == "muted"
    assert isinstance(exists, Refused) and exists.code == "room_exists"
    assert isinstance(unknown, UnknownUser)
    assert isinstance(forbidden, Refused) and forbidden.code == "forbidden"
    assert (one.previous, two.previous, edit.previous) == (target, one.message.id, two.message.id)
    assert invited.members == 2
    stream = (await room_after(store, "r", 0, 10)).messages
    assert [(m.text, m.kind) for m in stream] == [("mine!", None), ("one", None), ("two", None),
                                                   ("mine!", EDIT)]
    await store.close()
