"""The admin API's moderation beyond disconnects and bans: mutes in a room, a room's
recent messages with an operator's deletion of one, and the audit log.

A mute is only kept in the store: the store's append refuses a muted user's `say`
and `edit` in the room (error `muted`), on whichever node it arrives, so nothing
has to be told to the other nodes. A deletion goes through the hub, which stores
the deletion event and delivers it to the room or the conversation on every node.
Every change is recorded in the audit log (http/audit.py) before it is answered.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from ..core.errors import Refused, StoreError
from ..core.protocol import valid_room
from ..core.store import Message
from ..storage.base import Mute
from .admin import (
    REASON_FIELD,
    AdminDeps,
    AdminHandler,
    body_fields,
    duration_text,
    lift_reason,
    reason_field,
    timed_body,
    with_user,
)
from .audit import DELETE_MESSAGE, MAX_PAGE, MUTE, UNMUTE, audit_json
from .bans import MAX_BY

log = logging.getLogger("imserver.admin")

ID_MAX = (1 << 63) - 1
PAGE = 50  # entries or messages a page holds when the request does not say


def mute_json(mute: Mute) -> dict[str, Any]:
    return {"room": mute.room, "user": mute.user_id, "reason": mute.reason, "until": mute.until,
            "by": mute.by, "at": mute.at}


def message_json(m: Message) -> dict[str, Any]:
    """A room's message as the operators see it (its latest version)."""
    return {"id": m.id, "from": m.sender, "name": m.name if m.name is not None else m.sender,
            "text": m.text, "ts": m.ts, "edited": m.edited, "deleted": m.deleted}


def whole_number(text: str, high: int) -> int | None:
    """`text` as a whole number from 1 to `high`, or None (never reading a long one)."""
    if not (text.isascii() and text.isdigit()) or len(text) > len(str(high)):
        return None
    value = int(text)
    return value if 1 <= value <= high else None


def page_arguments(handler: AdminHandler) -> tuple[int | None, int] | None:
    """A page's `before` (an id; None: the newest) and `limit` (1 to MAX_PAGE, PAGE when
    absent) from the query, or None after answering 400."""
    found: list[int | None] = []
    for name, default, high in (("before", None, ID_MAX), ("limit", PAGE, MAX_PAGE)):
        raw = handler.get_query_argument(name, None)
        value = default if raw is None else whole_number(raw, high)
        if value is None and raw is not None:
            handler.fail(400, "bad_request", f"{name} must be a whole number from 1 to {high}")
            return None
        found.append(value)
    before, limit = found
    assert limit is not None
    return before, limit


class RoomHandler(AdminHandler):
    """Base of the handlers whose path names a room."""

    def room_ok(self, room: str) -> bool:
        """Whether `room` is a room name; if not, after answering 400."""
        if valid_room(room):
            return True
        self.fail(400, "bad_request", "a room is 1-64 letters, digits, '-', '_' or '.'")
        return False


class MuteHandler(RoomHandler):
    """Mutes a user in a room (POST, for a time or until lifted), or lifts the mute
    (DELETE). The user still reads the room."""

    async def post(self, room: str, user_id: str) -> None:
        wanted = timed_body(self, "mute", "muted by an operator") if self.room_ok(room) else None
        found = with_user(self, wanted, user_id)
        if found is None:
            return
        (reason, seconds), target = found
        now = time.time()
        mute = Mute(room, target, reason, None if seconds is None else now + seconds,
                    self.how[:MAX_BY], round(now, 3))
        try:
            await self.admin.store.mute(mute)
        except StoreError as exc:
            log.warning("operator mute of user %s in room %s not kept: %s", target, room, exc)
            self.fail(503, "unavailable", "the mute cannot be kept now, try again")
            return
        log.info("operator %s muted user %s in room %s (%s): %s", self.operator, target, room,
                 duration_text(seconds), reason)
        await self.finish_audited(mute_json(mute), MUTE, f"{room}/{target}", reason=reason,
                                  detail=duration_text(seconds))

    async def delete(self, room: str, user_id: str) -> None:
        found = with_user(self, lift_reason(self, "mute"), user_id) if self.room_ok(room) else None
        if found is None:
            return
        reason, target = found
        try:
            lifted = await self.admin.store.lift_mute(room, target, time.time())
        except StoreError as exc:
            log.warning("operator lift of user %s's mute in room %s not kept: %s", target, room, exc)
            self.fail(503, "unavailable", "the mute cannot be lifted now, try again")
            return
        if not lifted:
            self.fail(404, "not_found", f"user {user_id} is not muted in room {room}")
            return
        log.info("operator %s lifted the mute of user %s in room %s", self.operator, target, room)
        await self.finish_audited({"lifted": {"room": room, "user": target}}, UNMUTE,
                                  f"{room}/{target}", reason=reason)


class MutesHandler(RoomHandler):
    """The mutes in force, oldest first: every room's, or one room's (`?room=`)."""

    async def get(self) -> None:
        room = self.get_query_argument("room", None)
        if room is not None and not self.room_ok(room):
            return
        try:
            mutes = await self.admin.store.read_mutes(time.time(), room)
        except StoreError:
            self.fail(503, "unavailable", "the mutes cannot be read now, try again")
            return
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps([mute_json(m) for m in mutes]))


class RoomMessagesHandler(RoomHandler):
    """A page of a room's messages, newest last, before the id `before` (none: the
    newest), each in its latest version; private rooms too."""

    async def get(self, room: str) -> None:
        paging = page_arguments(self) if self.room_ok(room) else None
        if paging is None:
            return
        before, limit = paging
        try:
            page = await self.admin.store.room_before(room, before, limit)
        except StoreError:
            self.fail(503, "unavailable", "the messages cannot be read now, try again")
            return
        self.finish({"room": room, "more": page.more,
                     "messages": [message_json(m) for m in page.messages if m.kind is None]})


class MessageHandler(AdminHandler):
    """Deletes any message (DELETE, with an optional JSON {"reason"} for the audit log):
    stored as a deletion event by an operator, delivered to the room or the
    conversation on every node, and in the history from then on."""

    async def delete(self, message_id: str) -> None:
        target = whole_number(message_id, ID_MAX)
        if target is None:
            self.fail(400, "bad_request", "a message id is a whole number from 1")
            return
        body = body_fields(self, REASON_FIELD, "deleting a message")
        if body is None:
            return
        reason = reason_field(self, body, "deleted by an operator")
        if reason is None:
            return
        try:
            appended = await self.admin.delete_message(target)
        except Refused as exc:
            status = 404 if exc.code == "not_found" else 409
            self.fail(status, exc.code, str(exc))
            return
        except StoreError as exc:
            log.warning("operator deletion of message %d not kept: %s", target, exc)
            self.fail(503, "unavailable", "the message cannot be deleted now, try again")
            return
        event = appended.message
        where = f"room {event.room}" if event.room is not None else f"direct to {event.recipient}"
        log.info("operator %s deleted message %d (%s, by %s): %s", self.operator, target, where,
                 event.sender, reason)
        await self.finish_audited(
            {"deleted": target, "id": event.id, "room": event.room, "from": event.sender},
            DELETE_MESSAGE, str(target), reason=reason, detail=f"{where}, by {event.sender}")


class AuditHandler(AdminHandler):
    """The audit log, newest first, a page at a time: `?before=<id>&limit=<n>`."""

    async def get(self) -> None:
        paging = page_arguments(self)
        if paging is None:
            return
        before, limit = paging
        try:
            entries = await self.admin.audit.page(before, limit + 1)
        except StoreError:
            self.fail(503, "unavailable", "the audit log cannot be read now, try again")
            return
        self.finish({"entries": [audit_json(e) for e in entries[:limit]],
                     "more": len(entries) > limit})


def moderation_routes(admin: AdminDeps) -> list[Any]:
    deps = {"admin": admin}
    return [
        (r"/admin/api/rooms/([^/]+)/mutes/([^/]+)", MuteHandler, deps),
        (r"/admin/api/mutes", MutesHandler, deps),
        (r"/admin/api/rooms/([^/]+)/messages", RoomMessagesHandler, deps),
        (r"/admin/api/messages/([^/]+)", MessageHandler, deps),
        (r"/admin/api/audit", AuditHandler, deps),
    ]
