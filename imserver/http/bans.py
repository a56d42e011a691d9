"""Users kept out by an operator: the bans in force, in memory, so that an upgrade
or a guest login is checked without a store read.

The store keeps them (Backend.ban, lift_ban, read_bans), so they survive a restart
and every node sharing the store can read them. Memory holds what the store held at
open, and every ban and lift made here since. In a cluster each ban and lift made
here is handed to `publish` once durable, and the other nodes apply it with
`remote_ban` and `remote_lift` (fields checked as hostile input); after missing
events, `reload()` reads the store again. On a store other nodes share, `reload()`
also runs every `RELOAD_SECONDS`, so a ban made on a node this one cannot hear
holds here within that time.

A ban, wherever it is made, closes the user's connections on this node (4003 and
the reason, as an operator's disconnect does); an expired ban is dropped when it is
next looked at.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from typing import Any

from ..core.protocol import CLOSE_KICKED
from ..core.registry import Connection, Registry
from ..storage.base import Backend, Ban

log = logging.getLogger("imserver.bans")

BAN = "ban"  # control message kinds
LIFT = "unban"
MAX_ID = 512  # a user id longer than this in a message is not one
MAX_REASON = 120  # bytes: a WebSocket close reason holds at most 123
MAX_BY = 64
MIN_SECONDS = 60
MAX_SECONDS = 10 * 365 * 86400  # ten years
RELOAD_SECONDS = 10.0

Publish = Callable[[dict[str, Any]], None]
Kick = Callable[[Connection, str], None]


def cut_reason(reason: str) -> str:
    """A reason as a close frame can carry it: stripped, at most MAX_REASON bytes of
    UTF-8 ("ignore" drops lone surrogates, which UTF-8 cannot carry)."""
    return reason.strip().encode("utf-8", "ignore")[:MAX_REASON].decode("utf-8", "ignore")


def ban_json(ban: Ban) -> dict[str, Any]:
    return {"user": ban.user_id, "reason": ban.reason, "until": ban.until, "by": ban.by,
            "at": ban.at}


def refusal(ban: Ban) -> dict[str, Any]:
    """The JSON body of a refused upgrade or login (403)."""
    until = "until lifted" if ban.until is None else "for now"
    return {"error": "banned", "message": f"this user is banned ({until}): {ban.reason}",
            "reason": ban.reason, "until": ban.until}


def _time(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or value < 0:
        raise ValueError(f"a ban's {what} is not a time")
    return float(value)


def ban_from_message(data: dict[str, Any]) -> Ban:
    """A ban as another node published it; ValueError when a field is not what it must be."""
    user, reason, until, by = data.get("user"), data.get("reason"), data.get("until"), data.get("by")
    if not isinstance(user, str) or not user or len(user) > MAX_ID:
        raise ValueError("a ban's user is not an id")
    if not isinstance(reason, str) or not reason.strip():
        raise ValueError("a ban's reason is not text")
    if by is not None and not isinstance(by, str):
        raise ValueError("a ban's author is not text")
    return Ban(user, cut_reason(reason), None if until is None else _time(until, "until"),
               None if by is None else by[:MAX_BY], _time(data.get("at"), "time"))


class Bans:
    """The bans in force, by user id."""

    def __init__(self, store: Backend, registry: Registry, *, publish: Publish | None = None,
                 clock: Callable[[], float] = time.time, kick: Kick | None = None) -> None:
        self.store = store
        self.registry = registry
        self.publish = publish  # set in a cluster: tells the other nodes
        self.clock = clock
        # closes a banned user's connection with the reason (the closed log's kick, which
        # keeps the reason for the dashboard)
        self.kick: Kick = kick or (lambda conn, reason: conn.end("kicked", CLOSE_KICKED, reason))
        self._bans: dict[str, Ban] = {}
        # user id -> when (monotonic) a ban or lift of it was last applied here: a read
        # started before that does not undo it
        self._changed: dict[str, float] = {}
        self._reloading: asyncio.Future[None] | None = None
        self._timer: asyncio.Task[None] | None = None

    # --- reads (no I/O) ---

    def of(self, user_id: str) -> Ban | None:
        """The user's ban in force now, if any."""
        ban = self._bans.get(user_id)
        if ban is None:
            return None
        if ban.in_force(self.clock()):
            return ban
        del self._bans[user_id]
        return None

    def in_force(self) -> list[Ban]:
        now = self.clock()
        for user in [u for u, b in self._bans.items() if not b.in_force(now)]:
            del self._bans[user]
        return sorted(self._bans.values(), key=lambda b: (b.at, b.user_id))

    # --- changes made here ---

    async def ban(self, user_id: str, reason: str, *, seconds: int | None,
                  by: str | None) -> tuple[Ban, list[Connection]]:
        """Ban the user (StoreError when the store cannot keep it): kept in the store,
        then in force here, this node's connections of the user closed, and the other
        nodes told. Returns the ban and the connections closed here."""
        now = self.clock()
        ban = Ban(user_id, cut_reason(reason), None if seconds is None else now + seconds,
                  None if by is None else by[:MAX_BY], round(now, 3))
        await self.store.ban(ban)
        closed = self._apply(ban)
        if self.publish is not None:
            self.publish({"k": BAN, **ban_json(ban)})
        return ban, closed

    async def lift(self, user_id: str) -> bool:
        """Lift the user's ban; False when none was in force here nor kept in the store."""
        had = self.of(user_id) is not None
        stored = await self.store.lift_ban(user_id)
        self._bans.pop(user_id, None)
        self._changed[user_id] = time.monotonic()
        if self.publish is not None:
            self.publish({"k": LIFT, "user": user_id})
        return had or stored

    def _apply(self, ban: Ban) -> list[Connection]:
        self._changed[ban.user_id] = time.monotonic()
        if not ban.in_force(self.clock()):
            self._bans.pop(ban.user_id, None)
            return []
        self._bans[ban.user_id] = ban
        return self._close(ban)

    def _close(self, ban: Ban) -> list[Connection]:
        conns = self.registry.of_user(ban.user_id)
        for conn in conns:
            self.kick(conn, ban.reason)
        if conns:
            log.info("banned user %s: %d connections closed here", ban.user_id, len(conns))
        return conns

    # --- from the other nodes ---

    def remote_ban(self, data: dict[str, Any]) -> None:
        self._apply(ban_from_message(data))

    def remote_lift(self, data: dict[str, Any]) -> None:
        user = data.get("user")
        if not isinstance(user, str) or not user or len(user) > MAX_ID:
            raise ValueError("a lift's user is not an id")
        self._bans.pop(user, None)
        self._changed[user] = time.monotonic()

    # --- reading the store ---

    def load(self, bans: list[Ban]) -> None:
        """Take the bans kept in the store (read at open)."""
        self._replace(bans, started=-math.inf)
        if bans:
            log.info("%d users banned", len(self._bans))

    async def reload(self) -> None:
        """Read the bans again (one read at a time, shared): what the store no longer
        holds is lifted here, what it holds anew is in force and closes the user's
        connections, except for users changed here since the read began."""
        if self._reloading is None:
            self._reloading = asyncio.ensure_future(self._read())

            def done(_: object) -> None:
                self._reloading = None

            self._reloading.add_done_callback(done)
        await asyncio.shield(self._reloading)

    async def _read(self) -> None:
        started = time.monotonic()
        bans = await self.store.read_bans(self.clock())
        self._replace(bans, started=started)

    def _replace(self, bans: list[Ban], *, started: float) -> None:
        kept = {user for user, at in self._changed.items() if at >= started}
        fresh = {b.user_id: b for b in bans if b.user_id not in kept}
        for user in list(self._bans):
            if user not in kept and user not in fresh:
                del self._bans[user]
        for user, ban in fresh.items():
            new = self._bans.get(user) != ban
            self._bans[user] = ban
            if new:
                self._close(ban)
        self._changed = {user: at for user, at in self._changed.items() if at >= started}

    def start_rereading(self, every: float = RELOAD_SECONDS) -> None:
        """Read the bans again every `every` seconds (on a shared store), on the running loop."""
        if self._timer is None:
            self._timer = asyncio.get_running_loop().create_task(self._reread(every))

    async def _reread(self, every: float) -> None:
        failed = False
        while True:
            await asyncio.sleep(every)
            try:
                await self.reload()
            except Exception as exc:  # the store away: said once, tried again
                if not failed:
                    log.warning("the bans cannot be read again now (%s); trying every %g s",
                                exc, every)
                failed = True
            else:
                failed = False

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
