"""The chat WebSocket: turns frames into hub calls and outbound frames into bytes."""

from __future__ import annotations

import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlsplit

from tornado.iostream import StreamClosedError
from tornado.websocket import WebSocketHandler, WebSocketProtocol, WebSocketProtocol13

from . import protocol as p
from .errors import AuthError, ProtocolError
from .frames import Outbound
from .heartbeat import Heartbeat
from .registry import Connection, User

if TYPE_CHECKING:
    from .app import Runtime

log = logging.getLogger("imserver.ws")

SESSION_COOKIE = "imserver_session"
PONG = Outbound(p.PONG)


def origin_allowed(origin: str, host: str, allowed: tuple[str, ...]) -> bool:
    """Same origin when nothing is configured; else the exact origins listed, or '*'."""
    if allowed:
        return "*" in allowed or origin.rstrip("/") in allowed
    return urlsplit(origin).netloc.lower() == host.lower()


class _Protocol(WebSocketProtocol13):
    """Tornado's RFC 6455 codec, noting when it closes a socket for a too-big frame."""

    def close(self, code: int | None = None, reason: str | None = None) -> None:
        if code == p.CLOSE_TOO_BIG:
            cast("ChatSocket", self.handler).too_big()
        super().close(code, reason)


class ChatSocket(WebSocketHandler):
    """One client's chat connection; also the Transport of its Connection."""

    def initialize(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.user: User | None = None
        self.conn: Connection | None = None

    # --- the upgrade ---

    async def get(self, *args: Any, **kwargs: Any) -> None:
        origin = self.request.headers.get("Origin")
        if origin is not None and not self.check_origin(origin):
            self.runtime.metrics.refused.labels("origin").inc()
            self._refuse(403, "forbidden_origin", "cross-origin connection not allowed")
            return
        token = self.get_query_argument("token", "") or (
            (self.get_signed_cookie(SESSION_COOKIE) or b"").decode())
        try:
            self.user = self.runtime.auth.verify(token)
        except AuthError as exc:
            self.runtime.metrics.refused.labels("unauthenticated").inc()
            self._refuse(401, "unauthenticated", str(exc))
            return
        await super().get(*args, **kwargs)

    def _refuse(self, status: int, error: str, message: str) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish({"error": error, "message": message})

    def check_origin(self, origin: str) -> bool:
        return origin_allowed(origin, self.request.host, self.runtime.config.server.allowed_origins)

    def get_websocket_protocol(self) -> WebSocketProtocol | None:
        proto = super().get_websocket_protocol()
        if isinstance(proto, WebSocketProtocol13):
            proto.__class__ = _Protocol
        return proto

    # --- lifecycle ---

    def open(self, *args: str, **kwargs: str) -> None:
        rt = self.runtime
        assert self.user is not None
        rt.start()
        self.set_nodelay(True)
        try:
            reconnect = max(0, int(self.get_query_argument("reconnect", "0")))
        except ValueError:
            reconnect = 0
        conn = Connection(
            id=rt.registry.new_id(), user=self.user, transport=self,
            remote=self.request.remote_ip or "", reconnect=reconnect,
            user_agent=self.request.headers.get("User-Agent", "")[:256])
        self.conn = conn
        rt.registry.add(conn)
        rt.store.touch_user(self.user.id, self.user.name)
        if reconnect:
            rt.metrics.reconnects.labels(p.reconnect_cause(self.get_query_argument("cause", None))).inc()
        log.info("connection %s opened: user=%s remote=%s reconnect=%d",
                 conn.id, conn.user.id, conn.remote, reconnect)
        hb = rt.config.heartbeat
        rt.hub.send(conn, {
            "type": "welcome", "conn": conn.id, "user": self.user.to_json(),
            "heartbeat": {"interval": hb.client_interval, "timeout": hb.client_timeout},
            "server_time": round(time.time(), 3),
        })

    def on_close(self) -> None:
        conn = self.conn
        if conn is None:
            return
        if conn.close_reason is None:
            conn.close_reason, conn.close_code = "client_close", self.close_code
        rt = self.runtime
        rt.registry.remove(conn)
        rt.hub.disconnect(conn)
        reason, code = conn.close_reason, conn.close_code
        log.info("connection %s closed: user=%s reason=%s code=%s lived=%.1fs",
                 conn.id, conn.user.id, reason, code, time.time() - conn.connected_at)

    def too_big(self) -> None:
        if self.conn is not None and self.conn.close_reason is None:
            self.conn.close_reason, self.conn.close_code = "too_big", p.CLOSE_TOO_BIG

    # --- inbound ---

    def on_message(self, message: str | bytes) -> None:
        conn = self.conn
        if conn is None:
            return
        conn.last_seen = time.monotonic()
        conn.frames_in += 1
        rt = self.runtime
        if message == p.PING:
            rt.metrics.received.labels("ping").inc()
            rt.metrics.app_pings.inc()
            rt.hub.send(conn, PONG)
            return
        try:
            if isinstance(message, bytes):
                raise ProtocolError("bad_request", "binary frames are not supported")
            command = p.parse_frame(message, max_text_chars=rt.config.limits.max_text_chars)
        except ProtocolError as exc:
            rt.metrics.received.labels("invalid").inc()
            rt.hub.error(conn, exc.code, exc.message, exc.cid)
            return
        rt.metrics.received.labels(_KINDS[type(command)]).inc()
        try:
            rt.hub.handle(conn, command)
        except Exception:
            log.exception("connection %s: error handling %s", conn.id, type(command).__name__)
            conn.end("error", 1011, "internal error")

    def on_pong(self, data: bytes) -> None:
        if self.conn is not None:
            rtt = Heartbeat.pong_received(self.conn, data, time.monotonic())
            if rtt is not None:
                self.runtime.metrics.rtt.observe(rtt)

    def on_ping(self, data: bytes) -> None:
        if self.conn is not None:
            self.conn.last_seen = time.monotonic()

    # --- Transport ---

    def send(self, frame: Outbound) -> bool:
        ws = self.ws_connection
        if ws is None or ws.is_closing():
            return False
        try:
            if getattr(ws, "_compressor", None) is not None:
                ws.write_message(frame.text)
            else:
                assert ws.stream is not None
                ws.stream.write(frame.wire)
        except StreamClosedError:
            return False
        return True

    def send_ping(self, payload: bytes) -> None:
        ws = self.ws_connection
        if ws is not None and not ws.is_closing():
            with contextlib.suppress(StreamClosedError):
                ws.write_ping(payload)

    def abort(self) -> None:
        ws = self.ws_connection
        if ws is not None and ws.stream is not None:
            ws.stream.close()
        else:
            self.on_connection_close()


_KINDS: dict[type, str] = {
    p.Join: "join", p.Leave: "leave", p.Say: "say", p.DirectMessage: "dm",
    p.History: "history", p.DmSync: "dm_sync",
}
