"""Guest identities: an opaque user id bound to a display name, and logouts.

A guest login creates a user id ("g:" and random characters) for the name
typed. While any token of that user is valid (not expired, not revoked), the
name is that user's: another login for it (compared after NFKC and case
folding) is refused, unless it carries the holder's own token or cookie, in
which case it gets a fresh token for the same id. Once every token of the
holder has expired or been revoked, the name is free, and the next login with
it is a new user: messages belong to ids, so it never sees the old ones.

Name claims and the valid guest tokens are kept in memory (the upgrade path
looks a token up without I/O), written through the store before a login or
logout is answered, and read back from the database at start: a logged-out
token stays refused after a restart.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from ..core import protocol as p
from ..core.errors import AuthError
from ..core.registry import Registry, User
from ..storage.base import Backend, IdentitySnapshot
from .auth import Authenticator, Credential, guest_name, name_key

log = logging.getLogger("imserver.identity")

GUEST_ID_PREFIX = "g:"  # guest names cannot hold ':', so an id never looks like a name


class NameTaken(Exception):
    """The name is held by another user."""


def new_guest_id() -> str:
    return GUEST_ID_PREFIX + secrets.token_urlsafe(12)


@dataclass(slots=True)
class Claim:
    """A name and its holder, with the holder's tokens that are not revoked."""
    user_id: str
    name: str
    tokens: dict[str, float] = field(default_factory=dict)  # jti -> expiry

    def live(self, now: float) -> bool:
        """True while one of the holder's tokens is valid; drops the expired ones."""
        expired = [jti for jti, expires in self.tokens.items() if expires <= now]
        for jti in expired:
            del self.tokens[jti]
        return bool(self.tokens)


class Identities:
    """Who holds which guest name, and which guest tokens are valid."""

    def __init__(self, auth: Authenticator, store: Backend, registry: Registry) -> None:
        self.auth = auth
        self.store = store
        self.registry = registry
        self._claims: dict[str, Claim] = {}  # name key -> claim
        self._key_of: dict[str, str] = {}  # user id -> its name key
        self.tokens = auth.guest_tokens  # jti -> expiry; the Authenticator refuses the others

    def load(self, snapshot: IdentitySnapshot) -> None:
        """Take the claims and valid tokens kept in the database (read at start-up)."""
        for key, user_id, name, jti, expires in snapshot.claims:
            claim = self._claims.get(key)
            if claim is None or claim.user_id != user_id:
                claim = self._claims[key] = Claim(user_id, name)
                self._key_of[user_id] = key
            claim.tokens[jti] = expires
            self.tokens[jti] = expires
        if snapshot.claims:
            log.info("%d guest names held, with %d valid tokens", len(self._claims),
                     len(snapshot.claims))

    # --- reads (no I/O) ---

    def holder(self, name: str) -> Claim | None:
        """The live claim on a name (compared as name_key), if any."""
        key = name_key(name)
        claim = self._claims.get(key)
        if claim is None:
            return None
        if claim.live(time.time()):
            return claim
        self._forget(key, claim)
        return None

    def resolve(self, target: str) -> str:
        """The user id for a `to` or `with` of the protocol: a guest name currently
        claimed stands for its holder; anything else is taken as a user id."""
        if self.auth.guest_login and p.valid_name(target):
            claim = self.holder(target)
            if claim is not None:
                return claim.user_id
        return target

    # --- login and logout ---

    async def guest_login(self, raw_name: object,
                          presented: Iterable[Credential]) -> tuple[str, Credential]:
        """A token for a guest name. `presented` are the valid credentials the request
        carried (cookie, bearer token): one of the holder's keeps its id.

        Raises AuthError for a bad name, NameTaken when someone else holds it,
        StoreError when the claim could not be written (nothing is claimed then)."""
        name = guest_name(raw_name)
        if name is None:
            raise AuthError("name must be 1-32 letters, digits, '-', '_' or '.'")
        key = name_key(name)
        claim = self.holder(name)
        fresh = claim is None
        if claim is None:
            claim = Claim(new_guest_id(), name)
        elif not any(c.user.id == claim.user_id for c in presented):
            raise NameTaken(f"the name {claim.name!r} is in use; pick another one")
        token, cred = self.auth.issue(User(claim.user_id, name))
        assert cred.jti is not None
        # Claimed now, before the write: a second login for the name meanwhile is refused.
        if fresh:
            self._claims[key] = claim
            self._key_of[claim.user_id] = key
        claim.tokens[cred.jti] = cred.expires
        claim.name = name
        try:
            await self.store.claim_name(key, claim.user_id, name, cred.jti, cred.expires)
        except Exception:
            self.tokens.pop(cred.jti, None)
            claim.tokens.pop(cred.jti, None)
            if not claim.live(time.time()):
                self._forget(key, claim)
            raise
        return token, cred

    async def logout(self, cred: Credential) -> int:
        """Revoke a token: it no longer opens a socket or passes /api/me, the sockets
        opened with it are closed (4001), and the name frees up when it was its
        holder's last valid token. Returns how many sockets were closed.
        Raises StoreError when the revocation could not be kept on disk (it holds
        in memory until a restart)."""
        jti = cred.jti
        if jti is None or not self.auth.guest_login:
            return 0  # a host application's tokens are its own business (jwt mode)
        now = time.time()
        if self.tokens.pop(jti, None) is None:
            return 0  # logged out already
        key = self._key_of.get(cred.user.id)
        claim = self._claims.get(key) if key is not None else None
        if claim is not None and key is not None:
            claim.tokens.pop(jti, None)
            if not claim.live(now):
                self._forget(key, claim)
        closed = 0
        for conn in self.registry.of_user(cred.user.id):
            if conn.token_id == jti:
                conn.end("logged_out", p.CLOSE_UNAUTHENTICATED, "logged out")
                closed += 1
        await self.store.revoke_token(jti, cred.user.id, cred.expires)
        return closed

    def prune(self) -> None:
        """Drop what has expired from memory and from the database (on the retention
        timer)."""
        now = time.time()
        for jti in [j for j, expires in self.tokens.items() if expires <= now]:
            del self.tokens[jti]
        for key, claim in list(self._claims.items()):
            if not claim.live(now):
                self._forget(key, claim)
        future = self.store.prune_identities(now)
        future.add_done_callback(lambda f: f.exception())

    def _forget(self, key: str, claim: Claim) -> None:
        if self._claims.get(key) is claim:
            del self._claims[key]
        if self._key_of.get(claim.user_id) == key:
            del self._key_of[claim.user_id]
