"""Reads the store tests make that the server makes only inside others (room_after and
dm_after inside room_recover and dm_recover), through the store's own thread."""

from __future__ import annotations

import asyncio

from imserver.core.store import Page
from imserver.storage.sqlite import MessageStore


def room_after(store: MessageStore, room: str, after: int, limit: int) -> asyncio.Future[Page]:
    return store._submit(False, lambda db: db.room_after(room, after, limit))


def dm_after(store: MessageStore, user: str, after: int | None, limit: int) -> asyncio.Future[Page]:
    return store._submit(False, lambda db: db.dm_after(user, after, limit))


def count(store: MessageStore) -> asyncio.Future[int]:
    """How many messages are stored."""
    return store._submit(False, lambda db: int(db.db.execute("SELECT count(*) FROM messages").fetchone()[0]))
