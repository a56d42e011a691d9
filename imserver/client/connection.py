"""ChatClient: one user's link to imserver from Python, kept alive across failures and restarts.

It speaks docs/PROTOCOL.md with the browser client's guarantees
(static/js/connection.js):

- reconnect with capped exponential backoff and full jitter (backoff.Policy),
  after `retry_after` when the server said `bye`, and not at all after 4001
  (a token it no longer takes) or 4003 (an operator's disconnect);
- an outbox: `say`, `dm`, `edit` and `delete` are queued with a cid until their
  ack, and sent again after every reconnect with the same cid, which the server
  stores at most once;
- recovery: every room is re-joined with `since`, the last id handed on, and
  `dm_sync` asks for the direct messages after the last one; each stream's items
  reach the user once and in id order, backlog and live alike (streams.Stream);
- the application-level heartbeat: a text `ping` every `interval`, and a
  reconnect when nothing came from the server for `timeout` (both from the
  welcome frame).

State (changed only by `_set_state`, which emits a StateChange):

    stopped    --connect()-->                            connecting
    connecting --welcome frame-->                        open
    connecting --failure, connect timeout-->             waiting
    open       --close, error, watchdog, bye-->          waiting
    waiting    --timer, retry_now()-->                   connecting
    any        --4001, 4003, 401, 403, 1000 from the server,
                 Policy.attempts failed attempts, close()--> stopped
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random as random_module
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.iostream import IOStream
from tornado.websocket import (
    WebSocketClientConnection,
    WebSocketClosedError,
    WebSocketError,
    websocket_connect,
)

from ..core.protocol import CLOSE_KICKED, CLOSE_UNAUTHENTICATED, PING, PONG
from .backoff import Policy, backoff_delay
from .errors import ChatError, ClientStopped
from .events import Ack, Cause, Event, Frame, Gap, Joined, Message, State, StateChange, StopReason
from .outbox import Outbox
from .streams import Stream

log = logging.getLogger("imserver.client")

CLOSE_NORMAL = 1000
CLOSE_WATCHDOG = 4000  # client-side: the heartbeat watchdog fired (docs/PROTOCOL.md)
# Errors after which the same frame may succeed later: it is sent again after
# `resend_delay`. Every other error code fails the frame's future.
PASSING_ERRORS = frozenset({"rate_limited", "unavailable"})
# Used only when the welcome frame has no heartbeat (the protocol's defaults).
DEFAULT_HEARTBEAT = (10.0, 20.0)
# How long close() waits for the server's close frame before it drops the socket.
CLOSE_GRACE = 2.0
STREAM_ITEMS = frozenset({"message", "edit", "delete"})


@dataclass
class _Socket:
    """One WebSocket's life: what is per connection, dropped with it."""
    ws: WebSocketClientConnection | None = None
    stream: IOStream | None = None  # to drop the TCP connection without a close handshake
    welcomed: bool = False
    last_rx: float = 0.0  # loop time of the last frame from the server
    heartbeat: tuple[float, float] = DEFAULT_HEARTBEAT
    bye_retry_after: float | None = None
    settled: asyncio.Event = field(default_factory=asyncio.Event)  # welcomed or ended
    ended: asyncio.Event = field(default_factory=asyncio.Event)  # closed, or the client closes
    closed: asyncio.Event = field(default_factory=asyncio.Event)  # the TCP connection is gone
    resend: set[str] = field(default_factory=set)  # cids refused for now, sent again soon
    rejoin: set[str] = field(default_factory=set)  # rooms whose join was refused for now
    resend_timer: asyncio.TimerHandle | None = None
    clock_offset: float = 0.0  # the server's clock minus ours, from the welcome
    refresh_timer: asyncio.TimerHandle | None = None
    refresh_task: asyncio.Task[None] | None = None
    offered: str | None = None  # the token of a refresh sent, until it is `refreshed`
    # Frames that came before websocket_connect's future gave the connection (its
    # reader starts first): handled as soon as there is a socket to answer on.
    early: list[str | bytes | None] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Outcome:
    """How a socket's life ended, and what it asks for."""
    stop: StopReason | None = None
    message: str = ""
    cause: Cause = Cause.ERROR
    delay: float | None = None  # None: the backoff
    opened_at: float | None = None  # monotonic time of the welcome, when there was one


class _End:
    """Put in the event queue when the client stops: iteration ends there."""


class ChatClient:
    """An asyncio client of imserver for bots and backends.

    ::

        async with ChatClient("ws://127.0.0.1:8080/ws", token=token) as client:
            await client.join("general")
            await client.say("general", "hello")      # returns once stored (the ack)
            async for event in client:
                if isinstance(event, Message): ...

    Events (see events.py) go to `on_event` when given, else into a queue read by
    iterating over the client (one reader, once connect() was called); iteration
    ends when the client stops.
    A client's own messages reach it as acks, not as Messages (its other
    connections get them as Messages, as the protocol has it).
    """

    def __init__(self, url: str | Sequence[str], *, token: str, policy: Policy | None = None,
                 dm_since: int | None = None, outbox_limit: int = 1000,
                 resend_delay: float = 2.0,
                 on_event: Callable[[Event], None] | None = None,
                 on_frame: Callable[[dict[str, Any]], None] | None = None,
                 refresh: Callable[[], Awaitable[str]] | None = None,
                 random: Callable[[], float] = random_module.random,
                 cid_prefix: str | None = None) -> None:
        """`url`: the WebSocket endpoint (ws://host:port/ws), or several (nodes of a
        cluster), tried in turn, the next one after each lost connection.
        `dm_since`: the last direct-message id handled before (a restarted bot's);
        None asks for the latest page. `on_frame` sees every JSON frame from the
        server as received, before the client acts on it (for logs and tests).
        `refresh` (a `jwt`-mode token's source, such as a call to the host
        application) gives a fresh token: sent on the open connection before the
        token expires (the welcome says when), and used to come back after a 4001
        or a 401 instead of stopping, unless it gives the same token again.
        `cid_prefix`: the cids are `<prefix>-<n>`; by default a random prefix, since
        a cid must be unique per user across all its connections and runs."""
        self.urls = [url] if isinstance(url, str) else list(url)
        if not self.urls:
            raise ValueError("at least one url is needed")
        for each in self.urls:
            if urlsplit(each).scheme not in ("ws", "wss"):
                raise ValueError(f"a WebSocket url (ws:// or wss://) is needed, got {each!r}")
        self.token = token
        self.policy = policy or Policy()
        self.resend_delay = resend_delay
        self._on_event = on_event
        self._on_frame = on_frame
        self._random = random
        self._refresh = refresh
        self._cid_prefix = cid_prefix or secrets.token_urlsafe(9)
        self._cid_count = 0

        self._state = State.STOPPED
        self._stop_reason: StopReason | None = None
        self._attempt = 0
        self._url_index = 0
        self._ever_started = False
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self._socket: _Socket | None = None
        self._wake: asyncio.Event | None = None  # ends a wait between attempts early
        self._open_waiters: list[asyncio.Future[None]] = []
        self._events: asyncio.Queue[Event | _End] = asyncio.Queue()
        self._connects = 0

        self.user: dict[str, str] | None = None
        self._outbox = Outbox(outbox_limit)
        self._wanted: dict[str, None] = {}  # rooms to be in, in the order joined (a set)
        self._streams: dict[str, Stream] = {}  # every room's position, left ones too
        self._direct = Stream(dm_since)
        self._joined: dict[str, Joined] = {}  # on the current socket
        self._join_waiters: dict[str, list[asyncio.Future[Joined]]] = {}

    # ---- public state ------------------------------------------------------

    @property
    def state(self) -> State:
        return self._state

    @property
    def stop_reason(self) -> StopReason | None:
        """Why the client stopped, while stopped (None before the first connect)."""
        return self._stop_reason

    @property
    def attempt(self) -> int:
        """The current or next reconnect attempt (0: the first connect)."""
        return self._attempt

    @property
    def connects(self) -> int:
        """How many times the client was welcomed (its first connect included)."""
        return self._connects

    @property
    def user_id(self) -> str | None:
        return None if self.user is None else self.user.get("id")

    @property
    def rooms(self) -> list[str]:
        """The rooms the client keeps joined (re-joined after every reconnect)."""
        return list(self._wanted)

    def highest_id(self, room: str) -> int | None:
        """The last id of `room` handled: the `since` of its next re-join."""
        stream = self._streams.get(room)
        return None if stream is None else stream.highest

    @property
    def highest_dm_id(self) -> int | None:
        """The last direct-message id handled: the `since` of the next dm_sync."""
        return self._direct.highest

    def pending(self) -> list[dict[str, Any]]:
        """The frames waiting for their ack, oldest first."""
        return [dict(entry.frame) for entry in self._outbox]

    # ---- lifecycle ---------------------------------------------------------

    async def connect(self) -> None:
        """Connect (or, after a stop, reconnect) and return once welcomed, the
        recovery frames sent. Raises ClientStopped when the client stops first
        (its token refused, Policy.attempts failed attempts). Cancelling the wait
        does not stop the client: close() does."""
        if self._state is State.STOPPED:
            self._drop_ends()
            self._closing = False
            self._attempt = 1 if self._ever_started else 0
            self._ever_started = True
            self._task = asyncio.ensure_future(self._run())
        elif self._state is State.OPEN:
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._open_waiters.append(waiter)
        await waiter

    async def close(self) -> None:
        """Close for good (code 1000) and stop reconnecting. Unacknowledged frames fail
        with ClientStopped (their cid attached: after connect(), send them again
        with it, and the server stores each at most once)."""
        task = self._task
        if task is None:
            return
        self._closing = True
        if self._wake is not None:
            self._wake.set()
        sock = self._socket
        if sock is not None:
            sock.ended.set()
            sock.settled.set()
        await task
        self._task = None
        self._stop(StopReason.CLOSED, "")

    def _drop_ends(self) -> None:
        """A new run: the end of the last one, if no one read it, is not this one's."""
        kept = []
        while not self._events.empty():
            item = self._events.get_nowait()
            if not isinstance(item, _End):
                kept.append(item)
        for item in kept:
            self._events.put_nowait(item)

    def retry_now(self) -> None:
        """While waiting between attempts: try at once."""
        if self._state is State.WAITING and self._wake is not None:
            self._wake.set()

    async def __aenter__(self) -> ChatClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def __aiter__(self) -> ChatClient:
        if self._on_event is not None:
            raise TypeError("events go to on_event: there is nothing to iterate over")
        return self

    async def __anext__(self) -> Event:
        if self._events.empty() and self._state is State.STOPPED:
            raise StopAsyncIteration
        item = await self._events.get()
        if isinstance(item, _End):
            raise StopAsyncIteration
        return item

    # ---- chat --------------------------------------------------------------

    async def join(self, room: str, *, since: int | None = None) -> Joined:
        """Join `room`, now and after every reconnect, and return the server's answer.

        `since`: the last id of the room handled before (a restarted bot's), when
        this client has none; without it the first join brings the latest page.
        Raises ChatError when the server refuses the join (`forbidden`: a private
        room, or one the application does not allow); the room is then dropped.
        A join the server cannot decide now (`unavailable`) is tried again.
        """
        stream = self._streams.setdefault(room, Stream(since))
        if stream.highest is None and since is not None:
            stream.highest = since
        known = self._joined.get(room)
        if room in self._wanted and known is not None:
            return known
        waiter: asyncio.Future[Joined] = asyncio.get_running_loop().create_future()
        self._join_waiters.setdefault(room, []).append(waiter)
        if room not in self._wanted:
            self._wanted[room] = None
            if self._is_open():
                self._send_join(room)
        return await waiter

    def leave(self, room: str) -> None:
        """Leave `room` and stop re-joining it (its position is kept)."""
        if room in self._wanted:
            del self._wanted[room]
            if self._is_open():
                self._write({"type": "leave", "room": room})
        self._joined.pop(room, None)

    def say(self, room: str, text: str, *, cid: str | None = None) -> asyncio.Future[Ack]:
        """Queue `text` for `room`; the future gives the ack. Queued when called (so
        calls keep their order), sent at once when open, else after the (re)connect.
        A `cid` already waiting gives that one's future."""
        return self._queue({"type": "say", "room": room, "text": text}, room, cid)

    def dm(self, to: str, text: str, *, cid: str | None = None) -> asyncio.Future[Ack]:
        """A direct message to user `to` (an id, or a guest name held now); as say()."""
        return self._queue({"type": "dm", "to": to, "text": text}, None, cid)

    def edit(self, target: int, text: str, *, room: str | None = None,
             cid: str | None = None) -> asyncio.Future[Ack]:
        """Edit one's message `target` of `room` (None: a direct message); as say()."""
        frame: dict[str, Any] = {"type": "edit", "target": target, "text": text}
        if room is not None:
            frame["room"] = room
        return self._queue(frame, room, cid)

    def delete(self, target: int, *, room: str | None = None,
               cid: str | None = None) -> asyncio.Future[Ack]:
        """Delete one's message `target` of `room` (None: a direct message); as say()."""
        frame: dict[str, Any] = {"type": "delete", "target": target}
        if room is not None:
            frame["room"] = room
        return self._queue(frame, room, cid)

    def send(self, frame: dict[str, Any]) -> bool:
        """Send any other frame (typing, read, history, rooms, create, invite...) now,
        if open; nothing is queued. Its answer comes as a Frame. True when sent."""
        return self._is_open() and self._write(frame)

    # ---- the connection's life -------------------------------------------

    async def _run(self) -> None:
        cause: Cause | None = Cause.CLOSE if self._attempt else None
        try:
            while not self._closing:
                outcome = await self._session(cause)
                if self._closing:
                    return
                if outcome.stop is StopReason.AUTH and (token := await self._fresh_token()):
                    self.token = token
                    outcome = _Outcome(cause=Cause.CLOSE, message=outcome.message,
                                       opened_at=outcome.opened_at)
                if self._closing:  # close() came while the refresh was awaited
                    return
                if outcome.stop is not None:
                    self._stop(outcome.stop, outcome.message)
                    return
                if outcome.opened_at is not None \
                        and time.monotonic() - outcome.opened_at >= self.policy.stable_after:
                    self._attempt = 0
                if self.policy.attempts is not None and self._attempt + 1 > self.policy.attempts:
                    self._stop(StopReason.GAVE_UP, outcome.message)
                    return
                self._attempt += 1
                self._url_index += 1
                cause = outcome.cause
                delay = outcome.delay
                if delay is None:
                    delay = backoff_delay(self._attempt, self.policy, self._random)
                self._set_state(State.WAITING, cause=cause, delay=delay)
                self._wake = asyncio.Event()  # no await since _closing was read: close() sets it
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), delay)
                self._wake = None
        except Exception as exc:  # a bug: say so, and stop rather than hang
            log.exception("imserver client failed")
            self._stop(StopReason.GAVE_UP, f"internal error: {exc!r}")

    async def _session(self, cause: Cause | None) -> _Outcome:
        """One WebSocket, from the upgrade to its end."""
        loop = asyncio.get_running_loop()
        sock = self._socket = _Socket(last_rx=loop.time())
        self._joined.clear()
        for stream in (*self._streams.values(), self._direct):
            stream.new_socket()
        self._set_state(State.CONNECTING, cause=cause)
        timeout = self.policy.connect_timeout
        deadline = loop.time() + timeout
        request = HTTPRequest(self._url(cause), connect_timeout=timeout, request_timeout=timeout)
        try:
            ws = await self._until_ended(sock, websocket_connect(
                request, on_message_callback=lambda m: self._received(sock, m)))
            if ws is None:
                return _Outcome()
            sock.ws = ws
            sock.stream = ws.protocol.stream if ws.protocol is not None else None
            early, sock.early = sock.early, []
            for raw in early:
                self._received(sock, raw)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(sock.settled.wait(), max(0.0, deadline - loop.time()))
            if self._closing:
                return _Outcome()
            if not sock.welcomed:
                return self._closed_outcome(sock) if sock.ended.is_set() else _Outcome()
            opened_at = time.monotonic()
            watchdog = await self._watch(sock)
            if self._closing:
                return _Outcome()
            if watchdog:
                return _Outcome(cause=Cause.WATCHDOG, opened_at=opened_at)
            outcome = self._closed_outcome(sock)
            return _Outcome(outcome.stop, outcome.message, outcome.cause, outcome.delay, opened_at)
        except HTTPClientError as exc:  # the upgrade was answered, but not with 101
            if exc.code == 401:
                return _Outcome(stop=StopReason.AUTH, message=_reason(exc))
            if exc.code == 403:
                return _Outcome(stop=StopReason.FORBIDDEN, message=_reason(exc))
            return _Outcome(message=_reason(exc))  # 429, 503, a timeout (599): later
        except (OSError, WebSocketError) as exc:  # refused, reset, closed during the upgrade
            return _Outcome(message=str(exc))
        finally:
            await self._release(sock)

    async def _until_ended(self, sock: _Socket, connecting: Awaitable[WebSocketClientConnection],
                           ) -> WebSocketClientConnection | None:
        """The connection, or None when close() came first (the attempt is then
        closed whenever it completes: no socket is left behind)."""
        attempt: asyncio.Future[WebSocketClientConnection] = asyncio.ensure_future(connecting)
        ended: asyncio.Future[Any] = asyncio.ensure_future(sock.ended.wait())
        try:
            await asyncio.wait((attempt, ended), return_when=asyncio.FIRST_COMPLETED)
        finally:
            ended.cancel()
        if attempt.done():
            ws = attempt.result()
            if not sock.ended.is_set():
                return ws
            ws.close(CLOSE_NORMAL)
            return None

        def close_late(f: asyncio.Future[WebSocketClientConnection]) -> None:
            if not f.cancelled() and f.exception() is None:
                f.result().close(CLOSE_NORMAL)
        attempt.add_done_callback(close_late)
        return None

    async def _watch(self, sock: _Socket) -> bool:
        """The heartbeat while open: a text ping every interval; True when nothing
        came from the server for the timeout, False when the socket ended."""
        loop = asyncio.get_running_loop()
        interval, timeout = sock.heartbeat
        next_ping = loop.time() + interval
        while not sock.ended.is_set():
            now = loop.time()
            if now - sock.last_rx >= timeout:
                return True
            if now >= next_ping:
                self._write(PING, sock)
                next_ping = now + interval
            wait = max(0.001, min(next_ping, sock.last_rx + timeout) - now)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(sock.ended.wait(), wait)
        return False

    def _closed_outcome(self, sock: _Socket) -> _Outcome:
        """What the server's close asks for (docs/PROTOCOL.md, "Close codes")."""
        ws = sock.ws
        code = None if ws is None else ws.close_code
        reason = (None if ws is None else ws.close_reason) or ""
        if code == CLOSE_UNAUTHENTICATED:
            return _Outcome(stop=StopReason.AUTH, message=reason)
        if code == CLOSE_KICKED:
            return _Outcome(stop=StopReason.KICKED, message=reason)
        if code == CLOSE_NORMAL and sock.welcomed:
            return _Outcome(stop=StopReason.SERVER_CLOSED, message=reason)
        if sock.bye_retry_after is not None:
            return _Outcome(cause=Cause.SHUTDOWN, delay=sock.bye_retry_after, message=reason)
        return _Outcome(cause=Cause.ERROR if code is None else Cause.CLOSE, message=reason)

    async def _release(self, sock: _Socket) -> None:
        """The socket's end: its timers, and its TCP connection, closed cleanly when
        the client closes (the server answers the close frame), at once otherwise
        (a dead peer answers nothing; there is no reason to wait)."""
        for timer in (sock.resend_timer, sock.refresh_timer):
            if timer is not None:
                timer.cancel()
        if sock.refresh_task is not None:
            sock.refresh_task.cancel()
        sock.ended.set()
        if self._socket is sock:
            self._socket = None
        ws = sock.ws
        if ws is None:
            return
        if sock.closed.is_set():
            ws.close()  # closed by the other side: only Tornado's object is left to let go
            return
        if self._closing:
            ws.close(CLOSE_NORMAL)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(sock.closed.wait(), CLOSE_GRACE)
        else:
            ws.close(CLOSE_WATCHDOG if sock.welcomed else None)
        if sock.stream is not None and not sock.stream.closed():
            sock.stream.close()

    def _url(self, cause: Cause | None) -> str:
        parts = urlsplit(self.urls[self._url_index % len(self.urls)])
        query = [(k, v) for k, v in parse_qsl(parts.query) if k not in ("token", "reconnect", "cause")]
        query.append(("token", self.token))
        if self._attempt >= 1:
            query += [("reconnect", str(self._attempt)), ("cause", (cause or Cause.CLOSE).value)]
        return urlunsplit(parts._replace(query=urlencode(query)))

    def _set_state(self, state: State, *, cause: Cause | None = None, delay: float | None = None,
                   reason: StopReason | None = None, message: str = "") -> None:
        previous, self._state = self._state, state
        self._stop_reason = reason if state is State.STOPPED else None
        self._emit(StateChange(state, previous, self._attempt, cause, delay, reason, message))
        if state is State.OPEN:
            self._connects += 1
            self._settle_open_waiters(None)

    def _stop(self, reason: StopReason, message: str) -> None:
        """Stopped for good (until connect()): every wait ends with ClientStopped."""
        if self._state is State.STOPPED and self._stop_reason is not None:
            return
        self._set_state(State.STOPPED, reason=reason, message=message)
        self._outbox.fail_all(lambda cid: ClientStopped(reason, message, cid))
        waiters = [w for each in self._join_waiters.values() for w in each]
        self._join_waiters.clear()
        for waiter in waiters:
            if not waiter.done():
                waiter.set_exception(ClientStopped(reason, message))
        self._settle_open_waiters(ClientStopped(reason, message))
        self._joined.clear()
        if self._on_event is None:
            self._events.put_nowait(_End())

    def _settle_open_waiters(self, error: Exception | None) -> None:
        waiters, self._open_waiters = self._open_waiters, []
        for waiter in waiters:
            if waiter.done():
                continue
            if error is None:
                waiter.set_result(None)
            else:
                waiter.set_exception(error)

    # ---- frames in ---------------------------------------------------------

    def _received(self, sock: _Socket, raw: str | bytes | None) -> None:
        """Tornado's message callback: each frame of `sock` in order, None at its close."""
        if sock.ws is None:
            sock.early.append(raw)
            return
        if raw is None:
            sock.closed.set()
            sock.ended.set()
            sock.settled.set()
            return
        if sock is not self._socket or sock.ended.is_set():
            return  # a socket let go of: nothing of it counts any more
        sock.last_rx = asyncio.get_running_loop().time()
        if isinstance(raw, bytes) or raw in (PONG, PING):
            return
        try:
            frame = json.loads(raw)
        except ValueError:
            log.warning("imserver client: a frame that is not JSON: %.80r", raw)
            return
        if not isinstance(frame, dict):
            return
        if self._on_frame is not None:
            try:
                self._on_frame(frame)
            except Exception:  # the caller's code must not break the connection
                log.exception("imserver client: on_frame failed")
        try:
            self._handle(sock, frame)
        except (KeyError, TypeError, ValueError):
            log.warning("imserver client: a malformed frame: %.200r", frame, exc_info=True)

    def _handle(self, sock: _Socket, frame: dict[str, Any]) -> None:
        kind = frame.get("type")
        if kind in STREAM_ITEMS and isinstance(frame.get("id"), int):
            self._live(frame)
        elif kind == "welcome":
            self._welcome(sock, frame)
        elif kind == "ack":
            self._ack(sock, frame)
        elif kind == "error":
            self._error(sock, frame)
            self._emit(Frame("error", frame))
        elif kind == "joined":
            self._emit(Frame("joined", frame))
            self._recovered(frame["room"], frame)
        elif kind == "dm_sync":
            self._emit(Frame("dm_sync", frame))
            self._recovered(None, frame)
        else:
            if kind == "bye":
                retry_after = frame.get("retry_after")
                if isinstance(retry_after, int | float) and retry_after >= 0:
                    sock.bye_retry_after = float(retry_after)
            elif kind == "refreshed":
                if sock.offered is not None:  # the token for the next reconnect, too
                    self.token, sock.offered = sock.offered, None
                self._plan_refresh(sock, frame.get("expires"))
            elif kind == "left" and frame.get("reason") == "removed":
                self._removed(str(frame.get("room", "")))
            self._emit(Frame(str(kind), frame))

    def _removed(self, room: str) -> None:
        """Put out of a private room (by its owner, or as it became private while the
        join was read): not to be re-joined, and a join() waiting for it fails."""
        self._wanted.pop(room, None)
        self._joined.pop(room, None)
        for waiter in self._join_waiters.pop(room, []):
            if not waiter.done():
                waiter.set_exception(ChatError("removed", f"removed from room {room}"))

    def _welcome(self, sock: _Socket, frame: dict[str, Any]) -> None:
        sock.welcomed = True
        self.user = frame.get("user")
        heartbeat = frame.get("heartbeat") or {}
        sock.heartbeat = (float(heartbeat.get("interval", DEFAULT_HEARTBEAT[0])),
                          float(heartbeat.get("timeout", DEFAULT_HEARTBEAT[1])))
        if isinstance(frame.get("server_time"), int | float):
            sock.clock_offset = frame["server_time"] - time.time()
        self._plan_refresh(sock, frame.get("expires"))
        # Recover in order before anyone hears of the open state (a join() made then
        # is not sent twice): rooms, then direct messages, then what is owed.
        for room in self._wanted:
            self._send_join(room, sock)
        sync: dict[str, Any] = {"type": "dm_sync"}
        if self._direct.highest is not None:
            sync["since"] = self._direct.highest
        self._write(sync, sock)
        for entry in self._outbox:
            self._write(entry.frame, sock)
        sock.settled.set()
        self._set_state(State.OPEN)
        self._emit(Frame("welcome", frame))

    def _ack(self, sock: _Socket, frame: dict[str, Any]) -> None:
        cid = frame.get("cid")
        entry = self._outbox.pop(cid)
        if entry is None or cid is None:
            return  # an answer repeated (a resend crossed its ack): settled already
        sock.resend.discard(cid)
        ack = Ack(cid, int(frame["id"]), float(frame.get("ts", 0.0)))
        self._stream(entry.stream).mark_own(ack.id)
        if not entry.future.done():
            entry.future.set_result(ack)

    def _error(self, sock: _Socket, frame: dict[str, Any]) -> None:
        cid = frame.get("cid")
        code, message = str(frame.get("code", "")), str(frame.get("message", ""))
        room = frame.get("room")
        entry = self._outbox.get(cid)
        if entry is None and cid is None and room in self._wanted and room not in self._joined:
            self._join_refused(sock, str(room), code, message)
            return
        if entry is None or cid is None:
            return
        if code in PASSING_ERRORS:  # the same frame may pass in a moment
            sock.resend.add(cid)
            self._resend_soon(sock)
            return
        self._outbox.pop(cid)
        if not entry.future.done():
            entry.future.set_exception(ChatError(code, message, cid))

    def _join_refused(self, sock: _Socket, room: str, code: str, message: str) -> None:
        """An error naming a room whose join is unanswered on this socket answers that
        join (the server names the room for this): tried again soon when the refusal
        may pass (the application's join hook did not answer), given up otherwise."""
        if code in PASSING_ERRORS:
            sock.rejoin.add(room)
            self._resend_soon(sock)
            return
        del self._wanted[room]
        for waiter in self._join_waiters.pop(room, []):
            if not waiter.done():
                waiter.set_exception(ChatError(code, message))

    def _resend_soon(self, sock: _Socket) -> None:
        if sock.resend_timer is None:
            sock.resend_timer = asyncio.get_running_loop().call_later(
                self.resend_delay, self._resend, sock)

    def _resend(self, sock: _Socket) -> None:
        sock.resend_timer = None
        cids, sock.resend = sock.resend, set()
        rooms, sock.rejoin = sock.rejoin, set()
        if sock is not self._socket or not sock.welcomed:
            return  # the reconnect sends every join and the whole outbox
        for room in rooms:
            if room in self._wanted and room not in self._joined:
                self._send_join(room, sock)
        for entry in self._outbox:
            if entry.frame["cid"] in cids:
                self._write(entry.frame, sock)

    def _recovered(self, room: str | None, frame: dict[str, Any]) -> None:
        """A recovery answer (joined, dm_sync): its items, merged with the live ones
        held until it, each handed on once."""
        stream = self._stream(room)
        items = [*frame.get("messages", []), *frame.get("events", [])]
        after = stream.highest
        if frame.get("truncated") and items:
            self._emit(Gap(room, after, min(int(item["id"]) for item in items)))
        for item, backlog in stream.recovered(items):
            self._hand_on(item, backlog)
        if room is not None:
            joined = self._joined[room] = Joined.of(frame)
            for waiter in self._join_waiters.pop(room, []):
                if not waiter.done():
                    waiter.set_result(joined)

    def _live(self, frame: dict[str, Any]) -> None:
        for item in self._stream(frame.get("room")).live(frame):
            self._hand_on(item, False)

    def _hand_on(self, item: dict[str, Any], backlog: bool) -> None:
        # One of this client's own frames, stored before its ack was lost: the ack
        # that the resend brings is its delivery.
        if item.get("cid") in self._outbox and item.get("from") == self.user_id:
            return
        self._emit(Message.of(item, backlog=backlog))

    def _stream(self, room: str | None) -> Stream:
        if room is None:
            return self._direct
        return self._streams.setdefault(room, Stream())

    # ---- token refresh -----------------------------------------------------

    def _plan_refresh(self, sock: _Socket, expires: object) -> None:
        """Refresh when four fifths of the token's remaining life are gone (by the
        server's clock: a client's may be off)."""
        if self._refresh is None or not isinstance(expires, int | float):
            return
        remaining = expires - (time.time() + sock.clock_offset)
        if sock.refresh_timer is not None:
            sock.refresh_timer.cancel()
        sock.refresh_timer = asyncio.get_running_loop().call_later(
            max(0.0, remaining * 0.8), self._start_refresh, sock)

    def _start_refresh(self, sock: _Socket) -> None:
        sock.refresh_timer = None
        sock.refresh_task = asyncio.ensure_future(self._send_refresh(sock))

    async def _send_refresh(self, sock: _Socket) -> None:
        """A refused token comes back as an error frame, which the protocol does not tie
        to the refresh: the connection then ends with 4001 at the old expiry, and
        the reconnect asks for a fresh token again (_fresh_token)."""
        token = await self._fresh_token()
        if token and sock is self._socket and sock.welcomed:
            sock.offered = token
            self._write({"type": "refresh", "token": token}, sock)

    async def _fresh_token(self) -> str | None:
        """A token from `refresh`, when it gives one other than the current one."""
        if self._refresh is None:
            return None
        try:
            token = await self._refresh()
        except Exception:  # the application's code: its failure is no reason to crash
            log.warning("imserver client: the token refresh failed", exc_info=True)
            return None
        return token if token and token != self.token else None

    # ---- frames out --------------------------------------------------------

    def _is_open(self) -> bool:
        sock = self._socket
        return self._state is State.OPEN and sock is not None and sock.welcomed \
            and not sock.ended.is_set()

    def _send_join(self, room: str, sock: _Socket | None = None) -> None:
        frame: dict[str, Any] = {"type": "join", "room": room}
        since = self._streams[room].highest
        if since is not None:
            frame["since"] = since
        self._write(frame, sock)

    def _queue(self, frame: dict[str, Any], stream: str | None,
               cid: str | None) -> asyncio.Future[Ack]:
        if cid is None:
            self._cid_count += 1
            cid = f"{self._cid_prefix}-{self._cid_count}"
        frame["cid"] = cid
        queued = self._outbox.get(cid)
        if queued is not None:
            return queued.future
        entry = self._outbox.add(frame, stream)
        if self._is_open():
            self._write(frame)
        return entry.future

    def _write(self, frame: dict[str, Any] | str, sock: _Socket | None = None) -> bool:
        """Send on `sock` (the current socket); False when it is gone (what matters is
        sent again after the reconnect)."""
        sock = sock or self._socket
        ws = None if sock is None else sock.ws
        if ws is None or ws.protocol is None:
            return False
        try:
            sent = ws.write_message(frame if isinstance(frame, str) else json.dumps(frame))
        except WebSocketClosedError:
            return False
        sent.add_done_callback(_ignore_result)
        return True

    def _emit(self, event: Event) -> None:
        if self._on_event is None:
            self._events.put_nowait(event)
            return
        try:
            self._on_event(event)
        except Exception:  # the caller's code must not break the connection
            log.exception("imserver client: on_event failed")


def _reason(exc: HTTPClientError) -> str:
    body = exc.response.body if exc.response is not None and exc.response.body else b""
    return f"HTTP {exc.code} {body.decode('utf-8', 'replace')[:200]}".strip()


def _ignore_result(future: asyncio.Future[None]) -> None:
    """A write to a socket that closed meanwhile fails: the reconnect covers it."""
    if not future.cancelled():
        future.exception()
