"""Outbound frames, encoded and framed once however many connections get them."""

from __future__ import annotations

import struct
from typing import Any

from .protocol import encode_bytes


def text_frame(payload: bytes) -> bytes:
    """An unmasked, final WebSocket text frame (RFC 6455 5.2), as a server sends it."""
    size = len(payload)
    if size < 126:
        header = struct.pack("!BB", 0x81, size)
    elif size <= 0xFFFF:
        header = struct.pack("!BBH", 0x81, 126, size)
    else:
        header = struct.pack("!BBQ", 0x81, 127, size)
    return header + payload


def ping_frame(payload: bytes) -> bytes:
    """An unmasked WebSocket ping frame (payload at most 125 bytes)."""
    return struct.pack("!BB", 0x89, len(payload)) + payload


class Outbound:
    """One server frame: its UTF-8 payload, and its wire bytes built on first use."""

    __slots__ = ("_wire", "payload")

    def __init__(self, frame: dict[str, Any] | str) -> None:
        self.payload = frame.encode("utf-8") if isinstance(frame, str) else encode_bytes(frame)
        self._wire: bytes | None = None

    @property
    def wire(self) -> bytes:
        if self._wire is None:
            self._wire = text_frame(self.payload)
        return self._wire

    def __repr__(self) -> str:
        return f"Outbound({self.payload[:60]!r})"
