"""Message storage: the SQLite store behind one thread (one server), the PostgreSQL
store (several servers sharing one database), and the data files' modes.

`open_store` builds the configured one; the PostgreSQL module, and its driver, are
imported only when that backend is chosen.
"""

from __future__ import annotations

from ..config import Config
from ..core.errors import StoreError
from .base import Backend, Ban, IdentitySnapshot, StoredToken
from .sqlite import MessageStore

__all__ = ["Backend", "Ban", "IdentitySnapshot", "StoredToken", "open_store"]


def open_store(config: Config) -> Backend:
    """The store the config asks for, not yet serving: `await store.open(now)` next.
    A SQLite file is opened (and migrated) here; PostgreSQL is connected by open()."""
    storage = config.storage
    if storage.backend == "postgres":
        try:
            from .postgres import PostgresStore
        except ImportError as exc:
            raise StoreError(f"storage.backend postgres needs the {exc.name or 'asyncpg'} package: "
                             "pip install 'imserver[cluster]'") from None
        return PostgresStore(storage.dsn, schema=storage.schema, batch_max=storage.batch_max,
                             timeout=storage.timeout_seconds,
                             health_deadline=storage.health_deadline_seconds)
    return MessageStore(config.storage_path, batch_max=storage.batch_max,
                        synchronous=storage.synchronous.upper(),
                        health_deadline=storage.health_deadline_seconds)
