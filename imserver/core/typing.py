"""Who is typing where, as this node shows it. Typing is never stored.

A target is a room ("room", name) or a user being written to ("user", id). Each
`typing: true` (from a connection here, or heard from another node) arms a
timer; when no other comes within TTL, the receivers are told `typing: false`,
so an indicator never outlives a client that vanished without its "stopped".
What a connection here says goes out to the other nodes at most once per
THROTTLE seconds per target while it keeps typing; its "stopped", its leaving
the room and its close go out at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from .registry import Connection

TTL = 6.0
THROTTLE = 1.0

Target = tuple[str, str]  # ("room", name) or ("user", recipient id)
# Tell this node's receivers: (target, typing user id, its name, typing?).
Show = Callable[[Target, str, str, bool], None]
# Tell the other nodes the same.
Publish = Callable[[Target, str, str, bool], None]


@dataclass(slots=True)
class _Typist:
    name: str
    timer: asyncio.TimerHandle
    conn: Connection | None = None  # the connection here that types; None: another node's
    forwarded: float = 0.0  # monotonic time of its last `typing: true` sent on


class TypingIndicators:
    """(target, user) -> who types there now, with its expiry."""

    def __init__(self, show: Show, publish: Publish | None = None, *, ttl: float = TTL,
                 throttle: float = THROTTLE) -> None:
        self.show = show
        self.publish = publish
        self.ttl = ttl
        self.throttle = throttle
        self.typists: dict[tuple[Target, str], _Typist] = {}

    def local(self, conn: Connection, target: Target, typing: bool) -> None:
        """A connection here says its user types (or stopped) at `target`."""
        user, name = conn.user.id, conn.user.name
        if not typing:
            self._stop(target, user, conn)
            return
        now = time.monotonic()
        typist = self._arm(target, user, name)
        typist.conn = conn
        if now - typist.forwarded >= self.throttle:
            typist.forwarded = now
            self.show(target, user, name, True)
            if self.publish is not None:
                self.publish(target, user, name, True)

    def remote(self, target: Target, user: str, name: str, typing: bool) -> None:
        """Another node says a user types (or stopped) at `target`."""
        key = (target, user)
        if typing:
            fresh = key not in self.typists
            typist = self._arm(target, user, name)
            typist.conn = None
            if fresh:
                self.show(target, user, name, True)
        elif key in self.typists:
            self.typists.pop(key).timer.cancel()
            self.show(target, user, name, False)

    def gone(self, conn: Connection, room: str | None = None) -> None:
        """A connection closed (room None), or left `room`: what it typed there stops."""
        for (target, user), typist in list(self.typists.items()):
            if typist.conn is conn and (room is None or target == ("room", room)):
                self._stop(target, user, conn)

    def _arm(self, target: Target, user: str, name: str) -> _Typist:
        key = (target, user)
        loop = asyncio.get_running_loop()
        typist = self.typists.get(key)
        timer = loop.call_later(self.ttl, self._expired, key)
        if typist is None:
            typist = self.typists[key] = _Typist(name, timer)
        else:
            typist.timer.cancel()
            typist.timer, typist.name = timer, name
        return typist

    def _stop(self, target: Target, user: str, conn: Connection) -> None:
        typist = self.typists.get((target, user))
        if typist is None or typist.conn is not conn:
            return  # not typing, or typing there from another connection
        del self.typists[(target, user)]
        typist.timer.cancel()
        self.show(target, user, typist.name, False)
        if self.publish is not None:
            self.publish(target, user, typist.name, False)

    def _expired(self, key: tuple[Target, str]) -> None:
        typist = self.typists.pop(key, None)
        if typist is not None:
            self.show(key[0], key[1], typist.name, False)
