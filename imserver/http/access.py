"""What the application decides beside its tokens: the hub's Gate.

- A fresh token for a live connection (`renew`): checked as an upgrade's token
  is, so that a connection outlives the token it came with.
- Who may join and read a room (`may_read`): besides a token's rooms claim
  (checked by the hub itself, from the connection), the application's join hook,
  when `auth.join_hook.url` is set. imserver POSTs `{"user", "name", "room"}`
  and takes `{"allow": true}` or `{"allow": false, "reason": "..."}`. Answers are
  cached per user and room for `cache_seconds`; concurrent asks for one pair
  share one call; an application that does not answer in `timeout_seconds`, or
  answers anything else, refuses the join as `unavailable` (not cached), so a
  slow or dead application never lets anyone in, nor holds a join for long.
  The answer is untrusted input like any other: bounded, parsed defensively.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import time
from typing import Any

from tornado.httpclient import AsyncHTTPClient, HTTPRequest

from ..config import JoinHookConfig
from ..core.errors import AuthError, Refused
from ..core.hub import Renewal
from ..core.registry import Connection
from .identity import Identities
from .untrusted import parse_json_object

log = logging.getLogger("imserver.access")

ANSWER_MAX_BYTES = 16 * 1024
REASON_MAX = 200

_Answer = tuple[bool, str, float]  # allowed, reason, monotonic expiry


class JoinHook:
    """The application's answers on room access, cached."""

    def __init__(self, config: JoinHookConfig) -> None:
        self.config = config
        self._cache: collections.OrderedDict[tuple[str, str], _Answer] = collections.OrderedDict()
        self._asking: dict[tuple[str, str], asyncio.Future[None]] = {}
        self.calls = 0

    def ask(self, conn: Connection, room: str) -> asyncio.Future[None] | None:
        key = (conn.user.id, room)
        cached = self._cache.get(key)
        if cached is not None and cached[2] > time.monotonic():
            self._cache.move_to_end(key)
            if cached[0]:
                return None
            return _failed(Refused("forbidden", _refusal(room, cached[1])))
        asking = self._asking.get(key)
        if asking is None:
            asking = self._asking[key] = asyncio.ensure_future(self._call(conn, room, key))
        return asking

    async def _call(self, conn: Connection, room: str, key: tuple[str, str]) -> None:
        try:
            allowed, reason = await self._fetch(conn, room)
        finally:
            self._asking.pop(key, None)
        if self.config.cache_seconds > 0 and self.config.cache_size > 0:
            self._cache[key] = (allowed, reason, time.monotonic() + self.config.cache_seconds)
            self._cache.move_to_end(key)
            while len(self._cache) > self.config.cache_size:
                self._cache.popitem(last=False)
        if not allowed:
            raise Refused("forbidden", _refusal(room, reason))

    async def _fetch(self, conn: Connection, room: str) -> tuple[bool, str]:
        self.calls += 1
        headers = {"Content-Type": "application/json"}
        if self.config.token:
            headers["Authorization"] = f"Bearer {self.config.token}"
        request = HTTPRequest(
            self.config.url, method="POST", headers=headers, follow_redirects=False,
            body=json.dumps({"user": conn.user.id, "name": conn.user.name, "room": room}),
            connect_timeout=self.config.timeout_seconds, request_timeout=self.config.timeout_seconds)
        try:
            response = await AsyncHTTPClient().fetch(request, raise_error=False)
        except Exception as exc:  # refused, reset, unresolvable: the application is away
            log.warning("join hook %s failed: %r", self.config.url, exc)
            raise Refused("unavailable", _UNAVAILABLE) from None
        answer = parse_json_object(response.body or b"") \
            if response.code == 200 and len(response.body or b"") <= ANSWER_MAX_BYTES else None
        allow = None if answer is None else answer.get("allow")
        if not isinstance(allow, bool):
            log.warning("join hook %s answered %s with no allow: true|false", self.config.url,
                        response.code)
            raise Refused("unavailable", _UNAVAILABLE)
        reason = answer.get("reason") if answer is not None else None
        return allow, reason[:REASON_MAX] if isinstance(reason, str) else ""


_UNAVAILABLE = "the application that decides who may join did not answer; try again"


def _refusal(room: str, reason: str) -> str:
    return f"the application does not let you into room {room}" + (f": {reason}" if reason else "")


def _failed(error: Exception) -> asyncio.Future[Any]:
    future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    future.set_exception(error)
    return future


class AppGate:
    """The hub's Gate: token renewals through the identities, rooms through the hook."""

    def __init__(self, identities: Identities, hook: JoinHook | None) -> None:
        self.identities = identities
        self.hook = hook

    def renew(self, token: str) -> asyncio.Future[Renewal]:
        return asyncio.ensure_future(self._renew(token))

    async def _renew(self, token: str) -> Renewal:
        try:
            cred = await self.identities.check(token)
        except AuthError as exc:
            raise Refused("bad_token", str(exc)) from None
        return Renewal(cred.user.id, cred.expires, cred.jti, cred.rooms)

    def may_read(self, conn: Connection, room: str) -> asyncio.Future[None] | None:
        return self.hook.ask(conn, room) if self.hook is not None else None
