"""Reading what clients send over HTTP: bodies and credentials, without ever raising.

Every JSON request body goes through `parse_json_object`, and every comparison of
a given secret (admin token, metrics token, CSRF token) through `same_secret`.
"""

from __future__ import annotations

import hmac
from typing import Any

from ..core.protocol import loads, too_deep

# Request bodies nest far less than this; the limit is checked before decoding.
MAX_BODY_DEPTH = 16


def parse_json_object(body: bytes, max_depth: int = MAX_BODY_DEPTH) -> dict[str, Any] | None:
    """The JSON object in `body`, or None for anything else: not UTF-8, not JSON,
    nested deeper than `max_depth`, or not an object."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if too_deep(text, max_depth):
        return None
    try:
        data = loads(text)
    except (ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


def _utf8(text: str) -> bytes:
    # surrogatepass: a lone surrogate (JSON "\ud800") still encodes, and then mismatches.
    return text.encode("utf-8", "surrogatepass")


def same_secret(given: str, expected: str) -> bool:
    """Constant-time comparison of a secret a client gave with the real one; any
    string compares (False), whatever characters it holds."""
    return hmac.compare_digest(_utf8(given), _utf8(expected))
