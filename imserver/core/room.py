"""A room's live side: who is in it now, and the presence changes not yet sent.

Presence is batched: changes within one short window go out as one frame,
so that 1000 clients joining a room cost 1000 frames, not a million. The
frame is a net diff (users who joined and are there now, users who left and
are gone now), so applying it to any view taken during the window, or before
it, gives the room as it is at the end of the window.
"""

from __future__ import annotations

import asyncio
from collections import Counter, deque
from typing import Any

from . import protocol as p
from .feed import Feed
from .registry import Connection
from .store import Message

# How many of its newest messages a room keeps, for a joiner whose backlog read came
# back older than what the room has delivered since.
RECENT = 256


class Room:
    __slots__ = ("_changes", "_joined", "_left", "_snapshots", "_suspended", "ahead", "conns",
                 "feed", "flush_scheduled", "joining", "members", "name", "names", "recent",
                 "recent_from", "remote", "remote_names", "watched")

    def __init__(self, name: str) -> None:
        self.name = name
        self.conns: set[Connection] = set()  # who gets the room's messages now
        self._suspended: set[Connection] = set()  # members re-joining: paused until their backlog
        self.members: Counter[str] = Counter()  # user id -> connections in the room on this node
        self.names: dict[str, str] = {}  # user id -> display name, for the members here
        # In a cluster, the members on other nodes: node -> user ids, and their names.
        self.remote: dict[str, set[str]] = {}
        self.remote_names: dict[str, str] = {}
        self.feed: Feed[Connection] = Feed()  # what this node has delivered of the room
        self.recent: deque[Message] = deque(maxlen=RECENT)  # the newest it delivered
        self.recent_from = 0  # `recent` holds every message delivered after this id
        # Members whose backlog read saw messages the feed has not delivered yet:
        # connection -> the newest id it has; the feed skips it up to there.
        self.ahead: dict[Connection, int] = {}
        self.joining = 0  # joins whose backlog read is under way
        self.watched: asyncio.Future[None] | None = None  # in a cluster: the broker hears the room
        self.flush_scheduled = False
        self._joined: set[str] = set()
        self._left: set[str] = set()
        self._changes = 0  # presence changes in the current window
        self._snapshots: dict[Connection, int] = {}  # joiners of this window -> changes seen

    def add(self, conn: Connection) -> bool:
        """Add a connection; True when its user was not in the room before (a presence change)."""
        if conn in self._suspended:
            self._suspended.discard(conn)
            self.conns.add(conn)
            return False
        if conn in self.conns:
            return False
        self.conns.add(conn)
        self.members[conn.user.id] += 1
        self.names[conn.user.id] = conn.user.name
        if self.members[conn.user.id] > 1:
            return False
        self._arrived(conn.user.id)
        return True

    def _arrived(self, user: str) -> None:
        """`user` is now in the room on some node: a change unless it was already."""
        if sum(user in users for users in self.remote.values()) + (user in self.members) == 1:
            self._joined.add(user)
            self._left.discard(user)
            self._changes += 1

    def _departed(self, user: str) -> None:
        """`user` left the room on some node: a change when it is now in it nowhere."""
        if not self.present(user):
            self._left.add(user)
            self._joined.discard(user)
            self._changes += 1

    def present(self, user: str) -> bool:
        return user in self.members or any(user in users for users in self.remote.values())

    def everyone(self) -> dict[str, str]:
        """Every member, on every node: user id -> display name."""
        found = {user: self.remote_names[user] for users in self.remote.values() for user in users}
        found.update(self.names)
        return found

    def remember(self, message: Message) -> None:
        """A message delivered to the room (in the room's order)."""
        if len(self.recent) == self.recent.maxlen:
            self.recent_from = self.recent[0].id if self.recent else message.id
        self.recent.append(message)

    def recent_after(self, after: int) -> list[Message] | None:
        """The messages delivered here after the id `after`, when the recent ones reach
        back to it (None when they do not: some may be missing)."""
        if after < self.recent_from:
            return None
        return [m for m in self.recent if m.id > after]

    def remote_join(self, node: str, user: str, name: str) -> None:
        """Another node says `user` is in the room there."""
        users = self.remote.setdefault(node, set())
        if user in users:
            return
        users.add(user)
        self.remote_names[user] = name
        self._arrived(user)

    def remote_leave(self, node: str, user: str) -> None:
        """Another node says `user` left the room there."""
        users = self.remote.get(node)
        if users is None or user not in users:
            return
        users.discard(user)
        if not users:
            del self.remote[node]
        if not any(user in others for others in self.remote.values()):
            del self.remote_names[user]
        self._departed(user)

    def node_gone(self, node: str) -> None:
        """Another node is gone (its lease ran out): its members leave."""
        for user in sorted(self.remote.get(node, ())):
            self.remote_leave(node, user)

    @property
    def changed(self) -> bool:
        """Presence changes wait for the next flush."""
        return self._changes > 0

    def suspend(self, conn: Connection) -> None:
        """Stop live delivery to a member that re-joins: its new backlog covers the gap,
        and add() resumes it."""
        if conn in self.conns:
            self.conns.discard(conn)
            self._suspended.add(conn)

    def snapshot_sent(self, conn: Connection) -> None:
        """`conn` was just sent the member list: it knows every change so far."""
        self._snapshots[conn] = self._changes

    def remove(self, conn: Connection) -> bool:
        """Remove a connection; True when its user has now left the room (a presence change)."""
        if conn in self._suspended:
            self._suspended.discard(conn)
        elif conn in self.conns:
            self.conns.discard(conn)
        else:
            return False
        self._snapshots.pop(conn, None)
        self.ahead.pop(conn, None)
        user = conn.user.id
        self.members[user] -= 1
        if self.members[user] > 0:
            return False
        del self.members[user]
        self.names.pop(user, None)
        self._departed(user)
        return True

    def is_empty(self) -> bool:
        """No member here, and no join on its way: this node can forget the room."""
        return not self.conns and not self._suspended and not self.joining

    def take_presence(self) -> tuple[dict[str, Any] | None, list[Connection]]:
        """The window's presence frame (None if nothing changed) and who must get it."""
        joined = sorted(u for u in self._joined if self.present(u))
        left = sorted(u for u in self._left if not self.present(u))
        up_to_date = [c for c, seen in self._snapshots.items() if seen == self._changes]
        self._joined.clear()
        self._left.clear()
        self._snapshots.clear()
        self._changes = 0
        self.flush_scheduled = False
        if not joined and not left:
            return None, []
        skip = set(up_to_date)
        receivers = [c for c in self.conns if c not in skip] if skip else list(self.conns)
        names = {user: self.names.get(user) or self.remote_names[user] for user in joined}
        return p.presence_frame(self.name, joined, left, names), receivers
