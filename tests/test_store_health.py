"""Nothing a client sends stops the store for the others, and /healthz tells the truth.

Ids beyond SQLite's 64-bit range are refused at the protocol edge; whatever
still raises inside the store fails only its own operation; a store thread
that is dead or stuck, or whose database file was deleted or replaced, makes
/healthz answer 503 with the reason, and writes are refused instead of being
acknowledged into a file that is gone.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError

from imserver.core.errors import StoreError
from imserver.storage.sqlite import MessageStore
from tests.backends import Stores
from tests.conftest import make_config
from tests.store_reads import room_after

TOO_BIG = [2**63, 10**30]


async def health(chat: Any) -> tuple[int, dict[str, Any]]:
    try:
        response = await chat.http.fetch(f"{chat.url}/healthz")
    except HTTPClientError as exc:
        assert exc.response is not None
        return exc.code, json.loads(exc.response.body)
    return response.code, json.loads(response.body)


async def until_health(chat: Any, status: int, timeout: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        code, body = await health(chat)
        if code == status:
            return body
        assert time.monotonic() < deadline, f"/healthz stayed {code} {body}, wanted {status}"
        await asyncio.sleep(0.05)


async def say_and_ack(client: Any, room: str, text: str, cid: str) -> dict[str, Any]:
    client.send({"type": "say", "room": room, "text": text, "cid": cid})
    while True:
        frame = await client.recv(10)
        if frame.get("cid") == cid:
            return frame


@pytest.mark.gen_test(timeout=30)
@pytest.mark.parametrize("value", TOO_BIG)
async def test_ids_out_of_range_are_refused_and_others_are_still_served(chat, value):
    attacker = await chat.connect("mallory")
    await attacker.join("lobby")
    for frame in ({"type": "history", "room": "lobby", "before": value},
                  {"type": "history", "with": "alice", "before": value},
                  {"type": "join", "room": "lobby", "since": value},
                  {"type": "dm_sync", "since": value},
                  {"type": "history", "room": "lobby", "limit": value}):
        attacker.send(json.dumps(frame))
        error = await attacker.expect("error")
        assert error["code"] == "bad_request" and "integer" in error["message"], frame
    alice = await chat.connect("alice")
    await alice.join("lobby")
    ack = await say_and_ack(alice, "lobby", "still here", "c1")
    assert ack["type"] == "ack"
    alice.send({"type": "history", "room": "lobby"})
    page = await alice.expect("history")
    assert [m["text"] for m in page["messages"]] == ["still here"]
    assert (await health(chat))[0] == 200


@pytest.mark.gen_test
async def test_an_operation_that_raises_fails_alone_and_the_next_is_served(stores: Stores):
    store = await stores.open()
    # Below the protocol's checks: the store itself must survive what the database refuses.
    with pytest.raises(StoreError):
        await store.room_before("r", 2**63, 10)
    with pytest.raises(StoreError):
        await store.touch_user("bad\ud800", "bad\ud800")
    appended, page = await asyncio.gather(store.append_room("alice", "r", "hi", "c1"),
                                          room_after(store, "r", 0, 10))
    assert [m.text for m in page.messages] == ["hi"] and not appended.duplicate
    assert store.health() is None
    await store.close()


@pytest.mark.gen_test
async def test_a_failed_write_does_not_undo_the_others_in_its_batch(stores: Stores):
    store = await stores.open()
    await store.append_room("alice", "r", "first", "c0")
    results = await asyncio.gather(
        store.append_room("alice", "r", "a", "c1"),
        store.touch_user("x\udfff", "x"),
        store.append_room("alice", "r", "b", "c2"),
        return_exceptions=True)
    assert isinstance(results[1], StoreError)
    assert [r.message.text for r in (results[0], results[2])] == ["a", "b"]
    await store.close()
    reopened = await stores.open()
    page = await room_after(reopened, "r", 0, 10)
    assert [m.text for m in page.messages] == ["first", "a", "b"]
    await reopened.close()


@pytest.mark.gen_test
async def test_a_dead_store_thread_is_reported_and_new_operations_fail_at_once(tmp_path):
    store = MessageStore(str(tmp_path / "chat.db"))
    await store.append_room("alice", "r", "hi", "c1")

    def die(db: object) -> None:
        raise SystemExit("the thread ends")  # not an Exception: nothing catches it

    with pytest.raises(StoreError):
        await asyncio.wait_for(store._submit(False, die), 5)
    deadline = time.monotonic() + 5
    while store.health() is None and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert store.health() == "the message store thread is not running"
    with pytest.raises(StoreError):
        await asyncio.wait_for(store.append_room("alice", "r", "lost?", "c2"), 5)
    await store.close()


@pytest.mark.gen_test
async def test_what_was_queued_behind_the_end_of_the_store_thread_is_answered(tmp_path):
    store = MessageStore(str(tmp_path / "chat.db"))
    await store.append_room("alice", "r", "hi", "c1")
    entered, queued = threading.Event(), threading.Event()

    def die(db: object) -> None:
        entered.set()
        queued.wait(5)  # until the operations behind it are in the queue, not in its batch
        raise SystemExit("the thread ends")

    dying = store._submit(False, die)
    assert await asyncio.get_running_loop().run_in_executor(None, entered.wait, 5)
    behind = [store.append_room("alice", "r", f"behind {i}", f"b{i}") for i in range(3)]
    queued.set()
    results = await asyncio.wait_for(asyncio.gather(dying, *behind, return_exceptions=True), 5)
    assert all(isinstance(r, StoreError) for r in results), results
    await store.close()


@pytest.fixture
def config(tmp_path: Path) -> Any:
    return make_config(tmp_path, storage={"health_deadline_seconds": 0.5})


@pytest.mark.gen_test(timeout=30)
async def test_a_deleted_database_refuses_writes_and_fails_health(chat, app, tmp_path):
    alice = await chat.connect("alice")
    await alice.join("lobby")
    assert (await say_and_ack(alice, "lobby", "kept", "c1"))["type"] == "ack"
    assert (await health(chat))[0] == 200
    shutil.rmtree(tmp_path)  # rm -rf of the data directory while running
    answer = await say_and_ack(alice, "lobby", "into a deleted file?", "c2")
    assert answer["type"] == "error" and answer["code"] == "unavailable"
    body = await until_health(chat, 503)
    assert body["status"] == "unavailable" and "deleted or replaced" in body["reason"]


@pytest.mark.gen_test(timeout=30)
async def test_a_replaced_database_file_refuses_writes(chat, app, tmp_path):
    alice = await chat.connect("alice")
    await alice.join("lobby")
    assert (await say_and_ack(alice, "lobby", "kept", "c1"))["type"] == "ack"
    path = Path(app.runtime.store.path)
    replacement = path.with_name("other.db")
    sqlite3.connect(replacement).close()
    replacement.replace(path)
    answer = await say_and_ack(alice, "lobby", "into whose file?", "c2")
    assert answer["type"] == "error" and answer["code"] == "unavailable"
    assert "deleted or replaced" in (await until_health(chat, 503))["reason"]
    # A login's name claim is a write too, and so is forgetting expired tokens: refused,
    # not kept in a file nobody will read. Reads still answer, from the file opened.
    store = app.runtime.store
    with pytest.raises(StoreError):
        await store.claim_name("carol", "g:carol", "carol", "jti-1", time.time() + 60)
    with pytest.raises(StoreError):
        await store.prune_identities(time.time())
    assert (await store.read_identities(time.time())).claims


@pytest.mark.gen_test(timeout=30)
async def test_a_stuck_store_fails_health_until_it_moves_again(chat, app):
    alice = await chat.connect("alice")
    await alice.join("lobby")
    assert (await say_and_ack(alice, "lobby", "before", "c1"))["type"] == "ack"
    # Another process holds the database's write lock: the store thread waits on it.
    other = sqlite3.connect(app.runtime.store.path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        alice.send({"type": "say", "room": "lobby", "text": "waits", "cid": "c2"})
        body = await until_health(chat, 503)
        assert "stuck" in body["reason"]
    finally:
        other.execute("ROLLBACK")
        other.close()
    while (frame := await alice.recv(15)).get("cid") != "c2":
        pass
    assert frame["type"] in ("ack", "error")
    await until_health(chat, 200)
    assert (await say_and_ack(alice, "lobby", "after", "c3"))["type"] == "ack"


@pytest.mark.gen_test(timeout=20)
async def test_a_connection_arriving_as_the_store_closes_gets_answers_not_tracebacks(chat, app, caplog):
    """At shutdown the store closes while an upgrade or a frame may still be on its way:
    each is answered (unavailable), and nothing raises out of a handler."""
    alice = await chat.connect("alice")
    token = await chat.login("bob")
    await app.runtime.store.close()
    bob = await chat.connect(token=token)  # no 500: its unread counts are just left out
    assert "unread" not in bob.welcome
    alice.send({"type": "join", "room": "r"})
    assert (await alice.expect("error"))["code"] == "unavailable"
    alice.send({"type": "say", "room": "r", "text": "late", "cid": "c1"})
    assert (await alice.expect("error"))["code"] == "not_in_room"
    assert "Traceback" not in caplog.text and "Uncaught exception" not in caplog.text
