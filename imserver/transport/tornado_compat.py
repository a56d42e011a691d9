"""Where imserver departs from stock Tornado, each departure named once.

The transport reaches past Tornado's public API in three places, for speed:

1. **The re-classed protocol object** (`reclass_protocol`): the chat socket's
   codec (wsprotocol.ChatProtocol) is Tornado's WebSocketProtocol13 with its
   reading and closing overridden. Tornado builds it from private parameters, so
   the object it built gets the subclass rather than a copy. Relies on
   PROTOCOL_PRIVATES.
2. **The push-mode stream** (stream.PushStream.adopt): a connected IOStream is
   re-classed so that the event loop hands each read to the frame parser, with no
   Future per frame, and its two write queues (`_write_futures`, and the
   `_write_buffer`'s `_buffers`) become stream.SparseDeques, which hold no storage
   while empty. Relies on STREAM_PRIVATES and on the asyncio loop's
   `selector_loop`.
3. **The mask function** (`websocket_mask`): Tornado's C speedup for unmasking
   client frames (`tornado.util._websocket_mask`), used by the inbound parser.

And the HTTP edge (http/edge.py) in one:

4. **The edge server** (edge.EdgeServer): Tornado's HTTPServer with its own
   accept handler and per-connection bounds. It builds each connection as
   HTTPServer.handle_stream does, from `tornado.httpserver._HTTPRequestContext`,
   and keeps HTTPServer's and TCPServer's own bookkeeping. Relies on
   SERVER_PRIVATES.

And one that is CPython's rather than Tornado's:

5. **Instance attributes within the shared keys**: CPython 3.11 shares one key table
   between the instances of a class for up to 29 attributes; an instance with more
   gets a dict of its own (about 1.3 KB more). Tornado's WebSocketProtocol13 sets 29
   and RequestHandler with WebSocketHandler 27, so the chat socket keeps its own state
   in slots (http/chat.py) and the push-mode reader in a wsprotocol.PushReader, not
   on the protocol: together 2.4 KB less per idle connection.

tests/test_tornado_compat.py checks each against the installed Tornado, so that an
upgrade that removes or renames one fails there, by name, and not in production.
The pinned range is setup.cfg's (TORNADO_RANGE).
"""

from __future__ import annotations

from tornado.util import _websocket_mask
from tornado.websocket import WebSocketProtocol, WebSocketProtocol13

TORNADO_RANGE = ((6, 4), (7, 0))  # setup.cfg: tornado>=6.4,<7

# What ChatProtocol overrides, calls or reads on WebSocketProtocol13 beyond its public API.
PROTOCOL_PRIVATES = ("_receive_frame_loop", "_handle_message", "_abort", "_run_callback",
                     "_send_pong", "_frame_compressed", "_decompressor", "_compressor")
# What PushStream overrides, calls or reads on IOStream beyond its public API.
STREAM_PRIVATES = ("_handle_read", "_read_buffer_size", "_consume", "_add_io_state",
                   "_write_futures", "_write_buffer")

# What EdgeServer calls, reads or fills on HTTPServer (and TCPServer) beyond their
# public API; and the request context it builds as HTTPServer.handle_stream does.
SERVER_PRIVATES = ("_sockets", "_handlers", "_handle_connection", "_connections",
                   "conn_params", "protocol", "trusted_downstream")
SERVER_REQUEST_CONTEXT = "_HTTPRequestContext"

websocket_mask = _websocket_mask


def reclass_protocol(proto: WebSocketProtocol | None, cls: type[WebSocketProtocol13]) -> None:
    """Make Tornado's RFC 6455 protocol object an instance of `cls`, a subclass of it."""
    if isinstance(proto, WebSocketProtocol13):
        proto.__class__ = cls


def compressing(ws: WebSocketProtocol) -> bool:
    """Whether the connection negotiated permessage-deflate (its frames are not prebuilt)."""
    return getattr(ws, "_compressor", None) is not None


def send_pong(ws: WebSocketProtocol, payload: bytes) -> None:
    """Answer a ping frame on Tornado's own write path (the write_message baseline)."""
    if isinstance(ws, WebSocketProtocol13):
        ws._send_pong(payload)
