"""What the core asks of message storage: the records it reads and writes, and the
interface of a store (a typing Protocol; storage/sqlite.py and storage/postgres.py
implement it).

Every operation returns a Future answered on the event loop, in the order the
operations were queued: the hub relies on that for recovery.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Protocol


EDIT = "edit"
DELETE = "delete"


@dataclass(frozen=True, slots=True)
class Message:
    """A stored message: a room message (room set) or a direct one (recipient set).

    An edit or a deletion is stored as an event in the message's stream (`kind` EDIT
    or DELETE, `target` the message's id, `sender` its author, `actor` "operator"
    when an operator did it); a message's own row holds its latest version
    (`edited`, `deleted`)."""
    id: int
    sender: str
    text: str
    ts: float
    cid: str | None
    room: str | None = None
    recipient: str | None = None
    name: str | None = None  # the sender's display name when it sent the message
    to_name: str | None = None  # a direct message's recipient's display name then
    kind: str | None = None  # None: a message; EDIT or DELETE: an event
    target: int | None = None  # an event's message
    edited: float | None = None  # when the message was last edited
    deleted: bool = False
    actor: str | None = None  # an event's doer when not the author ("operator")


@dataclass(frozen=True, slots=True)
class Appended:
    """The result of an append: the stored message, and whether its cid was seen before.

    `previous` links the message to the one before it in its stream, so that a
    receiver can tell a gap from the end: for a room message, the id of the room's
    previous message; for a direct message, the previous id in the sender's
    direct-message stream (every direct message it sent or received), and
    `previous_recipient` the same in the recipient's stream (the same stream, and
    the same id, when they are one user). 0: no message before it. A duplicate
    carries 0 in both: it was linked when it was first stored.
    """
    message: Message
    duplicate: bool
    previous: int = 0
    previous_recipient: int = 0


@dataclass(frozen=True, slots=True)
class Page:
    messages: list[Message]
    more: bool


@dataclass(frozen=True, slots=True)
class Recovery:
    """The answer to a join or dm_sync: the messages, whether some were skipped, and
    the newest id of the stream (the room, or the user's direct messages) the read saw."""
    messages: list[Message]
    truncated: bool
    latest: int = 0


def recovery_of(messages: list[Message], truncated: bool, latest: int) -> Recovery:
    """A Recovery whose `latest` covers its own messages. A store reads the stream's
    newest id first and the messages after it: another process's commit in between
    shows in the messages, and never as a `latest` the messages fall short of."""
    return Recovery(messages, truncated, max(latest, messages[-1].id if messages else 0))


class Store(Protocol):
    """The store operations the hub and the chat socket use."""

    def append_room(self, sender: str, room: str, text: str, cid: str | None,
                    name: str | None = None) -> asyncio.Future[Appended]:
        """Store a room message (or find the one with this sender's `cid`)."""

    def append_direct(self, sender: str, recipient: str, text: str,
                      cid: str | None, name: str | None = None) -> asyncio.Future[Appended]:
        """Store a direct message; UnknownUser when the recipient was never seen."""

    def touch_user(self, user_id: str, name: str) -> asyncio.Future[None]:
        """Remember a user, so that direct messages may be sent to it."""

    def room_before(self, room: str, before: int | None, limit: int) -> asyncio.Future[Page]:
        """A page of a room, newest last, before the id `before`."""

    def dm_before(self, user: str, other: str, before: int | None, limit: int) -> asyncio.Future[Page]:
        """A page of the conversation of two users."""

    def room_after(self, room: str, after: int, limit: int) -> asyncio.Future[Page]:
        """A room's messages after the id `after`, oldest first (`more`: the page is full)."""

    def dm_after(self, user: str, after: int, limit: int) -> asyncio.Future[Page]:
        """Every direct message to or from `user` after the id `after`, oldest first."""

    def room_recover(self, room: str, since: int | None, limit: int, page: int) -> asyncio.Future[Recovery]:
        """What a (re-)joining member of a room missed after `since`."""

    def dm_recover(self, user: str, since: int | None, limit: int, page: int) -> asyncio.Future[Recovery]:
        """The direct messages a user missed after `since`."""
