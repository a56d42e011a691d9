"""HTTP endpoints of the chat: login, session, client settings, metrics, pages."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import tornado.web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ..config import AuthConfig, ClientConfig
from ..core.errors import AuthError, NameTaken, StoreError
from ..core.ratelimit import KeyedLimiter
from ..core.registry import Registry
from ..ops.metrics import Metrics
from .auth import Authenticator, Credential, guest_name
from .bans import Bans, refusal
from .identity import Identities
from .security import SESSION_COOKIE
from .untrusted import parse_json_object, same_secret


def throttled(handler: tornado.web.RequestHandler, limiter: KeyedLimiter) -> bool:
    """True, after answering 429, when the client's address has used up its attempts."""
    if limiter.allows(handler.request.remote_ip or ""):
        return False
    handler.set_status(429)
    handler.set_header("Retry-After", "60")
    handler.finish({"error": "too_many_attempts", "message": "too many failed attempts, try again later"})
    return True


def failed_attempt(handler: tornado.web.RequestHandler, limiter: KeyedLimiter) -> None:
    limiter.take(handler.request.remote_ip or "")


class RevalidatedStaticHandler(tornado.web.StaticFileHandler):
    """Static files that the browser revalidates on every load (cheap with the ETag),
    so that after an upgrade a page never mixes old and new modules."""

    def set_extra_headers(self, path: str) -> None:
        self.set_header("Cache-Control", "no-cache")

    def validate_absolute_path(self, root: str, absolute_path: str) -> str | None:
        try:
            return super().validate_absolute_path(root, absolute_path)
        except ValueError:  # a NUL byte in the path: no file has that name
            raise tornado.web.HTTPError(400, "bad path") from None


class JsonHandler(tornado.web.RequestHandler):
    """Base for the JSON API: errors come back as {"error", "message"}."""

    def set_default_headers(self) -> None:
        self.set_header("Cache-Control", "no-store")

    def fail(self, status: int, error: str, message: str) -> None:
        self.set_status(status)
        self.finish({"error": error, "message": message})

    def json_body(self) -> dict[str, Any] | None:
        """The request's JSON object, or None after answering 400/415."""
        if not self.request.headers.get("Content-Type", "").startswith("application/json"):
            # Also keeps cross-site HTML forms out: they cannot send JSON.
            self.fail(415, "bad_request", "send a JSON body with Content-Type: application/json")
            return None
        body = parse_json_object(self.request.body)
        if body is None:
            self.fail(400, "bad_request", "body must be a JSON object")
            return None
        return body

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        self.finish({"error": "http_error", "message": self._reason})


class SessionHandler(JsonHandler):
    """Base of the handlers that read or set the chat session: its token and cookie."""

    def initialize(self, auth: Authenticator, settings: AuthConfig, identities: Identities) -> None:
        self.auth = auth
        self.session_settings = settings
        self.identities = identities

    def session_token(self) -> str:
        """The token of the request: `Authorization: Bearer`, else the session cookie."""
        header = self.request.headers.get("Authorization", "")
        if header[:7].lower() == "bearer ":
            return header[7:].strip()
        return self.cookie_token()

    def cookie_token(self) -> str:
        raw = self.get_signed_cookie(SESSION_COOKIE) or b""
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError:
            return ""

    async def credentials(self) -> list[Credential]:
        """The valid credentials the request carries: its bearer token and its cookie.
        StoreError when a token this server does not know could not be looked up."""
        found = []
        for token in {self.session_token(), self.cookie_token()}:
            with contextlib.suppress(AuthError):
                found.append(await self.identities.check(token))
        return found

    def set_session(self, token: str) -> None:
        days = self.session_settings.token_ttl_seconds / 86400
        self.set_signed_cookie(SESSION_COOKIE, token, expires_days=days, httponly=True,
                               samesite="Lax", secure=self.session_settings.cookie_secure)


class LoginHandler(SessionHandler):
    """A guest login. A name held by another user (one of whose tokens is valid) is
    refused with 409; its holder, with its own cookie or token, gets a fresh token."""

    def initialize(self, auth: Authenticator, settings: AuthConfig,  # type: ignore[override]
                   identities: Identities, limiter: KeyedLimiter, metrics: Metrics,
                   bans: Bans | None = None) -> None:
        super().initialize(auth, settings, identities)
        self.limiter = limiter
        self.metrics = metrics
        self.bans = bans

    async def post(self) -> None:
        auth = self.auth
        if not auth.guest_login:
            self.fail(403, "login_disabled", "this server takes tokens from its host application")
            return
        if not self.limiter.take(self.request.remote_ip or ""):
            self.metrics.refused.labels("login_rate").inc()
            self.fail(429, "too_many_attempts", "too many login attempts, try again in a minute")
            return
        body = self.json_body()
        if body is None:
            return
        try:
            presented = await self.credentials()
            name = guest_name(body.get("name"))
            holder = self.identities.holder(name) if name is not None else None
            # A banned holder's name stays theirs: nobody logs in with it, not even they.
            if self._banned([c.user.id for c in presented]
                            + ([holder.user_id] if holder is not None else [])):
                return
            token, cred = await self.identities.guest_login(body.get("name"), presented)
            if self._banned([cred.user.id]):  # held by a banned user this node had not seen
                return
        except AuthError as exc:
            self.metrics.refused.labels("bad_name").inc()
            self.fail(400, "bad_name", str(exc))
            return
        except NameTaken as exc:
            self.metrics.refused.labels("name_taken").inc()
            self.fail(409, "name_taken", str(exc))
            return
        except StoreError:
            self.fail(503, "unavailable", "the server cannot record logins now, try again")
            return
        self.set_session(token)
        self.finish({"token": token, "user": cred.user.to_json()})

    def _banned(self, users: list[str]) -> bool:
        """True, after answering 403, when one of the users is banned."""
        if self.bans is None:
            return False
        for user in users:
            ban = self.bans.of(user)
            if ban is not None:
                self.metrics.refused.labels("banned").inc()
                self.set_status(403)
                self.finish(refusal(ban))
                return True
        return False


class MeHandler(SessionHandler):
    async def get(self) -> None:
        token = self.session_token()
        try:
            cred = await self.identities.check(token)
        except AuthError:
            self.fail(401, "unauthenticated", "not logged in")
            return
        except StoreError:
            self.fail(503, "unavailable", "the server cannot check sessions now, try again")
            return
        self.finish({"token": token, "user": cred.user.to_json()})


class LogoutHandler(SessionHandler):
    """Revokes the request's token (bearer and cookie) on the server, closes the
    sockets opened with it, and clears the cookie."""

    async def post(self) -> None:
        try:
            credentials = await self.credentials()
        except StoreError:
            self.fail(503, "unavailable", "the server cannot check sessions now, try again")
            return
        self.clear_cookie(SESSION_COOKIE)
        try:
            for cred in credentials:
                await self.identities.logout(cred)
        except StoreError:
            self.fail(503, "unavailable", "logged out until the server restarts: try again")
            return
        self.set_status(204)
        self.finish()


class ClientConfigHandler(JsonHandler):
    """The browser client's reconnect settings, from config.yaml, and the text limit
    (so that the page refuses a text too long before sending it)."""

    def initialize(self, client: ClientConfig, max_text_chars: int) -> None:
        self.client = client
        self.max_text_chars = max_text_chars

    def get(self) -> None:
        c = self.client
        self.finish({
            "reconnect": {
                "base": c.reconnect_base_seconds, "factor": c.reconnect_factor,
                "cap": c.reconnect_cap_seconds, "attempts": c.reconnect_attempts,
                "stable_after": c.stable_after_seconds, "connect_timeout": c.connect_timeout_seconds,
            },
            "outbox_limit": c.outbox_limit,
            "limits": {"max_text_chars": self.max_text_chars},
        })


class MetricsHandler(tornado.web.RequestHandler):
    """Prometheus exposition, optionally behind a bearer token."""

    def initialize(self, metrics: Metrics, token: str, failures: KeyedLimiter,
                   refresh: Callable[[], None]) -> None:
        self.metrics = metrics
        self.token = token
        self.failures = failures  # wrong tokens, per address
        self.refresh = refresh  # brings the gauges up to date

    def get(self) -> None:
        token = self.token
        if token and throttled(self, self.failures):
            return
        if token and not same_secret(self.request.headers.get("Authorization", ""), f"Bearer {token}"):
            failed_attempt(self, self.failures)
            self.set_status(401)
            self.set_header("WWW-Authenticate", 'Bearer realm="metrics"')
            self.finish("unauthorized\n")
            return
        self.refresh()
        self.set_header("Content-Type", CONTENT_TYPE_LATEST)
        self.finish(generate_latest(self.metrics.registry))


class HealthHandler(tornado.web.RequestHandler):
    def initialize(self, health: Callable[[], str | None], registry: Registry) -> None:
        self.health = health  # the store's problem, if it has one
        self.registry = registry

    def get(self) -> None:
        """200 while the server can take and keep messages; 503 with the reason when not."""
        self.set_header("Cache-Control", "no-store")
        problem = self.health()
        if problem is not None:
            self.set_status(503)
            self.finish({"status": "unavailable", "reason": problem})
            return
        self.finish({"status": "ok", "connections": len(self.registry)})
