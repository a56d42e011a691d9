"""The HTTP edge: what a connection may cost before it becomes a WebSocket.

Every connection starts as HTTP. Until it upgrades (or for good, if it only
fetches pages and logs in) it is "pending", and a pending connection is held
to a few bounds that Tornado's defaults leave open:

- its request headers must arrive within `limits.header_timeout_seconds` of
  the connection opening, the next request on a kept-alive connection within
  `limits.idle_timeout_seconds`, and a body within `limits.body_timeout_seconds`;
- a body may hold at most `limits.max_body_bytes`: a larger Content-Length is
  answered 413 at once, before any of the body is read;
- an address may hold `limits.max_pending_per_address` pending connections and
  the server `limits.max_pending_connections` in all: past either, a new
  connection is closed as soon as it is accepted;
- when the process runs out of file descriptors, accepting pauses for a short,
  growing delay instead of failing in a tight loop, with one log line.

Together with `limits.max_connections` this bounds the descriptors the server
can need; `check_fd_budget` refuses to start when they do not fit the limit.
"""

from __future__ import annotations

import errno
import json
import logging
import resource
import socket
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from tornado import httputil
from tornado.http1connection import HTTP1Connection, HTTP1ConnectionParameters, HTTP1ServerConnection
from tornado.httpserver import HTTPServer, _HTTPRequestContext
from tornado.ioloop import IOLoop
from tornado.iostream import IOStream, StreamClosedError
from tornado.web import Application

from ..config import LimitsConfig
from ..core.errors import ConfigError
from ..ops.metrics import Metrics

log = logging.getLogger("imserver.edge")

# Descriptors the process needs besides connections: the listening sockets, the
# database and its journal, the log, the event loop's own, a helper thread's.
FD_HEADROOM = 64
# A pause in accepting after EMFILE grows from the first to the last delay.
ACCEPT_PAUSE_FIRST = 0.05
ACCEPT_PAUSE_MAX = 1.0
ACCEPT_LOG_INTERVAL = 60.0
# Errors of accept() that mean "no resources now", not "this connection failed".
_OUT_OF_RESOURCES = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
ACCEPTS_PER_EVENT = 128
# max_connections 0 under an unlimited RLIMIT_NOFILE.
UNBOUNDED_CONNECTIONS = 1_000_000


def fd_budget(limits: LimitsConfig) -> int:
    """Descriptors the server may need at most under these limits."""
    return limits.max_connections + limits.max_pending_connections + FD_HEADROOM


def check_fd_budget(limits: LimitsConfig, fd_limit: int | None = None) -> None:
    """ConfigError when the limits need more descriptors than RLIMIT_NOFILE allows."""
    if fd_limit is None:
        fd_limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if fd_limit == resource.RLIM_INFINITY:
        return
    room = fd_limit - limits.max_pending_connections - FD_HEADROOM
    if not limits.max_connections:
        if room < 1:
            raise ConfigError(
                f"the open file limit (ulimit -n, RLIMIT_NOFILE) is {fd_limit}: too low for "
                f"limits.max_pending_connections ({limits.max_pending_connections}) plus "
                f"{FD_HEADROOM} for the server itself and any WebSocket; raise the limit")
        return
    need = fd_budget(limits)
    if need > fd_limit:
        raise ConfigError(
            f"limits.max_connections ({limits.max_connections}) plus "
            f"limits.max_pending_connections ({limits.max_pending_connections}) plus "
            f"{FD_HEADROOM} for the server itself needs {need} file descriptors, but the "
            f"open file limit (ulimit -n, RLIMIT_NOFILE) is {fd_limit}: lower "
            f"limits.max_connections to at most {max(0, room)} (or 0: as many as fit) "
            f"or raise the limit")


def connection_limit(limits: LimitsConfig, fd_limit: int | None = None) -> int:
    """The most WebSockets the server takes: `limits.max_connections`, or when that
    is 0, as many as the open file limit leaves room for."""
    if limits.max_connections:
        return limits.max_connections
    if fd_limit is None:  # the hard limit: the server raises its own to it at start
        fd_limit = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if fd_limit == resource.RLIM_INFINITY:
        return UNBOUNDED_CONNECTIONS
    return max(1, fd_limit - limits.max_pending_connections - FD_HEADROOM)


class _Quiet:
    """Logs a repeated event at most once per `interval` seconds, with a count."""

    def __init__(self, interval: float = 10.0) -> None:
        self.interval = interval
        self.counts: Counter[str] = Counter()
        self.last = 0.0

    def note(self, what: str) -> None:
        self.counts[what] += 1
        now = time.monotonic()
        if now - self.last >= self.interval:
            self.last = now
            summary = ", ".join(f"{n} {w}" for w, n in self.counts.most_common(5))
            log.warning("refused connections at accept (%s)", summary)
            self.counts.clear()


class PendingGuard:
    """Counts the connections that are not WebSockets, per address and in all."""

    def __init__(self, per_address: int, total: int) -> None:
        self.per_address = per_address
        self.total = total
        self.by_address: Counter[str] = Counter()
        self.count = 0

    def admit(self, address: str) -> str | None:
        """None when the connection may stay (and is counted), else why not."""
        if self.count >= self.total:
            return "pending_total"
        if self.by_address[address] >= self.per_address:
            return "pending_per_address"
        self.by_address[address] += 1
        self.count += 1
        return None

    def release(self, address: str) -> None:
        self.count -= 1
        left = self.by_address[address] - 1
        if left > 0:
            self.by_address[address] = left
        else:
            del self.by_address[address]


class _EdgeConnection(HTTP1ServerConnection):
    """One accepted connection, while it speaks HTTP; knows its address."""

    address_key = ""
    requests = 0


class _BodyLimit(httputil.HTTPMessageDelegate):
    """Answers 413 to a request whose Content-Length is over the limit, before reading it."""

    def __init__(self, delegate: httputil.HTTPMessageDelegate, connection: HTTP1Connection,
                 max_body: int, on_refused: Callable[[], None]) -> None:
        self.delegate = delegate
        self.connection = connection
        self.max_body = max_body
        self.on_refused = on_refused

    def headers_received(self, start_line: httputil.RequestStartLine | httputil.ResponseStartLine,
                         headers: httputil.HTTPHeaders) -> Awaitable[None] | None:
        length = headers.get("Content-Length", "")
        if length.isdigit() and int(length) > self.max_body:
            self.on_refused()
            body = json.dumps({"error": "too_large",
                               "message": f"request body over {self.max_body} bytes"}).encode()
            stream = self.connection.detach()  # nothing more is read from it
            head = ("HTTP/1.1 413 Payload Too Large\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(body)}\r\nConnection: close\r\n"
                    "X-Content-Type-Options: nosniff\r\n\r\n").encode()
            _write_and_close(stream, head + body)
            return None
        return self.delegate.headers_received(start_line, headers)

    def data_received(self, chunk: bytes) -> Awaitable[None] | None:
        return self.delegate.data_received(chunk)

    def finish(self) -> None:
        self.delegate.finish()

    def on_connection_close(self) -> None:
        self.delegate.on_connection_close()


def _write_and_close(stream: IOStream, data: bytes, timeout: float = 5.0) -> None:
    """Write a last answer and close; a peer that does not read is dropped after `timeout`."""
    io_loop = IOLoop.current()
    handle = io_loop.call_later(timeout, stream.close)

    def done(_: object) -> None:
        io_loop.remove_timeout(handle)
        stream.close()

    try:
        io_loop.add_future(stream.write(data), done)
    except StreamClosedError:
        io_loop.remove_timeout(handle)


class EdgeServer(HTTPServer):
    """Tornado's HTTPServer with the bounds above on connections that are not WebSockets."""

    # HTTPServer is a Configurable: its constructor's arguments go to initialize().
    def initialize(self, app: Application, *, limits: LimitsConfig,  # type: ignore[override]
                   metrics: Metrics, xheaders: bool = False) -> None:
        super().initialize(app, xheaders=xheaders, idle_connection_timeout=limits.header_timeout_seconds,
                           body_timeout=limits.body_timeout_seconds, max_body_size=limits.max_body_bytes)
        self.limits = limits
        self.metrics = metrics
        self.pending = PendingGuard(limits.max_pending_per_address, limits.max_pending_connections)
        # The first request of a connection has header_timeout_seconds; later ones on a
        # kept-alive connection idle_timeout_seconds (that covers waiting for them).
        self._first_params = self.conn_params
        self._later_params = _with_header_timeout(self.conn_params, limits.idle_timeout_seconds)
        self._quiet = _Quiet()

    # --- accepting ---

    def add_sockets(self, sockets: Iterable[socket.socket]) -> None:
        for sock in sockets:
            self._sockets[sock.fileno()] = sock
            self._handlers[sock.fileno()] = add_accept_handler(sock, self._handle_connection)

    def handle_stream(self, stream: IOStream, address: tuple[Any, ...]) -> None:
        key = str(address[0]) if isinstance(address, tuple) and address else ""
        refused = self.pending.admit(key)
        if refused is not None:
            self.metrics.refused.labels(refused).inc()
            self._quiet.note(f"{refused} from {key}" if refused == "pending_per_address" else refused)
            stream.close()
            return
        context = _HTTPRequestContext(stream, address, self.protocol, self.trusted_downstream)
        conn = _EdgeConnection(stream, self.conn_params, context)
        conn.address_key = key
        self._connections.add(conn)
        conn.start_serving(self)

    # --- each request ---

    def start_request(self, server_conn: object,
                      request_conn: httputil.HTTPConnection) -> httputil.HTTPMessageDelegate:
        delegate = super().start_request(server_conn, request_conn)
        if isinstance(server_conn, _EdgeConnection) and isinstance(request_conn, HTTP1Connection):
            server_conn.requests += 1
            if server_conn.requests > 1:
                request_conn.params = self._later_params
            delegate = _BodyLimit(delegate, request_conn, self.limits.max_body_bytes,
                                  self.metrics.refused.labels("body_too_large").inc)
        return delegate

    def on_close(self, server_conn: object) -> None:
        """The connection closed, or became a WebSocket (Tornado detached its stream)."""
        super().on_close(server_conn)
        if isinstance(server_conn, _EdgeConnection):
            self.pending.release(server_conn.address_key)


def _with_header_timeout(params: HTTP1ConnectionParameters, timeout: float) -> HTTP1ConnectionParameters:
    return HTTP1ConnectionParameters(
        no_keep_alive=params.no_keep_alive, chunk_size=params.chunk_size,
        max_header_size=params.max_header_size, header_timeout=timeout,
        max_body_size=params.max_body_size, body_timeout=params.body_timeout,
        decompress=params.decompress)


def add_accept_handler(sock: socket.socket,
                       callback: Callable[[socket.socket, Any], None]) -> Callable[[], None]:
    """Tornado's netutil.add_accept_handler, except when accept() fails for want of
    descriptors (EMFILE, ENFILE) or memory: Tornado's raises, and since the socket
    stays readable the loop calls it again at once, a busy loop writing a traceback
    each time. This one stops watching the socket for a short delay that doubles while
    the failures go on (up to ACCEPT_PAUSE_MAX). Such an episode lasts until the
    waiting connections are all accepted, and is logged once (at most once a minute),
    with a line when it ends. Returns the function that stops accepting."""
    io_loop = IOLoop.current()
    state: dict[str, Any] = {"removed": False, "paused": None, "delay": ACCEPT_PAUSE_FIRST,
                             "episode": None, "logged": False, "last_log": -ACCEPT_LOG_INTERVAL,
                             "pauses": 0}

    def accept_handler(fd: Any, events: int) -> None:
        for _ in range(ACCEPTS_PER_EVENT):
            if state["removed"]:
                return
            try:
                connection, address = sock.accept()
            except BlockingIOError:
                if state["episode"] is not None:
                    recovered()
                return
            except ConnectionAbortedError:
                continue
            except OSError as exc:
                if exc.errno in _OUT_OF_RESOURCES:
                    pause(exc)
                    return
                raise
            state["delay"] = ACCEPT_PAUSE_FIRST
            callback(connection, address)

    def pause(exc: OSError) -> None:
        io_loop.remove_handler(sock)
        now = time.monotonic()
        if state["episode"] is None:
            state["episode"], state["pauses"] = now, 0
            state["logged"] = now - state["last_log"] >= ACCEPT_LOG_INTERVAL
            if state["logged"]:
                state["last_log"] = now
                log.warning("cannot accept connections: %s (open file limit %d); pausing accepts "
                            "and retrying after a growing delay", exc.strerror or exc,
                            resource.getrlimit(resource.RLIMIT_NOFILE)[0])
        state["pauses"] += 1
        state["paused"] = io_loop.call_later(state["delay"], resume)
        state["delay"] = min(state["delay"] * 2, ACCEPT_PAUSE_MAX)

    def resume() -> None:
        state["paused"] = None
        if not state["removed"]:
            io_loop.add_handler(sock, accept_handler, IOLoop.READ)

    def recovered() -> None:
        if state["logged"]:
            log.info("accepting connections again after %.1f s (%d pauses)",
                     time.monotonic() - state["episode"], state["pauses"])
        state["episode"] = None
        state["delay"] = ACCEPT_PAUSE_FIRST

    def remove_handler() -> None:
        if state["removed"]:
            return
        state["removed"] = True
        if state["paused"] is not None:
            io_loop.remove_timeout(state["paused"])
        else:
            io_loop.remove_handler(sock)

    io_loop.add_handler(sock, accept_handler, IOLoop.READ)
    return remove_handler


def make_server(app: Application, limits: LimitsConfig, metrics: Metrics, *, xheaders: bool) -> EdgeServer:
    return EdgeServer(app, limits=limits, metrics=metrics, xheaders=xheaders)
