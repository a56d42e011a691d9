"""The chat core: rooms, presence, direct messages and fan-out.

Plain Python over Connection records and the message store; no sockets.
Every command is answered from a store callback, and a connection's answers go
out in the order of its commands: `joined` comes before the ack of a message
sent right after the join, whatever order the store answers in.

Room messages and direct messages go out through feeds (feed.py): each stream
is delivered in id order, once, with no hole, whether a message was written on
this node or heard from another node of a cluster (the `Broker`), and a gap is
read from the store before anything newer goes out. A client that re-joins
with `since` gets every message it missed exactly once: in its backlog if the
store read saw it, live otherwise.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from . import protocol as p
from .counting import Gauge, Histogram, Labelled
from .errors import Refused, StoreError, UnknownUser
from .feed import Feed, Held
from .frames import Outbound
from .registry import Connection, Registry
from .room import Room
from .store import DELETE, EDIT, Appended, JoinedRoom, Message, Page, Recovery, Store
from .typing import Target, TypingIndicators

log = logging.getLogger("imserver.hub")

# Sends one frame to many connections; returns how many took it (transport/sendpool.py).
Deliver = Callable[[Sequence[Connection], Outbound], int]


# Messages read per store call when a feed fills a gap.
FILL_PAGE = 500
# Seconds before a failed fill read is tried again.
FILL_RETRY = 0.5
# Rooms in one directory answer.
DIRECTORY_MAX = 200


class Broker(Protocol):
    """What the hub asks of the other nodes of a cluster (cluster/ has it; one node: None).

    What comes from them reaches the hub's room_published, direct_published,
    remote_presence, node_gone and resync.
    """

    def publish_room(self, done: Appended) -> None: ...
    def publish_direct(self, done: Appended) -> None: ...
    def watch_room(self, room: str) -> asyncio.Future[None]:
        """Hear the room's messages and presence; answered once that is in place."""
    def unwatch_room(self, room: str) -> None: ...
    def presence(self, room: str, user_id: str, name: str, present: bool) -> None:
        """A user's first connection here joined a room, or its last one left it."""
    def tell_user(self, user_id: str, event: dict[str, Any]) -> None:
        """Pass an event to the user's connections on the other nodes (their user_event)."""
    def tell_room(self, room: str, event: dict[str, Any]) -> None:
        """Pass an event to the room's members on the other nodes (their room_event)."""


@dataclass(frozen=True, slots=True)
class Renewal:
    """A fresh token's user, expiry, id and rooms claim (see Gate.renew)."""
    user_id: str
    expires: float
    token_id: str | None
    rooms_allowed: tuple[str, ...] | None


class Gate(Protocol):
    """What the application decides about a connection beyond its token's first check
    (http/access.py has it)."""

    def renew(self, token: str) -> asyncio.Future[Renewal]:
        """Check a fresh token; fails with Refused("bad_token") when it is not valid."""
    def may_read(self, conn: Connection, room: str) -> asyncio.Future[None] | None:
        """May the connection's user join and read the room? None: yes, known now; else
        a future that fails with Refused (forbidden, unavailable) when it may not."""


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
    @property
    def typing_seconds(self) -> float: ...


class _Delivered(Protocol):
    delivered: int






class HubMetrics(Protocol):
    """What the hub counts (ops.metrics.Metrics has it)."""

    @property
    def frames(self) -> _Delivered: ...
    @property
    def errors(self) -> Labelled: ...
    @property
    def rooms(self) -> Gauge: ...
    @property
    def store_seconds(self) -> Histogram: ...
    @property
    def gaps_filled(self) -> Labelled: ...


class Hub:
    """Turns parsed commands into store operations and outbound frames."""

    def __init__(self, store: Store, registry: Registry, limits: Limits,
                 metrics: HubMetrics, deliver: Deliver,
                 resolve: Callable[[str], str] = str, broker: Broker | None = None,
                 gate: Gate | None = None) -> None:
        self.store = store
        # A dm's `to` or a history's `with` -> a user id (a claimed guest name -> its holder).
        self.resolve = resolve
        self.registry = registry
        self.limits = limits
        self.metrics = metrics
        self.rooms: dict[str, Room] = {}
        # user id -> the feed of its direct messages, while it has connections here
        self.dm_feeds: dict[str, Feed[Connection]] = {}
        self.presence_interval = limits.presence_interval
        self.deliver = deliver
        self.broker = broker
        self.gate = gate
        self.typing_indicators = TypingIndicators(
            self._show_typing, self._publish_typing if broker is not None else None,
            ttl=limits.typing_seconds)
        # connection -> its store operations not answered yet, in command order
        self._answers: dict[Connection, list[_Answer]] = {}
        # protocol.COMMANDS -> the method of the same name; a command without one fails here.
        self._dispatch: dict[type[p.Command], Callable[[Connection, Any], None]] = {
            command: getattr(self, p.handler_name(command)) for command in p.COMMANDS}

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

    def error(self, conn: Connection, code: str, message: str, cid: str | None = None, *,
              room: str | None = None) -> None:
        self.metrics.errors.labels(code).inc()
        self.send(conn, p.error_frame(code, message, cid, room))

    # --- commands ---

    def handle(self, conn: Connection, command: p.Command) -> None:
        """Carry out one command from a connection: by the hub's method named after its kind."""
        self._dispatch[type(command)](conn, command)

    def _may_read(self, conn: Connection, room: str, cid: str | None = None) -> bool | asyncio.Future[None]:
        """The token's claim and the application's say on a room: False (refused, and
        answered), True (allowed), or a future that fails with Refused if it is not."""
        if not conn.allowed_in(room):
            self.error(conn, "forbidden", f"your token does not allow room {room}", cid, room=room)
            return False
        check = self.gate.may_read(conn, room) if self.gate is not None else None
        return True if check is None else check

    def join(self, conn: Connection, cmd: p.Join) -> None:
        allowed = self._may_read(conn, cmd.room)
        if allowed is False:
            return
        if cmd.room not in conn.rooms and len(conn.rooms) >= self.limits.max_rooms_per_connection:
            self.error(conn, "bad_request",
                       f"at most {self.limits.max_rooms_per_connection} rooms per connection",
                       room=cmd.room)
            return
        # Membership counts for `say` at once; delivery starts when the backlog
        # read has been answered, so nothing falls between backlog and live, and
        # nothing comes twice: a member that re-joins is paused until then.
        room = self.rooms.get(cmd.room)
        if room is None:
            room = self.rooms[cmd.room] = Room(cmd.room)
            self.metrics.rooms.set(len(self.rooms))
            if self.broker is not None:
                room.watched = self.broker.watch_room(cmd.room)
        if cmd.room in conn.rooms:
            room.suspend(conn)
        conn.rooms.add(cmd.room)
        self.registry.rooms_changed()
        room.joining += 1
        self._read_backlog(conn, room, cmd.since, None if allowed is True else allowed)

    def _read_backlog(self, conn: Connection, room: Room, since: int | None,
                      allowed: asyncio.Future[None] | None = None) -> None:
        """Read a joiner's backlog once the application allows it; in a cluster, once
        this node hears the room, so that whatever is stored after the read reaches it
        live."""
        def read() -> asyncio.Future[JoinedRoom]:
            return self.store.join_room(conn.user.id, room.name, since, self.limits.recovery_limit,
                                        self.limits.history_page)
        def start() -> asyncio.Future[JoinedRoom]:
            watched = room.watched
            return read() if watched is None or watched.done() else _then(watched, read)
        backlog = start() if allowed is None else _then(allowed, start, carry_failure=True)
        self._when_done(backlog, conn, None,
                        lambda found: self._send_joined(conn, room, since, found), room=room.name,
                        always=lambda: self._join_ended(room),
                        failed=lambda: self._failed_join(conn, room.name))

    def _failed_join(self, conn: Connection, name: str) -> None:
        """The join was refused (a private room, the application) or could not be read
        (the store is away): it never happened."""
        conn.rooms.discard(name)
        self.registry.rooms_changed()
        self._remove_from_room(conn, name)

    def _admit(self, conn: Connection, name: str, read: int) -> None:
        """Record a first join's membership. A failed write costs no one the join; but a
        room someone else made private since the join was read is not this joiner's."""
        def recorded(f: asyncio.Future[None]) -> None:
            error = None if f.cancelled() else f.exception()
            if isinstance(error, Refused):
                self.user_event(conn.user.id, {"e": "removed", "room": name})
            elif error is not None:
                log.warning("recording a membership of room %s failed: %r", name, error)
        self.store.add_member(conn.user.id, name, read).add_done_callback(recorded)

    def _join_ended(self, room: Room) -> None:
        room.joining -= 1
        self._forget_if_empty(room)

    def _send_joined(self, conn: Connection, room: Room, since: int | None,
                     joined: JoinedRoom) -> None:
        if conn.closed or room.name not in conn.rooms or self.rooms.get(room.name) is not room:
            return
        found = joined.recovery
        if not joined.member:
            self._admit(conn, room.name, joined.read)
        feed = room.feed
        if feed.delivered is not None and found.latest < feed.delivered:
            # The read missed messages this node has delivered already (in a cluster,
            # another node's commit can be seen here before this read sees it): they
            # join the backlog from the room's recent ones, or, when those do not
            # reach back so far, the backlog is read again.
            missing = room.recent_after(found.latest)
            if missing is None:
                room.joining += 1
                self._read_backlog(conn, room, since)
                return
            found = Recovery(found.messages + missing, found.truncated, feed.delivered)
        if room.add(conn):
            self._tell_presence(room, conn, True)
        if room.changed:
            self._presence_changed(room)
        members = room.everyone()
        self.send(conn, p.joined_frame(room.name, sorted(members), members,
                                       found.messages, found.truncated, topic=joined.topic,
                                       private=joined.private, read=joined.read,
                                       unread=joined.unread, owner=joined.owner))
        room.snapshot_sent(conn)
        if feed.delivered is None:
            room.recent_from = found.latest
            self._deliver_room(room, feed.start(found.latest))
            if feed.needs_fill:
                self._fill_room(room)
        elif found.latest > feed.delivered:
            room.ahead[conn] = found.latest  # it has those: the feed skips it up to there

    def leave(self, conn: Connection, cmd: p.Leave) -> None:
        if cmd.room not in conn.rooms:
            self.error(conn, "not_in_room", f"not in room {cmd.room}", room=cmd.room)
            return
        conn.rooms.discard(cmd.room)
        self.registry.rooms_changed()
        self._remove_from_room(conn, cmd.room)
        self.send(conn, p.left_frame(cmd.room))
        _quietly(self.store.leave_room(conn.user.id, cmd.room), "leaving")

    def _remove_from_room(self, conn: Connection, name: str) -> None:
        self.typing_indicators.gone(conn, name)
        room = self.rooms.get(name)
        if room is None:
            return
        if room.remove(conn):
            self._tell_presence(room, conn, False)
        if room.changed:
            self._presence_changed(room)
        self._forget_if_empty(room)

    def _forget_if_empty(self, room: Room) -> None:
        if room.is_empty() and self.rooms.get(room.name) is room:
            del self.rooms[room.name]
            self.metrics.rooms.set(len(self.rooms))
            if self.broker is not None:
                self.broker.unwatch_room(room.name)

    def _tell_presence(self, room: Room, conn: Connection, present: bool) -> None:
        if self.broker is not None:
            self.broker.presence(room.name, conn.user.id, conn.user.name, present)

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
        self.typing_indicators.gone(conn)
        self._answers.pop(conn, None)
        if not self.registry.of_user(conn.user.id):
            self.dm_feeds.pop(conn.user.id, None)

    def say(self, conn: Connection, cmd: p.Say) -> None:
        if cmd.room not in conn.rooms:
            self.error(conn, "not_in_room", f"join {cmd.room} before sending to it", cmd.cid,
                       room=cmd.room)
            return
        started = time.monotonic()
        write = self.store.append_room(conn.user.id, cmd.room, cmd.text, cmd.cid, conn.user.name)
        self._when_done(write, conn, cmd.cid, lambda done: self._said(conn, done, started),
                        write=True, room=cmd.room)

    def _said(self, conn: Connection | None, done: Appended, started: float) -> None:
        """A message or an event stored: ack it, and deliver it in its stream."""
        if conn is not None:
            self._ack(conn, done, started)
        if done.duplicate:
            return
        if done.message.room is None:
            if self.broker is not None:
                self.broker.publish_direct(done)
            self._offer_direct(done.message, done.previous, done.previous_recipient, conn)
            return
        if self.broker is not None:
            self.broker.publish_room(done)
        self._offer_room(done.message, done.previous, conn)

    def room_published(self, message: Message, previous: int) -> None:
        """A room message stored by another node of the cluster."""
        self._offer_room(message, previous, None)

    def _offer_room(self, message: Message, previous: int, origin: Connection | None) -> None:
        room = self.rooms.get(message.room or "")
        if room is None:
            return  # nobody here is in the room
        self._deliver_room(room, room.feed.offer(message, previous, origin))
        if room.feed.needs_fill:
            self._fill_room(room)

    def _deliver_room(self, room: Room, ready: list[Held[Connection]]) -> None:
        for held in ready:
            msg = held.message
            room.remember(msg)
            targets: Iterable[Connection] = room.conns
            if room.ahead:
                targets = [c for c in room.conns if room.ahead.get(c, 0) < msg.id]
            self.broadcast(targets, p.message_frame(msg), skip=held.origin)
        if room.ahead and ready:  # those now caught up need no skipping
            newest = ready[-1].message.id
            for conn in [c for c, upto in room.ahead.items() if upto <= newest]:
                del room.ahead[conn]

    def _fill_room(self, room: Room) -> None:
        def deliver(ready: list[Held[Connection]]) -> None:
            if self.rooms.get(room.name) is room:
                self._deliver_room(room, ready)
        self._fill(room.feed, lambda after: self.store.room_after(room.name, after, FILL_PAGE),
                   deliver, "room", f"room {room.name}")

    def _fill(self, feed: Feed[Connection], read: Callable[[int], asyncio.Future[Page]],
              deliver: Callable[[list[Held[Connection]]], None], stream: str, what: str) -> None:
        """Read a feed's gap from the store, page by page, and deliver it with what was
        held behind it; a failed read is tried again (nothing newer goes out meanwhile)."""
        self.metrics.gaps_filled.labels(stream).inc()
        feed.filling = True
        started_at = feed.delivered
        assert started_at is not None  # a gap is after something delivered

        def after() -> int:
            assert feed.delivered is not None
            return feed.delivered

        def done(f: asyncio.Future[Page]) -> None:
            try:
                page = f.result()
            except Exception as exc:  # the store is down: try again, keep holding
                log.warning("filling the gap of %s failed: %s", what, exc)
                asyncio.get_running_loop().call_later(FILL_RETRY, retry)
                return
            deliver(feed.filled(page.messages))
            if page.more:
                read(after()).add_done_callback(done)
                return
            if feed.delivered == started_at and feed.held:
                # The store has nothing between: the gap's messages are gone (retention),
                # so what is held goes out as it is rather than never.
                feed.delivered = min(feed.held) - 1
            deliver(feed.fill_done())
            if feed.needs_fill:
                self._fill(feed, read, deliver, stream, what)

        def retry() -> None:
            read(after()).add_done_callback(done)

        read(started_at).add_done_callback(done)


    def dm(self, conn: Connection, cmd: p.DirectMessage) -> None:
        started = time.monotonic()
        write = self.store.append_direct(conn.user.id, self.resolve(cmd.to), cmd.text, cmd.cid,
                                         conn.user.name)
        self._when_done(write, conn, cmd.cid, lambda done: self._said(conn, done, started),
                        write=True)

    def direct_published(self, message: Message, previous: int, previous_recipient: int) -> None:
        """A direct message stored by another node of the cluster."""
        self._offer_direct(message, previous, previous_recipient, None)

    def _offer_direct(self, message: Message, previous: int, previous_recipient: int,
                      origin: Connection | None) -> None:
        """Deliver a direct message on the sender's stream and on the recipient's."""
        streams = [(message.sender, previous)]
        if message.recipient is not None and message.recipient != message.sender:
            streams.append((message.recipient, previous_recipient))
        for user, before in streams:
            if not self.registry.of_user(user):
                self.dm_feeds.pop(user, None)
                continue
            feed = self.dm_feeds.get(user)
            if feed is None:  # its first message here: the stream is known from it on
                feed = self.dm_feeds[user] = Feed(delivered=before)
            self._deliver_direct(user, feed.offer(message, before, origin))
            if feed.needs_fill:
                self._fill_direct(user, feed)

    def _deliver_direct(self, user: str, ready: list[Held[Connection]]) -> None:
        for held in ready:
            self.broadcast(self.registry.of_user(user), p.message_frame(held.message),
                           skip=held.origin)

    def _fill_direct(self, user: str, feed: Feed[Connection]) -> None:
        def deliver(ready: list[Held[Connection]]) -> None:
            if self.dm_feeds.get(user) is feed:
                self._deliver_direct(user, ready)
        self._fill(feed, lambda after: self.store.dm_after(user, after, FILL_PAGE), deliver,
                   "direct", f"the direct messages of {user}")

    # --- conversations: the directory, private rooms, read marks, typing, edits ---

    def directory(self, conn: Connection, cmd: p.Rooms) -> None:
        self._when_done(self.store.list_rooms(conn.user.id, DIRECTORY_MAX), conn, None,
                        lambda found: self.send(conn, p.rooms_frame(found)))

    def create(self, conn: Connection, cmd: p.Create) -> None:
        self._when_done(self.store.create_room(conn.user.id, cmd.room, cmd.topic, cmd.private),
                        conn, None, lambda info: self.send(conn, p.created_frame(info)),
                        room=cmd.room)

    def invite(self, conn: Connection, cmd: p.Invite) -> None:
        user = self.resolve(cmd.user)

        def invited(info: Any) -> None:
            self.send(conn, p.invited_frame(cmd.room, user))
            self._to_user(user, {"e": "frame", "frame": p.invitation_frame(
                info, conn.user.id, conn.user.name)})
        self._when_done(self.store.invite(conn.user.id, cmd.room, user), conn, None, invited,
                        room=cmd.room)

    def remove(self, conn: Connection, cmd: p.Remove) -> None:
        user = self.resolve(cmd.user)

        def removed(_: None) -> None:
            self.send(conn, p.removed_frame(cmd.room, user))
            self._to_user(user, {"e": "removed", "room": cmd.room})
        self._when_done(self.store.remove_member(conn.user.id, cmd.room, user), conn, None, removed,
                        room=cmd.room)

    def read(self, conn: Connection, cmd: p.Read) -> None:
        other = self.resolve(cmd.with_user) if cmd.with_user is not None else None

        def moved(mark: Any) -> None:
            if mark is not None:
                frame = p.read_frame(cmd.room, other, mark)
                self.broadcast(self.registry.of_user(conn.user.id), frame, skip=conn)
                if self.broker is not None:
                    self.broker.tell_user(conn.user.id, {"e": "frame", "frame": frame})
        self._when_done(self.store.mark_read(conn.user.id, cmd.room, other, cmd.id), conn, None,
                        moved, write=True)

    def typing(self, conn: Connection, cmd: p.Typing) -> None:
        if cmd.room is not None:
            if cmd.room not in conn.rooms:
                self.error(conn, "not_in_room", f"join {cmd.room} before typing in it",
                           room=cmd.room)
                return
            self.typing_indicators.local(conn, ("room", cmd.room), cmd.typing)
        else:
            assert cmd.to is not None
            self.typing_indicators.local(conn, ("user", self.resolve(cmd.to)), cmd.typing)

    def _show_typing(self, target: Target, user: str, name: str, typing: bool) -> None:
        kind, where = target
        if kind == "room":
            room = self.rooms.get(where)
            if room is not None:
                self.broadcast([c for c in room.conns if c.user.id != user],
                               p.typing_frame(where, user, name, typing))
        elif where != user:
            self.broadcast(self.registry.of_user(where), p.typing_frame(None, user, name, typing))

    def _publish_typing(self, target: Target, user: str, name: str, typing: bool) -> None:
        assert self.broker is not None
        event = {"e": "typing", "user": user, "name": name, "typing": typing}
        kind, where = target
        if kind == "room":
            self.broker.tell_room(where, event)
        else:
            self.broker.tell_user(where, event)

    def edit(self, conn: Connection, cmd: p.Edit) -> None:
        self._event(conn, EDIT, cmd.room, cmd.target, cmd.text, cmd.cid)

    def delete(self, conn: Connection, cmd: p.Delete) -> None:
        self._event(conn, DELETE, cmd.room, cmd.target, "", cmd.cid)

    def _event(self, conn: Connection, kind: str, room: str | None, target: int, text: str,
               cid: str | None) -> None:
        if room is not None and room not in conn.rooms:
            self.error(conn, "not_in_room", f"join {room} before changing its messages", cid,
                       room=room)
            return
        started = time.monotonic()
        write = self.store.append_event(conn.user.id, kind, target, text, cid, room)
        self._when_done(write, conn, cid, lambda done: self._said(conn, done, started), write=True,
                        room=room)

    def refresh(self, conn: Connection, cmd: p.Refresh) -> None:
        if self.gate is None:
            self.error(conn, "bad_request", "this server takes no token refresh")
            return

        def renewed(renewal: Renewal) -> None:
            if renewal.user_id != conn.user.id:
                self.error(conn, "forbidden", "the new token is another user's")
                return
            conn.expires_at, conn.token_id = renewal.expires, renewal.token_id
            conn.rooms_allowed = renewal.rooms_allowed
            self.registry.renewed(conn)
            self.send(conn, p.refreshed_frame(renewal.expires))
        self._when_done(self.gate.renew(cmd.token), conn, None, renewed)

    def operator_delete(self, message_id: int) -> asyncio.Future[Appended]:
        """An operator deletes a message: stored as a deletion and delivered like one;
        the future fails with Refused("not_found") when there is no such message."""
        return self._deliver_once_stored(
            self.store.append_event("", DELETE, message_id, "", None, None, operator=True))

    def post(self, sender: str, name: str, text: str, cid: str | None, *, room: str | None = None,
             to: str | None = None) -> asyncio.Future[Appended]:
        """A message from the application's backend (the server API), in a room or to a
        user, as if `sender` had sent it: stored (once per cid), then delivered."""
        if room is not None:
            write = self.store.append_room(sender, room, text, cid, name)
        else:
            assert to is not None
            write = self.store.append_direct(sender, self.resolve(to), text, cid, name)
        return self._deliver_once_stored(write)

    def _deliver_once_stored(self, write: asyncio.Future[Appended]) -> asyncio.Future[Appended]:
        def stored(f: asyncio.Future[Appended]) -> None:
            if not f.cancelled() and f.exception() is None:
                self._said(None, f.result(), 0.0)
        write.add_done_callback(stored)
        return write

    def _to_user(self, user: str, event: dict[str, Any]) -> None:
        """An event for a user's connections, here and on the other nodes."""
        self.user_event(user, event)
        if self.broker is not None:
            self.broker.tell_user(user, event)

    def user_event(self, user: str, event: dict[str, Any]) -> None:
        """An event for the connections of `user` on this node (from here, or another node)."""
        kind = event.get("e")
        if kind == "frame":
            self.broadcast(self.registry.of_user(user), event["frame"])
        elif kind == "removed":
            room = str(event["room"])
            for conn in self.registry.of_user(user):
                if room in conn.rooms:
                    conn.rooms.discard(room)
                    self.registry.rooms_changed()
                    self._remove_from_room(conn, room)
                    self.send(conn, p.left_frame(room, "removed"))
        elif kind == "typing":  # to this user, from another node's user
            self.typing_indicators.remote(("user", user), str(event["user"]), str(event["name"]),
                                          bool(event["typing"]))

    def room_event(self, room: str, event: dict[str, Any]) -> None:
        """An event for a room's members on this node, from another node."""
        if event.get("e") == "typing":
            self.typing_indicators.remote(("room", room), str(event["user"]), str(event["name"]),
                                          bool(event["typing"]))

    # --- from the other nodes of a cluster ---

    def remote_presence(self, node: str, room_name: str, user_id: str, name: str,
                        present: bool) -> None:
        """Another node says a user joined a room there, or left it."""
        room = self.rooms.get(room_name)
        if room is None:
            return
        if present:
            room.remote_join(node, user_id, name)
        else:
            room.remote_leave(node, user_id)
        if room.changed:
            self._presence_changed(room)

    def remote_members(self, room_name: str) -> set[tuple[str, str]]:
        """Who this node shows in a room from other nodes: (node, user id) each."""
        room = self.rooms.get(room_name)
        if room is None:
            return set()
        return {(node, user) for node, users in room.remote.items() for user in users}

    def node_gone(self, node: str) -> None:
        """Another node stopped (its lease ran out): its members leave every room."""
        for room in list(self.rooms.values()):
            room.node_gone(node)
            if room.changed:
                self._presence_changed(room)

    def resync(self) -> None:
        """What other nodes published may have been lost (the broker was unreachable):
        read every stream from where this node is, before anything newer."""
        for room in list(self.rooms.values()):
            if room.feed.delivered is not None and not room.feed.filling:
                self._fill_room(room)
        for user, feed in list(self.dm_feeds.items()):
            if feed.delivered is not None and not feed.filling:
                self._fill_direct(user, feed)

    def _ack(self, conn: Connection, done: Appended, started: float) -> None:
        if not done.duplicate:
            self.metrics.store_seconds.observe(time.monotonic() - started)
        self.send(conn, p.ack_frame(done.message.cid, done.message.id, done.message.ts))

    def history(self, conn: Connection, cmd: p.History) -> None:
        limit = min(cmd.limit or self.limits.history_page, self.limits.history_page)
        if cmd.with_user is not None:
            read = self.store.dm_before(conn.user.id, self.resolve(cmd.with_user), cmd.before, limit)
        else:
            room = cmd.room
            assert room is not None
            allowed = self._may_read(conn, room)
            if allowed is False:
                return

            def page() -> asyncio.Future[Page]:
                return self.store.room_history(conn.user.id, room, cmd.before, limit)
            read = page() if allowed is True else _then(allowed, page, carry_failure=True)
        self._when_done(read, conn, None, lambda page: self.send(conn, p.history_frame(
            page.messages, page.more, room=cmd.room, with_user=cmd.with_user)), room=cmd.room)

    def dm_sync(self, conn: Connection, cmd: p.DmSync) -> None:
        read = self.store.dm_recover(conn.user.id, cmd.since, self.limits.recovery_limit,
                                     self.limits.history_page)
        self._when_done(read, conn, None, lambda found: self.send(conn, p.dm_sync_frame(
            found.messages, found.truncated)))

    # --- plumbing ---

    def _when_done(self, future: asyncio.Future[Any], conn: Connection, cid: str | None,
                   then: Callable[[Any], None], *, write: bool = False,
                   always: Callable[[], None] | None = None,
                   failed: Callable[[], None] | None = None, room: str | None = None) -> None:
        """Run `then(result)` when a store operation is answered, and a connection's
        answers in the order of its commands (the store may answer reads and writes
        in another order). `always` runs after it, whatever the outcome; `failed` when
        the operation was refused or failed (its error is sent, naming `room`).

        A write's `then` runs even when its sender has gone: the message is
        durable, so the others must get it.
        """
        answer = _Answer(future, conn, cid, then, write, always, failed, room)
        queue = self._answers.get(conn)
        if queue is None:
            queue = self._answers[conn] = []
        queue.append(answer)

        def ready(_: asyncio.Future[Any]) -> None:
            answer.ready = True
            self._answer_in_order(conn, queue)
        future.add_done_callback(ready)

    def _answer_in_order(self, conn: Connection, queue: list[_Answer]) -> None:
        # `ready` rather than future.done(): a store that answers in order has its
        # callbacks run in that order too, across connections.
        while queue and queue[0].ready:
            self._answer(queue.pop(0))
        if not queue and self._answers.get(conn) is queue:
            del self._answers[conn]

    def _answer(self, answer: _Answer) -> None:
        conn, cid, room = answer.conn, answer.cid, answer.room
        try:
            try:
                result = answer.future.result()
            except UnknownUser as exc:
                self.error(conn, "unknown_user", str(exc), cid, room=room)
                return
            except Refused as exc:
                if answer.failed is not None:
                    answer.failed()
                if not conn.closed:
                    self.error(conn, exc.code, str(exc), cid, room=room)
                return
            except (StoreError, asyncio.CancelledError) as exc:
                # The store logs its own trouble once; one line per operation would flood.
                log.debug("store operation for connection %s failed: %r", conn.id, exc)
                if answer.failed is not None:
                    answer.failed()
                if not conn.closed:
                    self.error(conn, "unavailable", "message store unavailable, try again", cid,
                               room=room)
                return
            if answer.write or not conn.closed:
                answer.then(result)
        except Exception:  # one connection's failure must not reach the others
            log.exception("connection %s: error answering a store result", conn.id)
            conn.end("error", p.CLOSE_INTERNAL_ERROR, "internal error")
        finally:
            if answer.always is not None:
                answer.always()


class _Answer:
    """A store operation a connection waits on, and what to do with its result."""
    __slots__ = ("always", "cid", "conn", "failed", "future", "ready", "room", "then", "write")

    def __init__(self, future: asyncio.Future[Any], conn: Connection, cid: str | None,
                 then: Callable[[Any], None], write: bool,
                 always: Callable[[], None] | None,
                 failed: Callable[[], None] | None, room: str | None) -> None:
        self.future, self.conn, self.cid, self.then = future, conn, cid, then
        self.write, self.always, self.failed, self.room = write, always, failed, room
        self.ready = False


def _quietly(write: asyncio.Future[Any], what: str) -> None:
    """A store write nobody waits for: its failure is logged, and answered to no one."""
    def done(f: asyncio.Future[Any]) -> None:
        if not f.cancelled() and f.exception() is not None:
            log.warning("recording %s failed: %r", what, f.exception())
    write.add_done_callback(done)


def _then(first: asyncio.Future[None], second: Callable[[], asyncio.Future[Any]], *,
          carry_failure: bool = False) -> asyncio.Future[Any]:
    """A future for `second()`, started once `first` is done: whatever its outcome, or
    (`carry_failure`) only when it succeeded, failing as `first` did otherwise."""
    result: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    def relay(f: asyncio.Future[Any]) -> None:
        if result.done():
            return
        if f.cancelled():
            result.cancel()
        elif f.exception() is not None:
            result.set_exception(f.exception())  # type: ignore[arg-type]
        else:
            result.set_result(f.result())

    def start(f: asyncio.Future[None]) -> None:
        if carry_failure and (f.cancelled() or f.exception() is not None):
            relay(f)
            return
        try:
            inner = second()
        except Exception as exc:
            result.set_exception(exc)
            return
        inner.add_done_callback(relay)

    first.add_done_callback(start)
    return result
