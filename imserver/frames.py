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

    `feed()` takes whatever one read returned and gives back the messages it
    completed, as `(opcode, payload)` pairs: unmasked, with fragments joined,
    control frames in the order they came, even between the fragments of a
    message. A frame that breaks the rules stops the parsing: the messages
    before it are still returned, and `error` says what was wrong. A message
    longer than `max_message_size` is refused (MessageTooBig) as soon as its
    length is read, so it is never buffered.
    """

    __slots__ = ("_buffer", "_fragment_opcode", "_fragments", "error", "max_message_size")

    def __init__(self, max_message_size: int) -> None:
        self.max_message_size = max_message_size
        self.error: FrameError | None = None
        self._buffer = b""
        self._fragments: bytearray | None = None
        self._fragment_opcode = 0

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        messages: list[tuple[int, bytes]] = []
        if self.error is not None:
            return messages
        buf = self._buffer + data if self._buffer else data
        pos, end_of_data = 0, len(buf)
        try:
            # One pass over the frames that are complete; the common case, one small
            # frame per read, costs this loop once and no further calls.
            while end_of_data - pos >= 2:
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
                    if end_of_data - pos < 4:
                        break
                    length, header = int.from_bytes(buf[pos + 2:pos + 4], "big"), 4
                elif length == 127:
                    if end_of_data - pos < 10:
                        break
                    length, header = int.from_bytes(buf[pos + 2:pos + 10], "big"), 10
                if not opcode & 0x8:
                    so_far = len(self._fragments) if self._fragments is not None and opcode == 0 else 0
                    if length + so_far > self.max_message_size:
                        raise MessageTooBig(f"message of more than {self.max_message_size} bytes")
                start = pos + header + (4 if second & 0x80 else 0)
                end = start + length
                if end > end_of_data:
                    break
                payload = buf[start:end]
                if second & 0x80:
                    payload = websocket_mask(buf[start - 4:start], payload)
                pos = end
                if first & 0x80 and (opcode & 0x8 or (opcode and self._fragments is None)):
                    messages.append((opcode, payload))  # whole by itself: most frames
                else:
                    self._fragment(first & 0x80, opcode, payload, messages)
        except FrameError as exc:
            self.error = exc
            pos = end_of_data
        self._buffer = buf[pos:] if pos < end_of_data else b""
        return messages

    def _fragment(self, final: int, opcode: int, payload: bytes, messages: list[tuple[int, bytes]]) -> None:
        """A frame that is not a whole message by itself: a fragment, or a frame that
        breaks the fragmentation rules (feed() has taken every other frame)."""
        if opcode & 0x8:
            raise FrameError("fragmented control frame")
        fragments = self._fragments
        if opcode == 0x0:
            if fragments is None:
                raise FrameError("continuation frame with nothing to continue")
            fragments += payload
            if final:
                self._fragments = None
                messages.append((self._fragment_opcode, bytes(fragments)))
        elif fragments is not None:
            raise FrameError("new message before the last one ended")
        else:
            self._fragment_opcode, self._fragments = opcode, bytearray(payload)
