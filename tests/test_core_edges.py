"""Pins found by `make mutation` on the layered core: behaviour at edges no other test
reached (a store's directories and close, its user cache, a cancelled read; defaults
and boundaries of settings, frames and limiters; a room forgetting a name)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from imserver.config import config_from_dict
from imserver.core import protocol as p
from imserver.core.errors import ProtocolError
from imserver.core.frames import Outbound
from imserver.core.ratelimit import KeyedLimiter
from imserver.core.registry import Connection, User
from imserver.core.room import Room
from imserver.storage import base
from imserver.storage.sqlite import MessageStore
from tests.core import Wire, run


def test_a_store_creates_every_missing_directory_of_its_path(tmp_path):
    async def scenario() -> None:
        store = MessageStore(str(tmp_path / "a" / "b" / "chat.db"))
        await store.append_room("alice", "r", "hi", None)
        await store.close()

    run(scenario())
    assert (tmp_path / "a" / "b" / "chat.db").is_file()


def test_close_closes_the_database(tmp_path):
    path = tmp_path / "chat.db"

    async def scenario() -> None:
        store = MessageStore(str(path))
        await store.append_room("alice", "r", "hi", None)
        assert Path(f"{path}-wal").exists()
        await store.close()

    run(scenario())
    # SQLite checkpoints and removes the write-ahead log when its last connection closes.
    assert not Path(f"{path}-wal").exists()


def test_the_cache_of_users_written_this_run_is_bounded(tmp_path, monkeypatch):
    monkeypatch.setattr(base, "KNOWN_USERS_MAX", 2)

    async def scenario() -> None:
        store = MessageStore(str(tmp_path / "chat.db"))
        for user in ("a", "b"):
            await store.touch_user(user, user)
        written = store.committed
        await store.touch_user("a", "a")  # remembered: no write
        assert store.committed == written
        await store.touch_user("c", "c")  # past the bound the cache starts again
        await store.touch_user("a", "a")  # forgotten, so written again
        assert store.committed == written + 2
        await store.close()

    run(scenario())


def test_a_cancelled_read_does_not_keep_the_rest_of_its_batch_from_an_answer(tmp_path):
    async def scenario() -> None:
        store = MessageStore(str(tmp_path / "chat.db"))
        await store.append_room("alice", "r", "hi", None)
        first = store.room_before("r", None, 10)
        second = store.room_before("r", None, 10)
        first.cancel()
        page = await asyncio.wait_for(second, 5)
        assert [m.text for m in page.messages] == ["hi"]
        await store.close()

    run(scenario())


def test_defaults_no_other_test_reads():
    assert config_from_dict(None) == config_from_dict({})
    assert config_from_dict({}).auth.jwt.leeway_seconds == 30.0
    # No leeway at all is a valid choice where the clocks are kept in step.
    assert config_from_dict({"auth": {"jwt": {"leeway_seconds": 0}}}).auth.jwt.leeway_seconds == 0


def test_welcome_gives_the_server_time_in_milliseconds():
    frame = p.welcome_frame("c1", {"id": "u", "name": "u"}, interval=10, timeout=20,
                            server_time=1764140000.123456)
    assert frame["server_time"] == 1764140000.123


def test_a_limiter_allows_while_exactly_one_token_is_left():
    now = [0.0]
    limiter = KeyedLimiter(rate=1, burst=2, clock=lambda: now[0])
    assert limiter.take("x") and limiter.allows("x")  # one token left: allowed
    assert limiter.take("x") and not limiter.allows("x")  # none left
    now[0] = 1.0  # exactly one token again
    assert limiter.allows("x")


def test_a_room_forgets_the_name_of_a_user_who_left():
    room = Room("r")
    conn = Connection(id="c1", user=User("u1", "Ann"), transport=Wire())
    room.add(conn)
    assert room.names == {"u1": "Ann"}
    room.remove(conn)
    assert room.names == {}


@pytest.mark.parametrize("cid", ["\ud8af", "ok\udeb5"])
def test_an_error_leaves_out_a_cid_that_cannot_be_sent(cid):
    """An error answers with the frame's cid so the client can match it, but not one
    holding a lone surrogate: UTF-8 cannot carry it, and the error would never go out."""
    with pytest.raises(ProtocolError) as info:
        p.parse_frame(json.dumps({"type": "", "cid": cid}), max_text_chars=100)
    assert info.value.cid is None
    Outbound(p.error_frame(info.value.code, info.value.message, info.value.cid))  # encodes
    with pytest.raises(ProtocolError) as info:
        p.parse_frame(json.dumps({"type": "", "cid": "ok-1"}), max_text_chars=100)
    assert info.value.cid == "ok-1"
