"""What every message store gives the server beyond the core's Store: start-up,
retention, guest identities, health and close. storage/sqlite.py and
storage/postgres.py implement it; the server holds a Backend and never asks which.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Protocol

from ..core.store import Store


@dataclass(frozen=True, slots=True)
class IdentitySnapshot:
    """What the identity side keeps in memory, as stored: the name claims with their
    holders' valid tokens (not expired, not revoked)."""
    claims: list[tuple[str, str, str, str, float]]  # name key, user id, name, jti, expires


@dataclass(frozen=True, slots=True)
class StoredToken:
    """A guest token as stored, with the claim on the name it was issued for as it
    stands now: the identity side decides from it whether the token is valid."""
    user_id: str
    expires: float
    revoked: bool
    holder: str | None  # the user id holding the name now; None: nobody
    name: str | None  # the name as its holder last typed it


@dataclass(frozen=True, slots=True)
class Ban:
    """A user kept out by an operator: until `until` (Unix time), or until lifted (None)."""
    user_id: str
    reason: str
    until: float | None
    by: str | None  # how the operator acted (the admin API's note), when known
    at: float  # when the ban was made (Unix time)

    def in_force(self, now: float) -> bool:
        return self.until is None or self.until > now


@dataclass(frozen=True, slots=True)
class Mute:
    """A user an operator keeps quiet in one room (it still reads it): until `until`
    (Unix time), or until lifted (None)."""
    room: str
    user_id: str
    reason: str
    until: float | None
    by: str | None  # how the operator acted (the admin API's note), when known
    at: float  # when the mute was made (Unix time)

    def in_force(self, now: float) -> bool:
        return self.until is None or self.until > now


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One operator action as the audit log keeps it: who (`operator`), when (`ts`),
    what (`action`, e.g. "ban"), to what (`target`: a user, a connection, a message,
    "room/user" for a mute), why (`reason`), and how (`detail`: the way in and the
    address, what it reached). `id` is 0 until the entry is stored."""
    id: int
    ts: float
    operator: str
    action: str
    target: str
    reason: str
    detail: str


class Backend(Store, Protocol):
    """A message store as the server uses it."""

    # True when other processes write the same database (PostgreSQL): what one of
    # them keeps in memory about identities may be outdated by another.
    shared: bool

    async def open(self, now: float) -> IdentitySnapshot:
        """Make the store ready to serve (connect, migrate) and read the identities
        valid at `now`; before any other operation."""

    def health(self) -> str | None:
        """Why the store cannot be trusted now (for /healthz), or None when it can."""

    async def close(self) -> None:
        """Finish every queued operation, then let go of the database."""

    def claim_name(self, key: str, user_id: str, name: str, jti: str,
                   expires: float) -> asyncio.Future[None]:
        """A guest login: the name (by its key) is `user_id`'s, and one more token of it is
        valid. Atomic, and conditional: only when the name is free (no claim, or a holder
        none of whose tokens is valid now) or `user_id`'s already; otherwise the answer
        is NameTaken and nothing is written. Of several processes claiming one free
        name at once, exactly one gets it."""

    def guest_token(self, jti: str, key: str) -> asyncio.Future[StoredToken | None]:
        """A guest token by its jti, with the claim on the name key it was issued for
        (two primary-key lookups); None when the store has no such token (never issued
        here, or pruned after it expired)."""

    def read_identities(self, now: float) -> asyncio.Future[IdentitySnapshot]:
        """The identities valid at `now`, read while serving (open() gives them at start),
        in queue order with this process's writes."""

    def revoke_token(self, jti: str, user_id: str, expires: float) -> asyncio.Future[None]:
        """A logout: the token stays refused until it expires."""

    def prune_identities(self, now: float) -> asyncio.Future[int]:
        """Forget expired tokens and the name claims no valid token holds."""

    def prune(self, *, max_age_seconds: float | None,
              keep_per_room: int | None) -> asyncio.Future[int]:
        """Retention: delete messages older than the age, and all but the newest
        `keep_per_room` of each room; returns how many were deleted."""

    def ban(self, ban: Ban) -> asyncio.Future[None]:
        """Keep the user out (a ban of the same user is replaced)."""

    def lift_ban(self, user_id: str) -> asyncio.Future[bool]:
        """Lift the user's ban; False when there was none in the store."""

    def read_bans(self, now: float) -> asyncio.Future[list[Ban]]:
        """The bans in force at `now`, in queue order with this process's writes."""

    def mute(self, mute: Mute) -> asyncio.Future[None]:
        """Keep the user quiet in the room (a mute of the same user and room is replaced)."""

    def lift_mute(self, room: str, user_id: str, now: float) -> asyncio.Future[bool]:
        """Lift the user's mute in the room; False when none was in force at `now`."""

    def read_mutes(self, now: float, room: str | None = None) -> asyncio.Future[list[Mute]]:
        """The mutes in force at `now` (of one room, or of all), oldest first."""

    def record_audit(self, entry: AuditEntry) -> asyncio.Future[AuditEntry]:
        """Keep an operator action in the audit log; the entry as stored (with its id)."""

    def read_audit(self, before: int | None, limit: int) -> asyncio.Future[list[AuditEntry]]:
        """Up to `limit` audit entries with ids below `before` (None: the newest), newest first."""


# How many users a store remembers as written this run (then it starts again).
KNOWN_USERS_MAX = 100_000


class KnownUsers:
    """The users a store has written this run (user id -> name), so that touch_user
    writes each one once: reconnects after a restart cost no commit each. Bounded; a
    user whose write failed is forgotten, so the next touch writes it."""

    def __init__(self) -> None:
        self._names: dict[str, str] = {}

    def written(self, user_id: str, name: str) -> bool:
        return self._names.get(user_id) == name

    def remember(self, user_id: str, name: str) -> None:
        if len(self._names) >= KNOWN_USERS_MAX:
            self._names.clear()
        self._names[user_id] = name

    def until_failed(self, future: asyncio.Future[None], user_id: str, name: str) -> None:
        """Forget the user if `future` (its write) fails."""
        def done(f: asyncio.Future[None]) -> None:
            if not f.cancelled() and f.exception() is not None and self.written(user_id, name):
                del self._names[user_id]
        future.add_done_callback(done)
