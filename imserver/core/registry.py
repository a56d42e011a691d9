"""The connection registry: one object that knows every live connection.

The metrics, the heartbeat sweep and the admin dashboard read it; operators
close connections through it. A Connection is a plain record; the socket side
is behind the small `Transport` protocol so that the hub and the registry can
be used (and tested) without sockets.
"""

from __future__ import annotations

import secrets
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

from .frames import Outbound


@dataclass(frozen=True, slots=True)
class User:
    id: str
    name: str

    def to_json(self) -> dict[str, str]:
        return {"id": self.id, "name": self.name}


class Transport(Protocol):
    """What a connection needs from its socket."""

    def send(self, frame: Outbound) -> bool:
        """Queue a frame; False when the socket is already closing."""

    def send_ping(self, payload: bytes) -> None:
        """Send a WebSocket ping frame (nothing when the socket is closing)."""

    def close(self, code: int, reason: str) -> None:
        """Start a clean close handshake."""

    def abort(self) -> None:
        """Drop the TCP connection at once (a dead peer will not answer a close)."""


# Why a connection ended: the `reason` label of the closed/terminations metrics.
CLOSE_REASONS = ("client_close", "heartbeat_timeout", "kicked", "shutdown",
                 "rate_limited", "too_big", "slow_consumer", "token_expired", "logged_out", "error")
# The reasons for which the server itself ended the connection.
TERMINATION_REASONS = ("heartbeat_timeout", "kicked", "shutdown", "rate_limited",
                       "too_big", "slow_consumer", "token_expired")


@dataclass(eq=False, slots=True)
class Connection:
    """One live WebSocket connection and what is known about it."""
    id: str
    user: User
    transport: Transport
    remote: str = ""
    user_agent: str = ""
    reconnect: int = 0
    cause: str = ""  # why the client reconnected (protocol.reconnect_cause); "" for a first connection
    connected_at: float = field(default_factory=time.time)
    last_seen: float = field(default_factory=time.monotonic)
    rtt: float | None = None
    frames_in: int = 0
    frames_out: int = 0
    rooms: set[str] = field(default_factory=set)
    ping_payload: bytes | None = None
    ping_sent_at: float | None = None
    text_ping_at: float | None = None  # when its client last sent the text `ping`
    close_reason: str | None = None
    close_code: int | None = None
    close_message: str = ""  # the close frame's reason, from end(): an operator's words
    closed: bool = False
    expires_at: float = float("inf")  # when its token expires (epoch seconds)
    token_id: str | None = None  # its token's jti: a logout closes the connections it opened
    rooms_allowed: tuple[str, ...] | None = None  # what its token's rooms claim allows; None: any

    def allowed_in(self, room: str) -> bool:
        """Does its token allow the room (by name, or by a prefix ending in `*`)?"""
        allowed = self.rooms_allowed
        return allowed is None or any(
            room == p or (p.endswith("*") and room.startswith(p[:-1])) for p in allowed)

    def send(self, frame: Outbound) -> bool:
        """Queue a frame; False when the connection is closed or closing (nothing sent)."""
        if self.closed or not self.transport.send(frame):
            return False
        self.frames_out += 1
        return True

    def end(self, reason: str, code: int, message: str = "") -> None:
        """Close cleanly, remembering why and what the close frame said (the first
        reason given wins)."""
        if self.close_reason is None:
            self.close_reason, self.close_code, self.close_message = reason, code, message
        self.transport.close(code, message)

    def terminate(self, reason: str) -> None:
        """Abort the TCP connection, remembering why."""
        if self.close_reason is None:
            self.close_reason, self.close_code = reason, 1006
        self.transport.abort()


Listener = Callable[[Connection], None]


class Registry:
    """Every live connection, by id and by user."""

    def __init__(self) -> None:
        self._by_id: dict[str, Connection] = {}
        self._by_user: dict[str, set[Connection]] = {}
        self._by_remote: Counter[str] = Counter()
        self.on_open: list[Listener] = []
        self.on_close: list[Listener] = []
        self.on_renew: list[Listener] = []  # a connection's token was renewed
        # Grows with every change the admin side shows: a connection added or removed,
        # a room joined or left (the hub calls rooms_changed). Readers that keep
        # something built from the connections keep it while this stays the same.
        self.generation = 0

    @staticmethod
    def new_id() -> str:
        return secrets.token_urlsafe(9)

    def rooms_changed(self) -> None:
        """A connection joined or left a room."""
        self.generation += 1

    def add(self, conn: Connection) -> None:
        self.generation += 1
        self._by_id[conn.id] = conn
        self._by_user.setdefault(conn.user.id, set()).add(conn)
        self._by_remote[conn.remote] += 1
        for listener in self.on_open:
            listener(conn)

    def renewed(self, conn: Connection) -> None:
        """A connection's token was renewed (its expiry may have moved either way)."""
        for listener in self.on_renew:
            listener(conn)

    def remove(self, conn: Connection) -> None:
        if self._by_id.pop(conn.id, None) is None:
            return
        self.generation += 1
        self._by_remote[conn.remote] -= 1
        if self._by_remote[conn.remote] <= 0:
            del self._by_remote[conn.remote]
        conns = self._by_user.get(conn.user.id)
        if conns is not None:
            conns.discard(conn)
            if not conns:
                del self._by_user[conn.user.id]
        conn.closed = True
        for listener in self.on_close:
            listener(conn)

    def get(self, conn_id: str) -> Connection | None:
        return self._by_id.get(conn_id)

    def of_user(self, user_id: str) -> list[Connection]:
        return list(self._by_user.get(user_id, ()))

    def count_remote(self, remote: str) -> int:
        return self._by_remote.get(remote, 0)

    def users_online(self) -> int:
        return len(self._by_user)

    def close(self, conn_id: str, code: int, reason: str, *, why: str = "kicked") -> bool:
        """Close one connection by id; False when there is no such connection."""
        conn = self._by_id.get(conn_id)
        if conn is None:
            return False
        conn.end(why, code, reason)
        return True

    def __iter__(self) -> Iterator[Connection]:
        return iter(list(self._by_id.values()))

    def __len__(self) -> int:
        return len(self._by_id)
