"""A guest login (POST /api/login), for a client that has no token from a host application."""

from __future__ import annotations

import json
from dataclasses import dataclass

from tornado.httpclient import AsyncHTTPClient, HTTPClientError

from .errors import LoginError


@dataclass(frozen=True, slots=True)
class Session:
    token: str
    user_id: str  # opaque for a guest (`g:...`): never the name
    name: str


async def login(base_url: str, name: str, *, token: str | None = None,
                timeout: float = 10.0) -> Session:
    """Log in as guest `name` at `base_url` (http://host:port). `token`: one of the
    same user's valid tokens, which a login for a name that user holds needs (it
    then keeps its user id). Raises LoginError: 400 bad_name, 409 name_taken,
    503 unavailable (try again), or status None when the server did not answer."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        response = await AsyncHTTPClient().fetch(
            f"{base_url.rstrip('/')}/api/login", method="POST", body=json.dumps({"name": name}),
            headers=headers, request_timeout=timeout, connect_timeout=timeout)
    except HTTPClientError as exc:
        code, message = "http_error", str(exc)
        if exc.response is not None and exc.response.body:
            try:
                body = json.loads(exc.response.body)
                code, message = body.get("error", code), body.get("message", message)
            except (ValueError, AttributeError):
                pass
        raise LoginError(None if exc.code == 599 else exc.code, code, message) from exc
    except OSError as exc:
        raise LoginError(None, "unreachable", str(exc)) from exc
    body = json.loads(response.body)
    return Session(body["token"], body["user"]["id"], body["user"]["name"])
