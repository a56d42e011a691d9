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


class Backend(Store, Protocol):
    """A message store as the server uses it."""

    async def open(self, now: float) -> IdentitySnapshot:
        """Make the store ready to serve (connect, migrate) and read the identities
        valid at `now`; before any other operation."""

    def health(self) -> str | None:
        """Why the store cannot be trusted now (for /healthz), or None when it can."""

    async def close(self) -> None:
        """Finish every queued operation, then let go of the database."""

    def claim_name(self, key: str, user_id: str, name: str, jti: str,
                   expires: float) -> asyncio.Future[None]:
        """A guest login: the name is `user_id`'s, and one more token of it is valid."""

    def revoke_token(self, jti: str, user_id: str, expires: float) -> asyncio.Future[None]:
        """A logout: the token stays refused until it expires."""

    def prune_identities(self, now: float) -> asyncio.Future[int]:
        """Forget expired tokens and the name claims no valid token holds."""

    def prune(self, *, max_age_seconds: float | None,
              keep_per_room: int | None) -> asyncio.Future[int]:
        """Retention: delete messages older than the age, and all but the newest
        `keep_per_room` of each room; returns how many were deleted."""
