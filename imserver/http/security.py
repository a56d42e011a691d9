"""What every HTTP answer and every WebSocket upgrade share for the browser's safety:
the security headers, the Origin check, and the session cookie's name."""

from __future__ import annotations

from urllib.parse import urlsplit

import tornado.web
from tornado import httputil

SESSION_COOKIE = "imserver_session"

# The pages load only their own scripts, styles and sockets (the icons are data: URIs),
# and no other site may frame them.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


class SecurityHeaders(tornado.web.OutputTransform):
    """Adds SECURITY_HEADERS to every response: pages, static files, the API, errors."""

    def transform_first_chunk(self, status_code: int, headers: httputil.HTTPHeaders, chunk: bytes,
                              finishing: bool) -> tuple[int, httputil.HTTPHeaders, bytes]:
        for name, value in SECURITY_HEADERS.items():
            headers.setdefault(name, value)
        return status_code, headers, chunk


def origin_allowed(origin: str, host: str, allowed: tuple[str, ...], scheme: str) -> bool:
    """Same origin when nothing is configured: the page's scheme is the request's
    (`scheme`: http or https, from X-Forwarded-Proto behind a proxy with
    server.xheaders) and its host:port the request's Host. Else the exact origins
    listed, or '*'."""
    if allowed:
        return "*" in allowed or origin.rstrip("/") in allowed
    try:
        parts = urlsplit(origin)
    except ValueError:
        return False
    return parts.scheme.lower() == scheme.lower() and parts.netloc.lower() == host.lower()
