"""The outbound half of WebSocket framing (RFC 6455): server frames encoded and framed
once, however many connections get them. No I/O and no Tornado: bytes out."""

from __future__ import annotations

import struct
from typing import Any

from .protocol import encode_bytes


def text_frame(payload: bytes) -> bytes:
    """An unmasked, final WebSocket text frame (RFC 6455 5.2), as a server sends it."""
    return _frame(0x81, payload)


def binary_frame(payload: bytes) -> bytes:
    """An unmasked, final WebSocket binary frame."""
    return _frame(0x82, payload)


def _frame(first: int, payload: bytes) -> bytes:
    size = len(payload)
    if size < 126:
        header = struct.pack("!BB", first, size)
    elif size <= 0xFFFF:
        header = struct.pack("!BBH", first, 126, size)
    else:
        header = struct.pack("!BBQ", first, 127, size)
    return header + payload


def ping_frame(payload: bytes) -> bytes:
    """An unmasked WebSocket ping frame (payload at most 125 bytes)."""
    return struct.pack("!BB", 0x89, len(payload)) + payload


def pong_frame(payload: bytes) -> bytes:
    """An unmasked WebSocket pong frame, the answer to a ping with this payload."""
    return struct.pack("!BB", 0x8A, len(payload)) + payload


class Outbound:
    """One server frame: its UTF-8 payload and its wire bytes, built once."""

    __slots__ = ("payload", "wire")

    def __init__(self, frame: dict[str, Any] | str) -> None:
        self.payload = frame.encode("utf-8") if isinstance(frame, str) else encode_bytes(frame)
        self.wire = text_frame(self.payload)

    def __repr__(self) -> str:
        return f"Outbound({self.payload[:60]!r})"
