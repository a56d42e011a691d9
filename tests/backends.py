"""Both message stores behind one face, for the tests that hold for either: the
`stores` fixture (conftest.py) gives a Stores for SQLite (a file) and one for
PostgreSQL (a fresh schema of the shared server)."""

from __future__ import annotations

import re
import sqlite3
import time
from pathlib import Path
from typing import Any

from imserver.storage.base import Backend
from imserver.storage.sqlite import MessageStore
from tests import pg


class Stores:
    """Opens stores on one database: each new() is another store (another process, for
    PostgreSQL) on the same messages."""

    def __init__(self, kind: str, *, path: Path | None = None, dsn: str = "", schema: str = "") -> None:
        self.kind = kind
        self.path = path
        self.dsn = dsn
        self.schema = schema

    def __repr__(self) -> str:
        return f"Stores({self.kind})"

    def new(self, *, batch_max: int = 512) -> Backend:
        """A store not yet open: `await store.open(now)` gives the identities."""
        if self.kind == "sqlite":
            assert self.path is not None
            return MessageStore(str(self.path), batch_max=batch_max)
        from imserver.storage.postgres import PostgresStore
        return PostgresStore(self.dsn, schema=self.schema, batch_max=batch_max, timeout=10)

    async def open(self, **options: Any) -> Any:
        store = self.new(**options)
        await store.open(time.time())
        return store

    async def sql(self, statement: str, *args: Any) -> list[tuple[Any, ...]]:
        """Run a statement on the database directly, from outside the store (`?` for
        parameters, as SQLite writes them)."""
        if self.kind == "sqlite":
            db = sqlite3.connect(str(self.path))
            try:
                rows = db.execute(statement, args).fetchall()
                db.commit()
                return rows
            finally:
                db.close()
        numbered = iter(range(1, len(args) + 1))
        statement = re.sub(r"\?", lambda _: f"${next(numbered)}", statement)
        return await pg.execute(self.dsn, self.schema, statement, *args)
