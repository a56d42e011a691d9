"""The protocol-level heartbeat: one timer sweeps every connection.

Each sweep sends a WebSocket ping frame to every connection whose last ping is
`ping_interval` old, and aborts every connection from which nothing at all has
arrived for `ping_timeout`. Sweeping every half interval bounds detection of a
dead peer by `ping_timeout + ping_interval / 2`, inside the promised
`ping_timeout + ping_interval`, with one timer however many connections there are.
The same sweep closes (4001) the connections whose token has expired.
"""

from __future__ import annotations

import enum
import logging
import struct
import time
from collections.abc import Callable, Iterable

from tornado.ioloop import PeriodicCallback

from .protocol import CLOSE_UNAUTHENTICATED
from .registry import Connection

log = logging.getLogger("imserver.heartbeat")


class Action(enum.Enum):
    NONE = "none"
    PING = "ping"
    TERMINATE = "terminate"


def sweep_period(ping_interval: float, ping_timeout: float) -> float:
    return min(ping_interval, ping_timeout) / 2


def decide(*, now: float, last_seen: float, ping_sent_at: float | None,
           interval: float, timeout: float) -> Action:
    """What the sweep does to one connection at time `now` (monotonic seconds)."""
    if now - last_seen >= timeout:
        return Action.TERMINATE
    # A little slack so that a sweep arriving a hair early still pings.
    if ping_sent_at is None or now - ping_sent_at >= interval * 0.9:
        return Action.PING
    return Action.NONE


class Heartbeat:
    """The sweep; `send_ping(conn, payload)` writes the ping frame."""

    def __init__(self, connections: Iterable[Connection], *, interval: float, timeout: float,
                 send_ping: Callable[[Connection, bytes], None],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.connections = connections
        self.interval = interval
        self.timeout = timeout
        self.send_ping = send_ping
        self.clock = clock
        self._counter = 0
        self._timer = PeriodicCallback(self.sweep, sweep_period(interval, timeout) * 1000)

    def start(self) -> None:
        if not self._timer.is_running():
            self._timer.start()

    def stop(self) -> None:
        self._timer.stop()

    def sweep(self) -> None:
        now = self.clock()
        wall = time.time()
        for conn in self.connections:
            try:
                if conn.expires_at <= wall:
                    log.info("connection %s (%s): token expired, closing", conn.id, conn.user.id)
                    conn.end("token_expired", CLOSE_UNAUTHENTICATED, "token expired")
                    continue
                self._sweep_one(conn, now)
            except Exception:  # one broken connection must not stop the sweep
                log.exception("heartbeat sweep failed for connection %s", conn.id)
                conn.terminate("error")

    def _sweep_one(self, conn: Connection, now: float) -> None:
        action = decide(now=now, last_seen=conn.last_seen, ping_sent_at=conn.ping_sent_at,
                        interval=self.interval, timeout=self.timeout)
        if action is Action.TERMINATE:
            log.info("connection %s (%s): no frame for %.1f s, terminating",
                     conn.id, conn.user.id, now - conn.last_seen)
            conn.terminate("heartbeat_timeout")
        elif action is Action.PING:
            self._counter = (self._counter + 1) & 0xFFFFFFFF
            payload = struct.pack("!I", self._counter)
            conn.ping_payload, conn.ping_sent_at = payload, now
            self.send_ping(conn, payload)

    @staticmethod
    def pong_received(conn: Connection, payload: bytes, now: float) -> float | None:
        """Record a pong; returns the round trip when it answers our last ping."""
        conn.last_seen = now
        if conn.ping_payload is not None and payload == conn.ping_payload and conn.ping_sent_at:
            conn.rtt = now - conn.ping_sent_at
            conn.ping_payload = None
            return conn.rtt
        return None
