"""Tornado's RFC 6455 codec as the chat socket runs it: frames read in push mode,
stricter closes. The re-classed protocol object is one of the departures from stock
Tornado named in tornado_compat.py."""

from __future__ import annotations

import struct
import sys
from collections.abc import Iterator
from typing import Any, Protocol, cast

from tornado.iostream import IOStream
from tornado.websocket import WebSocketProtocol13

from ..core import protocol as p
from .outbound import Output
from .parser import FrameParser
from .stream import PushStream


class FrameHandler(Protocol):
    """What the codec calls on its handler (the chat socket)."""

    def on_message(self, message: str | bytes) -> Any: ...
    def on_pong(self, data: bytes) -> None: ...
    def on_ping(self, data: bytes) -> None: ...
    def on_close_frame(self) -> None: ...
    def bad_utf8(self) -> None: ...
    def too_big(self) -> None: ...
    @property
    def output(self) -> Output | None:
        """The connection's outbound half, once it is open."""
    def log_exception(self, typ: Any, value: Any, tb: Any) -> None: ...
    def on_ws_connection_close(self, close_code: int | None = None,
                               close_reason: str | None = None) -> None: ...


# Once the server has begun to close, what the peer may still send (frames that were on
# their way) before its close frame; past either, the TCP connection is dropped.
CLOSING_FRAMES = 16
CLOSING_BYTES = 65536


def valid_close_code(code: int) -> bool:
    """A code a peer may send in a close frame (RFC 6455 7.4): the defined ones that
    are not reserved for local use, and those for libraries and applications."""
    return 1000 <= code <= 1003 or 1007 <= code <= 1011 or 3000 <= code <= 4999


class ChatProtocol(WebSocketProtocol13):
    """Tornado's RFC 6455 codec, with frames read in push mode (see stream.py) on
    plain TCP without compression, and stricter where RFC 6455 says MUST: invalid
    UTF-8 fails the connection with 1007 (a fragmented message at its first bad
    fragment), a broken frame or an invalid close frame with 1002, and what the
    frames before either queued is sent before the close frame. Once the close has
    begun only the peer's close frame is taken, and a peer that keeps sending is
    dropped. Pings are answered through the handler's writer, in order with the rest."""

    # Counted on the instance only once the close has begun. The push-mode reader's own
    # state is on a PushReader, not here: see PushReader.
    _closing_frames = 0  # frames ignored since the close began
    _closing_bytes = 0

    async def _receive_frame_loop(self) -> None:
        stream = self.stream
        if type(stream) is not IOStream or self._decompressor is not None:
            await super()._receive_frame_loop()
            return
        # Nothing awaits from here on: frames are handled as the socket yields them.
        chat = cast(FrameHandler, self.handler)
        output = chat.output
        if output is None:  # not opened: nothing to read for
            self._abort()
            return
        if stream.closed():
            self._stream_closed()
            return
        stream.set_close_callback(self._stream_closed)
        reader = PushReader(self, FrameParser(self.params.max_message_size), chat, output)
        PushStream.adopt(stream, reader.received)

    def _closing(self, opcode: int, payload: bytes, rest: Iterator[tuple[int, bytes]]) -> None:
        """Frames that came after the close began: the peer's close frame ends the
        connection; anything else is ignored, up to CLOSING_FRAMES of it."""
        while opcode != 0x8:
            self._closing_frames += 1
            if self._closing_frames > CLOSING_FRAMES:
                self._abort()
                return
            following = next(rest, None)
            if following is None:
                if self._closing_bytes > CLOSING_BYTES:
                    self._abort()
                return
            opcode, payload = following
        self._close_received(payload)

    def _fail(self, code: int, reason: str) -> None:
        """Fail the connection (RFC 6455 7.1.7): a close frame with `code`, after what
        is already queued, then the TCP connection is dropped once that is sent."""
        self.close(code, reason)
        stream = self.stream
        if stream.closed():
            return
        if stream.writing():
            stream.write(b"").add_done_callback(lambda _: self._abort())
        else:
            self._abort()

    def _close_received(self, data: bytes) -> None:
        """The peer's close frame: echoed if valid; an invalid one fails the connection."""
        handler = cast(FrameHandler, self.handler)
        handler.on_close_frame()
        if self.server_terminated:  # the answer to our own close: the end
            self.client_terminated = True
            self.close()
            return
        code = reason = None
        if len(data) >= 2:
            code = struct.unpack("!H", data[:2])[0]
            if not valid_close_code(code):
                self._fail(p.CLOSE_PROTOCOL_ERROR, "invalid close code")
                return
            try:
                reason = data[2:].decode("utf-8")
            except UnicodeDecodeError:
                self._fail(p.CLOSE_INVALID_DATA, "close reason is not valid UTF-8")
                return
        elif data:
            self._fail(p.CLOSE_PROTOCOL_ERROR, "close frame of one byte")
            return
        self.client_terminated = True
        self.close_code, self.close_reason = code, reason
        self.close(code)  # echoed (RFC 6455 5.5.1)

    def _stream_closed(self) -> None:
        self._abort()
        self.handler.on_ws_connection_close(self.close_code, self.close_reason)

    def close(self, code: int | None = None, reason: str | None = None) -> None:
        handler = cast(FrameHandler, self.handler)
        output = handler.output
        if output is not None:
            # Replies to the frames before the close go out before the close frame.
            output.closing(flush=not self.server_terminated)
        if code == p.CLOSE_TOO_BIG:
            handler.too_big()
        super().close(code, reason)

    def _handle_message(self, opcode: int, data: bytes) -> Any:
        if self.server_terminated:  # Tornado's own reader (compression, TLS) after a close
            if opcode == 0x8:
                self._close_received(data)
            else:
                self._closing_frames += 1
                if self._closing_frames > CLOSING_FRAMES:
                    self._abort()
            return None
        if opcode == 0x1 and not self._frame_compressed:
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                cast(FrameHandler, self.handler).bad_utf8()
                self._fail(p.CLOSE_INVALID_DATA, "text message is not valid UTF-8")
                return None
            return self._run_callback(self.handler.on_message, text)
        if opcode == 0x8:
            self._close_received(data)
            return None
        if opcode == 0x9:
            cast(FrameHandler, self.handler).on_ping(data)
            return None
        return super()._handle_message(opcode, data)


class PushReader:
    """The push-mode read path of a ChatProtocol: the bytes the stream hands over,
    parsed and dispatched. Its state is kept here, in slots, rather than on the
    protocol, because Tornado's WebSocketProtocol13 already sets 29 attributes on
    itself: CPython 3.11 keeps an instance's attributes in a key table shared with the
    other instances only while there are at most 29 of them, and one more gives each
    protocol a dict of its own, 1.3 KB more per idle connection (tornado_compat.py, 5)."""

    __slots__ = ("chat", "output", "parser", "proto")

    def __init__(self, proto: ChatProtocol, parser: FrameParser, chat: FrameHandler,
                 output: Output) -> None:
        self.proto = proto
        self.parser = parser
        self.chat = chat
        self.output = output

    def received(self, data: bytes) -> None:
        """Bytes from the socket: every whole frame in them handled, in order."""
        proto = self.proto
        if proto.server_terminated:
            self._received_closing(data)
            return
        handler, output = self.chat, self.output
        messages = self.parser.feed(data)
        output.hold_replies()
        try:
            frames = iter(messages)
            for opcode, payload in frames:
                if proto.server_terminated:  # a frame before this one began the close
                    proto._closing(opcode, payload, frames)
                    return
                # The two heartbeat frames, most of what an idle client sends, go straight
                # to the handler; everything else through Tornado's dispatch.
                if opcode == 0xA:
                    handler.on_pong(payload)
                elif opcode == 0x1 and payload == b"ping":
                    handler.on_message(p.PING)
                else:
                    proto._handle_message(opcode, payload)
            error = self.parser.error
            if error is not None and not proto.server_terminated:
                proto._fail(error.close_code, str(error))
        except Exception:
            handler.log_exception(*sys.exc_info())
            proto._abort()
        finally:
            output.release_replies()

    def _received_closing(self, data: bytes) -> None:
        """A read after the close began: only a close frame is looked for."""
        proto = self.proto
        if proto.client_terminated or proto.stream.closed():
            return
        proto._closing_bytes += len(data)
        frames = iter(self.parser.feed(data))
        for opcode, payload in frames:
            proto._closing(opcode, payload, frames)
            return
        if proto._closing_bytes > CLOSING_BYTES:
            proto._abort()
