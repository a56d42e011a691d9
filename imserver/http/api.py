"""The server API, for the application's backend: publish into a room or to a user,
read a room's presence and history, disconnect or ban a user. `Authorization: Bearer
<api.key>`; with no key configured the API is off (404). Its OpenAPI document is
served at /api/v1/openapi.json (openapi.py), and every answer here is one it
documents. A disconnect or a ban is the admin API's, done by the operator "app"
(so the audit log says the application did it).

A publish carries an idempotency key (the `Idempotency-Key` header, or the
body's `idempotency_key`): it is the message's cid for its sender, so a publish
retried with the same key is stored and delivered once, and answered with the
first one's id (200 instead of 201).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import tornado.web

from ..core import protocol as p
from ..core.errors import Refused, StoreError, UnknownUser
from ..core.hub import Hub
from ..core.ratelimit import KeyedLimiter
from ..core.store import Appended, Store
from .admin import AdminDeps, AdminHandler, BanHandler, DisconnectUserHandler
from .openapi import IDEMPOTENCY_KEY_PATTERN, openapi
from .untrusted import same_secret
from .web import JsonHandler, failed_attempt, throttled

NAME_MAX = 64
KEY_RE = re.compile(IDEMPOTENCY_KEY_PATTERN[1:-1])
PUBLISH_FIELDS = frozenset({"text", "from", "name", "idempotency_key"})


@dataclass(frozen=True)
class ApiDeps:
    key: str
    failures: KeyedLimiter
    hub: Hub
    store: Store
    max_text_chars: int
    history_page: int
    # Who is in a room now, on every node: user id -> display name.
    presence: Callable[[str], Awaitable[dict[str, str]]]


APP_OPERATOR = "app"  # who the audit log says acted, for a call of the server API


def key_given(handler: JsonHandler, key: str, failures: KeyedLimiter) -> bool:
    """Does the request carry the API key? Otherwise it has been answered (404 with the
    API off, 429 after too many failures, 401)."""
    if not key:
        handler.fail(404, "not_found", "the server API is off: set api.key in config.yaml")
        return False
    if throttled(handler, failures):
        return False
    header = handler.request.headers.get("Authorization", "")
    if header[:7].lower() == "bearer " and same_secret(header[7:].strip(), key):
        return True
    failed_attempt(handler, failures)
    handler.fail(401, "unauthorized", "send Authorization: Bearer <api.key>")
    return False


def allow_header(handler: tornado.web.RequestHandler, status_code: int) -> None:
    """On a 405, say which methods there are (RFC 9110)."""
    if status_code == 405:
        handler.set_header("Allow", ", ".join(
            m for m in ("GET", "POST", "DELETE")
            if getattr(type(handler), m.lower()) is not getattr(tornado.web.RequestHandler, m.lower())))


class ApiHandler(JsonHandler):
    """Refuses anyone without the API key; the API is off without one."""

    def initialize(self, api: ApiDeps) -> None:
        self.api = api

    def prepare(self) -> None:
        key_given(self, self.api.key, self.api.failures)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        allow_header(self, status_code)
        super().write_error(status_code, **kwargs)

    def room_of(self, room: str) -> bool:
        if p.valid_room(room):
            return True
        self.fail(400, "bad_request", "room must be 1-64 letters, digits, '-', '_' or '.'")
        return False

    async def publish(self, *, room: str | None = None, to: str | None = None) -> None:
        body = self.json_body()
        if body is None:
            return
        wanted = self._message(body)
        if wanted is None:
            return
        sender, name, text, key = wanted
        try:
            done = await self.api.hub.post(sender, name, text, key, room=room, to=to)
        except UnknownUser:
            self.fail(404, "unknown_user", f"no user {to!r} has ever connected")
            return
        except Refused as exc:
            self.fail(403, exc.code, str(exc))
            return
        except (StoreError, asyncio.CancelledError):
            self.fail(503, "unavailable", "the message store cannot take it now; retry with the "
                      "same idempotency key")
            return
        self.set_status(200 if done.duplicate else 201)
        self.finish(_published(done))

    def _message(self, body: dict[str, Any]) -> tuple[str, str, str, str | None] | None:
        unknown = sorted(set(body) - PUBLISH_FIELDS)
        if unknown:
            self.fail(400, "bad_request", f"unknown field {unknown[0][:40]!r}")
            return None
        sender = body.get("from", "app")
        if not p.valid_user_id(sender):
            self.fail(400, "bad_request", "from must be a user id (1-64 letters, digits, _.-@|:+)")
            return None
        name = body.get("name", sender)
        if not isinstance(name, str) or not 0 < len(name) <= NAME_MAX:
            self.fail(400, "bad_request", f"name must be a string of 1-{NAME_MAX} characters")
            return None
        text = body.get("text")
        if not isinstance(text, str) or not p.clean_text(text).strip():
            self.fail(400, "bad_request", "text must hold something besides spaces and controls")
            return None
        if len(text) > self.api.max_text_chars:
            self.fail(400, "too_long", f"text is longer than {self.api.max_text_chars} characters")
            return None
        given = []  # the body's key, then the header's: the header wins
        if "idempotency_key" in body:
            given.append(body["idempotency_key"])
        if "Idempotency-Key" in self.request.headers:
            given.append(self.request.headers["Idempotency-Key"])
        if not all(isinstance(key, str) and KEY_RE.fullmatch(key) for key in given):
            self.fail(400, "bad_request", "an idempotency key must be 1-128 visible ASCII "
                      "characters (no spaces)")
            return None
        key = given[-1] if given else None
        return sender, p.clean_text(name).strip() or sender, p.clean_text(text), key


def _published(done: Appended) -> dict[str, Any]:
    return {"id": done.message.id, "ts": done.message.ts, "duplicate": done.duplicate}


class RoomMessagesHandler(ApiHandler):
    async def post(self, room: str) -> None:
        if self.room_of(room):
            await self.publish(room=room)

    async def get(self, room: str) -> None:
        if not self.room_of(room):
            return
        unknown = sorted(set(self.request.query_arguments) - {"before", "limit"})
        if unknown:
            self.fail(400, "bad_request", f"unknown query argument {unknown[0][:40]!r}")
            return
        try:
            before = _bounded(self.get_query_argument("before", None))
            limit = _bounded(self.get_query_argument("limit", None))
        except ValueError as exc:
            self.fail(400, "bad_request", str(exc))
            return
        page_size = min(limit or self.api.history_page, self.api.history_page)
        try:
            page = await self.api.store.room_before(room, before, page_size)
        except StoreError:
            self.fail(503, "unavailable", "the message store cannot answer now")
            return
        self.finish({"room": room, "messages": [p.message_frame(m) for m in page.messages],
                     "more": page.more})


class UserMessagesHandler(ApiHandler):
    async def post(self, user: str) -> None:
        if not p.valid_user_id(user):
            self.fail(400, "bad_request", "user must be a user id (1-64 letters, digits, _.-@|:+)")
            return
        await self.publish(to=user)


class PresenceHandler(ApiHandler):
    async def get(self, room: str) -> None:
        if not self.room_of(room):
            return
        try:
            members = await self.api.presence(room)
        except Exception:  # the cluster's presence cannot be read now
            self.fail(503, "unavailable", "who is in the room cannot be read now")
            return
        self.finish({"room": room, "members": [
            {"id": user, "name": name} for user, name in sorted(members.items())]})


class OpenApiHandler(JsonHandler):
    def initialize(self, document: dict[str, Any]) -> None:
        self.document = document

    def get(self) -> None:
        self.finish(self.document)


def _bounded(value: str | None) -> int | None:
    """A query argument that must be a whole number from 0 to ID_MAX (None: absent)."""
    if value is None:
        return None
    if not (value.isascii() and value.isdigit()) or len(value) > 19 or int(value) > p.ID_MAX:
        raise ValueError(f"expected a whole number from 0 to {p.ID_MAX}, got {value[:30]!r}")
    return int(value)


class AppActs(AdminHandler):
    """An admin handler answering the server API: the API key is its credential, and
    "app" the operator the audit log names."""

    def prepare(self) -> None:
        if not key_given(self, self.admin.api_key, self.admin.failures):
            return
        if not p.valid_user_id(self.path_args[0]):
            self.fail(400, "bad_request", "user must be a user id (1-64 letters, digits, _.-@|:+)")
            return
        self.via, self.operator = "bearer", APP_OPERATOR

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        allow_header(self, status_code)
        super().write_error(status_code, **kwargs)


class AppDisconnectHandler(AppActs, DisconnectUserHandler):
    """The admin API's disconnect of a user, for the application."""


class AppBanHandler(AppActs, BanHandler):
    """The admin API's ban and lift, for the application."""


def api_routes(api: ApiDeps, admin: AdminDeps) -> list[Any]:
    deps = {"api": api}
    acting = {"admin": admin}
    return [
        (r"/api/v1/openapi.json", OpenApiHandler, {"document": openapi(api.max_text_chars)}),
        (r"/api/v1/rooms/([^/]+)/messages", RoomMessagesHandler, deps),
        (r"/api/v1/rooms/([^/]+)/presence", PresenceHandler, deps),
        (r"/api/v1/users/([^/]+)/messages", UserMessagesHandler, deps),
        (r"/api/v1/users/([^/]+)/disconnect", AppDisconnectHandler, acting),
        (r"/api/v1/users/([^/]+)/ban", AppBanHandler, acting),
    ]
