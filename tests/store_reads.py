"""Reads the store tests make that the server makes only inside others (room_after and
dm_after inside room_recover and dm_recover), through the store's own queue; for
either store (SQLite's calls return values, PostgreSQL's awaitables)."""

from __future__ import annotations

import asyncio
from typing import Any

from imserver.core.store import Page
from imserver.storage.sqlite import MessageStore


def room_after(store: Any, room: str, after: int, limit: int) -> asyncio.Future[Page]:
    future: asyncio.Future[Page] = store._submit(False, lambda db: db.room_after(room, after, limit))
    return future


def dm_after(store: Any, user: str, after: int | None, limit: int) -> asyncio.Future[Page]:
    future: asyncio.Future[Page] = store._submit(False, lambda db: db.dm_after(user, after, limit))
    return future


def count(store: Any) -> asyncio.Future[int]:
    """How many messages are stored (through a wrapper that holds the store as `.store`)."""
    store = getattr(store, "store", store)
    if isinstance(store, MessageStore):
        return store._submit(False, lambda db: db.db.execute("SELECT count(*) FROM messages").fetchone()[0])
    future: asyncio.Future[int] = store._submit(False, lambda db: db.count())
    return future
