"""What the stores keep for the operators beside bans: mutes and the audit log, on
SQLite (a file) and PostgreSQL (a fresh schema), each surviving a restart."""

from __future__ import annotations

import time

import pytest

from imserver.core.errors import StoreError
from imserver.storage.base import AuditEntry, Mute
from tests.backends import Stores


@pytest.mark.gen_test
async def test_mutes_are_kept_per_room_replaced_lifted_and_read_in_force(stores: Stores):
    store = await stores.open()
    now = time.time()
    try:
        assert await store.read_mutes(now) == []
        await store.mute(Mute("general", "g:a", "spam", None, "api from 127.0.0.1", 100.0))
        await store.mute(Mute("general", "bob", "flood", now + 60, None, 200.0))
        await store.mute(Mute("random", "g:a", "off topic", None, None, 150.0))
        await store.mute(Mute("general", "old", "gone", now - 1, None, 50.0))  # expired: never read
        assert await store.read_mutes(now) == [
            Mute("general", "g:a", "spam", None, "api from 127.0.0.1", 100.0),
            Mute("random", "g:a", "off topic", None, None, 150.0),
            Mute("general", "bob", "flood", now + 60, None, 200.0)]
        assert [m.user_id for m in await store.read_mutes(now, "general")] == ["g:a", "bob"]
        assert await store.read_mutes(now, "nowhere") == []
        assert await store.read_mutes(now + 61, "general") == [
            Mute("general", "g:a", "spam", None, "api from 127.0.0.1", 100.0)]
        await store.mute(Mute("general", "bob", "again", None, "dashboard", 300.0))  # replaces
        assert await store.lift_mute("general", "g:a", now) is True
        assert await store.lift_mute("general", "g:a", now) is False
        assert await store.lift_mute("general", "old", now) is False  # expired: not in force
        assert await store.read_mutes(now, "general") == [
            Mute("general", "bob", "again", None, "dashboard", 300.0)]
    finally:
        await store.close()
    other = await stores.open()  # another process, or a restart: the same mutes
    try:
        assert [(m.room, m.user_id) for m in await other.read_mutes(now)] == [
            ("random", "g:a"), ("general", "bob")]
    finally:
        await other.close()


@pytest.mark.gen_test
async def test_the_audit_log_keeps_every_entry_and_pages_newest_first(stores: Stores):
    store = await stores.open()
    try:
        assert await store.read_audit(None, 10) == []
        stored = []
        for i in range(5):
            entry = AuditEntry(0, 1000.0 + i, "admin", "ban", f"user{i}", f"reason {i}", "api from ::1")
            stored.append(await store.record_audit(entry))
        assert [e.id for e in stored] == sorted({e.id for e in stored}) and stored[0].id > 0
        assert stored[2] == AuditEntry(stored[2].id, 1002.0, "admin", "ban", "user2", "reason 2",
                                       "api from ::1")
        newest = await store.read_audit(None, 3)
        assert [e.target for e in newest] == ["user4", "user3", "user2"]
        older = await store.read_audit(newest[-1].id, 3)
        assert [e.target for e in older] == ["user1", "user0"]
        assert await store.read_audit(older[-1].id, 3) == []
        unicode = await store.record_audit(AuditEntry(0, 2000.0, "ops-é", "mute", "général/bob",
                                                      "🙊 " * 10, ""))
        assert (await store.read_audit(None, 1)) == [unicode]
    finally:
        await store.close()
    other = await stores.open()
    try:
        assert len(await other.read_audit(None, 100)) == 6
    finally:
        await other.close()


@pytest.mark.gen_test
async def test_an_audit_entry_the_database_cannot_hold_fails_alone(stores: Stores):
    store = await stores.open()
    try:
        bad = AuditEntry(0, 1.0, "admin", "ban", "x", "a\x00b" if stores.kind == "postgres" else "ok",
                         "\ud800")
        with pytest.raises(StoreError):
            await store.record_audit(bad)
        good = await store.record_audit(AuditEntry(0, 2.0, "admin", "ban", "x", "fine", ""))
        assert await store.read_audit(None, 10) == [good]
    finally:
        await store.close()
