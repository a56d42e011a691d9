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
from typing import Any, Protocol, TypeVar

import tornado.web
from tornado.iostream import StreamBufferFullError
from tornado.websocket import WebSocketClosedError, WebSocketHandler

from ..config import ADMIN_OPERATOR
from ..core.errors import StoreError
from ..core.protocol import CLOSE_KICKED
from ..core.ratelimit import KeyedLimiter
from ..core.registry import Connection, Registry
from ..core.store import Appended
from ..ops.metrics import Metrics
from ..ops.stats import ClosedLog, Samples
from ..storage.base import AuditEntry, Backend
from .audit import BAN, DISCONNECT, DISCONNECT_USER, UNBAN, Audit, audit_json
from .bans import MAX_ID, MAX_SECONDS, MIN_SECONDS, Bans, ban_json, cut_reason
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


def client_json(conn: Connection, *, mono_now: float, wall_now: float, ping_timeout: float) -> dict[str, Any]:
    """One live connection as the admin API shows it."""
    idle = max(0.0, mono_now - conn.last_seen)
    return {
        "id": conn.id, "user": conn.user.id, "name": conn.user.name, "rooms": sorted(conn.rooms),
        "remote": conn.remote, "user_agent": conn.user_agent,
        "connected_at": round(conn.connected_at, 3), "last_seen": round(wall_now - idle, 3),
        "idle": round(idle, 3), "rtt": None if conn.rtt is None else round(conn.rtt, 6),
        "frames_in": conn.frames_in, "frames_out": conn.frames_out, "reconnect": conn.reconnect,
        "health": "amber" if idle > ping_timeout / 2 else "green",
    }


class ClusterDirectory(Protocol):
    """The other nodes' connections, when this node is one of a cluster
    (cluster/directory.py's Directory)."""

    node_id: str

    async def others(self, max_age: float = 0.0) -> list[dict[str, Any]]:
        """The other nodes' rows (client_json's fields, the live ones None, and `node`)."""

    async def locate_user(self, user_id: str) -> dict[str, int]:
        """The other nodes holding connections of the user, with how many."""

    async def locate_conn(self, conn_id: str) -> str | None:
        """The other node holding the connection, if any."""

    def kick(self, reason: str, *, user: str | None = None, conn: str | None = None) -> None:
        """Tell the other nodes to close the user's connections, or one connection."""


# The API and every open dashboard share one read of the other nodes' rows this young.
SHARED_READ_SECONDS = 0.9


class AdminView:
    """Builds what the API and the push channel send, and pushes changes: it follows
    the registry's opened and closed connections (and keeps the log of closed ones)
    and the samples taken once a second. With `cluster`, the clients and the totals
    are the whole cluster's: this node's rows live, the others' from the directory."""

    def __init__(self, registry: Registry, samples: Samples, *, ping_timeout: float,
                 rooms: Callable[[], int], started_at: float,
                 cluster: ClusterDirectory | None = None, closed_log: ClosedLog | None = None) -> None:
        self.registry = registry
        self.samples = samples
        self.ping_timeout = ping_timeout
        self.rooms = rooms  # how many rooms have members now
        self.started_at = started_at
        self.cluster = cluster
        self.closed_log = closed_log or ClosedLog()
        self.sockets: set[AdminSocket] = set()
        self._ticking: asyncio.Future[None] | None = None
        self._read_failed = False
        registry.on_open.append(self.opened)
        registry.on_close.append(self.closed_one)
        samples.on_add.append(self.tick)

    def clients(self) -> list[dict[str, Any]]:
        """This node's clients (each with its `node` when in a cluster)."""
        mono, wall = time.monotonic(), time.time()
        timeout = self.ping_timeout
        rows = [client_json(c, mono_now=mono, wall_now=wall, ping_timeout=timeout)
                for c in self.registry]
        if self.cluster is not None:
            node = self.cluster.node_id
            for row in rows:
                row["node"] = node
        return rows

    async def all_clients(self) -> list[dict[str, Any]]:
        """The clients of the whole cluster (this node's alone when it is not in one, or
        when the directory cannot be read: logged once until it can)."""
        rows = self.clients()
        if self.cluster is None:
            return rows
        try:
            others = await self.cluster.others(SHARED_READ_SECONDS)
        except Exception as exc:
            if not self._read_failed:
                self._read_failed = True
                log.warning("admin: the other nodes' connections cannot be read (%r); "
                            "showing this node's (logged once)", exc)
            return rows
        self._read_failed = False
        here = {row["id"] for row in rows}
        return rows + [row for row in others if row["id"] not in here]

    def closed(self) -> list[dict[str, Any]]:
        return [entry.to_json() for entry in self.closed_log.entries()]

    def stats(self, *, series: bool = True,
              clients: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """The totals; given the cluster's `clients`, its connections, users and rooms."""
        samples = self.samples
        if clients is None:
            connections, users, rooms = len(self.registry), self.registry.users_online(), self.rooms()
        else:
            connections, users = len(clients), len({c["user"] for c in clients})
            rooms = len({room for c in clients for room in c["rooms"]})
        totals: dict[str, Any] = {
            "connections": connections, "users": users, "rooms": rooms,
            "terminations_5m": samples.since(300, "terminations"),
            "reconnects_5m": samples.since(300, "reconnects"),
            "messages_per_second": round(samples.rate("messages"), 2),
            "uptime": round(time.time() - self.started_at, 1),
        }
        if series:
            totals["series"] = samples.series()
        if self.cluster is not None:
            totals["node"] = self.cluster.node_id
            totals["nodes"] = len({c.get("node") for c in clients or ()} | {self.cluster.node_id})
        return totals

    async def cluster_stats(self, *, series: bool = True) -> dict[str, Any]:
        """The totals of the whole cluster (this node's when it is not in one)."""
        if self.cluster is None:
            return self.stats(series=series)
        return self.stats(series=series, clients=await self.all_clients())

    async def snapshot(self) -> dict[str, Any]:
        """What a dashboard gets first."""
        clients = await self.all_clients() if self.cluster is not None else self.clients()
        return {"type": "snapshot", "clients": clients, "closed": self.closed(),
                "stats": self.stats(clients=clients if self.cluster is not None else None)}

    # --- push ---

    def push(self, event: dict[str, Any]) -> None:
        if not self.sockets:
            return
        text = json.dumps(event, separators=(",", ":"))
        for sock in list(self.sockets):
            try:
                sock.write_message(text)
            except (WebSocketClosedError, StreamBufferFullError):
                # closed, or a dashboard that stopped reading: drop it, it reconnects
                self.sockets.discard(sock)
                sock.close()

    def opened(self, conn: Connection) -> None:
        if self.sockets:
            mono, wall = time.monotonic(), time.time()
            client = client_json(conn, mono_now=mono, wall_now=wall, ping_timeout=self.ping_timeout)
            if self.cluster is not None:
                client["node"] = self.cluster.node_id
            self.push({"type": "opened", "client": client})

    def audited(self, entry: AuditEntry) -> None:
        """An operator action kept in the audit log (by this node)."""
        self.push({"type": "audit", "entry": audit_json(entry)})

    def closed_one(self, conn: Connection) -> None:
        entry = self.closed_log.add(conn)
        self.push({"type": "closed", "closed": entry.to_json()})

    def tick(self) -> None:
        """Once a second: totals, the clients, and the charts' newest point (the
        full series went with the snapshot)."""
        if not self.sockets:
            return
        if self.cluster is None:
            self.push({"type": "tick", "stats": self.stats(series=False),
                       "point": self.samples.newest_point(), "clients": self.clients()})
        elif self._ticking is None:  # one read at a time, whatever the number of dashboards
            self._ticking = asyncio.ensure_future(self._cluster_tick())

    async def _cluster_tick(self) -> None:
        try:
            point = self.samples.newest_point()
            clients = await self.all_clients()
            self.push({"type": "tick", "stats": self.stats(series=False, clients=clients),
                       "point": point, "clients": clients})
        finally:
            self._ticking = None

    def end_session(self, session: str) -> None:
        """Close the push channels opened with a session that logged out."""
        for sock in list(self.sockets):
            if sock.session == session:
                sock.close(4001, "logged out")


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


class ClientsHandler(AdminHandler):
    async def get(self) -> None:
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(await self.view.all_clients()))


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
    """The dashboard's push channel: a snapshot, then opened/closed/tick events."""

    def initialize(self, admin: AdminDeps) -> None:
        self.admin = admin
        self.session: str | None = None

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
        view = self.admin.view
        snapshot = await view.snapshot()
        if self.ws_connection is None or self.ws_connection.is_closing():
            return  # gone while the other nodes' rows were read
        view.sockets.add(self)
        self.write_message(json.dumps(snapshot))

    def on_message(self, message: str | bytes) -> None:
        pass  # the channel only pushes

    def on_close(self) -> None:
        self.admin.view.sockets.discard(self)


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
