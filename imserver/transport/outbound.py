"""The outbound half of a WebSocket connection: every byte the server sends a client
leaves through one of these objects, the `Transport` of its Connection.

`PrebuiltOutput` writes frames built once for every
receiver (`core.frames.Outbound.wire`) straight to the socket:

1. `claim()` is the fan-out's path (fanout.py), once per receiver. The first frame
   a connection gets in a loop pass goes straight to its socket: claim() hands the
   socket to the fan-out, which sends the frame there at once, so that a fan-out
   reaches its first receivers at once instead of after the whole room is queued;
   frames after it in the same pass (and in a burst, every frame) queue up, and the
   writer (writer.py) flushes them in one send at the end of the pass. `send()`
   does the same for one frame.
   Replies to the client's own frames (a pong, an error) wait for the end of their
   read (`hold_replies`/`release_replies`).
2. `flush_queued()` sends the queue straight to the socket while Tornado's stream
   has nothing buffered (no Future, no copy). Within a large fan-out the send pool
   (sendpool.py) sends it, maybe on its helper thread, and hands back what the
   socket did not take (`send_unfinished`).
3. Whatever the socket does not take goes through Tornado's stream, which keeps
   the order and applies the slow-consumer bound (`limits.max_outbound_buffer_bytes`):
   past it the connection is dropped (`Socket.slow_consumer`).
4. Once the close handshake begins (`closing`), what is queued goes out before
   the close frame, and nothing after it.

`WriteMessageOutput` (`make_app(prebuilt=False)`) is the baseline the benchmarks
compare with: Tornado's own `write_message` per frame and receiver.
"""

from __future__ import annotations

import contextlib
from socket import socket as TcpSocket
from typing import Protocol

from tornado.iostream import IOStream, StreamBufferFullError, StreamClosedError
from tornado.websocket import WebSocketClosedError, WebSocketProtocol

from ..core.frames import Outbound, binary_frame, ping_frame, pong_frame, text_frame
from .sendpool import send_now
from .tornado_compat import compressing, send_pong
from .writer import CoalescingWriter


class Socket(Protocol):
    """What an output needs from its handler: the close handshake, the abort, and what
    to do with a client that does not read."""

    def close(self, code: int | None = None, reason: str | None = None) -> None:
        """Start a clean close handshake."""

    def abort(self) -> None:
        """Drop the TCP connection at once."""

    def slow_consumer(self) -> None:
        """More is buffered for the client than the bound: drop it."""


def bound_output(stream: IOStream, max_bytes: int) -> None:
    """Past `max_bytes` buffered for it, a client that does not read is a slow consumer
    (Tornado's stream raises StreamBufferFullError)."""
    stream.max_write_buffer_size = max_bytes


class PrebuiltOutput:
    """Prebuilt frames written to a plain TCP socket (see the module's docstring)."""

    __slots__ = ("_direct_pass", "_queued", "_replying", "_stream", "_stream_used", "_writer", "socket")

    prebuilt = True

    def __init__(self, socket: Socket, stream: IOStream, writer: CoalescingWriter) -> None:
        self.socket = socket
        # The stream, until the close begins (no frame may follow the close frame).
        self._stream: IOStream | None = stream
        self._writer = writer
        self._queued: list[bytes] = []
        self._replying = False
        self._direct_pass = -1  # the writer's pass in which this socket last sent directly
        self._stream_used = False  # bytes were handed to the stream: it may still be writing

    # --- Transport (core.registry) ---

    def send(self, frame: Outbound) -> bool:
        # The fan-out's path, once per receiver: kept to a few attribute reads.
        out = self._stream
        if out is None or out.closed():
            return False
        self._put(out, frame.wire)
        return True

    def send_ping(self, payload: bytes) -> None:
        out = self._stream
        if out is not None and not out.closed():  # through the writer: no Future, no copy
            self._put(out, ping_frame(payload))

    def close(self, code: int, reason: str) -> None:
        self.socket.close(code, reason)

    def abort(self) -> None:
        self.socket.abort()

    def claim(self, wire: bytes, direct: bool) -> TcpSocket | bool:
        """A fan-out's frame: the socket, when `wire` may go straight to it now (the
        caller sends it, hands what the socket did not take to send_unfinished(), and
        calls the writer's direct_sent() once the fan-out is done); else True once it
        is queued or with the stream, False when closing. Not `direct`: queued for
        the writer's pass in any case."""
        out = self._stream
        if out is None or out.closed():
            return False
        queued = self._queued
        writer = self._writer
        if queued or self._replying or not direct or self._direct_pass == writer.pass_number:
            if not queued and not self._replying:
                writer.mark(self)
            queued.append(wire)
            return True
        self._direct_pass = writer.pass_number
        if self._stream_used and self._writing(out):
            self._write_stream(out, wire)
            return True
        return out.socket

    # --- what the socket's handler sends ---

    def send_pong(self, payload: bytes) -> None:
        """The answer to a ping frame, in order with the other replies."""
        out = self._stream
        if out is not None and not out.closed():
            self._put(out, pong_frame(payload))

    def send_message(self, message: str | bytes) -> None:
        """A text (str) or binary (bytes) message, framed for this connection alone."""
        out = self._stream
        if out is not None and not out.closed():
            self._put(out, text_frame(message.encode("utf-8")) if isinstance(message, str)
                      else binary_frame(message))

    def hold_replies(self) -> None:
        """Frames from the client are being handled: what they queue for it waits
        for release_replies() instead of the writer's pass."""
        self._replying = True

    def release_replies(self) -> None:
        """Send, in one send, what the frames just handled queued."""
        self._replying = False
        if self._queued:
            self.flush_queued()

    def closing(self, *, flush: bool) -> None:
        """The close handshake begins (or the socket is gone): what is queued goes out
        first, if `flush`, not through the send pool, which would send it after the
        close frame; nothing may follow."""
        if flush:
            self.flush_queued(pooled=False)
        self._stream = None

    # --- the path out ---

    def _put(self, out: IOStream, wire: bytes) -> None:
        """Send a frame's bytes now, or queue them for one send at the end of the pass."""
        queued = self._queued
        if queued or self._replying:
            queued.append(wire)
            return
        queued.append(wire)
        writer = self._writer
        if self._direct_pass != writer.pass_number:
            self._direct_pass = writer.direct_sent()
            self.flush_queued()
        else:
            writer.mark(self)

    def flush_queued(self, *, pooled: bool = True) -> None:
        """Write the queued frames: straight to the socket while Tornado's stream has
        nothing buffered, the rest through the stream. Within a large fan-out the send
        pool sends them, unless `pooled` is false."""
        queued = self._queued
        if not queued:
            return
        # The list is reused, not replaced: a fan-out to 1000 sockets would otherwise
        # make 1000 new lists, and every 50 fan-outs a garbage collection of them.
        data: bytes | memoryview = queued[0] if len(queued) == 1 else b"".join(queued)
        queued.clear()
        out = self._stream
        if out is None or out.closed():
            return
        if self._writing(out):
            self._write_stream(out, data)
            return
        pool = self._writer.pool
        if pool.active and pooled:  # a large fan-out: the pool sends it, maybe on another thread
            pool.send(self, out.socket, data)
        else:
            send_now(self, out.socket, data)

    def send_unfinished(self, data: bytes | memoryview, sent: int, error: OSError | None) -> None:
        """A send could not send `data[sent:]`: the stream takes the rest (or closes)."""
        out = self._stream
        if out is None or out.closed():
            return
        if error is not None:
            out.close()
        else:
            self._write_stream(out, memoryview(data)[sent:])

    def _writing(self, out: IOStream) -> bool:
        """Has the stream bytes not yet sent? Asked of the stream only after it was given some."""
        if not self._stream_used:
            return False
        if out.writing():
            return True
        self._stream_used = False
        return False

    def _write_stream(self, out: IOStream, data: bytes | memoryview) -> None:
        """Through Tornado's stream, which keeps the order and applies the slow-consumer bound."""
        self._stream_used = True
        try:
            out.write(data)
        except StreamBufferFullError:
            self.socket.slow_consumer()
        except (StreamClosedError, OSError):
            out.close()


class WriteMessageOutput:
    """Tornado's own write path, a `write_message` per frame and receiver: the baseline,
    and what a compressed or TLS stream takes."""

    __slots__ = ("socket", "ws")

    prebuilt = False

    def __init__(self, socket: Socket, ws: WebSocketProtocol) -> None:
        self.socket = socket
        self.ws = ws

    def send(self, frame: Outbound) -> bool:
        ws = self.ws
        if ws.is_closing():
            return False
        try:
            ws.write_message(frame.payload)  # bytes, sent as a text frame
        except WebSocketClosedError:
            return False
        except StreamBufferFullError:
            self.socket.slow_consumer()
            return False
        return True

    def send_ping(self, payload: bytes) -> None:
        ws = self.ws
        if not ws.is_closing():
            with contextlib.suppress(StreamClosedError):
                ws.write_ping(payload)

    def close(self, code: int, reason: str) -> None:
        self.socket.close(code, reason)

    def abort(self) -> None:
        self.socket.abort()

    def send_pong(self, payload: bytes) -> None:
        ws = self.ws
        if not ws.is_closing():
            send_pong(ws, payload)

    def send_message(self, message: str | bytes) -> None:
        ws = self.ws
        if not ws.is_closing():
            ws.write_message(message, binary=isinstance(message, bytes))

    def hold_replies(self) -> None:
        pass  # every frame is written at once

    def release_replies(self) -> None:
        pass

    def closing(self, *, flush: bool) -> None:
        pass

    def flush_queued(self, *, pooled: bool = True) -> None:
        pass


Output = PrebuiltOutput | WriteMessageOutput


def open_output(socket: Socket, ws: WebSocketProtocol, *, prebuilt: bool, writer: CoalescingWriter,
                max_bytes: int) -> Output:
    """The output of a connection just opened: prebuilt frames if asked for and the
    socket can take them (plain TCP, no compression), else Tornado's write path.
    Either way, past `max_bytes` buffered a client that does not read is dropped."""
    stream = ws.stream
    assert stream is not None, "a WebSocket is opened on its stream"
    bound_output(stream, max_bytes)
    if prebuilt and type(stream) is IOStream and not compressing(ws):
        return PrebuiltOutput(socket, stream, writer)
    return WriteMessageOutput(socket, ws)
