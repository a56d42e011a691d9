"""The wire protocol, both directions: parse client frames, build server frames.

Pure functions over text; nothing here knows about sockets. See
docs/PROTOCOL.md. `parse_frame` turns one text frame into a typed command or
raises ProtocolError carrying the error code to send back; every frame the
server sends is built by one of the `*_frame` functions below.

COMMANDS is the one table of what a client may send: each command class names
its frame type (`kind`, also its label in the metrics) and parses its fields,
and the hub carries it out with its method of the same name (or the one its
`handler` names). A new command is a class here, added to COMMANDS, and a hub
method.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Self

from .errors import ProtocolError
from .store import Message, ReadMark, RoomInfo, Unread

PING = "ping"
PONG = "pong"

ROOM_RE = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
NAME_RE = re.compile(r"[A-Za-z0-9_.\-]{1,32}")
# Ids of users from host-issued JWTs may hold a few more characters than guest names.
USER_ID_RE = re.compile(r"[A-Za-z0-9_.@|:+\-]{1,64}")
CID_MAX = 128
TOPIC_MAX = 200
TOKEN_MAX = 8192
# Ids, `since`, `before` and `limit` are SQLite integers: signed 64-bit.
ID_MAX = 2**63 - 1

# Close codes (docs/PROTOCOL.md).
CLOSE_GOING_AWAY = 1001
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_INVALID_DATA = 1007
CLOSE_TOO_BIG = 1009
CLOSE_INTERNAL_ERROR = 1011
CLOSE_UNAUTHENTICATED = 4001
CLOSE_KICKED = 4003
CLOSE_RATE_LIMITED = 4008

RECONNECT_CAUSES = ("close", "error", "watchdog", "network", "shutdown")


@dataclass(frozen=True, slots=True)
class Join:
    kind: ClassVar[str] = "join"
    room: str
    since: int | None

    @classmethod
    def parse(cls, f: _Fields, max_text_chars: int) -> Join:
        return cls(f.room(), f.optional_id("since"))


@dataclass(frozen=True, slots=True)
class Leave:
    kind: ClassVar[str] = "leave"
    room: str

    @classmethod
    def parse(cls, f: _Fields, max_text_chars: int) -> Leave:
        return cls(f.room())


@dataclass(frozen=True, slots=True)
class Say:
    kind: ClassVar[str] = "say"
    room: str
    text: str
    cid: str | None

    @classmethod
    def parse(cls, f: _Fields, max_text_chars: int) -> Say:
        return cls(f.room(), f.text(max_text_chars), f.client_id())


@dataclass(frozen=True, slots=True)
class DirectMessage:
    kind: ClassVar[str] = "dm"
    to: str
    text: str
    cid: str | None

    @classmethod
    def parse(cls, f: _Fields, max_text_chars: int) -> DirectMessage:
        to = f.data.get("to")
        if not isinstance(to, str) or not valid_user_id(to):
            raise f.fail("to must be a user name")
        return cls(to, f.text(max_text_chars), f.client_id())


@dataclass(frozen=True, slots=True)
class History:
    """A page of a room (`room`) or of a direct conversation (`with_user`)."""
    kind: ClassVar[str] = "history"
    room: str | None
    with_user: str | None
    before: int | None
    limit: int | None

    @classmethod
    def parse(cls, f: _Fields, max_text_chars: int) -> History:
        limit = f.optional_id("limit")
        before = f.optional_id("before")
        if "with" in f.data:
            with_user = f.data["with"]
            if not valid_user_id(with_user):
                raise f.fail("with must be a user name")
            return cls(None, with_user, before, limit)
        return cls(f.room(), None, before, limit)


@dataclass(frozen=True, slots=True)
class DmSync:
    kind: ClassVar[str] = "dm_sync"
    since: int | None

    @classmethod
    def parse(cls, f: _Fields, max_text_chars: int) -> DmSync:
        return cls(f.optional_id("since"))


@dataclass(frozen=True, slots=True)
class Rooms:
    """The directory: public rooms, and the private ones the user is a member of."""
    kind: ClassVar[str] = "rooms"
    handler: ClassVar[str] = "directory"  # the hub's `rooms` are the rooms it serves

    @classmethod
    def parse(cls, f: _Fields, max_text_chars: int) -> Rooms:
        return cls()


@dataclass(frozen=True, slots=True)
class Create:
    kind: ClassVar[str] = "create"
    room: str
    topic: str
    private: bool

    @classmethod
    def parse(cls, f: _Fields, max_text_chars: int) -> Create:
        topic = f.data.get("topic", "")
        if not isinstance(topic, str) or len(topic) > TOPIC_MAX:
            raise f.fail(f"topic must be a string of at most {TOPIC_MAX} characters")
        return cls(f.room(), clean_text(topic).strip(), f.flag("private", False))


@dataclass(frozen=True, slots=True)
class _RoomAndUser:
    """An owner's command about a user of a private room."""
    room: str
    user: str

    @classmethod
    def parse(cls, f: _Fields, max_text_chars: int) -> Self:
        return cls(f.room(), f.user("user"))


@dataclass(frozen=True, slots=True)
class Invite(_RoomAndUser):
    kind: ClassVar[str] = "invite"


@dataclass(frozen=True, slots=True)
class Remove(_RoomAndUser):
    kind: ClassVar[str] = "remove"


@dataclass(frozen=True, slots=True)
class Read:
    """A read mark: in a room (`room`), or in the conversation with `with_user`."""
    kind: ClassVar[str] = "read"
    room: str | None
    with_user: str | None
    id: int

    @classmethod
    def parse(cls, f: _Fields, max_text_chars: int) -> Read:
        read = f.optional_id("id")
        if read is None:
            raise f.fail("id must be the id of the newest message read")
        if "with" in f.data:
            return cls(None, f.user("with"), read)
        return cls(f.room(), None, read)


@dataclass(frozen=True, slots=True)
class Typing:
    """Typing in a room (`room`), or to a user (`to`)."""
    kind: ClassVar[str] = "typing"
    room: str | None
    to: str | None
    typing: bool

    @classmethod
    def parse(cls, f: _Fields, max_text_chars: int) -> Typing:
        typing = f.flag("typing", True)
        if "to" in f.data:
            return cls(None, f.user("to"), typing)
        return cls(f.room(), None, typing)


@dataclass(frozen=True, slots=True)
class Edit:
    """A new text for one's message `target` in `room` (None: a direct message)."""
    kind: ClassVar[str] = "edit"
    room: str | None
    target: int
    text: str
    cid: str | None

    @classmethod
    def parse(cls, f: _Fields, max_text_chars: int) -> Edit:
        return cls(f.optional_room(), f.target(), f.text(max_text_chars), f.client_id())


@dataclass(frozen=True, slots=True)
class Delete:
    kind: ClassVar[str] = "delete"
    room: str | None
    target: int
    cid: str | None

    @classmethod
    def parse(cls, f: _Fields, max_text_chars: int) -> Delete:
        return cls(f.optional_room(), f.target(), f.client_id())


@dataclass(frozen=True, slots=True)
class Refresh:
    """A fresh token for the connection's user, before the one it came with expires."""
    kind: ClassVar[str] = "refresh"
    token: str

    @classmethod
    def parse(cls, f: _Fields, max_text_chars: int) -> Refresh:
        token = f.data.get("token")
        if not isinstance(token, str) or not 0 < len(token) <= TOKEN_MAX:
            raise f.fail(f"token must be a string of 1-{TOKEN_MAX} characters")
        return cls(token)


Command = (Join | Leave | Say | DirectMessage | History | DmSync | Rooms | Create | Invite | Remove
           | Read | Typing | Edit | Delete | Refresh)

# Every command a client may send, in the order the metrics list them.
COMMANDS: tuple[type[Command], ...] = (Join, Leave, Say, DirectMessage, History, DmSync, Rooms,
                                       Create, Invite, Remove, Read, Typing, Edit, Delete, Refresh)
COMMAND_BY_KIND: dict[str, type[Command]] = {command.kind: command for command in COMMANDS}


def handler_name(command: type[Command]) -> str:
    """The hub's method for a command: named after its kind, unless it says otherwise."""
    return str(getattr(command, "handler", command.kind))


def valid_name(name: object) -> bool:
    return isinstance(name, str) and NAME_RE.fullmatch(name) is not None


def valid_user_id(user_id: object) -> bool:
    return isinstance(user_id, str) and USER_ID_RE.fullmatch(user_id) is not None


def valid_room(room: object) -> bool:
    return isinstance(room, str) and ROOM_RE.fullmatch(room) is not None


_STRING_RE = re.compile(r'"(?:[^"\\]|\\.)*"')


def too_deep(text: str, max_depth: int) -> bool:
    """True when brackets outside strings nest deeper than `max_depth`, checked before
    decoding. Ordinary frames have one or two brackets and cost two str.count calls."""
    if text.count("[") + text.count("{") <= max_depth:
        return False
    structure = _STRING_RE.sub("", text)
    if structure.count("[") + structure.count("{") <= max_depth:
        return False
    depth = 0
    for ch in structure:
        if ch in "[{":
            depth += 1
            if depth > max_depth:
                return True
        elif ch in "]}":
            depth -= 1
    return False


class _Fields:
    """Typed access to the fields of one decoded frame, with protocol errors."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        cid = data.get("cid")
        # Errors carry the frame's cid back, even a refused one, so that the client can
        # match them; but not a string UTF-8 cannot carry (a lone surrogate).
        self.cid = cid if isinstance(cid, str) and _encodable(cid) else None

    def fail(self, message: str, code: str = "bad_request") -> ProtocolError:
        return ProtocolError(code, message, self.cid)

    def room(self) -> str:
        room = self.data.get("room")
        if not valid_room(room):
            raise self.fail("room must be 1-64 letters, digits, '-', '_' or '.'")
        assert isinstance(room, str)
        return room

    def optional_room(self) -> str | None:
        return None if self.data.get("room") is None else self.room()

    def user(self, key: str) -> str:
        user = self.data.get(key)
        if not valid_user_id(user):
            raise self.fail(f"{key} must be a user id or name")
        assert isinstance(user, str)
        return user

    def flag(self, key: str, default: bool) -> bool:
        value = self.data.get(key, default)
        if not isinstance(value, bool):
            raise self.fail(f"{key} must be true or false")
        return value

    def target(self) -> int:
        target = self.optional_id("target")
        if target is None:
            raise self.fail("target must be the id of a message")
        return target

    def optional_id(self, key: str) -> int | None:
        value = self.data.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= ID_MAX:
            raise self.fail(f"{key} must be an integer from 0 to {ID_MAX}")
        return value

    def text(self, max_chars: int) -> str:
        text = self.data.get("text")
        if not isinstance(text, str):
            raise self.fail("text must be a string")
        if len(text) > max_chars:
            raise self.fail(f"text is longer than {max_chars} characters", "too_long")
        text = clean_text(text)
        if not text.strip():
            raise self.fail("text must not be empty")
        return text

    def client_id(self) -> str | None:
        cid = self.data.get("cid")
        if cid is None:
            return None
        if not _valid_cid(cid):
            raise self.fail(f"cid must be a printable string of 1-{CID_MAX} characters")
        assert isinstance(cid, str)
        return cid


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _valid_cid(cid: Any) -> bool:
    return isinstance(cid, str) and 0 < len(cid) <= CID_MAX and cid.isprintable()


def clean_text(text: str) -> str:
    """Drop control characters (but newline and tab) and lone surrogates."""
    if text.isprintable():
        return text
    return "".join(
        ch for ch in text
        if ch in "\n\t" or (unicodedata.category(ch) not in ("Cc", "Cs"))
    )


def parse_frame(raw: str, *, max_text_chars: int, max_depth: int = 8) -> Command:
    """Parse one JSON text frame from a client into a Command."""
    if too_deep(raw, max_depth):
        raise ProtocolError("bad_request", f"JSON nested deeper than {max_depth} levels")
    try:
        data = loads(raw)
    except (ValueError, RecursionError):
        raise ProtocolError("bad_request", "frame is not valid JSON") from None
    if not isinstance(data, dict):
        raise ProtocolError("bad_request", "frame must be a JSON object")
    f = _Fields(data)
    kind = data.get("type")
    if not isinstance(kind, str):
        raise f.fail("frame has no type")
    command = COMMAND_BY_KIND.get(kind)
    if command is None:
        raise f.fail(f"unknown type {kind[:32]!r}")
    return command.parse(f, max_text_chars)


def reconnect_cause(value: str | None) -> str:
    """The metric label for a client's `cause` query argument."""
    return value if value in RECONNECT_CAUSES else "other"


def encode(frame: dict[str, Any]) -> str:
    """Serialize one server frame."""
    return encode_bytes(frame).decode("utf-8")


def _std_encode_bytes(frame: dict[str, Any]) -> bytes:
    return json.dumps(frame, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


# orjson, when installed, encodes ~20x and decodes ~15x faster than json (bench: see README);
# both give the same compact JSON for the frames of this protocol.
encode_bytes: Callable[[dict[str, Any]], bytes]
loads: Callable[[str], Any]
try:
    import orjson
except ImportError:  # pragma: no cover - exercised where orjson is absent
    encode_bytes, loads = _std_encode_bytes, json.loads
else:
    def _fast_loads(text: str) -> Any:
        """orjson, falling back to json for what only json accepts (lone surrogates,
        NaN), so that every frame is read the same with or without orjson."""
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            return json.loads(text)

    encode_bytes, loads = orjson.dumps, _fast_loads


# --- server frames (docs/PROTOCOL.md) ---


def welcome_frame(conn_id: str, user: dict[str, str], *, interval: float, timeout: float,
                  server_time: float, unread: Unread | None = None,
                  expires: float = math.inf) -> dict[str, Any]:
    frame: dict[str, Any] = {"type": "welcome", "conn": conn_id, "user": user,
                             "heartbeat": {"interval": interval, "timeout": timeout},
                             "server_time": round(server_time, 3)}
    if expires != math.inf:
        frame["expires"] = expires
    if unread is not None:
        frame["unread"] = unread_counts(unread)
    return frame


def message_frame(m: Message) -> dict[str, Any]:
    """A stored message, as it is delivered live and in backlogs and pages; or an edit
    or a deletion (an event: its `kind` is the frame's type)."""
    frame: dict[str, Any] = {"type": m.kind or "message", "id": m.id}
    if m.target is not None:
        frame["target"] = m.target
    frame["from"] = m.sender
    frame["name"] = m.name if m.name is not None else m.sender
    if m.room is not None:
        frame["room"] = m.room
    else:
        frame["to"] = m.recipient
        frame["to_name"] = m.to_name if m.to_name is not None else m.recipient
    frame["text"] = m.text
    frame["ts"] = m.ts
    if m.cid is not None:
        frame["cid"] = m.cid
    if m.edited is not None:
        frame["edited"] = m.edited
    if m.deleted:
        frame["deleted"] = True
    if m.actor is not None:
        frame["by"] = m.actor
    return frame


def _messages_and_events(items: list[Message]) -> dict[str, list[dict[str, Any]]]:
    """A backlog's messages, and apart from them its edits and deletions (which a
    client that knows none of them never mistakes for messages)."""
    return {"messages": [message_frame(m) for m in items if m.kind is None],
            "events": [message_frame(m) for m in items if m.kind is not None]}


def joined_frame(room: str, members: list[str], names: dict[str, str], messages: list[Message],
                 truncated: bool, *, topic: str = "", private: bool = False, read: int = 0,
                 unread: int = 0, owner: str | None = None) -> dict[str, Any]:
    return {"type": "joined", "room": room, "members": members, "names": names,
            **_messages_and_events(messages), "truncated": truncated, "topic": topic,
            "private": private, "owner": owner, "read": read, "unread": unread}


def left_frame(room: str, reason: str | None = None) -> dict[str, Any]:
    frame = {"type": "left", "room": room}
    if reason is not None:
        frame["reason"] = reason
    return frame


def rooms_frame(rooms: list[RoomInfo]) -> dict[str, Any]:
    return {"type": "rooms", "rooms": [
        {"room": r.room, "topic": r.topic, "members": r.members, "private": r.private,
         "member": r.member, "owner": r.owner} for r in rooms]}


def created_frame(info: RoomInfo) -> dict[str, Any]:
    return {"type": "created", "room": info.room, "topic": info.topic, "private": info.private}


def invited_frame(room: str, user: str) -> dict[str, Any]:
    """To the owner: the invitation is recorded."""
    return {"type": "invited", "room": room, "user": user}


def invitation_frame(info: RoomInfo, by: str, name: str) -> dict[str, Any]:
    """To the invited user."""
    return {"type": "invited", "room": info.room, "topic": info.topic, "by": by, "name": name}


def removed_frame(room: str, user: str) -> dict[str, Any]:
    return {"type": "removed", "room": room, "user": user}


def read_frame(room: str | None, with_user: str | None, mark: ReadMark) -> dict[str, Any]:
    key: dict[str, Any] = {"room": room} if room is not None else {"with": with_user}
    return {"type": "read", **key, "id": mark.read, "unread": mark.unread}


def unread_counts(unread: Unread) -> dict[str, Any]:
    return {"rooms": {room: {"read": m.read, "unread": m.unread} for room, m in unread.rooms.items()},
            "direct": {user: {"name": name, "read": m.read, "unread": m.unread}
                       for user, (name, m) in unread.direct.items()}}


def typing_frame(room: str | None, user: str, name: str, typing: bool) -> dict[str, Any]:
    key: dict[str, Any] = {"room": room} if room is not None else {}
    return {"type": "typing", **key, "user": user, "name": name, "typing": typing}


def presence_frame(room: str, joined: list[str], left: list[str], names: dict[str, str]) -> dict[str, Any]:
    return {"type": "presence", "room": room, "joined": joined, "left": left, "names": names}


def ack_frame(cid: str | None, message_id: int, ts: float) -> dict[str, Any]:
    return {"type": "ack", "cid": cid, "id": message_id, "ts": ts}


def history_frame(messages: list[Message], more: bool, *, room: str | None = None,
                  with_user: str | None = None) -> dict[str, Any]:
    """A page of a room, or (`with_user`) of a direct conversation."""
    key: dict[str, Any] = {"with": with_user} if with_user is not None else {"room": room}
    return {"type": "history", **key, "messages": [message_frame(m) for m in messages], "more": more}


def dm_sync_frame(messages: list[Message], truncated: bool) -> dict[str, Any]:
    return {"type": "dm_sync", **_messages_and_events(messages), "truncated": truncated}


def refreshed_frame(expires: float) -> dict[str, Any]:
    return {"type": "refreshed", "expires": expires}


def bye_frame(reason: str, retry_after: float) -> dict[str, Any]:
    """Sent before a close: when to come back."""
    return {"type": "bye", "reason": reason, "retry_after": retry_after}


def error_frame(code: str, message: str, cid: str | None = None,
                room: str | None = None) -> dict[str, Any]:
    """An error; `room`: the room of the command it answers, when it had one."""
    frame: dict[str, Any] = {"type": "error", "code": code, "message": message}
    if cid is not None:
        frame["cid"] = cid
    if room is not None:
        frame["room"] = room
    return frame
