"""The chat WebSocket: the upgrade's checks, the connection's life, and inbound frames
turned into hub calls; outbound frames go to bytes through the transport layer."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from tornado import httputil
from tornado.websocket import (
    WebSocketHandler,
    WebSocketProtocol,
)

from ..config import Config
from ..core import protocol as p
from ..core.errors import AuthError, ProtocolError, StoreError
from ..core.frames import Outbound
from ..core.hub import Hub
from ..core.ratelimit import FloodGuard, TokenBucket
from ..core.registry import Connection, Registry, User
from ..core.store import Unread
from ..ops.heartbeat import Heartbeat
from ..ops.metrics import Metrics
from ..storage.base import Backend
from ..transport.outbound import Output, open_output
from ..transport.tornado_compat import reclass_protocol
from ..transport.writer import CoalescingWriter
from ..transport.wsprotocol import ChatProtocol
from .auth import Authenticator
from .bans import Bans, refusal
from .identity import Identities
from .security import SESSION_COOKIE, origin_allowed

log = logging.getLogger("imserver.ws")

PONG = Outbound(p.PONG)
PER_USER = (429, "too_many_connections", "too many connections for this user")
KNOWN_WAIT = 5.0  # seconds an upgrade waits for what its welcome needs from the store
T = TypeVar("T")


class UserSlots(Protocol):
    """The count of each user's connections over every node of a cluster
    (cluster/directory.py's Directory)."""

    async def acquire(self, user_id: str, conn_id: str, limit: int) -> bool:
        """Count a connection about to open, if the user is under `limit` everywhere."""

    def release_unopened(self, conn_id: str) -> None:
        """A connection counted by `acquire` that never opened."""


@dataclass(eq=False)
class ChatDeps:
    """What a chat socket uses, handed to it by the app (the same for every socket)."""

    config: Config
    auth: Authenticator
    identities: Identities  # checks tokens, reading the store for one it does not know
    registry: Registry
    hub: Hub
    heartbeat: Heartbeat
    metrics: Metrics
    store: Backend
    writer: CoalescingWriter
    max_connections: int
    start: Callable[[], None]  # starts the server's timers, on the first connection
    prebuilt: bool = True  # False: Tornado's write_message, the benchmarks' baseline
    user_slots: UserSlots | None = None  # in a cluster: connections per user on every node
    bans: Bans | None = None  # the users kept out, checked in memory


async def _within(answer: asyncio.Future[T], failure: str) -> T | None:
    """A store's answer within KNOWN_WAIT, or None (logged as `failure`)."""
    try:
        return await asyncio.wait_for(answer, KNOWN_WAIT)
    except (StoreError, TimeoutError) as exc:
        log.warning("%s: %r", failure, exc)
        return None


class ChatSocket(WebSocketHandler):
    """One client's chat connection: the upgrade's checks, the connection's life and
    its inbound frames. Its outbound half, the Transport of its Connection, is
    `output` (transport/outbound.py)."""

    # Slots, not the instance dict: Tornado's RequestHandler and WebSocketHandler set 27
    # attributes on each socket; CPython 3.11 shares one key table between instances
    # only up to 29 of them (beyond it each gets a dict of its own, 1.3 KB more for
    # every idle connection). tests/test_tornado_compat.py checks the sizes.
    __slots__ = ("bucket", "conn", "conn_id", "deps", "flood", "output", "rooms_allowed",
                 "token_expires", "token_id", "unread", "user")

    def initialize(self, deps: ChatDeps) -> None:
        self.deps = deps
        self.user: User | None = None
        self.token_expires = 0.0
        self.token_id: str | None = None
        self.unread: Unread | None = None  # for the welcome
        self.rooms_allowed: tuple[str, ...] | None = None
        self.conn: Connection | None = None
        limits = deps.config.limits
        self.bucket = TokenBucket(limits.messages_per_second, limits.burst)
        self.flood = FloodGuard(limits.flood_strikes)
        self.output: Output | None = None  # the outbound half, from open() on
        self.conn_id = ""  # given at the upgrade, so that a cluster can count it before it opens

    # --- the upgrade ---

    async def get(self, *args: Any, **kwargs: Any) -> None:
        origin = self.request.headers.get("Origin")
        if origin is not None and not self.check_origin(origin):
            self.deps.metrics.refused.labels("origin").inc()
            self._refuse(403, "forbidden_origin", "cross-origin connection not allowed")
            return
        token = self.get_query_argument("token", "") or (
            (self.get_signed_cookie(SESSION_COOKIE) or b"").decode())
        try:
            cred = await self.deps.identities.check(token)
            self.user, self.token_expires, self.token_id = cred.user, cred.expires, cred.jti
            self.rooms_allowed = cred.rooms
        except AuthError as exc:
            self.deps.metrics.refused.labels("unauthenticated").inc()
            self._refuse(401, "unauthenticated", str(exc))
            return
        except StoreError:
            self.deps.metrics.refused.labels("unavailable").inc()
            self._refuse(503, "unavailable", "the server cannot check the token now, try again")
            return
        ban = self.deps.bans.of(self.user.id) if self.deps.bans is not None else None
        if ban is not None:
            self.deps.metrics.refused.labels("banned").inc()
            self.set_status(403)
            self.finish(refusal(ban))
            return
        over = self._over_limit(self.user)
        slots = self.deps.user_slots
        self.conn_id = self.deps.registry.new_id()
        if over is None and slots is not None and not await slots.acquire(
                self.user.id, self.conn_id, self.deps.config.limits.max_connections_per_user):
            over = PER_USER
        if over is not None:
            status, reason, message = over
            self.deps.metrics.refused.labels(reason).inc()
            log.warning("refused connection from %s (user %s): %s",
                        self.request.remote_ip, self.user.id, message)
            self._refuse(status, reason, message)
            return
        await self._before_welcome(self.user)
        if slots is None:
            await super().get(*args, **kwargs)
            return
        try:
            await super().get(*args, **kwargs)
        finally:
            if self.conn is None:
                slots.release_unopened(self.conn_id)

    async def _before_welcome(self, user: User) -> None:
        """What the welcome needs from the store, both queued at once (a shared store
        answers them in one batch):
        - on a store that other nodes share, the user made known (direct messages go
          only to known users): once a client has its welcome, a direct message to it
          from any node must find it (on one node the store's queue order gives the
          same);
        - the user's unread counts.
        A store that cannot answer now is no reason to refuse: the welcome goes without
        the counts, and the connection's own write (in open) records the user again."""
        store = self.deps.store
        known = store.touch_user(user.id, user.name) if store.shared else None
        unread = store.unread(user.id)
        if known is not None:
            await _within(known, f"could not record user {user.id} before its welcome")
        self.unread = await _within(unread, f"could not read the unread counts of user {user.id}")

    def _over_limit(self, user: User) -> tuple[int, str, str] | None:
        limits, registry = self.deps.config.limits, self.deps.registry
        if len(registry) >= self.deps.max_connections:
            return 503, "server_full", "the server is at its connection limit"
        if len(registry.of_user(user.id)) >= limits.max_connections_per_user:
            return PER_USER
        if registry.count_remote(self.request.remote_ip or "") >= limits.max_connections_per_address:
            return 429, "too_many_connections", "too many connections from this address"
        return None

    def _refuse(self, status: int, error: str, message: str) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish({"error": error, "message": message})

    def check_origin(self, origin: str) -> bool:
        return origin_allowed(origin, self.request.host, self.deps.config.server.allowed_origins,
                              self.request.protocol)

    def get_websocket_protocol(self) -> WebSocketProtocol | None:
        proto = super().get_websocket_protocol()
        reclass_protocol(proto, ChatProtocol)
        return proto

    # --- lifecycle ---

    def open(self, *args: str, **kwargs: str) -> None:
        rt = self.deps
        assert self.user is not None
        rt.start()
        self.set_nodelay(True)
        assert self.ws_connection is not None
        self.output = output = open_output(
            self, self.ws_connection, prebuilt=rt.prebuilt, writer=rt.writer,
            max_bytes=rt.config.limits.max_outbound_buffer_bytes)
        try:
            reconnect = max(0, int(self.get_query_argument("reconnect", "0")))
        except ValueError:
            reconnect = 0
        cause = p.reconnect_cause(self.get_query_argument("cause", None)) if reconnect else ""
        conn = Connection(
            id=self.conn_id or rt.registry.new_id(), user=self.user, transport=output,
            remote=self.request.remote_ip or "", reconnect=reconnect, cause=cause,
            expires_at=self.token_expires,
            token_id=self.token_id, rooms_allowed=self.rooms_allowed,
            user_agent=self.request.headers.get("User-Agent", "")[:256])
        self.conn = conn
        rt.registry.add(conn)
        if conn.token_id is not None and rt.auth.guest_login and conn.token_id not in rt.auth.guest_tokens:
            # Logged out (here or on another node) since the upgrade's check.
            conn.end("logged_out", p.CLOSE_UNAUTHENTICATED, "logged out")
            self._forget_request()
            return
        ban = rt.bans.of(conn.user.id) if rt.bans is not None else None
        if ban is not None:  # banned since the upgrade's check
            conn.end("kicked", p.CLOSE_KICKED, ban.reason)
            self._forget_request()
            return
        rt.store.touch_user(self.user.id, self.user.name)
        if reconnect:
            rt.metrics.reconnects.labels(cause).inc()
        log.info("connection %s opened: user=%s remote=%s reconnect=%d",
                 conn.id, conn.user.id, conn.remote, reconnect)
        self._forget_request()
        self.welcome(conn)

    def welcome(self, conn: Connection) -> None:
        hb = self.deps.config.heartbeat
        assert self.user is not None
        self.deps.hub.send(conn, p.welcome_frame(
            conn.id, self.user.to_json(), interval=hb.client_interval, timeout=hb.client_timeout,
            server_time=time.time(), unread=self.unread, expires=conn.expires_at))

    def _forget_request(self) -> None:
        """Drop what the upgrade request held (headers, the query with its token): it
        is not needed once the connection is open, and is kept per connection for hours."""
        request = self.request
        # One empty set for the request's headers and the response's: Tornado has replaced
        # every method that writes headers on a WebSocket handler by now (they raise).
        request.headers = self._headers = httputil.HTTPHeaders()
        request.uri = request.path
        request.query = ""
        request.arguments = {}
        request.query_arguments = {}
        # The HTTP/1 connection the upgrade came on (detached from the stream, its request
        # headers and start line still held) and the server's connection with its
        # finished request loop: nothing of a WebSocket's uses them past the upgrade.
        request.connection = None
        request.server_connection = None
        self._transforms = []  # the response's encoders (gzip, chunking): no response now
        self.ui = None  # type: ignore[assignment]  # template helpers: a socket never uses them

    def on_close(self) -> None:
        conn = self.conn
        if conn is None:
            return
        if conn.close_reason is None:
            conn.close_reason, conn.close_code = "client_close", self.close_code
        rt = self.deps
        rt.registry.remove(conn)
        rt.hub.disconnect(conn)
        reason, code = conn.close_reason, conn.close_code
        log.info("connection %s closed: user=%s reason=%s code=%s lived=%.1fs",
                 conn.id, conn.user.id, reason, code, time.time() - conn.connected_at)

    def too_big(self) -> None:
        if self.conn is not None and self.conn.close_reason is None:
            self.conn.close_reason, self.conn.close_code = "too_big", p.CLOSE_TOO_BIG

    def bad_utf8(self) -> None:
        """A text frame of invalid UTF-8 (the connection fails with 1007)."""
        self.deps.metrics.frames.received["invalid"] += 1

    def on_close_frame(self) -> None:
        """The client's close frame takes a token too (the connection ends anyway)."""
        conn = self.conn
        if conn is not None:
            conn.last_seen = now = time.monotonic()
            self.bucket.take(now)

    def _admit(self, conn: Connection, message: str | bytes) -> bool:
        """Count a message against the rate limit. Over it, the message is answered with
        a rate_limited error (or, for a connection that keeps flooding, a 4008 close)."""
        now = conn.last_seen = time.monotonic()
        conn.frames_in += 1
        if self.bucket.take(now):
            return True
        return self._over_rate(conn, message)

    def _admit_control(self, conn: Connection) -> bool:
        """Count a ping or a pong against the same rate limit: over it, it goes without
        an answer, and a connection that keeps flooding is closed with 4008."""
        now = conn.last_seen = time.monotonic()
        if self.bucket.take(now):
            return True
        return self._over_rate(conn, None)

    def _over_rate(self, conn: Connection, message: str | bytes | None) -> bool:
        rt = self.deps
        rt.metrics.refused.labels("rate_limited").inc()
        if self.flood.strike():
            log.warning("connection %s (%s) keeps flooding, closing", conn.id, conn.user.id)
            conn.end("rate_limited", p.CLOSE_RATE_LIMITED, "rate limit exceeded")
        elif message is not None:
            rt.hub.error(conn, "rate_limited", "slow down: too many messages", _cid_of(message))
        return False

    # --- inbound ---

    def on_message(self, message: str | bytes) -> None:
        conn = self.conn
        if conn is None:
            return
        rt = self.deps
        if not self._admit(conn, message):
            return
        if message == p.PING:
            frames = rt.metrics.frames
            frames.received["ping"] += 1
            frames.app_pings += 1
            rt.hub.send(conn, PONG)
            rt.heartbeat.ride_along(conn, conn.last_seen)
            return
        try:
            if isinstance(message, bytes):
                raise ProtocolError("bad_request", "binary frames are not supported")
            limits = rt.config.limits
            command = p.parse_frame(message, max_text_chars=limits.max_text_chars,
                                    max_depth=limits.max_json_depth)
        except ProtocolError as exc:
            rt.metrics.frames.received["invalid"] += 1
            rt.hub.error(conn, exc.code, exc.message, exc.cid)
            return
        rt.metrics.frames.received[command.kind] += 1
        try:
            rt.hub.handle(conn, command)
        except Exception:
            log.exception("connection %s: error handling %s", conn.id, type(command).__name__)
            conn.end("error", p.CLOSE_INTERNAL_ERROR, "internal error")

    def on_pong(self, data: bytes) -> None:
        conn = self.conn
        if conn is not None and self._admit_control(conn):
            rtt = Heartbeat.pong_received(conn, data, conn.last_seen)
            if rtt is not None:
                self.deps.metrics.frames.observe_rtt(rtt)

    def on_ping(self, data: bytes) -> None:
        """A ping frame: answered with a pong in order with the other replies, if the
        rate limit lets it through."""
        conn = self.conn
        if conn is not None and self.output is not None and self._admit_control(conn):
            self.output.send_pong(data)

    def slow_consumer(self) -> None:
        if self.conn is not None:
            log.warning("connection %s (%s) is not reading: dropped as a slow consumer",
                        self.conn.id, self.conn.user.id)
            self.conn.terminate("slow_consumer")

    def close(self, code: int | None = None, reason: str | None = None) -> None:
        # Frames queued before the close (a bye) go out before the close frame: not
        # through the send pool, which would send them after it.
        if self.output is not None:
            self.output.flush_queued(pooled=False)
        super().close(code, reason)

    def get_compression_options(self) -> dict[str, Any] | None:
        return {} if self.deps.config.server.compression else None

    def abort(self) -> None:
        ws = self.ws_connection
        if ws is not None and ws.stream is not None:
            ws.stream.close()
        else:
            self.on_connection_close()


def _cid_of(message: str | bytes) -> str | None:
    """The cid of a refused frame, found without parsing it, so that a flood stays cheap."""
    if isinstance(message, bytes) or '"cid"' not in message:
        return None
    try:
        cid = json.loads(message).get("cid")
    except (ValueError, AttributeError, RecursionError):
        return None
    return cid if isinstance(cid, str) and len(cid) <= p.CID_MAX else None
