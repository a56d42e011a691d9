"""The operators' audit log: every action taken through the admin API (a disconnect,
a ban or its lift, a mute or its lift, a message deleted), with who took it, when,
what it was done to, why, and how.

Entries are kept in the store (`Backend.record_audit`), so they survive a restart
and, in a cluster, every node writes to and reads the same log. An entry is written
after its action was done, and the API answers only once it is kept; when the store
cannot keep it, the action stands, the answer says `"audited": false`, and the whole
entry goes to the server's log at error level instead.

Who: the operator the request's credential names (config `admin.token` is "admin",
each of `admin.operators` its own name). How (`detail`): the way in ("api" for a
Bearer token, "dashboard" for the login session) and the address, then what the
action reached.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from ..core.errors import StoreError
from ..storage.base import AuditEntry, Backend

log = logging.getLogger("imserver.audit")

# The actions, as the log names them.
DISCONNECT = "disconnect"  # one connection; target: its id
DISCONNECT_USER = "disconnect_user"  # every connection of a user; target: the user id
BAN = "ban"
UNBAN = "unban"
MUTE = "mute"  # target: "<room>/<user id>"
UNMUTE = "unmute"
DELETE_MESSAGE = "delete_message"  # target: the message id
ACTIONS = (DISCONNECT, DISCONNECT_USER, BAN, UNBAN, MUTE, UNMUTE, DELETE_MESSAGE)

MAX_PAGE = 200
MAX_DETAIL = 300  # characters


def audit_json(entry: AuditEntry) -> dict[str, Any]:
    return {"id": entry.id, "ts": entry.ts, "operator": entry.operator, "action": entry.action,
            "target": entry.target, "reason": entry.reason, "detail": entry.detail}


class Audit:
    """Writes the audit log and reads it back; tells `on_record` listeners (the
    dashboards of this node) of each entry kept."""

    def __init__(self, store: Backend, *, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock
        self.on_record: list[Callable[[AuditEntry], None]] = []

    async def record(self, operator: str, action: str, target: str, *, reason: str = "",
                     detail: str = "") -> AuditEntry | None:
        """Keep an action that was done; None when the store could not (the entry is then
        logged as an error, so that the server's log holds what the table lacks)."""
        entry = AuditEntry(0, round(self.clock(), 3), operator, action, target, reason,
                           detail[:MAX_DETAIL])
        try:
            stored = await self.store.record_audit(entry)
        except StoreError as exc:
            log.error("audit entry not kept (%s): %s %s %s, reason %r, %s", exc, entry.operator,
                      entry.action, entry.target, entry.reason, entry.detail)
            return None
        log.info("audit #%d: %s %s %s, reason %r, %s", stored.id, stored.operator, stored.action,
                 stored.target, stored.reason, stored.detail)
        for listener in self.on_record:
            listener(stored)
        return stored

    def page(self, before: int | None, limit: int) -> asyncio.Future[list[AuditEntry]]:
        """Up to `limit` entries older than the id `before` (None: the newest), newest first."""
        return self.store.read_audit(before, limit)
