"""Guest identities: an opaque user id bound to a display name, and logouts.

A guest login creates a user id ("g:" and random characters) for the name
typed. While any token of that user is valid (not expired, not revoked), the
name is that user's: another login for it (compared after NFKC and case
folding) is refused, unless it carries the holder's own token or cookie, in
which case it gets a fresh token for the same id. Once every token of the
holder has expired or been revoked, the name is free, and the next login with
it is a new user: messages belong to ids, so it never sees the old ones.

The store decides, for every server process (node) that shares it: a login's
claim is written there conditionally (the name must be free or the
claimant's: Backend.claim_name, atomic on both stores) before the login is
answered, and a logout's revocation before the logout is answered. Memory
holds the claims and valid tokens this node knows of, so that checking a
token it knows costs no I/O:

- at start, what the store holds (load);
- the logins made here, once the store took their claim;
- a token issued by another node, read from the store at its first check here
  (check) and remembered with its claim;
- what the other nodes publish once it is durable (remote_claim,
  remote_revoke); reload() reads the store again when events may have been
  missed.

A guest token this node does not know costs one store read (two primary-key
lookups), one at a time per token however many ask at once. What the read
refuses is remembered: a revoked token until it expires, an unknown or
invalid one for `negative_seconds`, both in bounded maps; a token is never
remembered as refused before it was issued (its id is random, and reaches its
client only once its claim is durable). On a store that several processes
share, a node that hears no events from the others (publish is None) reads a
token it accepted again, at its next check, once `recheck_seconds` have
passed since it last confirmed it: a logout made elsewhere refuses new
sockets here within that time.
"""

from __future__ import annotations

import asyncio
import logging
import math
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ..core import protocol as p
from ..core.errors import AuthError, NameTaken, StoreError
from ..core.registry import Registry, User
from ..storage.base import Backend, IdentitySnapshot
from .auth import NAME_INPUT_MAX, Authenticator, Credential, guest_name, name_key

log = logging.getLogger("imserver.identity")

GUEST_ID_PREFIX = "g:"  # guest names cannot hold ':', so an id never looks like a name
JTI_MAX = 256  # as Authenticator.decode allows
NEGATIVE_SECONDS = 2.0  # an unknown or invalid token is refused without a read for this long
NEGATIVE_MAX = 10_000
REVOKED_MAX = 100_000
RECHECK_SECONDS = 3.0  # shared store, no events: a token is read again after this long

Publish = Callable[[dict[str, Any]], None]


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

    def __init__(self, auth: Authenticator, store: Backend, registry: Registry, *,
                 publish: Publish | None = None) -> None:
        self.auth = auth
        self.store = store
        self.registry = registry
        # Called with each claim and revocation made here, once durable (the cluster
        # code sends them to the other nodes); None when this node hears no other.
        self.publish = publish
        self.recheck_seconds = RECHECK_SECONDS
        self.negative_seconds = NEGATIVE_SECONDS
        self.negative_max = NEGATIVE_MAX
        self.revoked_max = REVOKED_MAX
        self._claims: dict[str, Claim] = {}  # name key -> claim
        self._key_of: dict[str, str] = {}  # user id -> its name key
        self.tokens = auth.guest_tokens  # jti -> expiry; the Authenticator refuses the others
        self._confirmed: dict[str, float] = {}  # jti -> when (monotonic) it was last known valid
        self._revoked: dict[str, float] = {}  # jti -> expiry: refused without a read
        # (jti, user id, name key) -> until when (monotonic) the token is refused without a read
        self._unknown: dict[tuple[str, str, str], float] = {}
        self._reading: dict[str, asyncio.Future[bool]] = {}  # jti -> its store read under way
        self.token_reads = 0  # tokens read from the store

    def load(self, snapshot: IdentitySnapshot) -> None:
        """Take the claims and valid tokens kept in the database (read at start-up)."""
        now = time.monotonic()
        for key, user_id, name, jti, expires in snapshot.claims:
            self._hold(key, user_id, name, jti, expires, now)
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

    # --- checking a token ---

    async def check(self, token: str) -> Credential:
        """A token's user, expiry and id, if it is valid now; else AuthError (bad, expired,
        revoked, unknown). A guest token this node knows is checked in memory, without
        suspending; one it does not know is read from the store (StoreError when the
        store cannot answer)."""
        cred = self.auth.decode(token)
        jti = cred.jti
        if not self.auth.guest_login or jti is None:
            return cred  # a host application's token (jwt mode): its signature says it all
        if jti in self.tokens and not self._stale(jti):
            return cred
        if jti in self._revoked:
            raise AuthError("token revoked")
        until = self._unknown.get((jti, cred.user.id, name_key(cred.user.name)))
        if until is not None and until > time.monotonic():
            raise AuthError("token not valid")
        if not await self._read(cred):
            raise AuthError("token revoked" if jti in self._revoked else "token not valid")
        return cred

    def _stale(self, jti: str) -> bool:
        """Must a known token be read again before it is accepted? Only on a shared store
        when no events come from the other nodes, once recheck_seconds have passed."""
        if self.publish is not None or not self.store.shared:
            return False
        return self._confirmed.get(jti, -math.inf) + self.recheck_seconds < time.monotonic()

    async def _read(self, cred: Credential) -> bool:
        """Is the token valid in the store? One read per token at a time, shared by
        every check that waits for it."""
        jti = cred.jti
        assert jti is not None
        reading = self._reading.get(jti)
        if reading is None:
            reading = asyncio.ensure_future(self._look_up(cred))
            self._reading[jti] = reading

            def done(future: asyncio.Future[bool]) -> None:
                if self._reading.get(jti) is future:
                    del self._reading[jti]
                if not future.cancelled():
                    future.exception()  # retrieved here, whoever still waits

            reading.add_done_callback(done)
        return await asyncio.shield(reading)

    async def _look_up(self, cred: Credential) -> bool:
        jti, user = cred.jti, cred.user
        assert jti is not None
        key = name_key(user.name)
        started = time.monotonic()
        self.token_reads += 1
        try:
            stored = await self.store.guest_token(jti, key)
        except StoreError:
            if jti in self.tokens:  # known here: while the store cannot answer, memory does
                return True
            raise
        if jti in self._revoked:  # revoked while the read was under way
            return False
        if stored is not None and stored.revoked:
            self._revoke_here(jti, stored.user_id, stored.expires)
            return False
        if stored is None or stored.expires <= time.time():
            # Unknown to the store, or expired there: so for any token with this id.
            if jti in self.tokens:
                self._drop(jti, user.id)
            self._refused((jti, user.id, key))
            return False
        # Valid when it is the token stored under this id, and its user holds the name it
        # was issued for: a token is nothing without its claim, or the name could go to
        # someone else while it works. (The refusal is kept for this user and name only:
        # a token signed with other ones, which only a holder of the secret could sign,
        # does not make the one a login issued fail.)
        if stored.user_id != user.id or stored.holder != user.id or stored.name is None:
            self._refused((jti, user.id, key))
            return False
        self._hold(key, user.id, stored.name, jti, stored.expires, started)
        return True

    def _refused(self, token: tuple[str, str, str]) -> None:
        self._unknown.pop(token, None)
        while len(self._unknown) >= self.negative_max:
            del self._unknown[next(iter(self._unknown))]
        self._unknown[token] = time.monotonic() + self.negative_seconds

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
        mine = claim is not None and any(c.user.id == claim.user_id for c in presented)
        if claim is not None and not mine and not self.store.shared:
            # This process is the store's only writer: its memory is the store's answer.
            raise NameTaken(f"the name {claim.name!r} is in use; pick another one")
        user_id = claim.user_id if claim is not None and mine else new_guest_id()
        token, cred = self.auth.issue(User(user_id, name))
        jti = cred.jti
        assert jti is not None
        try:
            await self.store.claim_name(key, user_id, name, jti, cred.expires)
        except BaseException as exc:
            self.tokens.pop(jti, None)
            if isinstance(exc, NameTaken):
                held = self.holder(name)
                raise NameTaken(f"the name {held.name if held else name!r} is in use; "
                                "pick another one") from None
            raise
        self._hold(key, user_id, name, jti, cred.expires, time.monotonic())
        self._publish({"k": "claim", "key": key, "user": user_id, "name": name, "jti": jti,
                       "expires": cred.expires})
        return token, cred

    async def logout(self, cred: Credential) -> int:
        """Revoke a token: it no longer opens a socket or passes /api/me, the sockets
        opened with it are closed (4001), and the name frees up when it was its
        holder's last valid token. Returns how many sockets were closed.
        Raises StoreError when the revocation could not be kept on disk (it holds
        in memory until a restart, and the other nodes do not hear of it)."""
        jti = cred.jti
        if jti is None or not self.auth.guest_login:
            return 0  # a host application's tokens are its own business (jwt mode)
        if jti not in self.tokens:
            return 0  # logged out already
        closed = self._revoke_here(jti, cred.user.id, cred.expires)
        await self.store.revoke_token(jti, cred.user.id, cred.expires)
        self._publish({"k": "revoke", "jti": jti, "user": cred.user.id, "expires": cred.expires})
        return closed

    def _publish(self, event: dict[str, Any]) -> None:
        publish = self.publish
        if publish is None:
            return
        try:
            publish(event)
        except Exception:  # the login or logout stands: it is in the store
            log.exception("could not publish a %s event", event["k"])

    # --- events from the other nodes ---

    def remote_claim(self, event: object) -> None:
        """Another node's login, durable there: {"k": "claim", "key", "user", "name",
        "jti", "expires"}. Malformed events are ignored with one log line."""
        fields = _claim_event(event)
        if isinstance(fields, str):
            log.warning("ignored a claim event from another node: %s", fields)
            return
        key, user_id, name, jti, expires = fields
        if not self.auth.guest_login or expires <= time.time() or jti in self._revoked:
            return  # expired, or revoked already (events of two nodes may cross)
        self._hold(key, user_id, name, jti, expires, time.monotonic())

    def remote_revoke(self, event: object) -> int:
        """Another node's logout, durable there: {"k": "revoke", "jti", "user",
        "expires"}. The token is refused here from now on, the name frees up when it
        was its holder's last valid token, and this node's sockets opened with it are
        closed as a logout here closes them. Returns how many were closed; malformed
        events are ignored with one log line."""
        fields = _revoke_event(event)
        if isinstance(fields, str):
            log.warning("ignored a revoke event from another node: %s", fields)
            return 0
        jti, user_id, expires = fields
        if not self.auth.guest_login or expires <= time.time():
            return 0
        return self._revoke_here(jti, user_id, expires)

    async def reload(self) -> int:
        """Read the identities from the store again and merge them in: claims and tokens
        the store no longer has as valid are dropped (and the sockets opened with a
        token dropped before its expiry are closed, as by a logout), those it has and
        memory lacks are added. What this node learnt while the read was under way is
        kept. Returns how many tokens were dropped. Raises StoreError."""
        started = time.monotonic()
        snapshot = await self.store.read_identities(time.time())
        now = time.time()
        valid = {jti: (key, user_id, name, expires)
                 for key, user_id, name, jti, expires in snapshot.claims}

        def outdated(jti: str) -> bool:
            return jti not in valid and self._confirmed.get(jti, -math.inf) < started

        dropped = 0
        for claim in list(self._claims.values()):
            for jti, expires in list(claim.tokens.items()):
                if outdated(jti):
                    dropped += 1
                    self._drop(jti, claim.user_id, close=expires > now)
        for jti in [jti for jti in self.tokens if outdated(jti)]:  # tokens of no claim
            dropped += 1
            del self.tokens[jti]
            self._confirmed.pop(jti, None)
        for jti, (key, user_id, name, expires) in valid.items():
            held = self._claims.get(key)
            if jti in self._revoked or expires <= now or (
                    held is not None and held.user_id != user_id
                    and any(self._confirmed.get(j, -math.inf) >= started for j in held.tokens)):
                continue  # revoked since, or the name has gone to someone else since
            self._hold(key, user_id, name, jti, expires, max(started, self._confirmed.get(jti, started)))
        self._unknown.clear()
        if dropped:
            log.info("identities read again: %d tokens no longer valid", dropped)
        return dropped

    # --- memory ---

    def _hold(self, key: str, user_id: str, name: str, jti: str, expires: float,
              confirmed: float) -> None:
        """Remember a valid token and its user's claim on a name. The store gave the name
        to this user: a claim on it by another user in memory is outdated (none of its
        tokens was valid any more), and goes."""
        claim = self._claims.get(key)
        if claim is not None and claim.user_id != user_id:
            log.info("the name %r has gone from %s to %s", name, claim.user_id, user_id)
            for old in list(claim.tokens):
                self._drop(old, claim.user_id)
            self._forget(key, claim)
            claim = None
        if claim is None:
            former = self._key_of.get(user_id)
            outdated = self._claims.get(former) if former is not None else None
            if former is not None and outdated is not None:  # a user holds one name at a time
                self._forget(former, outdated)
            claim = self._claims[key] = Claim(user_id, name)
            self._key_of[user_id] = key
        claim.name = name
        claim.tokens[jti] = expires
        self.tokens[jti] = expires
        self._confirmed[jti] = confirmed
        self._unknown.pop((jti, user_id, key), None)

    def _revoke_here(self, jti: str, user_id: str, expires: float) -> int:
        """A revoked token: refused from now on without a read, until it expires."""
        self._revoked.pop(jti, None)
        if len(self._revoked) >= self.revoked_max:
            now = time.time()
            for old in [j for j, until in self._revoked.items() if until <= now]:
                del self._revoked[old]
            while len(self._revoked) >= self.revoked_max:
                del self._revoked[next(iter(self._revoked))]
        self._revoked[jti] = expires
        return self._drop(jti, user_id)

    def _drop(self, jti: str, user_id: str, *, close: bool = True) -> int:
        """Forget a token (and its user's claim with its last one); close the sockets
        opened with it. Returns how many were closed."""
        self.tokens.pop(jti, None)
        self._confirmed.pop(jti, None)
        key = self._key_of.get(user_id)
        claim = self._claims.get(key) if key is not None else None
        if claim is not None and key is not None:
            claim.tokens.pop(jti, None)
            if not claim.live(time.time()):
                self._forget(key, claim)
        closed = 0
        if close:
            for conn in self.registry.of_user(user_id):
                if conn.token_id == jti:
                    conn.end("logged_out", p.CLOSE_UNAUTHENTICATED, "logged out")
                    closed += 1
        return closed

    def prune(self) -> None:
        """Drop what has expired from memory and from the database (on the retention
        timer)."""
        now = time.time()
        for jti in [j for j, expires in self.tokens.items() if expires <= now]:
            del self.tokens[jti]
            self._confirmed.pop(jti, None)
        for jti in [j for j in self._confirmed if j not in self.tokens]:
            del self._confirmed[jti]
        for key, claim in list(self._claims.items()):
            if not claim.live(now):
                self._forget(key, claim)
        for jti in [j for j, expires in self._revoked.items() if expires <= now]:
            del self._revoked[jti]
        lapsed = time.monotonic()
        for token in [t for t, until in self._unknown.items() if until <= lapsed]:
            del self._unknown[token]
        future = self.store.prune_identities(now)
        future.add_done_callback(lambda f: f.exception())

    def _forget(self, key: str, claim: Claim) -> None:
        if self._claims.get(key) is claim:
            del self._claims[key]
        if self._key_of.get(claim.user_id) == key:
            del self._key_of[claim.user_id]


# --- events from other nodes: hostile input until checked ---

def _text(event: dict[str, Any], name: str, limit: int) -> str:
    value = event.get(name)
    if not isinstance(value, str) or not 0 < len(value) <= limit:
        raise ValueError(f"{name!r} is not a string of 1 to {limit} characters")
    return value


def _expiry(event: dict[str, Any]) -> float:
    value = event.get("expires")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError("'expires' is not a finite number")
    return float(value)


def _guest_id(event: dict[str, Any]) -> str:
    user_id = _text(event, "user", 256)
    if not user_id.startswith(GUEST_ID_PREFIX) or not p.valid_user_id(user_id):
        raise ValueError("'user' is not a guest id")
    return user_id


def _claim_event(event: object) -> tuple[str, str, str, str, float] | str:
    """The fields of a claim event, or what is wrong with it."""
    if not isinstance(event, dict) or event.get("k") != "claim":
        return "not a claim event"
    try:
        name = _text(event, "name", NAME_INPUT_MAX)
        if guest_name(name) != name:
            raise ValueError("'name' is not a guest name")
        key = _text(event, "key", NAME_INPUT_MAX)
        if key != name_key(name):
            raise ValueError("'key' is not the name's key")
        return key, _guest_id(event), name, _text(event, "jti", JTI_MAX), _expiry(event)
    except ValueError as exc:
        return str(exc)


def _revoke_event(event: object) -> tuple[str, str, float] | str:
    """The fields of a revoke event, or what is wrong with it."""
    if not isinstance(event, dict) or event.get("k") != "revoke":
        return "not a revoke event"
    try:
        return _text(event, "jti", JTI_MAX), _guest_id(event), _expiry(event)
    except ValueError as exc:
        return str(exc)
