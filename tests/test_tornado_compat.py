"""The departures from stock Tornado (transport/tornado_compat.py), each checked against
the installed Tornado: an upgrade that removes or renames a private thing they rely
on fails here, naming it."""

from __future__ import annotations

import configparser
import inspect
import re
import sys
from pathlib import Path

import pytest
import tornado
import tornado.httpserver
import tornado.iostream
import tornado.util
import tornado.websocket
from tornado.platform.asyncio import BaseAsyncIOLoop

from imserver.http.chat import ChatSocket
from imserver.transport import tornado_compat as compat
from imserver.transport.stream import PushStream, SparseDeque
from imserver.transport.wsprotocol import ChatProtocol

SETUP_CFG = Path(__file__).resolve().parent.parent / "setup.cfg"


def _defined_on(cls: type, name: str) -> bool:
    """A method or class attribute, or an instance attribute its source assigns."""
    if hasattr(cls, name):
        return True
    source = "".join(inspect.getsource(klass) for klass in cls.__mro__
                     if klass.__module__.startswith("tornado"))
    return re.search(rf"self\.{re.escape(name)}\s*(:[^=]*)?=", source) is not None


def test_the_pinned_range_is_setup_cfgs_and_holds_the_installed_tornado() -> None:
    parser = configparser.ConfigParser()
    parser.read(SETUP_CFG)
    requires = parser["options"]["install_requires"]
    match = re.search(r"tornado>=(\d+)\.(\d+),<(\d+)", requires)
    assert match, "setup.cfg no longer pins tornado as >=X.Y,<Z"
    low, high = compat.TORNADO_RANGE
    assert (int(match[1]), int(match[2])) == low and (int(match[3]), 0) == high, \
        "tornado_compat.TORNADO_RANGE differs from setup.cfg: check the departures against the new range"
    assert low <= tornado.version_info[:2] < high, f"Tornado {tornado.version} is outside {low}..{high}"


def test_the_protocol_privates_exist() -> None:
    missing = [name for name in compat.PROTOCOL_PRIVATES
               if not _defined_on(tornado.websocket.WebSocketProtocol13, name)]
    assert not missing, f"WebSocketProtocol13 lost what ChatProtocol relies on: {missing}"


def test_the_stream_privates_exist() -> None:
    missing = [name for name in compat.STREAM_PRIVATES
               if not _defined_on(tornado.iostream.IOStream, name)]
    assert not missing, f"IOStream lost what PushStream relies on: {missing}"
    assert _defined_on(BaseAsyncIOLoop, "selector_loop"), \
        "Tornado's asyncio loop lost selector_loop, which PushStream.adopt registers its reader on"


def test_the_write_queues_need_no_more_of_a_deque_than_a_sparse_deque_has() -> None:
    """PushStream.adopt swaps IOStream's two write queues for SparseDeques: Tornado may
    call on them only what one implements."""
    source = inspect.getsource(tornado.iostream)
    assert re.search(r"self\._buffers\b.*=\s*\(?\s*collections\.deque\(", source, re.S), \
        "_StreamBuffer no longer keeps its chunks in self._buffers"
    called = set(re.findall(r"\b(?:_write_futures|_buffers|buffers)\.(\w+)", source))
    unsupported = {name for name in called if not hasattr(SparseDeque, name)}
    assert called and not unsupported, f"IOStream calls what SparseDeque lacks: {sorted(unsupported)}"


def test_the_edge_servers_privates_exist() -> None:
    missing = [name for name in compat.SERVER_PRIVATES
               if not _defined_on(tornado.httpserver.HTTPServer, name)]
    assert not missing, f"HTTPServer lost what EdgeServer relies on: {missing}"
    context = getattr(tornado.httpserver, compat.SERVER_REQUEST_CONTEXT, None)
    assert context is not None, "tornado.httpserver lost _HTTPRequestContext, which EdgeServer builds"
    handle_stream = inspect.getsource(tornado.httpserver.HTTPServer.handle_stream)
    assert compat.SERVER_REQUEST_CONTEXT in handle_stream, \
        "HTTPServer.handle_stream no longer builds an _HTTPRequestContext: compare EdgeServer.handle_stream"


def test_the_overrides_still_override_something() -> None:
    # A renamed method would leave ours never called, without an error.
    for name in ("_receive_frame_loop", "_handle_message", "close"):
        assert name in vars(ChatProtocol) and hasattr(tornado.websocket.WebSocketProtocol13, name), name
    for name in ("_handle_read", "reading"):
        assert name in vars(PushStream) and hasattr(tornado.iostream.IOStream, name), name


def test_the_mask_function_unmasks() -> None:
    assert hasattr(tornado.util, "_websocket_mask"), "tornado.util._websocket_mask is gone"
    key, data = b"\x01\x02\x03\x04", b"hello, world"
    expected = bytes(b ^ key[i % 4] for i, b in enumerate(data))
    assert compat.websocket_mask(key, data) == expected
    assert compat.websocket_mask(key, expected) == data


def test_reclass_protocol_leaves_other_protocols_alone() -> None:
    compat.reclass_protocol(None, ChatProtocol)  # no protocol: nothing to do


# A dict that shares its keys with the other instances of its class holds a pointer per
# attribute (about 300 bytes here); one of its own, past CPython's 29 shared keys, 1.6 KB.
SHARED_DICT_BOUND = 600


@pytest.mark.gen_test(timeout=30)
async def test_an_open_sockets_objects_keep_their_shared_key_dicts(chat, app) -> None:
    """The chat socket and its protocol stay within the attributes whose keys CPython
    shares between instances (ChatSocket's slots, wsprotocol.PushReader): an idle
    connection's two largest objects. Tornado adding attributes would fail here."""
    client = await chat.connect("slim")
    await client.join("r")
    (conn,) = list(app.runtime.registry)
    handler = conn.transport.socket
    assert isinstance(handler, ChatSocket)
    proto = handler.ws_connection
    assert isinstance(proto, ChatProtocol) and isinstance(proto.stream, PushStream)
    # An idle stream's write queues hold no storage (stream.SparseDeque).
    assert isinstance(proto.stream._write_futures, SparseDeque) and not proto.stream._write_futures
    assert isinstance(proto.stream._write_buffer._buffers, SparseDeque)
    assert not proto.stream._write_buffer._buffers
    for name, obj in (("ChatSocket", handler), ("ChatProtocol", proto), ("PushStream", proto.stream)):
        size = sys.getsizeof(obj.__dict__)
        assert size < SHARED_DICT_BOUND, \
            f"{name} keeps a dict of its own ({len(obj.__dict__)} attributes, {size} bytes): " \
            f"{sorted(obj.__dict__)}"
