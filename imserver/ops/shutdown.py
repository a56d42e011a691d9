"""Graceful shutdown: say bye with a spread-out retry time, close with 1001.

Without the spread every client of a restarted server comes back in the same
instant (the reconnect storm). Each client gets its own `retry_after`, drawn
from its own slot of the window so that the window is evenly filled.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import Protocol

from tornado.httpserver import HTTPServer

from ..config import Config
from ..core.hub import Hub
from ..core.protocol import CLOSE_GOING_AWAY, bye_frame
from ..core.registry import Registry


class Server(Protocol):
    """What a shutdown stops (app.Runtime is one)."""

    @property
    def config(self) -> Config: ...
    @property
    def registry(self) -> Registry: ...
    @property
    def hub(self) -> Hub: ...

    async def close(self) -> None:
        """Stop the timers, drop what is still connected, flush and close the store."""

log = logging.getLogger("imserver.shutdown")


def spread_delays(count: int, window: float, rng: random.Random | None = None,
                  start: float = 0.0) -> list[float]:
    """`count` retry delays filling [start, start + window): one per equal slot, in random order."""
    rng = rng or random.Random()
    if count == 0:
        return []
    slot = window / count
    delays = [round(start + (i + rng.random()) * slot, 3) for i in range(count)]
    rng.shuffle(delays)
    return delays


async def graceful_shutdown(runtime: Server, servers: list[HTTPServer]) -> None:
    """Stop accepting, bye every client, close with 1001, flush the store."""
    started = time.monotonic()
    for server in servers:
        server.stop()
    conns = list(runtime.registry)
    log.info("shutting down: closing %d connections", len(conns))
    settings = runtime.config.shutdown
    delays = spread_delays(len(conns), settings.spread_seconds, start=settings.retry_min_seconds)
    for conn, delay in zip(conns, delays, strict=True):
        runtime.hub.send(conn, bye_frame("shutdown", delay))
        conn.end("shutdown", CLOSE_GOING_AWAY, "server shutting down")
    deadline = started + runtime.config.shutdown.grace_seconds
    while len(runtime.registry) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    await runtime.close()
    log.info("shutdown complete in %.2f s", time.monotonic() - started)
