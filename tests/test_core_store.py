"""The store's edges: a failed commit fails its whole batch and the store goes on, a
close finishes what was queued, users are written once per run, and nothing is
accepted after close. The tests taking `stores` run on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import time

import pytest

from imserver.core.errors import NameTaken, StoreError, UnknownUser
from imserver.core.protocol import message_frame
from imserver.core.store import Message
from imserver.storage.base import Ban
from imserver.storage.sqlite import MessageStore
from tests.backends import Stores
from tests.core import run
from tests.store_reads import dm_after, room_after

# In-process tests take milliseconds: one that hangs (a fault in the store's close, say)
# is stopped after 30 s rather than the suite's 180.
pytestmark = pytest.mark.timeout(30)


def test_a_failed_commit_fails_every_operation_of_its_batch_and_the_store_goes_on(tmp_path):
    async def scenario() -> None:
        store = MessageStore(str(tmp_path / "chat.db"))
        await store.append_room("a", "r", "kept", "k1")
        batches, committed = store.batches, store.committed
        store._db.db.execute("PRAGMA query_only = ON")  # the disk refuses writes from now on
        write = store.append_room("a", "r", "lost", "k2")
        results = await asyncio.gather(write, room_after(store, "r", 0, 10), return_exceptions=True)
        assert isinstance(results[0], StoreError)
        assert "message database" in str(results[0])
        # A read in the batch of a failed write fails with it (it saw the undone write);
        # in a batch of its own it sees only what was committed.
        read = results[1]
        assert isinstance(read, StoreError) or [m.text for m in read.messages] == ["kept"]
        assert (store.batches, store.committed) == (batches, committed)
        store._db.db.execute("PRAGMA query_only = OFF")
        again = await store.append_room("a", "r", "again", "k2")
        assert not again.duplicate and again.message.text == "again"
        page = await room_after(store, "r", 0, 10)
        assert [m.text for m in page.messages] == ["kept", "again"]
        assert (store.batches, store.committed) == (batches + 1, committed + 1)
        await store.close()

    run(scenario())


def test_a_failed_read_fails_alone(tmp_path):
    async def scenario() -> None:
        store = MessageStore(str(tmp_path / "chat.db"))
        store._db.db.execute("CREATE TABLE spare (x)")
        await store.append_room("a", "r", "one", None)
        store._db.db.execute("ALTER TABLE messages RENAME TO hidden")
        read = room_after(store, "r", 0, 10)
        with pytest.raises(StoreError, match="no such table"):
            await read
        store._db.db.execute("ALTER TABLE hidden RENAME TO messages")
        assert [m.text for m in (await room_after(store, "r", 0, 10)).messages] == ["one"]
        await store.close()

    run(scenario())


def test_close_finishes_every_queued_operation_first(stores: Stores):
    async def scenario() -> None:
        store = await stores.open()
        writes = [store.append_room("a", "r", f"m{i}", f"c{i}") for i in range(20)]
        await store.close()
        assert all(w.done() and not w.cancelled() for w in writes)
        assert [w.result().message.text for w in writes] == [f"m{i}" for i in range(20)]
        assert await stores.sql("SELECT count(*) FROM messages") == [(20,)]
        with pytest.raises(StoreError, match="closed"):
            await store.append_room("a", "r", "too late", None)

    run(scenario())


def test_users_are_written_once_per_run_unless_their_name_changes(stores: Stores):
    async def scenario() -> None:
        store = await stores.open()
        await store.touch_user("u1", "Una")
        assert store.committed == 1
        await store.touch_user("u1", "Una")
        assert store.committed == 1  # known this run: no write
        await store.touch_user("u1", "Una B.")
        assert store.committed == 2
        with pytest.raises(UnknownUser, match="no user 'u2'"):
            await store.append_direct("u1", "u2", "hi", None)
        sent = await store.append_direct("u2", "u1", "hi", None)
        assert sent.message.recipient == "u1" and sent.message.room is None
        assert await stores.sql("SELECT name FROM users WHERE id = 'u1'") == [("Una B.",)]
        await store.close()

    run(scenario())


def test_batches_hold_at_most_batch_max_operations(stores: Stores):
    async def scenario() -> None:
        store = await stores.open(batch_max=1)
        await asyncio.gather(*[store.append_room("a", "r", f"m{i}", None) for i in range(6)])
        assert store.batches == 6 and store.committed == 6
        await store.close()

    run(scenario())


def test_message_frames():
    room = Message(id=3, sender="a", text="t", ts=1.5, cid="c", room="r", name="Ann")
    assert message_frame(room) == {"type": "message", "id": 3, "from": "a", "name": "Ann", "room": "r",
                                   "text": "t", "ts": 1.5, "cid": "c"}
    direct = Message(id=4, sender="a", text="t", ts=2.0, cid=None, recipient="b")
    assert message_frame(direct) == {"type": "message", "id": 4, "from": "a", "name": "a", "to": "b",
                                     "to_name": "b", "text": "t", "ts": 2.0}


def test_dm_pages_hold_both_directions_and_nothing_else(stores: Stores):
    async def scenario() -> None:
        store = await stores.open()
        for user in ("a", "b", "c"):
            await store.touch_user(user, user)
        ab = await store.append_direct("a", "b", "1", None)
        await store.append_direct("b", "a", "2", None)
        await store.append_direct("c", "b", "3", None)
        await store.append_room("a", "r", "room", None)
        latest = await dm_after(store, "a", None, 10)
        assert [m.text for m in latest.messages] == ["1", "2"] and not latest.more
        after = await dm_after(store, "a", ab.message.id, 10)
        assert [m.text for m in after.messages] == ["2"]
        b_side = await dm_after(store, "b", None, 2)
        assert [m.text for m in b_side.messages] == ["2", "3"] and b_side.more
        conversation = await store.dm_before("b", "a", None, 10)
        assert [m.text for m in conversation.messages] == ["1", "2"]
        recovered = await store.dm_recover("b", ab.message.id, limit=1, page=5)
        assert [m.text for m in recovered.messages] == ["1", "2", "3"] and recovered.truncated
        exact = await store.dm_recover("b", ab.message.id, limit=2, page=5)
        assert [m.text for m in exact.messages] == ["2", "3"] and not exact.truncated
        assert store.committed == 7  # reads commit nothing
        await dm_after(store, "a", None, 1)
        await store.room_before("r", None, 1)
        await room_after(store, "r", 0, 1)
        assert store.committed == 7
        assert await store.prune(max_age_seconds=None, keep_per_room=None) == 0
        assert store.committed == 8  # a prune is a write, in a transaction
        await store.close()

    run(scenario())


# --- the SQLite store's own bookkeeping ---

def _sql(store: MessageStore, statement: str) -> asyncio.Future[list[tuple[object, ...]]]:
    return store._submit(False, lambda db: db.db.execute(statement).fetchall())


def test_a_new_ban_clears_the_expired_ones_from_the_table():
    async def scenario() -> None:
        store = MessageStore(":memory:")
        now = time.time()
        await store.ban(Ban("gone", "spam", now - 1, None, now - 100))
        await store.ban(Ban("kept", "spam", None, None, now))
        assert await _sql(store, "SELECT user_id FROM bans ORDER BY user_id") == [("kept",)]
        await store.close()

    run(scenario())


def test_a_refused_name_claim_does_not_leave_its_user_counted_as_recorded():
    """touch_user writes each user once per run; a claim that failed wrote nothing, so the
    next touch of that user must write it."""
    async def scenario() -> None:
        store = MessageStore(":memory:")
        later = time.time() + 3600
        await store.claim_name("ann", "g:first", "ann", "jti-1", later)
        with pytest.raises(NameTaken):
            await store.claim_name("ann", "g:second", "ann", "jti-2", later)
        await store.touch_user("g:second", "ann")
        assert ("g:second",) in await _sql(store, "SELECT id FROM users")
        await store.close()

    run(scenario())


def test_load_identities_is_for_start_up_only():
    async def scenario() -> None:
        store = MessageStore(":memory:")
        await store.append_room("a", "r", "hi", None)  # the store thread runs now
        with pytest.raises(RuntimeError, match="start-up"):
            store.load_identities(time.time())
        await store.close()

    run(scenario())
