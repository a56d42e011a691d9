"""The protocol-level heartbeat: one timer sweeps every connection.

Each connection is visited once every half interval: it is sent a WebSocket ping
frame if its last ping is `ping_interval` old, and aborted if nothing at all has
arrived from it for `ping_timeout`. That bounds detection of a dead peer by
`ping_timeout + ping_interval / 2`, inside the promised `ping_timeout +
ping_interval`, with one timer however many connections there are. The same visit
closes (4001) a connection whose token has expired.

The visits are spread over the half interval: the connections are dealt into
`slots` sets (a timing wheel), and each tick of the timer visits one of them. Visiting
all of them at once held the event loop for as long as thousands of pings take,
and every message delivered meanwhile waited for it. Each slot keeps, beside each
connection, the earliest time anything can fall due for it (`next_check`); a visit
reads only those times and looks at the connections whose time has come, so an idle
browser's connection, whose time moves on with each text ping, is not looked at.

A ping that would fall due before the client's next text `ping` goes out with
the `pong` to this one instead (`ride_along`), in the same packet: an idle
browser then costs the server one send per interval instead of two, and wakes
the client's radio once instead of twice. For the same reason a visit that finds
a ping due leaves it to a text ping expected before the ping is a tenth of an
interval late (`LATE`); if that text ping does not come, the next visit sends it.
"""

from __future__ import annotations

import enum
import logging
import math
import struct
import time
from collections.abc import Callable

from tornado.ioloop import PeriodicCallback

from ..core.protocol import CLOSE_UNAUTHENTICATED
from ..core.registry import Connection

log = logging.getLogger("imserver.heartbeat")


class Action(enum.Enum):
    NONE = "none"
    PING = "ping"
    TERMINATE = "terminate"


def sweep_period(ping_interval: float, ping_timeout: float) -> float:
    return min(ping_interval, ping_timeout) / 2


def wheel_slots(ping_interval: float, ping_timeout: float, tick: float = 0.1) -> int:
    """How many slots the wheel has: ticks of about `tick` seconds in a sweep period."""
    return max(1, round(sweep_period(ping_interval, ping_timeout) / tick))


# A sweep pings a connection whose last ping is this share of the interval old:
# a little slack, so that a sweep arriving a hair early still pings.
DUE = 0.9

# A due ping may wait for the client's next text ping (to ride along with its pong)
# if that is expected before the ping is this share of the interval old.
LATE = 1.1


def decide(*, now: float, last_seen: float, ping_sent_at: float | None,
           interval: float, timeout: float, next_text_ping: float | None = None) -> Action:
    """What the sweep does to one connection at time `now` (monotonic seconds), given
    when its client's next text ping is expected (None: it sends none)."""
    if now - last_seen >= timeout:
        return Action.TERMINATE
    if ping_sent_at is None:
        return Action.PING
    if now - ping_sent_at >= interval * DUE:
        if next_text_ping is not None and now < next_text_ping <= ping_sent_at + interval * LATE:
            return Action.NONE  # it will ride along with the pong to that text ping
        return Action.PING
    return Action.NONE


def ride_along_after(interval: float, client_interval: float) -> float:
    """How old the last ping must be for the next one to ride along with a pong: old
    enough that it would fall due before the client's next text ping, and never
    younger than a tenth of the interval, however often a client pings."""
    return max(interval / 10, interval * DUE - client_interval)


class Heartbeat:
    """The sweep; `send_ping(conn, payload)` writes the ping frame. The connections it
    visits are those given to watch() and not yet to forget()."""

    def __init__(self, *, interval: float, timeout: float, client_interval: float,
                 send_ping: Callable[[Connection, bytes], None],
                 clock: Callable[[], float] = time.monotonic,
                 observe_sweep: Callable[[float], None] | None = None) -> None:
        """`observe_sweep` is told how long each tick's visits took (seconds)."""
        self.interval = interval
        self.timeout = timeout
        self.client_interval = client_interval
        self.ride_along_after = ride_along_after(interval, client_interval)
        self.send_ping = send_ping
        self.clock = clock
        self.observe_sweep = observe_sweep
        self.slots = wheel_slots(interval, timeout)
        self.tick_seconds = sweep_period(interval, timeout) / self.slots
        # Each slot: its connections, each with the monotonic time before which its
        # visit has nothing to do (next_check; -inf: look at it at the next visit).
        self._wheel: list[dict[Connection, float]] = [{} for _ in range(self.slots)]
        self._started_at = 0.0
        self._visited = -1  # the last tick whose slot was visited, counted from _started_at
        self._counter = 0
        self._timer = PeriodicCallback(self.tick, self.tick_seconds * 1000)

    def _slot(self, conn: Connection) -> dict[Connection, float]:
        # Fibonacci hashing of the identity hash: objects of one size lie at a fixed
        # stride in memory, which a plain modulo would deal into a few slots only.
        mixed = (hash(conn) * 0x9E3779B1) & 0xFFFFFFFF
        return self._wheel[(mixed * self.slots) >> 32]

    def watch(self, conn: Connection) -> None:
        self._slot(conn)[conn] = -math.inf

    def forget(self, conn: Connection) -> None:
        self._slot(conn).pop(conn, None)

    def recheck(self, conn: Connection) -> None:
        """Something may fall due sooner than computed (a renewed token may expire
        earlier): look at the connection at its next visit."""
        self._set_next_check(conn, -math.inf)

    def _set_next_check(self, conn: Connection, at: float) -> None:
        """Keep `at` as the connection's next check, if it is watched."""
        slot = self._slot(conn)
        if conn in slot:
            slot[conn] = at

    def _next_text_ping(self, conn: Connection) -> float | None:
        """When its client's next text ping is expected (None: it sends none)."""
        text_ping_at = conn.text_ping_at
        return None if text_ping_at is None else text_ping_at + self.client_interval

    def next_check(self, conn: Connection, now: float, wall: float) -> float:
        """The monotonic time before which a visit has nothing to do for `conn`: its
        silence timeout, its next ping (left to the text ping expected, as decide()
        does), its token's expiry. last_seen and ping_sent_at only grow, so the time
        only comes later as frames arrive; an expiry moved earlier needs recheck()."""
        sent_at = conn.ping_sent_at
        if sent_at is None:
            return -math.inf
        ping_due = sent_at + self.interval * DUE
        next_text_ping = self._next_text_ping(conn)
        if next_text_ping is not None and ping_due < next_text_ping <= sent_at + self.interval * LATE:
            ping_due = next_text_ping
        return min(conn.last_seen + self.timeout, ping_due, now + (conn.expires_at - wall))

    def start(self) -> None:
        if not self._timer.is_running():
            self.start_clock()
            self._timer.start()

    def start_clock(self) -> None:
        """Count ticks from now (start() does it; tests drive tick() themselves)."""
        self._started_at = self.clock()
        self._visited = -1

    def stop(self) -> None:
        self._timer.stop()

    def tick(self) -> None:
        """Visit the slots whose turn has come since the last tick: one, unless the
        loop was held up, and then at most every slot once, so that no connection
        waits longer than a period for its visit however late the tick."""
        due = int((self.clock() - self._started_at) / self.tick_seconds)
        first = max(self._visited + 1, due - self.slots + 1)
        if first > due:
            return
        began = time.perf_counter()
        for turn in range(first, due + 1):
            self._visit(self._wheel[turn % self.slots], everyone=False)
        self._visited = due
        if self.observe_sweep is not None:
            self.observe_sweep(time.perf_counter() - began)

    def sweep(self) -> None:
        """Look at every connection now, whatever its next_check."""
        for slot in self._wheel:
            self._visit(slot, everyone=True)

    def _visit(self, slot: dict[Connection, float], *, everyone: bool) -> None:
        now = self.clock()
        wall = time.time()
        # Most connections need nothing, and only their next_check is read. A list:
        # ending a connection may forget it.
        conns = list(slot) if everyone else [conn for conn, at in slot.items() if at <= now]
        for conn in conns:
            try:
                if conn.expires_at <= wall:
                    log.info("connection %s (%s): token expired, closing", conn.id, conn.user.id)
                    conn.end("token_expired", CLOSE_UNAUTHENTICATED, "token expired")
                    continue
                self._sweep_one(conn, now)
                if conn in slot:
                    slot[conn] = self.next_check(conn, now, wall)
            except Exception:  # one broken connection must not stop the sweep
                log.exception("heartbeat sweep failed for connection %s", conn.id)
                conn.terminate("error")

    def _sweep_one(self, conn: Connection, now: float) -> None:
        action = decide(now=now, last_seen=conn.last_seen, ping_sent_at=conn.ping_sent_at,
                        interval=self.interval, timeout=self.timeout,
                        next_text_ping=self._next_text_ping(conn))
        if action is Action.TERMINATE:
            log.info("connection %s (%s): no frame for %.1f s, terminating",
                     conn.id, conn.user.id, now - conn.last_seen)
            conn.terminate("heartbeat_timeout")
        elif action is Action.PING:
            self._ping(conn, now)

    def _ping(self, conn: Connection, now: float) -> None:
        self._counter = (self._counter + 1) & 0xFFFFFFFF
        payload = struct.pack("!I", self._counter)
        conn.ping_payload, conn.ping_sent_at = payload, now
        self.send_ping(conn, payload)

    def ride_along(self, conn: Connection, now: float) -> None:
        """Called as the pong to a text ping is queued: a ping that would fall due
        before the next text ping goes out now, in the same send."""
        conn.text_ping_at = now
        sent_at = conn.ping_sent_at
        if sent_at is None or now - sent_at >= self.ride_along_after:
            self._ping(conn, now)
        self._set_next_check(conn, self.next_check(conn, now, time.time()))

    @staticmethod
    def pong_received(conn: Connection, payload: bytes, now: float) -> float | None:
        """Record a pong; returns the round trip when it answers our last ping."""
        conn.last_seen = now
        if conn.ping_payload is not None and payload == conn.ping_payload and conn.ping_sent_at:
            conn.rtt = now - conn.ping_sent_at
            conn.ping_payload = None
            return conn.rtt
        return None
