"""A room's live side: who is in it now, and the presence changes not yet sent.

Presence is batched: changes within one short window go out as one frame,
so that 1000 clients joining a room cost 1000 frames, not a million. The
frame is a net diff (users who joined and are there now, users who left and
are gone now), so applying it to any view taken during the window, or before
it, gives the room as it is at the end of the window.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from . import protocol as p
from .registry import Connection


class Room:
    __slots__ = ("_changes", "_joined", "_left", "_snapshots", "_suspended", "conns",
                 "flush_scheduled", "members", "name", "names")

    def __init__(self, name: str) -> None:
        self.name = name
        self.conns: set[Connection] = set()  # who gets the room's messages now
        self._suspended: set[Connection] = set()  # members re-joining: paused until their backlog
        self.members: Counter[str] = Counter()  # user id -> connections in the room
        self.names: dict[str, str] = {}  # user id -> display name, for the members
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
        self._joined.add(conn.user.id)
        self._left.discard(conn.user.id)
        self._changes += 1
        return True

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
        user = conn.user.id
        self.members[user] -= 1
        if self.members[user] > 0:
            return False
        del self.members[user]
        self.names.pop(user, None)
        self._left.add(user)
        self._joined.discard(user)
        self._changes += 1
        return True

    def is_empty(self) -> bool:
        return not self.conns and not self._suspended

    def take_presence(self) -> tuple[dict[str, Any] | None, list[Connection]]:
        """The window's presence frame (None if nothing changed) and who must get it."""
        joined = sorted(u for u in self._joined if u in self.members)
        left = sorted(u for u in self._left if u not in self.members)
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
        names = {user: self.names[user] for user in joined}
        return p.presence_frame(self.name, joined, left, names), receivers
