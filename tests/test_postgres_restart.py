"""PostgreSQL stops mid-stream (as in a crash: `pg_ctl stop -m immediate`) and comes
back: the store answers StoreError at once while it is away and says why in
health(), reconnects by itself, and serves again; the failed cids, resent, are
stored once each, and nothing acknowledged is lost.

It runs on a private cluster (PrivatePostgres), never on the shared server."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable, Iterator

import pytest

from tests import pg
from tests.core import run

pg.require_asyncpg()

from imserver.core.errors import StoreError  # noqa: E402
from imserver.storage.postgres import PostgresStore  # noqa: E402

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def cluster() -> Iterator[pg.PrivatePostgres]:
    private = pg.PrivatePostgres()
    try:
        private.start()
        yield private
    finally:
        private.remove()


async def until(condition: Callable[[], object], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"still not {what} after {timeout} s"
        await asyncio.sleep(0.01)


def test_a_postgres_restart_mid_stream_loses_nothing_acked_and_stores_each_cid_once(cluster):
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        store = PostgresStore(cluster.dsn, timeout=2)
        await store.open(time.time())
        acked: dict[str, int] = {}
        failed: list[str] = []
        numbers = itertools.count()
        producing = True

        async def produce() -> None:
            """Four appends in flight at a time, each with its cid, until told to stop."""
            while producing:
                cids = [f"c{next(numbers)}" for _ in range(4)]
                answers = await asyncio.gather(
                    *[store.append_room("alice", "r", f"text of {cid}", cid) for cid in cids],
                    return_exceptions=True)
                for cid, answer in zip(cids, answers, strict=True):
                    if isinstance(answer, StoreError):
                        failed.append(cid)
                    else:
                        assert not isinstance(answer, BaseException), answer
                        acked[cid] = answer.message.id
                if len(failed) and store.health() is not None:
                    await asyncio.sleep(0.05)  # while it is down, do not spin

        producer = asyncio.ensure_future(produce())
        await until(lambda: len(acked) >= 50, "50 acked")
        await loop.run_in_executor(None, cluster.stop)  # mid-stream: appends are in flight
        await until(lambda: failed and store.health() is not None, "failing")
        reason = store.health()
        assert reason is not None and "PostgreSQL" in reason
        started = time.monotonic()
        with pytest.raises(StoreError):
            await store.append_room("alice", "r", "while down", "down")
        assert time.monotonic() - started < 1.0  # at once, not after a timeout
        failed.append("down")
        acked_while_down = len(acked)

        await loop.run_in_executor(None, cluster.start)
        await until(lambda: store.health() is None, "reconnected")
        await until(lambda: len(acked) >= acked_while_down + 50, "serving again")
        producing = False
        await producer
        assert store.reconnects >= 1

        for cid in failed:  # the client's resend, with the same cid
            answer = await store.append_room("alice", "r", f"text of {cid}", cid)
            assert cid not in acked or answer.message.id == acked[cid]
            acked[cid] = answer.message.id
        rows = await pg.execute(cluster.dsn, None, "SELECT cid, id, text FROM messages")
        stored = {cid: msg_id for cid, msg_id, _ in rows}
        assert len(rows) == len(stored)  # each cid once
        assert stored == acked  # every ack's message is there, under the id its ack gave
        assert all(text == f"text of {cid}" for cid, _, text in rows)
        await store.close()

    run(scenario())
