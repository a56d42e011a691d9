"""The message stores: SQLite on a real file, PostgreSQL in a fresh schema. The tests
taking `stores` run on both; the others are SQLite's own (its file, its pragmas)."""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import time
from pathlib import Path

import pytest

from imserver.core import protocol as p
from imserver.core.errors import NameTaken, StoreError, UnknownUser
from imserver.storage import Ban, StoredToken, open_store
from imserver.storage.sqlite import MIGRATIONS, SCHEMA_VERSION, MessageStore
from tests.backends import Stores
from tests.conftest import make_config
from tests.store_reads import count, dm_after, room_after


@pytest.fixture
def db_path(tmp_path):
    return str(tmp_path / "data" / "chat.db")


async def fill(store, room, count, sender="alice", prefix="m"):
    results = await asyncio.gather(*[
        store.append_room(sender, room, f"{prefix}{i}", f"{prefix}{i}") for i in range(count)])
    return [r.message.id for r in results]


@pytest.mark.gen_test
async def test_migrates_an_empty_file_and_reopens(db_path):
    store = MessageStore(db_path)
    ids = await fill(store, "r", 3)
    await store.close()
    db = sqlite3.connect(db_path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()
    again = MessageStore(db_path)
    page = await room_after(again, "r", 0, 10)
    assert [m.id for m in page.messages] == ids and [m.text for m in page.messages] == ["m0", "m1", "m2"]
    await again.close()


@pytest.mark.gen_test
async def test_ids_strictly_increase_in_queue_order(stores: Stores):
    store = await stores.open()
    a = await fill(store, "a", 50)
    b = await fill(store, "b", 50, prefix="n")
    assert a == sorted(a) and b == sorted(b) and a[-1] < b[0]
    assert len(set(a + b)) == 100
    await store.close()


@pytest.mark.gen_test
async def test_group_commit_batches_a_burst(stores: Stores):
    store = await stores.open()
    await fill(store, "r", 1)
    batches_before = store.batches
    await fill(store, "r", 500, prefix="burst")
    assert store.committed == 501
    assert store.batches - batches_before < 100  # far fewer commits than messages
    await store.close()


@pytest.mark.gen_test
async def test_answers_come_back_in_queue_order_reads_and_writes_mixed(stores: Stores):
    """Writes run first in a batch, but a read queued before a write is answered first:
    a join sent before a say gets its `joined` before the say's ack."""
    store = await stores.open()
    await fill(store, "r", 1)
    answered: list[str] = []
    for round_ in range(20):  # a burst, so that many share a batch with both kinds
        ops = []
        for i in range(10):
            tag = f"{round_}-{i}"
            op = store.append_room("alice", "r", tag, tag) if i % 2 else store.room_recover("r", 0, 500, 50)
            op.add_done_callback(lambda _f, tag=tag: answered.append(tag))
            ops.append(op)
        await asyncio.gather(*ops)
    assert answered == [f"{r}-{i}" for r in range(20) for i in range(10)]
    assert store.batches < 100  # reads and writes did share batches
    await store.close()


@pytest.mark.gen_test
async def test_a_read_sees_exactly_the_writes_queued_before_it(stores: Stores):
    """Queued in one burst, so that batches mix writes and reads: each read's newest
    message is the write queued just before it, never one queued after."""
    store = await stores.open()
    ops = []
    for i in range(100):
        ops.append(store.append_room("alice", "r", f"m{i}", f"c{i}"))
        ops.append(store.room_recover("r", 0, 500, 500))
    batches = store.batches
    results = await asyncio.gather(*ops)
    assert store.batches - batches < 100  # batches did mix them
    for i in range(100):
        written, read = results[2 * i], results[2 * i + 1]
        assert read.messages[-1].id == written.message.id, i
        assert [m.text for m in read.messages] == [f"m{j}" for j in range(i + 1)]
    await store.close()


@pytest.mark.gen_test
async def test_paging_before_and_after(stores: Stores):
    store = await stores.open()
    ids = await fill(store, "r", 10)
    await fill(store, "other", 5, prefix="o")
    latest = await store.room_before("r", None, 4)
    assert [m.id for m in latest.messages] == ids[-4:] and latest.more
    older = await store.room_before("r", ids[-4], 4)
    assert [m.id for m in older.messages] == ids[2:6] and older.more
    oldest = await store.room_before("r", ids[2], 4)
    assert [m.id for m in oldest.messages] == ids[:2] and not oldest.more
    after = await room_after(store, "r", ids[6], 10)
    assert [m.id for m in after.messages] == ids[7:] and not after.more
    partial = await room_after(store, "r", ids[0], 3)
    assert [m.id for m in partial.messages] == ids[1:4] and partial.more
    assert (await room_after(store, "r", ids[-1], 3)).messages == []
    await store.close()


@pytest.mark.gen_test
async def test_duplicate_cid_returns_the_original(stores: Stores):
    store = await stores.open()
    await store.touch_user("bob", "bob")
    first = await store.append_room("alice", "r", "hello", "c-1")
    again = await store.append_room("alice", "r", "hello (resent)", "c-1")
    assert not first.duplicate and again.duplicate and again.message == first.message
    dm_again = await store.append_direct("alice", "bob", "x", "c-1")
    assert dm_again.duplicate and dm_again.message.id == first.message.id
    other = await store.append_room("bob", "r", "mine", "c-1")
    assert not other.duplicate
    no_cid = [await store.append_room("alice", "r", "same", None) for _ in range(2)]
    assert no_cid[0].message.id != no_cid[1].message.id
    await store.close()
    reopened = await stores.open()  # survives a restart
    assert (await reopened.append_room("alice", "r", "hello", "c-1")).message == first.message
    assert await count(reopened) == 4
    await reopened.close()


@pytest.mark.gen_test
async def test_direct_messages_belong_to_their_two_participants(stores: Stores):
    store = await stores.open()
    for user in ("alice", "bob", "carol"):
        await store.touch_user(user, user)
    ab = (await store.append_direct("alice", "bob", "hi bob", "1")).message
    ca = (await store.append_direct("carol", "alice", "hi alice", "2")).message
    bc = (await store.append_direct("bob", "carol", "hi carol", "3")).message
    await fill(store, "r", 2)
    assert p.message_frame(ab) == {"type": "message", "id": ab.id, "from": "alice", "name": "alice",
                             "to": "bob", "to_name": "bob", "text": "hi bob", "ts": ab.ts, "cid": "1"}
    assert [m.id for m in (await dm_after(store, "alice", 0, 10)).messages] == [ab.id, ca.id]
    assert [m.id for m in (await dm_after(store, "bob", ab.id, 10)).messages] == [bc.id]
    assert [m.id for m in (await dm_after(store, "carol", None, 10)).messages] == [ca.id, bc.id]
    assert [m.id for m in (await store.dm_before("bob", "alice", None, 10)).messages] == [ab.id]
    assert (await store.dm_before("alice", "dave", None, 10)).messages == []
    with pytest.raises(UnknownUser):
        await store.append_direct("alice", "dave", "who?", "4")
    await store.close()


@pytest.mark.gen_test
async def test_retention_by_age_and_by_count(stores: Stores):
    store = await stores.open()
    ids = await fill(store, "r", 10)
    await fill(store, "s", 3, prefix="s")
    removed = await store.prune(max_age_seconds=None, keep_per_room=4)
    assert removed == 6
    assert [m.id for m in (await room_after(store, "r", 0, 100)).messages] == ids[-4:]
    assert len((await room_after(store, "s", 0, 100)).messages) == 3
    await store.close()
    await stores.sql("UPDATE messages SET ts = ? WHERE room = 's'", time.time() - 3 * 86400)
    store = await stores.open()
    assert await store.prune(max_age_seconds=2 * 86400, keep_per_room=None) == 3
    assert await count(store) == 4
    await store.close()


def test_corrupt_file_stops_with_a_clear_error_and_is_kept(tmp_path):
    path = tmp_path / "chat.db"
    garbage = b"this is not a database" * 100
    path.write_bytes(garbage)
    with pytest.raises(StoreError, match=f"cannot open message database {path}"):
        MessageStore(str(path))
    assert path.read_bytes() == garbage  # never silently replaced


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "chat.db"
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(StoreError, match="newer than this imserver knows"):
        MessageStore(str(path))


def test_unreadable_directory_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreError, match="cannot open message database"):
        MessageStore(str(blocker / "sub" / "chat.db"))


@pytest.mark.gen_test
@pytest.mark.parametrize("mode", ["FULL", "NORMAL"])
async def test_synchronous_setting_is_applied(db_path, mode):
    store = MessageStore(db_path, synchronous=mode)
    level = store._db.db.execute("PRAGMA synchronous").fetchone()[0]
    assert level == {"FULL": 2, "NORMAL": 1}[mode]
    await store.close()


@pytest.mark.gen_test
async def test_recover_gives_what_was_missed_or_the_latest_page_truncated(stores: Stores):
    store = await stores.open()
    ids = await fill(store, "r", 10)
    within = await store.room_recover("r", ids[6], limit=5, page=3)
    assert [m.id for m in within.messages] == ids[7:] and not within.truncated
    too_far = await store.room_recover("r", ids[0], limit=5, page=3)
    assert [m.id for m in too_far.messages] == ids[-3:] and too_far.truncated
    first = await store.room_recover("r", None, limit=5, page=3)
    assert [m.id for m in first.messages] == ids[-3:] and not first.truncated
    await store.close()


@pytest.mark.gen_test
async def test_a_version_1_database_is_migrated_and_its_messages_keep_their_sender(db_path):
    Path(db_path).parent.mkdir(parents=True)
    db = sqlite3.connect(db_path)
    db.executescript(MIGRATIONS[0])
    db.execute("PRAGMA user_version=1")
    db.execute("INSERT INTO users (id, name, last_seen) VALUES ('bob', 'bob', 0)")
    db.execute("INSERT INTO messages (sender, text, ts, cid, room) VALUES ('alice', 'old', 1.0, 'c1', 'r')")
    db.execute("INSERT INTO messages (sender, text, ts, cid, recipient, dm_key)"
               " VALUES ('alice', 'dm', 2.0, 'c2', 'bob', 'alice' || char(0) || 'bob')")
    db.commit()
    db.close()
    store = MessageStore(db_path)
    try:
        (old,) = (await store.room_before("r", None, 10)).messages
        assert p.message_frame(old)["from"] == p.message_frame(old)["name"] == "alice"
        (dm,) = (await store.dm_before("bob", "alice", None, 10)).messages
        assert p.message_frame(dm)["to_name"] == "bob"
        new = (await store.append_room("g:x1", "r", "new", "c3", "Alice")).message
        assert p.message_frame(new)["from"] == "g:x1" and p.message_frame(new)["name"] == "Alice"
        assert [m.name for m in (await store.room_before("r", None, 10)).messages] == ["alice", "Alice"]
    finally:
        await store.close()
    db = sqlite3.connect(db_path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 4
    db.close()


@pytest.mark.gen_test
async def test_name_claims_and_revocations_are_read_back_at_start(stores: Stores):
    now = time.time()
    store = await stores.open()
    await store.claim_name("alice", "g:a", "Alice", "j1", now + 60)
    await store.claim_name("alice", "g:a", "Alice", "j2", now + 60)
    await store.claim_name("bob", "g:b", "bob", "j3", now + 60)
    await store.claim_name("carol", "g:c", "carol", "j4", now + 0.5)
    await store.revoke_token("j2", "g:a", now + 60)
    await store.revoke_token("j3", "g:b", now + 60)
    await store.close()
    store = stores.new()
    try:
        snapshot = await store.open(now + 1)
        assert snapshot.claims == [("alice", "g:a", "Alice", "j1", now + 60)]
        assert await store.prune_identities(now + 1) == 3  # carol's token, bob's and carol's names
        assert await store.prune_identities(now + 120) == 4
    finally:
        await store.close()


@pytest.mark.gen_test
async def test_a_name_is_claimed_only_when_free_or_its_holders_already(stores: Stores):
    now = time.time()
    store = await stores.open()
    try:
        await store.claim_name("alice", "g:a", "alice", "j1", now + 60)
        with pytest.raises(NameTaken):
            await store.claim_name("alice", "g:b", "Alice", "j2", now + 60)
        await store.claim_name("alice", "g:a", "ALICE", "j3", now + 60)  # the holder again
        await store.revoke_token("j1", "g:a", now + 60)
        with pytest.raises(NameTaken):  # j3 still holds it
            await store.claim_name("alice", "g:b", "Alice", "j2", now + 60)
        await store.revoke_token("j3", "g:a", now + 60)
        await store.claim_name("alice", "g:b", "Alice", "j2", now + 60)  # free: taken over
        await stores.sql("UPDATE tokens SET expires = ? WHERE jti = 'j2'", now - 1)
        await store.claim_name("alice", "g:c", "alice", "j4", now + 60)  # expired: free
        # a refused claim wrote nothing, and did not stop the rest of its batch
        refused, kept = await asyncio.gather(
            store.claim_name("alice", "g:d", "alice", "j5", now + 60),
            store.claim_name("bob", "g:e", "bob", "j6", now + 60), return_exceptions=True)
        assert isinstance(refused, NameTaken) and kept is None
        assert await stores.sql("SELECT name_key, user_id, name FROM name_claims ORDER BY name_key") == [
            ("alice", "g:c", "alice"), ("bob", "g:e", "bob")]
        assert await stores.sql("SELECT jti FROM tokens WHERE jti IN ('j5', 'j2') ORDER BY jti") == [
            ("j2",)]
        assert (await store.read_identities(time.time())).claims == [
            ("alice", "g:c", "alice", "j4", now + 60), ("bob", "g:e", "bob", "j6", now + 60)]
    finally:
        await store.close()


@pytest.mark.gen_test
async def test_a_guest_token_is_read_with_the_claim_on_its_name(stores: Stores):
    now = time.time()
    store = await stores.open()
    try:
        await store.claim_name("alice", "g:a", "Alice", "j1", now + 60)
        await store.claim_name("alice", "g:a", "Alice", "j2", now + 60)
        assert await store.guest_token("j1", "alice") == StoredToken("g:a", now + 60, False, "g:a", "Alice")
        assert await store.guest_token("nope", "alice") is None
        assert await store.guest_token("j1", "bob") == StoredToken("g:a", now + 60, False, None, None)
        await store.revoke_token("j1", "g:a", now + 60)
        assert (await store.guest_token("j1", "alice")).revoked
        await store.revoke_token("j2", "g:a", now + 60)
        await store.claim_name("alice", "g:b", "alice", "j3", now + 60)
        assert await store.guest_token("j2", "alice") == StoredToken("g:a", now + 60, True, "g:b", "alice")
    finally:
        await store.close()


@pytest.mark.gen_test
async def test_each_append_links_to_the_previous_message_of_its_streams(stores: Stores):
    store = await stores.open()
    for user in ("alice", "bob", "carol"):
        await store.touch_user(user, user)
    r1 = await store.append_room("alice", "r", "1", "c1")
    s1 = await store.append_room("alice", "s", "another room", "c2")
    r2, r3 = await asyncio.gather(store.append_room("bob", "r", "2", None),
                                  store.append_room("alice", "r", "3", "c3"))
    assert (r1.previous, s1.previous, r2.previous, r3.previous) == (0, 0, r1.message.id, r2.message.id)
    assert r1.previous_recipient == r3.previous_recipient == 0
    ab = await store.append_direct("alice", "bob", "hi", "d1")
    assert (ab.previous, ab.previous_recipient) == (0, 0)
    bc = await store.append_direct("bob", "carol", "hey", "d2")
    assert (bc.previous, bc.previous_recipient) == (ab.message.id, 0)
    ca = await store.append_direct("carol", "alice", "yo", "d3")
    assert (ca.previous, ca.previous_recipient) == (bc.message.id, ab.message.id)
    aa = await store.append_direct("alice", "alice", "a note to self", "d4")
    assert aa.previous == aa.previous_recipient == ca.message.id
    # A duplicate carries no links; the next message links to the stored one.
    again = await store.append_room("alice", "r", "3", "c3")
    assert again.duplicate and (again.previous, again.previous_recipient) == (0, 0)
    # In one batch: each links to the one before it, and what is not stored links nothing.
    burst = await asyncio.gather(
        *[store.append_room("carol", "r", f"b{i}", f"b{i}") for i in range(3)],
        store.append_direct("carol", "dave", "who?", None),
        store.append_direct("bob", "carol", "burst", None),
        store.append_room("carol", "r", "b0 again", "b0"), return_exceptions=True)
    assert isinstance(burst[3], UnknownUser) and burst[5].duplicate
    room_ids = [r3.message.id] + [b.message.id for b in burst[:3]]
    assert [b.previous for b in burst[:3]] == room_ids[:-1]
    assert (burst[4].previous, burst[4].previous_recipient) == (bc.message.id, ca.message.id)
    await store.close()
    reopened = await stores.open()  # the links survive a restart
    r5 = await reopened.append_room("carol", "r", "5", None)
    back = await reopened.append_direct("bob", "alice", "back", None)
    assert r5.previous == room_ids[-1]
    assert (back.previous, back.previous_recipient) == (burst[4].message.id, aa.message.id)
    page = await reopened.room_before("r", None, 100)
    assert [m.id for m in page.messages] == [r1.message.id, r2.message.id, *room_ids, r5.message.id]
    await reopened.close()


def test_postgres_without_its_driver_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "asyncpg", None)  # as if not installed
    monkeypatch.delitem(sys.modules, "imserver.storage.postgres", raising=False)
    config = make_config(tmp_path, storage={"backend": "postgres", "dsn": "postgresql://chat@db/chat"})
    with pytest.raises(StoreError, match=r"needs the asyncpg package: pip install 'imserver\[cluster\]'"):
        open_store(config)


@pytest.mark.gen_test
async def test_bans_are_kept_replaced_lifted_and_read_in_force(stores: Stores):
    store = await stores.open()
    now = time.time()
    try:
        assert await store.read_bans(now) == []
        await store.ban(Ban("g:a", "spam", None, "api from 127.0.0.1", 100.0))
        await store.ban(Ban("bob", "flood", now + 60, None, 200.0))
        await store.ban(Ban("old", "gone", now - 1, None, 50.0))  # expired: never read
        assert await store.read_bans(now) == [
            Ban("g:a", "spam", None, "api from 127.0.0.1", 100.0),
            Ban("bob", "flood", now + 60, None, 200.0)]
        assert await store.read_bans(now + 61) == [Ban("g:a", "spam", None, "api from 127.0.0.1", 100.0)]
        await store.ban(Ban("bob", "again", None, "dashboard", 300.0))  # replaces
        assert await store.lift_ban("g:a") is True
        assert await store.lift_ban("g:a") is False
        assert await store.read_bans(now) == [Ban("bob", "again", None, "dashboard", 300.0)]
    finally:
        await store.close()
    other = await stores.open()  # another process, or a restart: the same bans
    try:
        assert await other.read_bans(now) == [Ban("bob", "again", None, "dashboard", 300.0)]
    finally:
        await other.close()
