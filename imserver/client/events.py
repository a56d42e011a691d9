"""What a ChatClient hands its user: the items of its streams, the other frames, its states.

An event is one of:

    Message      a message, or an edit or deletion of one (an event of the stream, with
                 an id of its own): each id once, in id order per stream, backlog and
                 live alike
    Gap          a recovery page was truncated: messages between `after` and `before`
                 were not delivered (page back with a `history` frame to read them)
    Frame        any other frame from the server (welcome, joined, presence, typing,
                 read, error, bye, history, ...), as received
    StateChange  the connection's state changed
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class State(enum.Enum):
    """The connection's state (see ChatClient for the transitions)."""
    STOPPED = "stopped"
    CONNECTING = "connecting"
    OPEN = "open"  # welcomed: frames flow
    WAITING = "waiting"  # before the next attempt


class StopReason(enum.Enum):
    """Why a client stopped for good (until connect() is called again)."""
    CLOSED = "closed"  # close() was called
    AUTH = "auth"  # 4001, or the upgrade refused with 401: a new token is needed
    KICKED = "kicked"  # 4003: an operator disconnected it
    FORBIDDEN = "forbidden"  # the upgrade refused with 403 (an origin the server refuses)
    SERVER_CLOSED = "server_closed"  # a normal close (1000) from the server asks for nothing
    GAVE_UP = "gave_up"  # Policy.attempts failed attempts in a row


class Cause(enum.Enum):
    """Why a reconnect is made; sent to the server as `cause`."""
    CLOSE = "close"  # the server closed the connection
    ERROR = "error"  # the socket failed, or the attempt did
    WATCHDOG = "watchdog"  # nothing from the server for the heartbeat's timeout
    SHUTDOWN = "shutdown"  # the server said bye


@dataclass(frozen=True, slots=True)
class Message:
    """A message of a room (`room`) or a direct message (`room` None, `to` set); or,
    with `kind` "edit" or "delete", an event of that stream about message `target`."""
    id: int
    room: str | None
    sender: str  # the user id (`from`)
    name: str  # the sender's display name
    text: str
    ts: float
    cid: str | None = None
    to: str | None = None
    to_name: str | None = None
    kind: str = "message"  # "message", "edit" or "delete"
    target: int | None = None  # the message an edit or deletion is about
    edited: float | None = None  # a message's last edit, when it has one
    deleted: bool = False
    backlog: bool = False  # from a recovery page (joined, dm_sync), not live
    data: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def of(cls, frame: dict[str, Any], *, backlog: bool = False, kind: str | None = None) -> Message:
        """From a `message`, `edit` or `delete` frame, or an item of a page (whose
        `type`, when it has none, is `kind`)."""
        return cls(
            id=frame["id"], room=frame.get("room"), sender=frame.get("from", ""),
            name=frame.get("name", frame.get("from", "")), text=frame.get("text", ""),
            ts=frame.get("ts", 0.0), cid=frame.get("cid"), to=frame.get("to"),
            to_name=frame.get("to_name"), kind=kind or frame.get("type", "message"),
            target=frame.get("target"), edited=frame.get("edited"),
            deleted=bool(frame.get("deleted", False)), backlog=backlog, data=frame)


@dataclass(frozen=True, slots=True)
class Gap:
    """Recovery missed more than one page: ids in (after, before) were not delivered
    for `room` (None: the direct messages). `after` is None when nothing was seen."""
    room: str | None
    after: int | None
    before: int


@dataclass(frozen=True, slots=True)
class Frame:
    """A frame from the server that is not a stream item nor an ack."""
    type: str
    data: dict[str, Any] = field(repr=False)


@dataclass(frozen=True, slots=True)
class StateChange:
    state: State
    previous: State
    attempt: int  # the current or next attempt (0: the first connect)
    cause: Cause | None = None  # why a reconnect is, or will be, made
    delay: float | None = None  # seconds until the next attempt, while waiting
    reason: StopReason | None = None  # while stopped
    message: str = ""  # the server's close reason, when it gave one


Event = Message | Gap | Frame | StateChange


@dataclass(frozen=True, slots=True)
class Ack:
    """The server stored a frame sent with `cid`: as message (or event) `id`."""
    cid: str
    id: int
    ts: float


@dataclass(frozen=True, slots=True)
class Joined:
    """A room as the server's `joined` frame described it."""
    room: str
    members: list[str]
    names: dict[str, str]
    topic: str = ""
    private: bool = False
    owner: str | None = None  # its creator's user id (None: a room made by joining it)
    read: int = 0
    unread: int = 0
    truncated: bool = False

    @classmethod
    def of(cls, frame: dict[str, Any]) -> Joined:
        return cls(room=frame["room"], members=list(frame.get("members", [])),
                   names=dict(frame.get("names", {})), topic=frame.get("topic", ""),
                   private=bool(frame.get("private", False)), owner=frame.get("owner"),
                   read=frame.get("read", 0),
                   unread=frame.get("unread", 0), truncated=bool(frame.get("truncated", False)))
