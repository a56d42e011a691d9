"""The PostgreSQL store's own guarantees, those a cluster of processes sharing one
database relies on: several stores (as several processes would) on one schema keep
each room's and each user's ids in commit order and link every message to the one
before it; a cid raced by two stores is stored once; migrations run once when
processes start together; a lock held elsewhere or a refused statement fails in
time and alone. (What holds for both stores is tested on both: test_store.py.)"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests import pg

pg.require_asyncpg()

from imserver.core.errors import NameTaken, Refused, StoreError  # noqa: E402
from imserver.core.store import DELETE, EDIT, Appended, RoomInfo  # noqa: E402
from imserver.storage.postgres import SCHEMA_VERSION, PostgresStore  # noqa: E402
from tests.store_reads import dm_after, room_after  # noqa: E402

pytestmark = pytest.mark.timeout(60)


async def until(condition: Callable[[], object], timeout: float = 10.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"still not {what or condition} after {timeout} s"
        await asyncio.sleep(0.01)


async def until_blocked(store: PostgresStore, observer: Any) -> None:
    """Wait until the store's connection waits on a lock, as the server sees it."""
    pid = store._conn.get_server_pid()
    deadline = time.monotonic() + 10
    while await observer.fetchval("SELECT wait_event_type FROM pg_stat_activity WHERE pid = $1",
                                  pid) != "Lock":
        assert time.monotonic() < deadline, "the store never waited on a lock"
        await asyncio.sleep(0.01)


async def opened(dsn: str, schema: str, **options: Any) -> PostgresStore:
    store = PostgresStore(dsn, schema=schema, **options)
    await store.open(time.time())
    return store


@pytest.mark.gen_test(timeout=60)
async def test_two_stores_on_one_room_and_one_conversation_keep_ids_in_commit_order(pg_dsn, pg_schema):
    """Two stores write to one room and to one conversation at once while a reader
    polls: every read of the room holds every id below its largest, and each
    message's `previous` is the id before it in the room as read back."""
    a, b = await opened(pg_dsn, pg_schema), await opened(pg_dsn, pg_schema)
    for store in (a, b):
        await asyncio.gather(store.touch_user("alice", "Alice"), store.touch_user("bob", "Bob"))
    reader = await pg.connect(pg_dsn, pg_schema)
    room_reads: list[set[int]] = []
    dm_reads: list[set[int]] = []
    writing = True

    async def read() -> None:
        while writing:
            room_reads.append({r[0] for r in await reader.fetch("SELECT id FROM messages WHERE room = 'r'")})
            dm_reads.append({r[0] for r in await reader.fetch(
                "SELECT id FROM messages WHERE recipient = 'alice' OR sender = 'alice' AND room IS NULL")})

    async def write(store: PostgresStore, sender: str, peer: str) -> list[Appended]:
        answers: list[Appended] = []
        for wave in range(30):
            answers += await asyncio.gather(
                *[store.append_room(sender, "r", f"{sender} {wave}.{i}", None) for i in range(6)],
                store.append_direct(sender, peer, f"{sender} to {peer} {wave}", None),
                store.append_direct(sender, sender, f"{sender}'s note {wave}", None))
        return answers

    reading = asyncio.ensure_future(read())
    try:
        written = await asyncio.gather(write(a, "alice", "bob"), write(b, "bob", "alice"))
        answers = written[0] + written[1]
    finally:
        writing = False
        await reading
        await reader.close()
    assert len(room_reads) > 5  # the reader did read while they wrote

    in_room = sorted((x for x in answers if x.message.room == "r"), key=lambda x: x.message.id)
    ids = [x.message.id for x in in_room]
    assert [m.id for m in (await room_after(a, "r", 0, 10_000)).messages] == ids
    assert [x.previous for x in in_room] == [0, *ids[:-1]]
    for seen in room_reads:
        assert seen == {i for i in ids if i <= max(seen, default=0)}

    for user in ("alice", "bob"):
        stream = sorted((x for x in answers if x.message.room is None
                         and user in (x.message.sender, x.message.recipient)), key=lambda x: x.message.id)
        stream_ids = [x.message.id for x in stream]
        links = [x.previous if x.message.sender == user else x.previous_recipient for x in stream]
        assert links == [0, *stream_ids[:-1]], user
        assert [m.id for m in (await dm_after(b, user, 0, 10_000)).messages] == stream_ids
    alice_ids = sorted(x.message.id for x in answers if x.message.room is None
                       and "alice" in (x.message.sender, x.message.recipient))
    for seen in dm_reads:
        assert seen == {i for i in alice_ids if i <= max(seen, default=0)}
    await asyncio.gather(a.close(), b.close())


@pytest.mark.gen_test(timeout=60)
@pytest.mark.parametrize("rooms", [("r", "r"), ("r1", "r2")], ids=["one room", "two rooms"])
async def test_a_cid_raced_by_two_stores_is_stored_once(pg_dsn, pg_schema, rooms):
    """Both stores append the same 100 (sender, cid) at once, in opposite orders. In
    two rooms nothing orders them, so their inserts meet on the cid index (and may
    deadlock, after which one batch runs again): one row per cid all the same, and
    for each cid one answer stored it and the other is its duplicate."""
    a, b = await opened(pg_dsn, pg_schema), await opened(pg_dsn, pg_schema)
    cids = [f"c{i}" for i in range(100)]
    first, second = await asyncio.gather(
        asyncio.gather(*[a.append_room("alice", rooms[0], f"a {cid}", cid) for cid in cids]),
        asyncio.gather(*[b.append_room("alice", rooms[1], f"b {cid}", cid) for cid in reversed(cids)]))
    by_cid = dict(zip(reversed(cids), second, strict=True))
    for cid, mine in zip(cids, first, strict=True):
        theirs = by_cid[cid]
        assert mine.duplicate != theirs.duplicate, cid
        assert mine.message == theirs.message, cid
    rows = await pg.execute(pg_dsn, pg_schema, "SELECT cid, count(*) FROM messages GROUP BY cid")
    assert sorted(rows) == sorted((cid, 1) for cid in cids)
    for room in set(rooms):  # and the links skip nothing that was stored
        stored = sorted((x for x in first + second if not x.duplicate and x.message.room == room),
                        key=lambda x: x.message.id)
        assert [x.previous for x in stored] == [0, *[x.message.id for x in stored]][:len(stored)]
    await asyncio.gather(a.close(), b.close())


@pytest.mark.gen_test(timeout=30)
@pytest.mark.parametrize("outcome", ["commit", "rollback"])
async def test_an_append_waits_for_another_process_inserting_its_cid(pg_dsn, pg_schema, outcome):
    """Another process has inserted the same (sender, cid) and not committed yet: the
    append waits for it, then answers with its row (it committed) or stores its own
    (it rolled back)."""
    store = await opened(pg_dsn, pg_schema)
    await store.append_room("alice", "r", "first", "c0")
    other = await pg.connect(pg_dsn, pg_schema)
    transaction = other.transaction()
    await transaction.start()
    await other.execute("INSERT INTO messages (id, sender, text, ts, cid, room, sender_name)"
                        " VALUES (nextval('message_ids'), 'alice', 'from elsewhere', 1, 'c1', 'r', 'Alice')")
    waiting = store.append_room("alice", "r", "from here", "c1")
    await until_blocked(store, other)
    assert not waiting.done()
    await (transaction.commit() if outcome == "commit" else transaction.rollback())
    await other.close()
    answer = await waiting
    assert answer.message.text == ("from elsewhere" if outcome == "commit" else "from here")
    assert answer.duplicate == (outcome == "commit")
    await store.close()


@pytest.mark.gen_test(timeout=30)
async def test_a_batch_that_deadlocks_with_another_process_runs_again(pg_dsn, pg_schema):
    """The store's INSERT takes c1 and waits on c2, which another transaction holds and
    which then waits on c1: PostgreSQL aborts the store's transaction (the other one
    waits longer before it looks for deadlocks), and the batch runs again, after the
    other committed: both answers are duplicates of its rows."""
    store = await opened(pg_dsn, pg_schema)
    await store.append_room("alice", "r", "first", "c0")
    other = await pg.connect(pg_dsn, pg_schema)
    await other.execute("SET deadlock_timeout = '20s'")
    transaction = other.transaction()
    await transaction.start()
    insert = ("INSERT INTO messages (id, sender, text, ts, cid, room, sender_name)"
              " VALUES (nextval('message_ids'), 'alice', $1, 1, $2, 'elsewhere', 'Alice')")
    await other.execute(insert, "other c2", "c2")
    answers = asyncio.gather(store.append_room("alice", "r", "mine c1", "c1"),
                             store.append_room("alice", "r", "mine c2", "c2"))
    await until_blocked(store, other)  # on c2
    await other.execute(insert, "other c1", "c1")  # waits on the store, until it is aborted
    await transaction.commit()
    await other.close()
    c1, c2 = await answers
    assert store.reruns == 1
    assert (c1.duplicate, c1.message.text) == (True, "other c1")
    assert (c2.duplicate, c2.message.text) == (True, "other c2")
    await store.close()


@pytest.mark.gen_test(timeout=60)
async def test_two_stores_claiming_one_name_at_once_give_it_to_exactly_one(pg_dsn, pg_schema):
    """As two processes logging two users in with one name at the same moment: one
    gets it, the other is answered NameTaken and writes nothing. First twenty names
    in one batch each (in opposite orders, so that the batches deadlock and one runs
    again), then ten names one at a time."""
    a, b = await opened(pg_dsn, pg_schema), await opened(pg_dsn, pg_schema)
    expires = time.time() + 60

    def claim(store: PostgresStore, side: str, key: str) -> asyncio.Future[None]:
        return store.claim_name(key, f"g:{side}-{key}", key, f"{side}-{key}", expires)

    names = [f"n{i}" for i in range(20)]
    answers = await asyncio.gather(*[claim(a, "a", k) for k in names],
                                   *[claim(b, "b", k) for k in reversed(names)],
                                   return_exceptions=True)
    won = dict.fromkeys(names, 0)
    for key, answer in zip(names + names[::-1], answers, strict=True):
        assert answer is None or isinstance(answer, NameTaken), answer
        won[key] += answer is None
    singles = [f"s{i}" for i in range(10)]
    for key in singles:
        pair = await asyncio.gather(claim(a, "a", key), claim(b, "b", key), return_exceptions=True)
        assert sorted(type(x).__name__ for x in pair) == ["NameTaken", "NoneType"], pair
        won[key] = 1
    assert set(won.values()) == {1}
    claims = dict(await pg.execute(pg_dsn, pg_schema, "SELECT name_key, user_id FROM name_claims"))
    tokens = dict(await pg.execute(pg_dsn, pg_schema, "SELECT jti, user_id FROM tokens"))
    assert sorted(claims) == sorted(names + singles) and len(tokens) == len(claims)
    for holder in claims.values():  # the holder's token is stored, the loser's is not
        assert tokens[holder[2:]] == holder
    await asyncio.gather(a.close(), b.close())


@pytest.mark.gen_test(timeout=30)
@pytest.mark.parametrize("outcome", ["commit", "rollback"])
@pytest.mark.parametrize("how", ["new name", "taken over"])
async def test_a_claim_waits_for_another_process_claiming_the_name(pg_dsn, pg_schema, how, outcome):
    """Another process has claimed the name (a new claim, or one taken over from a holder
    whose tokens are all revoked) with a token, and not committed yet: the claim waits,
    then is refused (it committed: its token is seen, though it was committed after the
    claim's statement began) or succeeds (it rolled back)."""
    store = await opened(pg_dsn, pg_schema)
    expires = time.time() + 60
    if how == "taken over":
        await store.claim_name("alice", "g:old", "alice", "j0", expires)
        await store.revoke_token("j0", "g:old", expires)
    other = await pg.connect(pg_dsn, pg_schema)
    transaction = other.transaction()
    await transaction.start()
    await other.execute("INSERT INTO name_claims (name_key, user_id, name) VALUES ('alice', 'g:a', 'alice')"
                        " ON CONFLICT (name_key) DO UPDATE SET user_id = excluded.user_id")
    await other.execute("INSERT INTO tokens (jti, user_id, expires) VALUES ('j1', 'g:a', $1)", expires)
    waiting = store.claim_name("alice", "g:b", "Alice", "j2", expires)
    await until_blocked(store, other)
    assert not waiting.done()
    await (transaction.commit() if outcome == "commit" else transaction.rollback())
    await other.close()
    if outcome == "commit":
        with pytest.raises(NameTaken):
            await waiting
        holder = "g:a"
    else:
        await waiting
        holder = "g:b"
    assert await pg.execute(pg_dsn, pg_schema, "SELECT user_id FROM name_claims") == [(holder,)]
    assert (await store.guest_token("j2", "alice") is None) == (outcome == "commit")
    await store.close()


@pytest.mark.gen_test
async def test_stores_starting_together_migrate_once_and_a_newer_schema_is_refused(pg_dsn, pg_schema):
    stores = [PostgresStore(pg_dsn, schema=pg_schema) for _ in range(3)]
    await asyncio.gather(*[s.open(time.time()) for s in stores])
    assert await pg.execute(pg_dsn, pg_schema, "SELECT version FROM imserver_schema") == [(SCHEMA_VERSION,)]
    answers = await asyncio.gather(*[s.append_room("alice", "r", f"from {i}", None)
                                     for i, s in enumerate(stores)])
    assert len({x.message.id for x in answers}) == 3
    await asyncio.gather(*[s.close() for s in stores])
    await pg.execute(pg_dsn, pg_schema, "UPDATE imserver_schema SET version = $1", SCHEMA_VERSION + 1)
    with pytest.raises(StoreError, match="newer than this imserver knows"):
        await PostgresStore(pg_dsn, schema=pg_schema).open(time.time())


@pytest.mark.gen_test
async def test_an_unreachable_server_is_a_clear_error_at_once():
    port = pg.free_port()  # nothing listens there
    store = PostgresStore(f"postgresql://imserver:secret@127.0.0.1:{port}/chat", timeout=2)
    started = time.monotonic()
    with pytest.raises(StoreError, match="cannot connect to PostgreSQL") as info:
        await store.open(time.time())
    assert time.monotonic() - started < 3
    assert "secret" not in str(info.value) and f"127.0.0.1:{port}" in str(info.value)
    with pytest.raises(StoreError, match="not open"):
        await store.append_room("alice", "r", "too early", None)


@pytest.mark.gen_test(timeout=30)
async def test_a_lock_held_elsewhere_fails_the_batch_in_time_and_the_store_goes_on(pg_dsn, pg_schema):
    store = await opened(pg_dsn, pg_schema, timeout=1.0, health_deadline=0.1)
    first = await store.append_room("alice", "r", "first", "c1")
    other = await pg.connect(pg_dsn, pg_schema)
    transaction = other.transaction()
    await transaction.start()
    await other.execute("SELECT * FROM rooms WHERE name = 'r' FOR UPDATE")  # as a stalled process would
    try:
        started = time.monotonic()
        waiting = store.append_room("alice", "r", "waits", "c2")
        await until_blocked(store, other)
        await until(lambda: store.health() is not None or waiting.done(), what="stuck")
        assert "stuck" in (store.health() or "")
        with pytest.raises(StoreError, match="statement timeout"):
            await waiting
        assert time.monotonic() - started < 5
    finally:
        await transaction.rollback()
        await other.close()
    assert store.health() is None  # the connection stayed: the server cancelled the statement
    again = await store.append_room("alice", "r", "again", "c2")
    assert not again.duplicate and again.previous == first.message.id
    await store.close()


@pytest.mark.gen_test
async def test_a_refused_statement_fails_its_operation_alone_and_the_batch_commits(pg_dsn, pg_schema):
    store = await opened(pg_dsn, pg_schema)
    await store.append_room("alice", "r", "one", None)
    await pg.execute(pg_dsn, pg_schema, "ALTER TABLE messages RENAME TO hidden")
    try:
        results = await asyncio.gather(store.touch_user("u1", "Una"), room_after(store, "r", 0, 10),
                                       store.touch_user("u2", "Ugo"), return_exceptions=True)
    finally:
        await pg.execute(pg_dsn, pg_schema, "ALTER TABLE hidden RENAME TO messages")
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], StoreError) and "does not exist" in str(results[1])
    assert sorted(await pg.execute(pg_dsn, pg_schema, "SELECT id FROM users")) == [("u1",), ("u2",)]
    assert [m.text for m in (await room_after(store, "r", 0, 10)).messages] == ["one"]
    assert store.health() is None
    await store.close()


@pytest.mark.gen_test
async def test_what_postgres_cannot_store_is_refused_in_its_place_in_the_queue(pg_dsn, pg_schema):
    store = await opened(pg_dsn, pg_schema)
    order: list[int] = []
    ops = [store.append_room("alice", "r", "before", None),
           store.append_room("alice", "r", "nul\x00inside", None),
           store.append_room("alice", "r", "after", None),
           store.append_room("a" * 3000, "r", "a sender id too long to index", None)]
    for i, op in enumerate(ops):
        op.add_done_callback(lambda _f, i=i: order.append(i))
    results = await asyncio.gather(*ops, return_exceptions=True)
    assert order == [0, 1, 2, 3]
    assert isinstance(results[1], StoreError) and "NUL" in str(results[1])
    assert isinstance(results[3], StoreError) and "bytes" in str(results[3])
    assert results[2].previous == results[0].message.id
    await store.close()


@pytest.mark.gen_test(timeout=60)
async def test_two_stores_creating_one_room_at_once_give_it_to_exactly_one(pg_dsn, pg_schema):
    """As two processes creating one room at the same moment: one creates it (owner,
    settings, first member), the other is answered room_exists and writes nothing.
    Twenty rooms in one batch each, then ten one at a time; and a create against a
    join of a new room: the joiner's membership made a public room (the create is
    refused), or the create a private one, which the joiner is no member of."""
    a, b = await opened(pg_dsn, pg_schema), await opened(pg_dsn, pg_schema)
    names = [f"r{i}" for i in range(20)]
    answers = await asyncio.gather(*[a.create_room("alice", n, "by alice", True) for n in names],
                                   *[b.create_room("bob", n, "by bob", False) for n in reversed(names)],
                                   return_exceptions=True)
    singles = [f"s{i}" for i in range(10)]
    for name in singles:
        answers += await asyncio.gather(a.create_room("alice", name, "by alice", True),
                                        b.create_room("bob", name, "by bob", False), return_exceptions=True)
    owners: dict[str, str] = {}
    for name, answer in zip(names + names[::-1] + [n for n in singles for _ in "ab"], answers, strict=True):
        if isinstance(answer, RoomInfo):
            assert name not in owners and answer.members == 1, answer
            owners[name] = answer.owner or ""
        else:
            assert isinstance(answer, Refused) and answer.code == "room_exists", answer
    assert sorted(owners) == sorted(names + singles)
    rows = await pg.execute(pg_dsn, pg_schema, "SELECT r.name, r.owner, r.topic, m.user_id FROM rooms r"
                            " JOIN room_members m ON m.room = r.name")
    assert sorted(rows) == sorted((n, o, f"by {o}", o) for n, o in owners.items())

    async def join(name: str) -> Any:
        """As the hub joins: the join's read, then, for a new member, its membership."""
        joined = await b.join_room("bob", name, None, 10, 10)
        if not joined.member:  # refused when the room was created private meanwhile
            await b.add_member("bob", name, joined.read)
        return joined

    for i in range(10):
        name = f"new{i}"
        created, joined = await asyncio.gather(a.create_room("alice", name, "", True), join(name),
                                               return_exceptions=True)
        members = await pg.execute(pg_dsn, pg_schema, "SELECT user_id FROM room_members WHERE room = $1",
                                   name)
        if isinstance(created, RoomInfo):  # the join was refused, or read before the create
            assert members == [("alice",)], (created, joined)
        else:
            assert isinstance(created, Refused) and created.code == "room_exists", (created, joined)
            assert members == [("bob",)] and not joined.private
    await asyncio.gather(a.close(), b.close())


@pytest.mark.gen_test(timeout=60)
async def test_two_stores_moving_one_read_mark_only_move_it_forward(pg_dsn, pg_schema):
    a, b = await opened(pg_dsn, pg_schema), await opened(pg_dsn, pg_schema)
    for store in (a, b):
        await asyncio.gather(store.touch_user("alice", "Alice"), store.touch_user("bob", "Bob"))
    await a.add_member("alice", "r", 0)
    room = [(await a.append_room("bob", "r", f"m{i}", None)).message.id for i in range(40)]
    direct = [(await b.append_direct("bob", "alice", f"d{i}", None)).message.id for i in range(40)]
    for ids, room_name, other in ((room, "r", None), (direct, None, "bob")):
        marks = await asyncio.gather(
            asyncio.gather(*[a.mark_read("alice", room_name, other, i) for i in ids[::2]]),
            asyncio.gather(*[b.mark_read("alice", room_name, other, i) for i in ids[::-1]]))
        for answers in marks:  # each store's marks that moved, in its queue order, only grow
            moved = [m.read for m in answers if m is not None]
            assert moved == sorted(set(moved))
        assert ids[-1] in [m.read for answers in marks for m in answers if m is not None]
        unread = await a.unread("alice")
        mark = unread.rooms["r"] if room_name else unread.direct.get("bob", ("", None))[1]
        if room_name:
            assert (mark.read, mark.unread) == (ids[-1], 0)
        else:  # nothing unread in the conversation: it is not listed
            assert mark is None
            assert await pg.execute(pg_dsn, pg_schema, "SELECT read_id FROM dm_reads") == [(ids[-1],)]
    await asyncio.gather(a.close(), b.close())


@pytest.mark.gen_test(timeout=60)
async def test_edits_from_two_stores_are_linked_in_their_streams_and_the_row_keeps_the_last(
        pg_dsn, pg_schema):
    """Two stores edit one room message and one direct message at once, among new
    messages of both streams, and one of them deletes the room message halfway: the
    events are in commit order in their streams, linked like messages, the edits after
    the deletion are refused, and each message's row holds its last event."""
    a, b = await opened(pg_dsn, pg_schema), await opened(pg_dsn, pg_schema)
    for store in (a, b):
        await asyncio.gather(store.touch_user("alice", "Alice"), store.touch_user("bob", "Bob"))
    said = (await a.append_room("alice", "r", "said", None)).message.id
    sent = (await a.append_direct("alice", "bob", "sent", None)).message.id

    async def write(store: PostgresStore, side: str) -> list[Any]:
        answers: list[Any] = []
        for wave in range(15):
            ops = [store.append_event("alice", EDIT, said, f"{side} {wave}", f"{side}r{wave}", "r"),
                   store.append_event("alice", EDIT, sent, f"{side} {wave}", f"{side}d{wave}", None),
                   store.append_room("bob", "r", f"{side} {wave}", None),
                   store.append_direct("bob", "alice", f"{side} {wave}", None)]
            if side == "b" and wave == 7:
                ops.append(store.append_event("op", DELETE, said, "", None, None, operator=True))
            answers += await asyncio.gather(*ops, return_exceptions=True)
        return answers

    written = await asyncio.gather(write(a, "a"), write(b, "b"))
    answers = written[0] + written[1]
    refused = [x for x in answers if isinstance(x, Refused)]
    stored = sorted((x for x in answers if isinstance(x, Appended)), key=lambda x: x.message.id)
    assert all(x.code == "deleted" for x in refused) and len(stored) + len(refused) == len(answers)
    (deletion,) = [x.message for x in stored if x.message.kind == DELETE]
    edits = [x.message for x in stored if x.message.target == said and x.message.kind == EDIT]
    assert edits and all(m.id < deletion.id for m in edits)
    assert len(refused) > 0  # the edits after it were refused
    in_room = [x for x in stored if x.message.room == "r"]
    room_ids = [m.id for m in (await room_after(a, "r", 0, 1000)).messages]
    assert room_ids == [said] + [x.message.id for x in in_room]
    assert [x.previous for x in in_room] == room_ids[:-1]
    for user in ("alice", "bob"):
        stream = [x for x in stored if x.message.room is None]
        links = [x.previous if x.message.sender == user else x.previous_recipient for x in stream]
        ids = [m.id for m in (await dm_after(b, user, 0, 1000)).messages]
        assert ids == [sent] + [x.message.id for x in stream]
        assert links == ids[:-1], user
    rows = dict(await pg.execute(pg_dsn, pg_schema, "SELECT id, text FROM messages WHERE id = ANY($1)",
                                 [said, sent]))
    last_edit = [x.message for x in stored if x.message.target == sent][-1]
    assert rows == {said: "", sent: last_edit.text}
    await asyncio.gather(a.close(), b.close())
