"""The chat core: rooms, presence, direct messages and fan-out.

Plain Python over Connection records and the message store; no sockets.
Every command is answered from a store callback, and the store answers in the
order commands were queued, so for one connection: `joined` comes before the
ack of a message sent right after the join, and a client that re-joins with
`since` gets every message it missed exactly once (in the backlog if the store
read saw it, live otherwise).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

from . import protocol as p
from .errors import StoreError, UnknownUser
from .frames import Outbound
from .registry import Connection, Registry
from .room import Room
from .store import Appended, Recovery, Store

log = logging.getLogger("imserver.hub")

# Sends one frame to many connections; returns how many took it (transport/sendpool.py).
Deliver = Callable[[Sequence[Connection], Outbound], int]


class Limits(Protocol):
    """The limits the hub applies (config.LimitsConfig has them)."""

    @property
    def max_rooms_per_connection(self) -> int: ...
    @property
    def recovery_limit(self) -> int: ...
    @property
    def history_page(self) -> int: ...
    @property
    def presence_interval(self) -> float: ...


class _Delivered(Protocol):
    delivered: int


class _Counter(Protocol):
    def inc(self, amount: float = 1) -> None: ...


class _Labelled(Protocol):
    def labels(self, *values: str) -> _Counter: ...


class _Gauge(Protocol):
    def set(self, value: float) -> None: ...


class _Histogram(Protocol):
    def observe(self, amount: float) -> None: ...


class HubMetrics(Protocol):
    """What the hub counts (ops.metrics.Metrics has it)."""

    @property
    def frames(self) -> _Delivered: ...
    @property
    def errors(self) -> _Labelled: ...
    @property
    def rooms(self) -> _Gauge: ...
    @property
    def store_seconds(self) -> _Histogram: ...


class Hub:
    """Turns parsed commands into store operations and outbound frames."""

    def __init__(self, store: Store, registry: Registry, limits: Limits,
                 metrics: HubMetrics, deliver: Deliver,
                 resolve: Callable[[str], str] = str) -> None:
        self.store = store
        # A dm's `to` or a history's `with` -> a user id (a claimed guest name -> its holder).
        self.resolve = resolve
        self.registry = registry
        self.limits = limits
        self.metrics = metrics
        self.rooms: dict[str, Room] = {}
        self.presence_interval = limits.presence_interval
        self.deliver = deliver
        # protocol.COMMANDS -> the method of the same name; a command without one fails here.
        self._dispatch: dict[type[p.Command], Callable[[Connection, Any], None]] = {
            command: getattr(self, command.kind) for command in p.COMMANDS}

    # --- sending ---

    def send(self, conn: Connection, frame: dict[str, Any] | Outbound) -> None:
        out = frame if isinstance(frame, Outbound) else Outbound(frame)
        if conn.send(out):
            self.metrics.frames.delivered += 1

    def broadcast(self, conns: Iterable[Connection], frame: dict[str, Any], *,
                  skip: Connection | None = None) -> int:
        """Send one frame, encoded once, to many connections."""
        targets = list(conns)
        if skip is not None and skip in targets:
            targets.remove(skip)
        sent = self.deliver(targets, Outbound(frame))
        self.metrics.frames.delivered += sent
        return sent

    def error(self, conn: Connection, code: str, message: str, cid: str | None = None) -> None:
        self.metrics.errors.labels(code).inc()
        self.send(conn, p.error_frame(code, message, cid))

    # --- commands ---

    def handle(self, conn: Connection, command: p.Command) -> None:
        """Carry out one command from a connection: by the hub's method named after its kind."""
        self._dispatch[type(command)](conn, command)

    def join(self, conn: Connection, cmd: p.Join) -> None:
        if cmd.room not in conn.rooms and len(conn.rooms) >= self.limits.max_rooms_per_connection:
            self.error(conn, "bad_request",
                       f"at most {self.limits.max_rooms_per_connection} rooms per connection")
            return
        # Membership counts for `say` at once; delivery starts when the backlog
        # read has been answered, so nothing falls between backlog and live, and
        # nothing comes twice: a member that re-joins is paused until then.
        if cmd.room in conn.rooms:
            room = self.rooms.get(cmd.room)
            if room is not None:
                room.suspend(conn)
        conn.rooms.add(cmd.room)
        read = self.store.room_recover(cmd.room, cmd.since, self.limits.recovery_limit,
                                       self.limits.history_page)
        self._when_done(read, conn, None, lambda found: self._send_joined(conn, cmd.room, found))

    def _send_joined(self, conn: Connection, name: str, found: Recovery) -> None:
        if conn.closed or name not in conn.rooms:
            return
        room = self.rooms.get(name)
        if room is None:
            room = self.rooms[name] = Room(name)
            self.metrics.rooms.set(len(self.rooms))
        if room.add(conn):
            self._presence_changed(room)
        self.send(conn, p.joined_frame(
            name, sorted(room.members), {user_id: room.names[user_id] for user_id in room.members},
            found.messages, found.truncated))
        room.snapshot_sent(conn)

    def leave(self, conn: Connection, cmd: p.Leave) -> None:
        if cmd.room not in conn.rooms:
            self.error(conn, "not_in_room", f"not in room {cmd.room}")
            return
        conn.rooms.discard(cmd.room)
        self._remove_from_room(conn, cmd.room)
        self.send(conn, p.left_frame(cmd.room))

    def _remove_from_room(self, conn: Connection, name: str) -> None:
        room = self.rooms.get(name)
        if room is None:
            return
        if room.remove(conn):
            self._presence_changed(room)
        if room.is_empty():
            del self.rooms[name]
            self.metrics.rooms.set(len(self.rooms))

    def _presence_changed(self, room: Room) -> None:
        if not room.flush_scheduled:
            room.flush_scheduled = True
            asyncio.get_running_loop().call_later(self.presence_interval, self._flush_presence, room)

    def _flush_presence(self, room: Room) -> None:
        if self.rooms.get(room.name) is not room:
            return  # emptied and dropped meanwhile: nobody to tell
        frame, receivers = room.take_presence()
        if frame is not None:
            self.broadcast(receivers, frame)

    def disconnect(self, conn: Connection) -> None:
        """Forget a closed connection: leave its rooms, tell the others."""
        for name in list(conn.rooms):
            self._remove_from_room(conn, name)
        conn.rooms.clear()

    def say(self, conn: Connection, cmd: p.Say) -> None:
        if cmd.room not in conn.rooms:
            self.error(conn, "not_in_room", f"join {cmd.room} before sending to it", cmd.cid)
            return
        started = time.monotonic()
        write = self.store.append_room(conn.user.id, cmd.room, cmd.text, cmd.cid, conn.user.name)
        self._when_done(write, conn, cmd.cid, lambda done: self._said(conn, done, started),
                        write=True)

    def _said(self, conn: Connection, done: Appended, started: float) -> None:
        self._ack(conn, done, started)
        if done.duplicate:
            return
        msg = done.message
        room = self.rooms.get(msg.room or "")
        if room is not None:
            self.broadcast(room.conns, p.message_frame(msg), skip=conn)

    def dm(self, conn: Connection, cmd: p.DirectMessage) -> None:
        started = time.monotonic()
        write = self.store.append_direct(conn.user.id, self.resolve(cmd.to), cmd.text, cmd.cid,
                                         conn.user.name)
        self._when_done(write, conn, cmd.cid, lambda done: self._sent_direct(conn, done, started),
                        write=True)

    def _sent_direct(self, conn: Connection, done: Appended, started: float) -> None:
        self._ack(conn, done, started)
        if done.duplicate:
            return
        msg = done.message
        receivers = set(self.registry.of_user(msg.sender))
        receivers.update(self.registry.of_user(msg.recipient or ""))
        self.broadcast(receivers, p.message_frame(msg), skip=conn)

    def _ack(self, conn: Connection, done: Appended, started: float) -> None:
        if not done.duplicate:
            self.metrics.store_seconds.observe(time.monotonic() - started)
        self.send(conn, p.ack_frame(done.message.cid, done.message.id, done.message.ts))

    def history(self, conn: Connection, cmd: p.History) -> None:
        limit = min(cmd.limit or self.limits.history_page, self.limits.history_page)
        if cmd.with_user is not None:
            read = self.store.dm_before(conn.user.id, self.resolve(cmd.with_user), cmd.before, limit)
        else:
            assert cmd.room is not None
            read = self.store.room_before(cmd.room, cmd.before, limit)
        self._when_done(read, conn, None, lambda page: self.send(conn, p.history_frame(
            page.messages, page.more, room=cmd.room, with_user=cmd.with_user)))

    def dm_sync(self, conn: Connection, cmd: p.DmSync) -> None:
        read = self.store.dm_recover(conn.user.id, cmd.since, self.limits.recovery_limit,
                                     self.limits.history_page)
        self._when_done(read, conn, None, lambda found: self.send(conn, p.dm_sync_frame(
            found.messages, found.truncated)))

    # --- plumbing ---

    def _when_done(self, future: asyncio.Future[Any], conn: Connection, cid: str | None,
                   then: Callable[[Any], None], *, write: bool = False) -> None:
        """Run `then(result)` when a store operation is answered, in queue order.

        A write's `then` runs even when its sender has gone: the message is
        durable, so the others must get it.
        """

        def done(f: asyncio.Future[Any]) -> None:
            try:
                result = f.result()
            except UnknownUser as exc:
                self.error(conn, "unknown_user", str(exc), cid)
                return
            except StoreError as exc:
                log.error("store operation for connection %s failed: %s", conn.id, exc)
                if not conn.closed:
                    self.error(conn, "unavailable", "message store unavailable, try again", cid)
                return
            if write or not conn.closed:
                try:
                    then(result)
                except Exception:  # one connection's failure must not reach the others
                    log.exception("connection %s: error answering a store result", conn.id)
                    conn.end("error", p.CLOSE_INTERNAL_ERROR, "internal error")

        future.add_done_callback(done)
