"""One node's link to the other nodes: Redis pub/sub with an outbox and an end-to-end liveness check.

What the bus guarantees, and what it leaves to its user (docs/design.md, "The Redis bus"):

- Messages from one bus reach every bus subscribed to their topic in the order
  `publish` was called, each at most once. Every message carries its publisher's
  instance id and a sequence number; a receiver drops one whose number it has
  already passed (a batch sent again because its connection failed before Redis
  answered it may have been taken the first time).
- What the bus holds is not lost to a failed connection: a batch leaves the
  outbox only when Redis has answered it, and is sent again after the reconnect.
- The outbox is bounded (`outbox_limit`): past it the oldest messages are dropped,
  counted and logged. The receivers find such a gap by the message ids in the
  payloads and refill it from the store: a dropped publish delays, never loses.
- What is published while a subscription is down is lost to it. After every
  (re)subscription, once the subscriptions are in place, `on_resync` is called so
  that the handler refills from the store.
- A subscription that went silent without an error (a half-open TCP connection)
  is found by the node's own pings: every `liveness_interval` it publishes one on
  its own channel, and one not heard back within `liveness_timeout`, while the
  connection brought nothing at all, makes the subscription deaf: it is dropped
  and made again.

The bus speaks RESP2 on two connections of its own (redis-py's `Connection`:
connect, send, read a reply) rather than through redis-py's `PubSub` and
`Pipeline`. Those retry and reconnect inside a failing call, and `PubSub`
subscribes again on a reconnect by itself, which hides the gap that `on_resync`
exists for; they also cost about seven times the CPU per message.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import socket
import struct
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

import redis.asyncio as aredis
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from ..core.counting import Counter, Gauge, Labelled

log = logging.getLogger("imserver.bus")

# The label values of the reconnect counter.
PUBLISH = "publish"
SUBSCRIBE = "subscribe"

# A message on Redis: version, the publishing bus's instance id, its sequence number, then the payload.
_ENVELOPE = struct.Struct("!B8sQ")
_VERSION = 1
# A liveness ping, on the node's own channel: instance id, ping number.
_PING = struct.Struct("!8sQ")
# Publisher instances whose last sequence number a receiver keeps, for dropping repeats.
_KNOWN_PUBLISHERS = 4096
# With a ping overdue, the subscription must also stay silent this long before it is
# called deaf: after a stall of the loop the ping may be in the buffer, not yet read.
_CONFIRM_SECONDS = 0.1
# Handler failures are logged at most this often (with a count of the others).
_HANDLER_LOG_SECONDS = 10.0
# TCP keepalive, for a peer that vanished while a connection is idle.
_KEEPALIVE = {getattr(socket, name): value for name, value in
              (("TCP_KEEPIDLE", 10), ("TCP_KEEPINTVL", 5), ("TCP_KEEPCNT", 3)) if hasattr(socket, name)}
# Retry nothing: a redis-py retry reconnects inside the failing call, out of the bus's sight.
_NO_RETRY = Retry(NoBackoff(), 0, supported_errors=())


class BusHandler(Protocol):
    """What a bus calls, on the event loop."""

    def on_message(self, topic: str, payload: bytes) -> None:
        """A message on a subscribed topic, in the order Redis delivered it."""

    def on_resync(self) -> None:
        """The subscriptions were (re)made: what was published while they were not may be
        lost, so refill from the store."""





class BusMetrics(Protocol):
    """What the bus counts (ops.metrics.Metrics has it)."""

    @property
    def broker_published(self) -> Counter: ...
    @property
    def broker_received(self) -> Counter: ...
    @property
    def broker_dropped(self) -> Counter: ...
    @property
    def broker_reconnects(self) -> Labelled: ...
    @property
    def broker_connected(self) -> Gauge: ...
    @property
    def broker_deaf(self) -> Counter: ...


class _Deaf(Exception):
    """The subscription stopped hearing the node's own pings."""


def backoff_delay(attempt: int, base: float, cap: float, rand: random.Random) -> float:
    """The wait before reconnect attempt `attempt` (0 first): exponential, capped, with
    "equal jitter" (half fixed, half random), so that nodes spread out after a Redis
    restart and a node never spins."""
    ceiling = min(cap, base * 2.0 ** min(attempt, 30))
    return ceiling / 2 + rand.uniform(0.0, ceiling / 2)


def redact(url: str) -> str:
    """A Redis URL without its password, for the log."""
    return re.sub(r"//[^@/]*@", "//***@", url)


def describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


async def _disconnect(conn: AbstractConnection) -> None:
    try:
        await conn.disconnect(nowait=True)
    except Exception as exc:  # closing what may be broken
        log.debug("redis bus: closing a connection: %s", describe(exc))


def _connection(pool: aredis.ConnectionPool) -> AbstractConnection:
    """A new connection with the pool's settings, not connected yet, that the pool does not track."""
    conn: AbstractConnection = pool.make_connection()  # type: ignore[no-untyped-call]
    return conn


# A message waiting in the outbox: channel, body.
_Item = tuple[bytes, bytes]


class _Session:
    """One subscription connection: what it has been asked for, and what it has heard."""

    def __init__(self, conn: AbstractConnection, channels: set[bytes]) -> None:
        self.conn = conn
        self.applied = set(channels)  # SUBSCRIBE sent
        self.pending = set(channels)  # not yet confirmed, in the first SUBSCRIBE
        self.ready = asyncio.Event()  # the first SUBSCRIBE is confirmed
        self.replies = 0


class RedisBus:
    """Publishes and receives a node's messages through Redis.

    `start()` returns at once and the bus keeps (re)connecting in the background;
    `publish`, `subscribe` and `unsubscribe` work at any time and never block.
    Three connections, each named `{prefix}:{node_id}:{role}` in CLIENT LIST:
    `pub` (the outbox and the pings), `sub` (the subscription) and `kv` (the
    `redis` property's client). `batch_max` is how many PUBLISH commands go out
    in one write (pipelined) before their answers are read.
    """

    def __init__(self, url: str, prefix: str, node_id: str, handler: BusHandler, metrics: BusMetrics,
                 *, retry_base: float = 0.1, retry_cap: float = 5.0, liveness_interval: float = 1.0,
                 liveness_timeout: float = 3.0, outbox_limit: int = 10_000, batch_max: int = 256) -> None:
        for name, value in (("prefix", prefix), ("node_id", node_id)):
            if not value or any(c.isspace() for c in value):
                raise ValueError(f"{name} must be non-empty without spaces, got {value!r}")
        if not 0 < liveness_interval < liveness_timeout:
            raise ValueError(f"need 0 < liveness_interval < liveness_timeout, got "
                             f"{liveness_interval} and {liveness_timeout}")
        if not 0 < retry_base <= retry_cap:
            raise ValueError(f"need 0 < retry_base <= retry_cap, got {retry_base} and {retry_cap}")
        if outbox_limit < 1 or batch_max < 1:
            raise ValueError(f"outbox_limit and batch_max must be >= 1, got {outbox_limit} and {batch_max}")
        self.url = url
        self.prefix = prefix
        self.node_id = node_id
        self.handler = handler
        self.metrics = metrics
        self.retry_base = retry_base
        self.retry_cap = retry_cap
        self.liveness_interval = liveness_interval
        self.liveness_timeout = liveness_timeout
        self.outbox_limit = outbox_limit
        self.batch_max = batch_max
        self._rand = random.Random()
        self._instance = self._rand.randbytes(8)
        self._seq = 0
        self._live_channel = f"{prefix}!live:{node_id}".encode()
        self._pub_pool = self._pool("pub")
        self._sub_pool = self._pool("sub")
        self._kv_client = aredis.Redis.from_url(url, **self._options("kv"), socket_timeout=liveness_timeout)
        # publishing
        self._pub_conn: AbstractConnection | None = None
        self._outbox: deque[_Item] = deque()
        self._inflight: list[_Item] = []
        self._wake = asyncio.Event()
        self._dropping = False  # an overflow is going on (logged once)
        # subscribing: the wanted channels, and the topic of each
        self._channels: dict[bytes, str] = {}
        self._sub_changed = asyncio.Event()
        self._last_seq: OrderedDict[bytes, int] = OrderedDict()
        self._bad_logged = False
        self._twin_logged = False
        # liveness
        self._ping_no = 0  # the last ping made
        self._ping_due = 0  # the ping to send with the next batch (0: none)
        self._judge_from = 1 << 62  # pings before this one are not judged (made before the subscription)
        self._ping_acked: dict[int, float] = {}  # judged pings Redis took and we have not heard: when
        self._ping_heard = 0  # the last ping heard (it may come before Redis's answer to its PUBLISH)
        # state
        self._started = False
        self._closed = False
        self._tasks: list[asyncio.Task[None]] = []
        self._pub_ok = self._sub_ok = False
        self._pub_ever = self._sub_ever = False  # up once already: the next up is a reconnect
        now = time.monotonic()
        self._pub_reason, self._pub_since = "connecting", now
        self._sub_reason, self._sub_since = "connecting", now
        self._state = "starting"  # then "up" or "down"
        self._was_up = False
        self._down_since = now  # since when it is not up (start() sets it too)
        self._handler_errors = 0
        self._handler_logged_at = -_HANDLER_LOG_SECONDS
        metrics.broker_connected.set(0)

    def _options(self, role: str) -> dict[str, Any]:
        options: dict[str, Any] = {
            "client_name": f"{self.prefix}:{self.node_id}:{role}",
            "socket_connect_timeout": self.liveness_timeout,
            "health_check_interval": 0,
            "retry": _NO_RETRY,
        }
        if not self.url.startswith("unix:"):  # redis-py's unix connections take no keepalive options
            options.update(socket_keepalive=True, socket_keepalive_options=_KEEPALIVE)
        return options

    def _pool(self, role: str) -> aredis.ConnectionPool:
        """Only makes connections (the URL's settings): the bus holds each one itself."""
        pool = aredis.ConnectionPool.from_url(self.url, **self._options(role))
        # Over the URL's query too: plain RESP2 arrays for pub/sub (redis-py 8 defaults to RESP3,
        # with pushes), and no timeout of redis-py's own: the bus bounds each step itself.
        pool.connection_kwargs.update(protocol=2, socket_timeout=None, retry=_NO_RETRY)
        return pool

    # --- the interface ---

    async def start(self) -> None:
        """Start connecting in the background; returns at once, even while Redis is down."""
        if self._started or self._closed:
            return
        self._started = True
        self._down_since = time.monotonic()
        self._tasks = [asyncio.create_task(self._guard(name, run), name=f"redis bus {name}")
                       for name, run in (("publisher", self._run_publisher),
                                         ("subscriber", self._run_subscriber),
                                         ("pinger", self._run_pinger))]

    def subscribe(self, topic: str) -> None:
        """Receive `topic` from now on; idempotent; made on the next (re)connect while down."""
        channel = self._channel(topic)
        if channel not in self._channels:
            self._channels[channel] = topic
            self._sub_changed.set()

    def unsubscribe(self, topic: str) -> None:
        """Stop receiving `topic`: nothing more of it reaches the handler from this call on."""
        if self._channels.pop(self._channel(topic), None) is not None:
            self._sub_changed.set()

    def publish(self, topic: str, payload: bytes) -> None:
        """Queue a message for the other nodes; never blocks, never raises."""
        if self._closed:
            log.debug("redis bus closed: not publishing to %s", topic)
            return
        try:
            body = _ENVELOPE.pack(_VERSION, self._instance, self._seq + 1) + payload
        except TypeError:
            log.error("redis bus: the payload for %s is %s, not bytes: not published",
                      topic, type(payload).__name__)
            return
        self._seq += 1
        if len(self._outbox) >= self.outbox_limit:
            self._drop(self._outbox.popleft())
        self._outbox.append((self._channel(topic), body))
        self._wake.set()

    @property
    def connected(self) -> bool:
        """Publishing works and the subscription is live."""
        return self._state == "up"

    def health(self) -> str | None:
        """Why the bus is not connected (for /healthz), or None."""
        if self._closed:
            return "redis bus closed"
        if not self._started:
            return "redis bus not started"
        problems = self._problems(time.monotonic())
        return f"redis bus: {problems}" if problems else None

    @property
    def redis(self) -> aredis.Redis:
        """A client for key/value commands (leases, counters) on the same Redis. It retries
        nothing: a command whose answer was lost raises, and may or may not have run."""
        return self._kv_client

    async def close(self) -> None:
        """Stop: send what is queued if Redis takes it within `liveness_timeout`, then disconnect."""
        if self._closed:
            return
        self._closed = True
        deadline = time.monotonic() + self.liveness_timeout
        while self._started and self._pub_ok and (self._outbox or self._inflight) \
                and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._pub_conn is not None:
            await _disconnect(self._pub_conn)
        for close in (self._kv_client.aclose, self._pub_pool.aclose, self._sub_pool.aclose):
            try:
                await close()
            except Exception as exc:  # closing what may be broken
                log.debug("redis bus: closing: %s", describe(exc))
        unsent = len(self._inflight) + len(self._outbox)
        self._pub_ok = self._sub_ok = False
        self._state = "down"
        self.metrics.broker_connected.set(0)
        log.info("redis bus closed (node %s)%s", self.node_id,
                 f", {unsent} messages not sent" if unsent else "")

    # --- publishing ---

    def _channel(self, topic: str) -> bytes:
        return f"{self.prefix}:{topic}".encode()

    def _drop(self, item: _Item) -> None:
        self.metrics.broker_dropped.inc()
        if not self._dropping:
            self._dropping = True
            log.warning("redis bus: outbox full (%d messages waiting): dropping the oldest; "
                        "receivers refill such gaps from the store", self.outbox_limit)

    def _requeue(self, batch: list[_Item]) -> None:
        """Put a batch Redis did not answer back in front, in order, within the limit."""
        self._outbox.extendleft(reversed(batch))
        while len(self._outbox) > self.outbox_limit:
            self._drop(self._outbox.popleft())

    async def _run_publisher(self) -> None:
        failures = 0
        while True:
            if not self._outbox and not self._ping_due:
                self._dropping = False  # the overflow is over: the next one is logged again
                self._wake.clear()
                await self._wake.wait()
                continue
            batch = [self._outbox.popleft() for _ in range(min(len(self._outbox), self.batch_max))]
            self._inflight = batch
            # The ping rides with the batch, on the same connection. It is not in the outbox,
            # so it never takes a message's place there, and it stays due until Redis takes it.
            ping = self._ping_due
            items = [*batch, (self._live_channel, _PING.pack(self._instance, ping))] if ping else batch
            try:
                await self._send(items)
            except Exception as exc:  # whatever failed, the batch stays, in order
                self._inflight = []
                self._requeue(batch)
                self._set_pub(False, describe(exc))
                await asyncio.sleep(backoff_delay(failures, self.retry_base, self.retry_cap, self._rand))
                failures += 1
                continue
            except asyncio.CancelledError:
                self._inflight = []
                self._requeue(batch)
                raise
            self._inflight = []
            failures = 0
            if ping:
                self._ping_due = 0
                if ping >= self._judge_from and ping > self._ping_heard:
                    self._ping_acked[ping] = time.monotonic()
            if batch:
                self.metrics.broker_published.inc(len(batch))
            self._set_pub(True)

    async def _send(self, items: list[_Item]) -> None:
        """PUBLISH every item in one write, and read every answer; a failure disconnects."""
        conn = self._pub_conn
        if conn is None:
            conn = self._pub_conn = _connection(self._pub_pool)
        try:
            async with asyncio.timeout(self.liveness_timeout):
                if not conn.is_connected:
                    await conn.connect()  # type: ignore[no-untyped-call]
                await conn.send_packed_command(
                    conn.pack_commands([(b"PUBLISH", channel, body) for channel, body in items]),
                    check_health=False)
                for _ in items:
                    await conn.read_response()
        except BaseException:
            # Answers may be left unread on it: the next batch starts on a new connection.
            await _disconnect(conn)
            raise

    async def _run_pinger(self) -> None:
        while True:
            # One ping at a time. While publishing fails, the one due is also the probe
            # that brings the publisher back when no message is waiting.
            if not self._ping_due:
                self._ping_no += 1
                self._ping_due = self._ping_no
                self._wake.set()
            await asyncio.sleep(self.liveness_interval)

    # --- subscribing ---

    async def _run_subscriber(self) -> None:
        failures = 0
        while True:
            try:
                await self._session()
                reason = "ended"
            except _Deaf as exc:
                self.metrics.broker_deaf.inc()
                reason = f"deaf: {exc}"
            except Exception as exc:  # any failure ends the session; the next one starts afresh
                reason = describe(exc)
            if self._sub_ok:  # it was in place: start again from the shortest wait
                failures = 0
            self._set_sub(False, reason)
            await asyncio.sleep(backoff_delay(failures, self.retry_base, self.retry_cap, self._rand))
            failures += 1

    async def _session(self) -> None:
        """One subscription connection, from its SUBSCRIBE until it fails (raised)."""
        conn = _connection(self._sub_pool)
        tasks: list[asyncio.Task[None]] = []
        try:
            self._sub_changed.clear()
            session = _Session(conn, {self._live_channel, *self._channels})
            async with asyncio.timeout(self.liveness_timeout):
                await conn.connect()  # type: ignore[no-untyped-call]
                await conn.send_command(b"SUBSCRIBE", *session.applied, check_health=False)
            tasks = [asyncio.create_task(self._read(session)), asyncio.create_task(self._apply(session)),
                     asyncio.create_task(self._watch(session))]
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()  # raises what ended it
            raise ConnectionError("the subscription ended")  # not reached: each runs until it fails
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await _disconnect(conn)

    async def _read(self, session: _Session) -> None:
        """Read and dispatch what the subscription brings, in order."""
        conn = session.conn
        while True:
            # No timeout: the watchdog judges silence. redis-py reads nothing but the socket here.
            reply = await conn.read_response()
            session.replies += 1
            if not (isinstance(reply, list) and len(reply) == 3):
                raise ConnectionError(f"unexpected reply on the subscription: {reply!r:.100}")
            kind, channel, data = reply
            if kind == b"message":
                self._receive(channel, data)
            elif kind == b"subscribe" and not session.ready.is_set():
                session.pending.discard(channel)
                if not session.pending:
                    session.ready.set()
                    self._subscribed()

    async def _apply(self, session: _Session) -> None:
        """Send the subscription changes made while the session runs."""
        conn = session.conn
        while True:
            await self._sub_changed.wait()
            self._sub_changed.clear()
            wanted = {self._live_channel, *self._channels}
            for command, channels in ((b"SUBSCRIBE", wanted - session.applied),
                                      (b"UNSUBSCRIBE", session.applied - wanted)):
                if not channels:
                    continue
                # redis-py would reconnect a closed connection to send: this one must fail instead.
                if not conn.is_connected:
                    raise ConnectionError("the subscription's connection was closed")
                async with asyncio.timeout(self.liveness_timeout):
                    await conn.send_command(command, *channels, check_health=False)
                session.applied ^= channels

    async def _watch(self, session: _Session) -> None:
        """Fail the session when its first SUBSCRIBE is not confirmed in time, or when it is deaf."""
        try:
            async with asyncio.timeout(self.liveness_timeout):
                await session.ready.wait()
        except TimeoutError:
            raise TimeoutError(f"SUBSCRIBE not confirmed within {self.liveness_timeout} s") from None
        while True:
            await asyncio.sleep(self._liveness_wait(time.monotonic()))
            if self._overdue(time.monotonic()) is None:
                continue
            replies = session.replies
            await asyncio.sleep(_CONFIRM_SECONDS)
            overdue = self._overdue(time.monotonic())
            # A subscription that brings anything is alive, if slow: only silence is deafness.
            if overdue is not None and session.replies == replies:
                raise _Deaf(f"own ping not heard for {overdue:.1f} s")

    def _subscribed(self) -> None:
        """The session's subscriptions are in place."""
        # Only pings made from now on are surely published after the SUBSCRIBE.
        self._judge_from = self._ping_no + 1
        self._ping_acked.clear()
        self._set_sub(True)
        self._call(self.handler.on_resync)

    def _receive(self, channel: bytes, data: bytes) -> None:
        if channel == self._live_channel:
            if len(data) == _PING.size:
                instance, number = _PING.unpack(data)
                if instance != self._instance:
                    if not self._twin_logged:
                        self._twin_logged = True
                        log.error("redis bus: another process runs as node %s under prefix %s: "
                                  "node ids must differ (logged once)", self.node_id, self.prefix)
                elif number > self._ping_heard:
                    self._ping_heard = number
                    for ping in [p for p in self._ping_acked if p <= number]:
                        del self._ping_acked[ping]
            return
        topic = self._channels.get(channel)
        if topic is None:
            return  # unsubscribed meanwhile
        if len(data) < _ENVELOPE.size or data[0] != _VERSION:
            if not self._bad_logged:
                self._bad_logged = True
                log.warning("redis bus: a message on %r is not from a bus of this version: dropped "
                            "(logged once)", channel)
            return
        _, instance, seq = _ENVELOPE.unpack_from(data)
        last = self._last_seq.get(instance)
        if last is not None and seq <= last:
            return  # sent again after a failure, and taken the first time
        self._last_seq[instance] = seq
        self._last_seq.move_to_end(instance)
        if len(self._last_seq) > _KNOWN_PUBLISHERS:
            self._last_seq.popitem(last=False)
        self.metrics.broker_received.inc()
        self._call(self.handler.on_message, topic, data[_ENVELOPE.size:])

    def _call(self, method: Callable[..., None], *args: Any) -> None:
        """Call the handler; its failure is logged (at most every few seconds) and the bus goes on."""
        try:
            method(*args)
        except Exception:
            self._handler_errors += 1
            now = time.monotonic()
            if now - self._handler_logged_at >= _HANDLER_LOG_SECONDS:
                others = self._handler_errors - 1
                self._handler_logged_at, self._handler_errors = now, 0
                log.exception("redis bus: the handler's %s failed%s", method.__name__,
                              f" (and {others} more times since the last report)" if others else "")

    # --- liveness ---

    def _overdue(self, now: float) -> float | None:
        """How long ago Redis took the oldest ping not heard yet, if longer than the timeout."""
        if not self._ping_acked:
            return None
        age = now - min(self._ping_acked.values())
        return age if age > self.liveness_timeout else None

    def _liveness_wait(self, now: float) -> float:
        """Until the oldest ping not heard yet falls due, at most an interval."""
        if not self._ping_acked:
            return self.liveness_interval
        due = min(self._ping_acked.values()) + self.liveness_timeout
        return min(self.liveness_interval, max(due - now, 0.0) + 0.01)

    # --- state ---

    def _problems(self, now: float | None) -> str:
        """What is down and why; with how long when `now` is given."""
        problems = []
        for ok, what, since, reason in (
                (self._pub_ok, "publish connection", self._pub_since, self._pub_reason),
                (self._sub_ok, "subscription", self._sub_since, self._sub_reason)):
            if not ok:
                problems.append(f"{what} down" + (f" for {now - since:.1f} s" if now is not None else "")
                                + f" ({reason})")
        return "; ".join(problems)

    def _set_pub(self, ok: bool, reason: str = "") -> None:
        if ok != self._pub_ok:
            self._pub_ok, self._pub_since = ok, time.monotonic()
            if ok and self._pub_ever:
                self.metrics.broker_reconnects.labels(PUBLISH).inc()
            self._pub_ever = self._pub_ever or ok
        if not ok:
            self._pub_reason = reason
        self._update(failed=not ok)

    def _set_sub(self, ok: bool, reason: str = "") -> None:
        if ok != self._sub_ok:
            self._sub_ok, self._sub_since = ok, time.monotonic()
            if ok and self._sub_ever:
                self.metrics.broker_reconnects.labels(SUBSCRIBE).inc()
            self._sub_ever = self._sub_ever or ok
        if not ok:
            self._sub_reason = reason
        self._update(failed=not ok)

    def _update(self, failed: bool) -> None:
        """Follow the whole bus's state: the gauge, and one log line per change. Starting is
        neither up nor down: a failure makes it down (said once), both connections up make it up."""
        if self._closed:
            return
        if self._pub_ok and self._sub_ok:
            if self._state != "up":
                log.info("redis bus %s %s as node %s after %.1f s",
                         "back on" if self._was_up else "connected to", redact(self.url), self.node_id,
                         time.monotonic() - self._down_since)
                self._state, self._was_up = "up", True
                self.metrics.broker_connected.set(1)
        elif self._state == "up" or (failed and self._state == "starting"):
            if self._state == "up":
                self._down_since = time.monotonic()
            self._state = "down"
            self.metrics.broker_connected.set(0)
            log.warning("redis bus down (node %s): %s", self.node_id, self._problems(None))

    async def _guard(self, name: str, run: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run one of the bus's loops; should it fail (a bug), log it and start it again."""
        while True:
            try:
                await run()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("redis bus: the %s failed; starting it again", name)
                await asyncio.sleep(self.retry_cap)
