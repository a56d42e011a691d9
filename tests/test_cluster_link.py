"""A node's link to the others over real Redis: a room is heard before its backlog is read."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from imserver.cluster.node import ClusterLink
from imserver.cluster.redisbus import RedisBus
from imserver.core.registry import Registry
from imserver.core.store import Appended, Message
from imserver.ops.metrics import Metrics
from tests.core import run

pytestmark = pytest.mark.timeout(60)


class HeardByHub:
    """What the link hands the hub, recorded (the hub's own behaviour is tested elsewhere)."""

    def __init__(self) -> None:
        self.room_messages: list[tuple[Message, int]] = []

    def room_published(self, message: Message, previous: int) -> None:
        self.room_messages.append((message, previous))

    def direct_published(self, message: Message, previous: int, previous_recipient: int) -> None:
        pass

    def remote_presence(self, *args: Any) -> None:
        pass

    def remote_members(self, room_name: str) -> set[tuple[str, str]]:
        return set()

    def node_gone(self, node: str) -> None:
        pass

    def resync(self) -> None:
        pass


def link(url: str, prefix: str, node: str) -> tuple[ClusterLink, HeardByHub]:
    metrics = Metrics(CollectorRegistry(), cluster=True)
    cluster = ClusterLink(lambda handler: RedisBus(url, prefix, node, handler, metrics,
                                                   liveness_interval=0.5, liveness_timeout=1.5),
                          Registry(), node_id=node, prefix=prefix, lease_seconds=3.0)
    hub = HeardByHub()
    cluster.attach(hub)
    return cluster, hub


async def until(predicate: Any, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.02)


def test_once_a_room_is_watched_what_another_node_stores_next_is_heard(redis_url, redis_prefix):
    async def scenario() -> None:
        a, heard_by_a = link(redis_url, redis_prefix, "node-a")
        b, _ = link(redis_url, redis_prefix, "node-b")
        a.start()
        b.start()
        try:
            await until(lambda: a.bus.connected and b.bus.connected, "both buses up")
            for number in range(20):  # each a fresh room: no time to subscribe but the mark's
                room = f"r{number}"
                await asyncio.wait_for(a.watch_room(room), 5)
                message = Message(id=number + 1, sender="carol", text="hi", ts=time.time(),
                                  cid=None, room=room)
                b.publish_room(Appended(message, False, previous=0))
            await until(lambda: len(heard_by_a.room_messages) == 20, "every room's message")
            assert [m.room for m, _ in heard_by_a.room_messages] == [f"r{n}" for n in range(20)]
        finally:
            await a.close()
            await b.close()

    run(scenario())
