"""The admin side: who may act, the JSON API, and the dashboard's push channel.

Access takes the admin token (config `admin.token`, or one generated at start
and logged once): as `Authorization: Bearer <token>` for scripts, or through
the login form, which sets a signed admin session cookie. Requests that
change something and come with the cookie must also carry the session's CSRF
token in `X-CSRF-Token`, which a cross-site page cannot read.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import tornado.web
from tornado.websocket import WebSocketHandler

from ..config import ADMIN_OPERATOR
from ..core.errors import StoreError
from ..core.protocol import CLOSE_KICKED
from ..core.ratelimit import KeyedLimiter
from ..core.registry import Registry
from ..core.store import Appended
from ..ops.metrics import Metrics
from ..storage.base import Backend
from .adminview import MAX_VIEW_BYTES, AdminView, Subscriber
from .audit import BAN, DISCONNECT, DISCONNECT_USER, UNBAN, Audit
from .bans import MAX_ID, MAX_SECONDS, MIN_SECONDS, Bans, ban_json, cut_reason
from .clientlist import MAX_TOP, TOP, BadQuery, parse_query, query_arguments
from .security import origin_allowed
from .untrusted import same_secret
from .web import JsonHandler, RevalidatedStaticHandler, failed_attempt, throttled

log = logging.getLogger("imserver.admin")

T = TypeVar("T")

ADMIN_COOKIE = "imserver_admin"
ADMIN_PUSH_BUFFER = 8 * 1024 * 1024  # a dashboard that stops reading is dropped past this


class AdminAuth:
    """The admin tokens and the sessions opened with them. Each token names an operator
    for the audit log: admin.token is "admin", each of admin.operators its own name."""

    def __init__(self, token: str, secret: str, *, operators: Mapping[str, str] | None = None,
                 session_seconds: float = 12 * 3600, max_sessions: int = 100) -> None:
        self.generated = not token
        self.token = token or secrets.token_urlsafe(24)
        self._tokens = [(ADMIN_OPERATOR, self.token), *(operators or {}).items()]  # name, token
        self._csrf_key = hashlib.sha256(("csrf:" + secret).encode()).digest()
        self.session_seconds = session_seconds
        self.max_sessions = max_sessions
        # session -> (expiry (monotonic), operator), oldest first
        self._sessions: dict[str, tuple[float, str]] = {}

    def operator_of(self, given: str) -> str | None:
        """The operator whose token `given` is, or None."""
        found = None
        for name, token in self._tokens:  # every one compared: no timing tells which
            if same_secret(given, token):
                found = name
        return found

    def token_ok(self, given: str) -> bool:
        return self.operator_of(given) is not None

    def open_session(self, operator: str = ADMIN_OPERATOR) -> str:
        """A new session of `operator`; the oldest is dropped past `max_sessions`."""
        session = secrets.token_urlsafe(24)
        self._sessions[session] = (time.monotonic() + self.session_seconds, operator)
        while len(self._sessions) > self.max_sessions:
            del self._sessions[next(iter(self._sessions))]
        return session

    def close_session(self, session: str) -> None:
        self._sessions.pop(session, None)

    def session_operator(self, session: str) -> str | None:
        """The operator of a session still open, or None."""
        found = self._sessions.get(session)
        if found is None:
            return None
        if found[0] < time.monotonic():
            del self._sessions[session]
            return None
        return found[1]

    def session_ok(self, session: str) -> bool:
        return self.session_operator(session) is not None

    def csrf_token(self, session: str) -> str:
        return hmac.new(self._csrf_key, session.encode(), hashlib.sha256).hexdigest()


@dataclass(eq=False)
class AdminDeps:
    """What the admin handlers use, handed to them by the app."""

    auth: AdminAuth
    failures: KeyedLimiter  # wrong admin tokens, per address
    view: AdminView
    registry: Registry
    resolve: Callable[[str], str]  # a user id, or a guest name held now -> its user id
    metrics: Metrics
    cookie_secure: bool
    bans: Bans
    audit: Audit
    store: Backend  # mutes, and the messages of a room
    # an operator's deletion of a message (the hub's operator_delete): Refused("not_found")
    delete_message: Callable[[int], asyncio.Future[Appended]]
    api_key: str = ""  # the server API's key: its disconnect and ban are these handlers'


class AdminBase(JsonHandler):
    def initialize(self, admin: AdminDeps) -> None:
        self.admin = admin


class AdminHandler(AdminBase):
    """Base of the admin API: refuses anyone without the admin credential."""

    via: str = ""
    operator: str = ""  # who acts, for the audit log

    def prepare(self) -> None:
        auth = self.admin.auth
        header = self.request.headers.get("Authorization", "")
        if header.startswith("Bearer "):
            if throttled(self, self.admin.failures):
                return
            operator = auth.operator_of(header[7:])
            if operator is not None:
                self.via, self.operator = "bearer", operator
                return
            failed_attempt(self, self.admin.failures)
        session = self.admin_session()
        operator = None if session is None else auth.session_operator(session)
        if session is None or operator is None:
            self.fail(401, "unauthorized", "admin login required")
            return
        self.via, self.operator = "cookie", operator
        if self.request.method not in ("GET", "HEAD"):
            given = self.request.headers.get("X-CSRF-Token", "")
            if not same_secret(given, auth.csrf_token(session)):
                self.fail(403, "csrf", "missing or wrong X-CSRF-Token header")

    def admin_session(self) -> str | None:
        raw = self.get_signed_cookie(ADMIN_COOKIE)
        session = raw.decode() if raw else ""
        return session if session and self.admin.auth.session_ok(session) else None

    @property
    def view(self) -> AdminView:
        return self.admin.view

    @property
    def how(self) -> str:
        """How the operator acts: the way in and the address ("api from 10.0.0.5")."""
        return f"{'dashboard' if self.via == 'cookie' else 'api'} from {self.request.remote_ip}"

    async def finish_audited(self, answer: dict[str, Any], action: str, target: str, *,
                             reason: str = "", detail: str = "") -> None:
        """Answer, once the action is in the audit log (`"audited": false` when the store
        could not keep it: the action stands, the server's log has the entry)."""
        entry = await self.admin.audit.record(
            self.operator, action, target, reason=reason,
            detail=f"{self.how}; {detail}" if detail else self.how)
        self.finish(answer if entry is not None else {**answer, "audited": False})


class AdminLoginHandler(AdminBase):
    def post(self) -> None:
        if throttled(self, self.admin.failures):
            return
        body = self.json_body()
        if body is None:
            return
        token = body.get("token")
        auth = self.admin.auth
        operator = auth.operator_of(token) if isinstance(token, str) else None
        if operator is None:
            failed_attempt(self, self.admin.failures)
            self.admin.metrics.refused.labels("admin_login").inc()
            log.warning("admin login refused from %s", self.request.remote_ip)
            self.fail(401, "unauthorized", "wrong admin token")
            return
        session = auth.open_session(operator)
        self.set_signed_cookie(ADMIN_COOKIE, session, expires_days=None, httponly=True,
                               samesite="Strict", secure=self.admin.cookie_secure,
                               path="/admin")
        log.info("operator %s logged in from %s", operator, self.request.remote_ip)
        self.finish({"csrf": auth.csrf_token(session), "operator": operator})


class AdminSessionHandler(AdminHandler):
    def get(self) -> None:
        session = self.admin_session()
        self.finish({"csrf": self.admin.auth.csrf_token(session) if session else None,
                     "via": self.via, "operator": self.operator})


class AdminLogoutHandler(AdminHandler):
    def post(self) -> None:
        session = self.admin_session()
        if session:
            self.admin.auth.close_session(session)
            self.view.end_session(session)
        self.clear_cookie(ADMIN_COOKIE, path="/admin")
        self.set_status(204)
        self.finish()


def arguments(handler: AdminHandler) -> dict[str, str] | None:
    """The request's query arguments, each given once (None after answering 400)."""
    try:
        return query_arguments(handler.request.query_arguments)
    except BadQuery as exc:
        handler.fail(400, "bad_request", str(exc))
        return None


class ClientsHandler(AdminHandler):
    """A page of the cluster's live connections, filtered and sorted, with the totals
    (clientlist.py has the arguments)."""

    async def get(self) -> None:
        args = arguments(self)
        if args is None:
            return
        try:
            query = parse_query(args)
        except BadQuery as exc:
            self.fail(400, "bad_request", str(exc))
            return
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps((await self.view.page(query)).to_json()))


class SummaryHandler(AdminHandler):
    """The small tables of an incident: `?top=<n>` rows each (1 to 100, default 10)."""

    async def get(self) -> None:
        args = arguments(self)
        if args is None:
            return
        if set(args) - {"top"}:
            self.fail(400, "bad_request", "the summary takes only top")
            return
        raw = args.get("top", str(TOP))
        if not (raw.isascii() and raw.isdigit()) or len(raw) > 3 or not 1 <= int(raw) <= MAX_TOP:
            self.fail(400, "bad_request", f"top must be a whole number from 1 to {MAX_TOP}")
            return
        self.finish(await self.view.cluster_summary(top=int(raw)))


class ClosedHandler(AdminHandler):
    def get(self) -> None:
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(self.view.closed()))


class StatsHandler(AdminHandler):
    async def get(self) -> None:
        self.finish(await self.view.cluster_stats())


def body_fields(handler: AdminHandler, allowed: frozenset[str] | None = None,
                what: str = "") -> dict[str, Any] | None:
    """The JSON body's fields (none without a body), or None after answering 400; with
    `allowed`, a field outside it is refused."""
    body = handler.json_body() if handler.request.body else {}
    if body is None:
        return None
    unknown = sorted(set(body) - allowed) if allowed is not None else []
    if unknown:
        handler.fail(400, "bad_request", f"unknown field {unknown[0][:40]!r}: {what} takes "
                     f"{' and '.join(sorted(allowed or ())) or 'no field'}")
        return None
    return body


def reason_field(handler: AdminHandler, body: dict[str, Any], default: str | None) -> str | None:
    """The body's `reason` (cut as a close frame carries it), `default` when absent (None:
    ""), or None after answering 400."""
    if "reason" not in body:
        return default or ""
    reason = body["reason"]
    if not isinstance(reason, str) or not cut_reason(reason):
        handler.fail(400, "bad_request", "reason must be a non-empty string")
        return None
    return cut_reason(reason)


def _reason(handler: AdminHandler) -> str | None:
    """The operator's reason for a disconnect, or None after answering 400."""
    body = body_fields(handler)
    return None if body is None else reason_field(handler, body, "disconnected by an operator")


class DisconnectClientHandler(AdminHandler):
    """Closes one connection: here if it is here, else on the node the directory names."""

    async def post(self, conn_id: str) -> None:
        reason = _reason(self)
        if reason is None:
            return
        conn = self.admin.registry.get(conn_id)
        if conn is not None:
            conn.end("kicked", CLOSE_KICKED, reason)
            log.info("operator %s disconnected connection %s: %s", self.operator, conn_id, reason)
            await self.finish_audited({"disconnected": [conn_id]}, DISCONNECT, conn_id,
                                      reason=reason, detail=f"user {conn.user.id}")
            return
        cluster = self.view.cluster
        node = None
        if cluster is not None:
            try:
                node = await cluster.locate_conn(conn_id)
            except Exception as exc:
                log.warning("admin: the directory cannot be read (%r): connection %s told to "
                            "every node", exc, conn_id)
                cluster.kick(reason, conn=conn_id)
                await self.admin.audit.record(self.operator, DISCONNECT, conn_id, reason=reason,
                                              detail=f"{self.how}; every node told (no directory)")
                self.fail(503, "unavailable", "the cluster's directory cannot be read now; "
                          "the other nodes were told to close the connection if they hold it")
                return
        if cluster is None or node is None:
            self.fail(404, "not_found", f"no live connection {conn_id}")
            return
        cluster.kick(reason, conn=conn_id)
        log.info("operator %s disconnected connection %s on node %s: %s", self.operator, conn_id,
                 node, reason)
        await self.finish_audited({"disconnected": [], "elsewhere": {node: 1}, "told": True},
                                  DISCONNECT, conn_id, reason=reason, detail=f"on node {node}")


class DisconnectUserHandler(AdminHandler):
    """Closes every connection of a user: here, and on every node the directory has
    it on (told over the bus)."""

    async def post(self, user_id: str) -> None:
        reason = _reason(self)
        if reason is None:
            return
        registry = self.admin.registry
        # The user id; or, for a guest, the name it holds now.
        target = user_id
        conns = registry.of_user(user_id)
        if not conns:
            resolved = self.admin.resolve(user_id)
            if registry.of_user(resolved):
                target, conns = resolved, registry.of_user(resolved)
        elsewhere: dict[str, int] = {}
        cluster = self.view.cluster
        if cluster is not None:
            try:
                elsewhere = await cluster.locate_user(target)
                if not elsewhere and not conns and target == user_id:
                    resolved = self.admin.resolve(user_id)
                    if resolved != user_id:
                        target, elsewhere = resolved, await cluster.locate_user(resolved)
            except Exception as exc:
                log.warning("admin: the directory cannot be read (%r): user %s told to every "
                            "node", exc, target)
                cluster.kick(reason, user=target)
                if not conns:
                    await self.admin.audit.record(
                        self.operator, DISCONNECT_USER, target, reason=reason,
                        detail=f"{self.how}; every node told (no directory)")
                    self.fail(503, "unavailable", "the cluster's directory cannot be read now; "
                              "the other nodes were told to close the user's connections")
                    return
                elsewhere = {}
        if not conns and not elsewhere:
            self.fail(404, "not_found", f"user {user_id} has no live connection")
            return
        for conn in conns:
            conn.end("kicked", CLOSE_KICKED, reason)
        if cluster is not None and elsewhere:
            cluster.kick(reason, user=target)
        log.info("operator %s disconnected user %s (%d connections here, %d elsewhere): %s",
                 self.operator, user_id, len(conns), sum(elsewhere.values()), reason)
        answer: dict[str, Any] = {"disconnected": sorted(c.id for c in conns)}
        if cluster is not None:
            answer.update(elsewhere=elsewhere, told=bool(elsewhere))
        reached = ", ".join([f"{len(conns)} here"] + [f"{n} on {node}" for node, n in elsewhere.items()])
        await self.finish_audited(answer, DISCONNECT_USER, target, reason=reason,
                                  detail=f"connections: {reached}")


TIMED_FIELDS = frozenset({"reason", "seconds"})
REASON_FIELD = frozenset({"reason"})


def timed_body(handler: AdminHandler, what: str, default: str) -> tuple[str, int | None] | None:
    """The reason (`default` when absent) and duration (None: until lifted) of a ban or
    a mute (`what`), or None after answering 400."""
    body = body_fields(handler, TIMED_FIELDS, f"a {what}")
    if body is None:
        return None
    reason = reason_field(handler, body, default)
    if reason is None:
        return None
    seconds = body.get("seconds")
    if seconds is not None and (isinstance(seconds, bool) or not isinstance(seconds, int)
                                or not MIN_SECONDS <= seconds <= MAX_SECONDS):
        handler.fail(400, "bad_request", f"seconds must be a whole number from {MIN_SECONDS} to "
                     f"{MAX_SECONDS} (ten years), or absent for a {what} until lifted")
        return None
    return reason, seconds


def lift_reason(handler: AdminHandler, what: str) -> str | None:
    """The optional reason of a lift ("" when none is given), or None after answering 400."""
    body = body_fields(handler, REASON_FIELD, f"lifting a {what}")
    return None if body is None else reason_field(handler, body, None)


def duration_text(seconds: int | None) -> str:
    return "until lifted" if seconds is None else f"for {seconds} s"


def with_user(handler: AdminHandler, parsed: T | None, user_id: str) -> tuple[T, str] | None:
    """What was parsed from the request (None: refused already) and the user id the path
    names, or None after answering 400."""
    if parsed is None:
        return None
    target = user_target(handler, user_id)
    return None if target is None else (parsed, target)


def user_target(handler: AdminHandler, user_id: str) -> str | None:
    """The user id a path names (a user id, or a guest name held now), or None after
    answering 400."""
    if not user_id or len(user_id) > MAX_ID or not user_id.isprintable():
        handler.fail(400, "bad_request", f"a user id is 1 to {MAX_ID} printable characters")
        return None
    if handler.admin.registry.of_user(user_id) or handler.admin.bans.of(user_id) is not None:
        return user_id
    return handler.admin.resolve(user_id)


class BanHandler(AdminHandler):
    """Bans a user (POST) or lifts the ban (DELETE). A ban is kept in the store,
    closes the user's connections on every node, and refuses their upgrades and
    guest logins until it expires or is lifted."""

    async def post(self, user_id: str) -> None:
        found = with_user(self, timed_body(self, "ban", "banned by an operator"), user_id)
        if found is None:
            return
        (reason, seconds), target = found
        try:
            ban, closed = await self.admin.bans.ban(target, reason, seconds=seconds, by=self.how)
        except StoreError as exc:
            log.warning("operator ban of user %s not kept: %s", target, exc)
            self.fail(503, "unavailable", "the ban cannot be kept now, try again")
            return
        log.info("operator %s banned user %s (%s, %d connections here): %s", self.operator, target,
                 duration_text(seconds), len(closed), reason)
        await self.finish_audited(
            {**ban_json(ban), "disconnected": sorted(c.id for c in closed),
             "told": self.view.cluster is not None},
            BAN, target, reason=reason,
            detail=f"{duration_text(seconds)}; connections closed here: {len(closed)}")

    async def delete(self, user_id: str) -> None:
        found = with_user(self, lift_reason(self, "ban"), user_id)
        if found is None:
            return
        reason, target = found
        try:
            lifted = await self.admin.bans.lift(target)
        except StoreError as exc:
            log.warning("operator lift of user %s's ban not kept: %s", target, exc)
            self.fail(503, "unavailable", "the ban cannot be lifted now, try again")
            return
        if not lifted:
            self.fail(404, "not_found", f"user {user_id} is not banned")
            return
        log.info("operator %s lifted the ban of user %s", self.operator, target)
        await self.finish_audited({"lifted": target}, UNBAN, target, reason=reason)


class BansHandler(AdminHandler):
    def get(self) -> None:
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps([ban_json(b) for b in self.admin.bans.in_force()]))


class AdminSocket(WebSocketHandler):
    """The dashboard's push channel (adminview.py has what it says): a snapshot, then
    the page of the dashboard's view and the ticks."""

    def initialize(self, admin: AdminDeps) -> None:
        self.admin = admin
        self.session: str | None = None
        self.subscriber = Subscriber()

    @property
    def max_message_size(self) -> int:
        return MAX_VIEW_BYTES  # the dashboard sends only its view

    async def get(self, *args: Any, **kwargs: Any) -> None:
        # Tornado's own check passes any origin whose host:port is the request's Host.
        origin = self.request.headers.get("Origin")
        if origin is not None and not self.check_origin(origin):
            self.set_status(403)
            self.finish({"error": "forbidden_origin", "message": "cross-origin connection not allowed"})
            return
        raw = self.get_signed_cookie(ADMIN_COOKIE)
        header = self.request.headers.get("Authorization", "")
        auth = self.admin.auth
        if raw is not None and auth.session_ok(raw.decode()):
            self.session = raw.decode()
        elif header.startswith("Bearer ") and throttled(self, self.admin.failures):
            return
        elif not (header.startswith("Bearer ") and auth.token_ok(header[7:])):
            if header.startswith("Bearer "):
                failed_attempt(self, self.admin.failures)
            self.set_status(401)
            self.finish({"error": "unauthorized", "message": "admin login required"})
            return
        await super().get(*args, **kwargs)

    def check_origin(self, origin: str) -> bool:
        return origin_allowed(origin, self.request.host, (), self.request.protocol)  # same origin only

    async def open(self, *args: str, **kwargs: str) -> None:
        ws = self.ws_connection
        if ws is not None and ws.stream is not None:
            ws.stream.max_write_buffer_size = ADMIN_PUSH_BUFFER
        await self.admin.view.open(self)
        if self.ws_connection is None or self.ws_connection.is_closing():
            self.admin.view.gone(self)  # gone while the other nodes' rows were read

    def on_message(self, message: str | bytes) -> None:
        self.admin.view.viewed(self, message)

    def on_close(self) -> None:
        self.admin.view.gone(self)


def admin_routes(admin: AdminDeps, dashboard_dir: str) -> list[Any]:
    deps = {"admin": admin}
    return [
        (r"/admin/?", PageHandler, {"path": f"{dashboard_dir}/index.html"}),
        # The page's modules at a URL that mirrors the repository (dashboard/ next to
        # static/), so that their relative imports of static/shared/ resolve alike in
        # the browser and in node.
        (r"/dashboard/(.*)", RevalidatedStaticHandler, {"path": dashboard_dir}),
        (r"/admin/ws", AdminSocket, deps),
        (r"/admin/api/login", AdminLoginHandler, deps),
        (r"/admin/api/logout", AdminLogoutHandler, deps),
        (r"/admin/api/session", AdminSessionHandler, deps),
        (r"/admin/api/clients", ClientsHandler, deps),
        (r"/admin/api/closed", ClosedHandler, deps),
        (r"/admin/api/stats", StatsHandler, deps),
        (r"/admin/api/summary", SummaryHandler, deps),
        (r"/admin/api/clients/([^/]+)/disconnect", DisconnectClientHandler, deps),
        (r"/admin/api/users/([^/]+)/disconnect", DisconnectUserHandler, deps),
        (r"/admin/api/users/([^/]+)/ban", BanHandler, deps),
        (r"/admin/api/bans", BansHandler, deps),
    ]


class PageHandler(tornado.web.RequestHandler):
    """One HTML file, never cached (it names the scripts to load)."""

    def initialize(self, path: str) -> None:
        self.path = path

    def get(self) -> None:
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.set_header("Cache-Control", "no-cache")
        with open(self.path, "rb") as f:
            self.finish(f.read())
