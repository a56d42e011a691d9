"""PostgreSQL drivers compared on the message store's own work: asyncpg and psycopg 3.

Both run the same statements the PostgreSQL store runs (storage/postgres.py),
against a fresh schema that is dropped afterwards:

- group commit: producers keep appends in flight; one writer task on one
  connection takes whatever is queued (up to 512), and per batch runs BEGIN,
  the room row locks, nextval for the batch, one INSERT ... ON CONFLICT over
  arrays, the rooms' last ids, COMMIT. Reported: appends/s, ack latency, and
  this process's CPU per append (the server's loop pays it);
- one at a time: a single producer, one append per commit (the round trips
  and the fsync of a lone message);
- the recovery read: a re-join missing 500 messages of a 10,000-message room.

    python -m bench.store_drivers [--dsn DSN] [--seconds 3]

A driver that is not installed is reported as such.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

from .report import own_cpu_seconds, percentile, print_table

DSN = "postgresql://postgres@127.0.0.1:5432/test"
BATCH_MAX = 512

SCHEMA = """
CREATE SEQUENCE message_ids;
CREATE TABLE messages (
    id BIGINT PRIMARY KEY, sender TEXT NOT NULL, text TEXT NOT NULL,
    ts DOUBLE PRECISION NOT NULL, cid TEXT, room TEXT, recipient TEXT, dm_key TEXT,
    sender_name TEXT, recipient_name TEXT);
CREATE INDEX messages_room ON messages (room, id) WHERE room IS NOT NULL;
CREATE UNIQUE INDEX messages_cid ON messages (sender, cid) WHERE cid IS NOT NULL;
CREATE INDEX messages_ts ON messages (ts);
CREATE TABLE rooms (name TEXT PRIMARY KEY, last_id BIGINT NOT NULL DEFAULT 0);
"""

LOCK = ("INSERT INTO rooms (name) SELECT n FROM unnest($1::text[]) AS n ORDER BY n"
        " ON CONFLICT (name) DO UPDATE SET last_id = rooms.last_id RETURNING name, last_id")
IDS = "SELECT nextval('message_ids') FROM generate_series(1, $1)"
INSERT = ("INSERT INTO messages (id, sender, text, ts, cid, room, sender_name)"
          " SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::float8[], $5::text[],"
          " $6::text[], $7::text[])"
          " ON CONFLICT (sender, cid) WHERE cid IS NOT NULL DO NOTHING RETURNING id")
SET_LAST = ("UPDATE rooms SET last_id = v.last FROM unnest($1::text[], $2::bigint[]) AS v(name, last)"
            " WHERE rooms.name = v.name")
RECOVER = ("SELECT id, sender, text, ts, cid, room, recipient, sender_name, recipient_name"
           " FROM messages WHERE room = $1 AND id > $2 ORDER BY id LIMIT $3")


class Driver:
    """The few calls the store makes, over one connection."""

    name = ""

    async def connect(self, dsn: str, schema: str) -> None:
        raise NotImplementedError

    async def execute(self, sql: str, *args: Any) -> None:
        raise NotImplementedError

    async def fetch(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError


class Asyncpg(Driver):
    name = "asyncpg"

    async def connect(self, dsn: str, schema: str) -> None:
        import asyncpg
        self.conn = await asyncpg.connect(dsn, server_settings={"search_path": schema})

    async def execute(self, sql: str, *args: Any) -> None:
        await self.conn.execute(sql, *args)

    async def fetch(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in await self.conn.fetch(sql, *args)]

    async def close(self) -> None:
        await self.conn.close()


class Psycopg(Driver):
    """psycopg 3's async connection; statements are prepared from their first use."""

    name = "psycopg"
    binary = False

    async def connect(self, dsn: str, schema: str) -> None:
        import psycopg
        self.conn = await psycopg.AsyncConnection.connect(
            dsn, autocommit=True, prepare_threshold=0, options=f"-c search_path={schema}")
        self.cursor = self.conn.cursor(binary=self.binary)

    @staticmethod
    def _sql(sql: str) -> str:
        return re.sub(r"\$\d+", "%s", sql)

    async def execute(self, sql: str, *args: Any) -> None:
        await self.cursor.execute(self._sql(sql), args or None)

    async def fetch(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        await self.cursor.execute(self._sql(sql), args or None)
        return [tuple(r) for r in await self.cursor.fetchall()]

    async def close(self) -> None:
        await self.conn.close()


class PsycopgBinary(Psycopg):
    name = "psycopg (binary)"
    binary = True


Append = tuple[str, str, str, "asyncio.Future[int]"]  # room, sender, cid, answer


async def writer(db: Driver, queue: asyncio.Queue[Append | None]) -> None:
    """Group commit, as the store does it: one transaction per batch of what is queued."""
    while True:
        first = await queue.get()
        if first is None:
            return
        batch = [first]
        while len(batch) < BATCH_MAX and not queue.empty():
            item = queue.get_nowait()
            if item is None:
                queue.put_nowait(None)
                break
            batch.append(item)
        rooms = sorted({room for room, _, _, _ in batch})
        await db.execute("BEGIN")
        last = dict(await db.fetch(LOCK, rooms))
        ids = sorted(r[0] for r in await db.fetch(IDS, len(batch)))
        now = time.time()
        inserted = {r[0] for r in await db.fetch(
            INSERT, ids, [s for _, s, _, _ in batch], [f"text {c}" for _, _, c, _ in batch],
            [now] * len(batch), [c for _, _, c, _ in batch], [r for r, _, _, _ in batch],
            [s for _, s, _, _ in batch])}
        for msg_id, (room, _, _, _) in zip(ids, batch, strict=True):
            if msg_id in inserted:
                last[room] = msg_id
        await db.execute(SET_LAST, list(last), list(last.values()))
        await db.execute("COMMIT")
        for msg_id, (_, _, _, answer) in zip(ids, batch, strict=True):
            answer.set_result(msg_id)


async def appends(db: Driver, producers: int, window: int, seconds: float) -> list[str]:
    queue: asyncio.Queue[Append | None] = asyncio.Queue()
    task = asyncio.ensure_future(writer(db, queue))
    latencies: list[float] = []
    tag = secrets.token_hex(3)
    until = time.monotonic() + seconds

    async def produce(n: int) -> int:
        loop = asyncio.get_running_loop()
        done = 0

        async def one(i: int) -> None:
            answer: asyncio.Future[int] = loop.create_future()
            started = time.monotonic()
            queue.put_nowait((f"room{n % 16}", f"user{n}", f"{tag}-{n}-{i}", answer))
            await answer
            latencies.append(time.monotonic() - started)

        i = 0
        while time.monotonic() < until:
            await asyncio.gather(*[one(i + k) for k in range(window)])
            i += window
            done += window
        return done

    cpu, started = own_cpu_seconds(), time.monotonic()
    total = sum(await asyncio.gather(*[produce(n) for n in range(producers)]))
    elapsed, cpu = time.monotonic() - started, own_cpu_seconds() - cpu
    queue.put_nowait(None)
    await task
    return [db.name, f"{producers} x {window}", f"{total / elapsed:,.0f}",
            f"{percentile(latencies, 50) * 1000:.2f}", f"{percentile(latencies, 99) * 1000:.2f}",
            f"{cpu / total * 1e6:.0f}"]


async def recovery(db: Driver, seconds: float) -> list[str]:
    """Reads of 500 missed messages (of the 501 asked for) from a 10,000-message room."""
    await db.execute("BEGIN")
    ids = [r[0] for r in await db.fetch(IDS, 10_000)]
    await db.execute(
        "INSERT INTO messages (id, sender, text, ts, cid, room, sender_name)"
        " SELECT i, 'reader', 'a message of some forty characters or so', 0, NULL, 'big', 'Reader'"
        " FROM unnest($1::bigint[]) AS i", ids)
    await db.execute("COMMIT")
    since = sorted(ids)[-501]
    count, cpu, started = 0, own_cpu_seconds(), time.monotonic()
    while time.monotonic() - started < seconds:
        rows = await db.fetch(RECOVER, "big", since, 501)
        assert len(rows) == 500
        count += 1
    elapsed, cpu = time.monotonic() - started, own_cpu_seconds() - cpu
    return [db.name, f"{count / elapsed:,.0f}", f"{elapsed / count * 1000:.2f}",
            f"{cpu / count * 1000:.2f}"]


async def with_schema(dsn: str, driver: type[Driver],
                      work: Callable[[Driver], Awaitable[list[str]]]) -> list[str]:
    schema = f"bench_{secrets.token_hex(4)}"
    admin = Asyncpg() if driver is Asyncpg else driver()
    await admin.connect(dsn, "public")
    await admin.execute(f"CREATE SCHEMA {schema}")
    try:
        db = driver()
        await db.connect(dsn, schema)
        try:
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    await db.execute(statement)
            return await work(db)
        finally:
            await db.close()
    finally:
        await admin.execute(f"DROP SCHEMA {schema} CASCADE")
        await admin.close()


def installed(driver: type[Driver]) -> bool:
    module = "asyncpg" if driver is Asyncpg else "psycopg"
    try:
        __import__(module)
    except ImportError:
        print(f"{driver.name}: not installed (pip install {module}), left out")
        return False
    return True


async def main(dsn: str, seconds: float) -> None:
    drivers = [d for d in (Asyncpg, Psycopg, PsycopgBinary) if installed(d)]
    loads = [(1, 1), (64, 4)]
    rows: list[list[str]] = []
    reads: list[list[str]] = []
    for _ in range(2):  # alternate drivers, twice, so that a slow moment hits both
        for driver in drivers:
            for producers, window in loads:
                rows.append(await with_schema(
                    dsn, driver, lambda db, p=producers, w=window: appends(db, p, w, seconds)))
            reads.append(await with_schema(dsn, driver, lambda db: recovery(db, seconds)))
    print_table(f"group commit: appends acked after COMMIT, {seconds:g} s per run",
                ["driver", "producers x window", "appends/s", "p50 ms", "p99 ms", "CPU µs/append"],
                rows)
    print_table("recovery read: 500 missed messages of a 10,000-message room",
                ["driver", "reads/s", "ms/read", "CPU ms/read"], reads)
    print("CPU is this process's (the event loop's), per append or per read.")


def cli(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.store_drivers")
    parser.add_argument("--dsn", default=DSN)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args(argv)
    asyncio.run(main(args.dsn, args.seconds))


if __name__ == "__main__":
    cli()
