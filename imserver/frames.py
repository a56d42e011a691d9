"""WebSocket framing (RFC 6455): outbound frames encoded and framed once however many
connections get them, and inbound bytes split into messages."""

from __future__ import annotations

import struct
from typing import Any

from tornado.util import _websocket_mask as websocket_mask

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
    """One server frame: its UTF-8 payload and its wire bytes, built once."""

    __slots__ = ("payload", "wire")

    def __init__(self, frame: dict[str, Any] | str) -> None:
        self.payload = frame.encode("utf-8") if isinstance(frame, str) else encode_bytes(frame)
        self.wire = text_frame(self.payload)

    def __repr__(self) -> str:
        return f"Outbound({self.payload[:60]!r})"


class FrameError(Exception):
    """The peer broke the framing rules of RFC 6455: the connection is dropped."""


class MessageTooBig(FrameError):
    """A message longer than the limit: the connection is closed with 1009."""


# Opcodes a peer may send (RFC 6455 5.2): continuation, text, binary, close, ping, pong.
_KNOWN_OPCODES = frozenset((0x0, 0x1, 0x2, 0x8, 0x9, 0xA))


class FrameParser:
    """Turns the bytes a client sends into whole messages (RFC 6455 5.2).

    `feed()` takes whatever one read returned; `next_message()` then hands out
    `(opcode, payload)` pairs, unmasked, with fragments joined, and None when
    it needs more bytes. Control frames come out as they arrive, even between
    the fragments of a message. A message longer than `max_message_size`
    raises MessageTooBig as soon as its length is read, so it is never buffered.
    """

    __slots__ = ("_buffer", "_fragment_opcode", "_fragments", "_pos", "max_message_size")

    def __init__(self, max_message_size: int) -> None:
        self.max_message_size = max_message_size
        self._buffer = b""
        self._pos = 0
        self._fragments: bytearray | None = None
        self._fragment_opcode = 0

    def feed(self, data: bytes) -> None:
        if self._pos < len(self._buffer):
            self._buffer = self._buffer[self._pos:] + data
        else:
            self._buffer = data
        self._pos = 0

    def next_message(self) -> tuple[int, bytes] | None:
        while True:
            frame = self._next_frame()
            if frame is None:
                return None
            final, opcode, payload = frame
            if opcode & 0x8:
                if not final:
                    raise FrameError("fragmented control frame")
                return opcode, payload
            fragments = self._fragments
            if opcode == 0x0:
                if fragments is None:
                    raise FrameError("continuation frame with nothing to continue")
                fragments += payload
                if final:
                    self._fragments = None
                    return self._fragment_opcode, bytes(fragments)
            elif fragments is not None:
                raise FrameError("new message before the last one ended")
            elif final:
                return opcode, payload
            else:
                self._fragment_opcode, self._fragments = opcode, bytearray(payload)

    def _next_frame(self) -> tuple[int, int, bytes] | None:
        buf, pos = self._buffer, self._pos
        available = len(buf) - pos
        if available < 2:
            return None
        first, second = buf[pos], buf[pos + 1]
        opcode = first & 0x0F
        if first & 0x70:
            raise FrameError("reserved bits set without an extension")
        if opcode not in _KNOWN_OPCODES:
            raise FrameError(f"unknown opcode {opcode:#x}")
        length, header = second & 0x7F, 2
        if opcode & 0x8:
            if length > 125:
                raise FrameError("control frame longer than 125 bytes")
        elif length == 126:
            if available < 4:
                return None
            length, header = int.from_bytes(buf[pos + 2:pos + 4], "big"), 4
        elif length == 127:
            if available < 10:
                return None
            length, header = int.from_bytes(buf[pos + 2:pos + 10], "big"), 10
        if not opcode & 0x8:
            so_far = len(self._fragments) if self._fragments is not None and opcode == 0x0 else 0
            if length + so_far > self.max_message_size:
                raise MessageTooBig(f"message of more than {self.max_message_size} bytes")
        masked = second & 0x80
        start = pos + header + (4 if masked else 0)
        end = start + length
        if end > len(buf):
            return None
        payload = buf[start:end]
        if masked:
            payload = websocket_mask(buf[start - 4:start], payload)
        if end == len(buf):
            self._buffer, self._pos = b"", 0
        else:
            self._pos = end
        return first & 0x80, opcode, payload
