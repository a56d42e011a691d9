"""What the core asks of message storage: the records it reads and writes, and the
interface of a store (a typing Protocol; storage/sqlite.py and storage/postgres.py
implement it).

Every operation returns a Future answered on the event loop, in the order the
operations were queued: the hub relies on that for recovery.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Protocol

from .errors import Refused

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


# Unread counts stop here: 1000 means "1000 or more".
UNREAD_MAX = 1000
# The rooms whose counts come with a welcome: those the user joined most recently.
UNREAD_ROOMS = 100


@dataclass(frozen=True, slots=True)
class JoinedRoom:
    """The answer to a join: the backlog, the room's settings, and the joiner's read
    mark in it with the count of messages after the mark that others sent. A joiner
    that is no member yet (`member` False) has read up to the newest message."""
    recovery: Recovery
    topic: str
    private: bool
    read: int
    unread: int
    member: bool = True
    owner: str | None = None


@dataclass(frozen=True, slots=True)
class RoomInfo:
    """A room as the directory shows it."""
    room: str
    topic: str
    private: bool
    members: int
    member: bool  # the asking user is one
    owner: str | None = None


@dataclass(frozen=True, slots=True)
class ReadMark:
    """A read mark that moved: how far the user has read, and what is unread after it."""
    read: int
    unread: int


@dataclass(frozen=True, slots=True)
class Unread:
    """A user's read marks and unread counts: per room it is a member of, and per
    direct conversation with messages to it after its mark (other user id -> (name,
    read, unread))."""
    rooms: dict[str, ReadMark]
    direct: dict[str, tuple[str, ReadMark]]


def refusal_for_mute(room: str, reason: str, until: float | None) -> Refused:
    """The answer to a muted user's message or edit in a room."""
    when = "until lifted" if until is None else time.strftime(
        "until %Y-%m-%d %H:%M UTC", time.gmtime(until))
    return Refused("muted", f"you are muted in room {room} ({when}): {reason}")


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

    def join_room(self, user: str, room: str, since: int | None, limit: int,
                  page: int) -> asyncio.Future[JoinedRoom]:
        """A join's read: Refused("forbidden") for a private room `user` is no member
        of; else room_recover's answer, with the room and the joiner's read mark."""

    def add_member(self, user: str, room: str, read: int) -> asyncio.Future[None]:
        """`user` is a member of the room from now on, with its read mark at `read`
        (nothing changes for a member already); Refused("forbidden") when the room was
        made private, by someone else, since the user's join was read."""

    def leave_room(self, user: str, room: str) -> asyncio.Future[None]:
        """`user` is no longer a member of the room."""

    def room_history(self, user: str, room: str, before: int | None,
                     limit: int) -> asyncio.Future[Page]:
        """room_before, for a reader: Refused("forbidden") for a private room it is no
        member of."""

    def create_room(self, user: str, room: str, topic: str, private: bool) -> asyncio.Future[RoomInfo]:
        """A new room owned by `user`, its first member; Refused("room_exists")."""

    def invite(self, owner: str, room: str, user: str) -> asyncio.Future[RoomInfo]:
        """`user` becomes a member of the private room `owner` owns."""

    def remove_member(self, owner: str, room: str, user: str) -> asyncio.Future[None]:
        """`user` is no longer a member of the private room `owner` owns."""

    def list_rooms(self, user: str, limit: int) -> asyncio.Future[list[RoomInfo]]:
        """Every public room and the private ones `user` is a member of, most members first."""

    def mark_read(self, user: str, room: str | None, other: str | None,
                  read: int) -> asyncio.Future[ReadMark | None]:
        """Move a read mark forward (in a room, or the conversation with `other`); None
        when it did not move."""

    def unread(self, user: str) -> asyncio.Future[Unread]:
        """A user's read marks and unread counts."""

    def append_event(self, actor: str, kind: str, target: int, text: str, cid: str | None,
                     room: str | None, *, operator: bool = False) -> asyncio.Future[Appended]:
        """Store an edit or a deletion of message `target` (in `room`, or a direct
        message when None) by its author `actor`, or by an operator (any message;
        `room` then unchecked). Refused: not_found, forbidden, deleted, muted."""

    def dm_recover(self, user: str, since: int | None, limit: int, page: int) -> asyncio.Future[Recovery]:
        """The direct messages a user missed after `since`."""
