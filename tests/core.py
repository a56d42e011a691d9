"""Driving the chat core without sockets: a hub over a real store, and connections whose
socket side only records what the core asked of it."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
from typing import Any

from prometheus_client import CollectorRegistry

from imserver.config import LimitsConfig
from imserver.core.errors import StoreError
from imserver.core.frames import Outbound
from imserver.core.hub import Hub
from imserver.core.protocol import Command, parse_frame
from imserver.core.registry import Connection, Registry, User
from imserver.ops.metrics import Metrics
from imserver.storage.sqlite import MessageStore
from imserver.transport.fanout import fan_out
from imserver.transport.sendpool import SendPool
from imserver.transport.writer import CoalescingWriter
from tests.store_reads import count


class Wire:
    """A connection's socket side: keeps every frame sent, in order, and how it was closed."""

    def __init__(self, *, broken: bool = False) -> None:
        self.frames: list[dict[str, Any]] = []
        self.pings: list[bytes] = []
        self.closed: tuple[int, str] | None = None
        self.aborted = False
        self.broken = broken  # every send raises, as a socket that fails in an unexpected way

    def send(self, frame: Outbound) -> bool:
        if self.broken:
            raise OSError("the socket failed")
        if self.closed is not None or self.aborted:
            return False
        self.frames.append(json.loads(frame.payload))
        return True

    def send_ping(self, payload: bytes) -> None:
        if self.broken:
            raise OSError("the socket failed")
        self.pings.append(payload)

    def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)

    def abort(self) -> None:
        self.aborted = True

    def take(self) -> list[dict[str, Any]]:
        """The frames sent since the last take()."""
        frames, self.frames = self.frames, []
        return frames

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [f for f in self.frames if f["type"] == kind]


class Core:
    """A hub, its registry and an in-memory store, driven by commands as a socket handler would."""

    def __init__(self, store: MessageStore | None = None, **limits: Any) -> None:
        self.limits = LimitsConfig(**{"presence_interval": 0, **limits})
        self.store = store if store is not None else MessageStore(":memory:")
        self.registry = Registry()
        self.metrics = Metrics(CollectorRegistry())
        self.pool = SendPool(0)
        self.hub = Hub(self.store, self.registry, self.limits, self.metrics,
                       functools.partial(fan_out, CoalescingWriter(self.pool)))
        self._ids = 0

    def connect(self, user: str, *, broken: bool = False) -> Connection:
        self._ids += 1
        conn = Connection(id=f"{user}-{self._ids}", user=User(user, user), transport=Wire(broken=broken))
        self.registry.add(conn)
        return conn

    async def known(self, *users: str) -> None:
        """Make users known to the store (direct messages go only to known users)."""
        for user in users:
            await self.store.touch_user(user, user)

    def do(self, conn: Connection, frame: dict[str, Any]) -> None:
        """One frame from a client, parsed as the server parses it."""
        command: Command = parse_frame(json.dumps(frame), max_text_chars=self.limits.max_text_chars)
        self.hub.handle(conn, command)

    def close(self, conn: Connection) -> None:
        """The socket closed: what the WebSocket handler does."""
        self.registry.remove(conn)
        self.hub.disconnect(conn)

    async def settle(self) -> None:
        """Wait until the store has answered everything queued so far and the hub has acted
        on it, presence windows (of length 0) included."""
        with contextlib.suppress(StoreError):  # a failing store answers in order too
            await count(self.store)  # answered after every operation queued before it
        for _ in range(4):  # the store callbacks' follow-ups, then the presence timers (delay 0)
            await asyncio.sleep(0)

    async def stored(self) -> int:
        return await count(self.store)

    async def aclose(self) -> None:
        await self.store.close()
        self.pool.close()


def wire(conn: Connection) -> Wire:
    transport = conn.transport
    assert isinstance(transport, Wire)
    return transport


def presence(conn: Connection) -> list[tuple[list[str], list[str]]]:
    """The presence frames a connection got: (joined, left) each."""
    return [(f["joined"], f["left"]) for f in wire(conn).of_type("presence")]


def run(coro: Any) -> Any:
    """Run a scenario on a loop of its own. Unlike asyncio.run() this leaves the current
    event loop setting alone: asyncio.run() clears it, and a loop that a later test
    then creates by asking for the current one is dropped unclosed (a ResourceWarning
    that fails whichever test is running when it is collected)."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
