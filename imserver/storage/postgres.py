"""Message storage on PostgreSQL (asyncpg), for several server processes sharing one
database. The same interface and answers as the SQLite store (storage/sqlite.py);
what follows is what a cluster needs on top, and how it is had.

- Durable before ack. Every operation is queued to one writer task on one
  connection, which takes whatever has queued up (a batch, at most `batch_max`),
  runs it in queue order in one transaction, commits once (group commit), and
  only then answers, in queue order. A read queued in a batch runs there, so it
  sees exactly the writes this process queued before it. A COMMIT whose outcome
  is unknown (the connection dropped, a timeout) is answered with StoreError,
  never with an ack: the client resends with the same cid, and dedup makes that
  safe whichever way the COMMIT went.
- cid dedup per sender, across processes: INSERT ... ON CONFLICT (sender, cid)
  DO NOTHING, then the stored row is read back. When two processes race on one
  (sender, cid), PostgreSQL makes the second wait for the first's transaction;
  one row is kept, and the other append answers `duplicate=True` with it. A
  unique violation never aborts a batch.
- A guest name is claimed by one process at a time: the claim's row is
  locked (or inserted) first, and only then, in a statement with a fresh
  snapshot, is its holder checked for a valid token; a name held by another
  user is answered with NameTaken and nothing is written. Of several
  processes claiming one free name at once, one gets it, the others see it
  taken.
- Ids come from one global sequence, and within one room, and within one
  user's direct-message stream (every direct message it sent or received),
  they increase in commit order: a reader that sees id N of a room has already
  been able to see every smaller id of that room. A batch first locks the row
  of every stream it writes to (`rooms.name`, `dm_streams.user_id`), rooms
  first, each table's rows in one sorted order, so that batches of different
  processes cannot deadlock on them; only then does it draw ids with nextval.
  An id drawn under a stream's lock is larger than every id of the stream
  committed before, and no smaller id of the stream can commit after it. The
  locked rows also keep each stream's last id: Appended.previous and
  previous_recipient come from them. (Other waits, on users' rows or on a cid
  two processes insert at once, can still deadlock in rare orders: PostgreSQL
  then aborts one transaction, and its batch is run again.)
- Edits and deletions are events of their message's stream, stored as a message
  of it is: the batch reads the stream of each message edited or deleted and
  locks it with the others, so the event's id is drawn under the lock and its
  links come from the locked row, and its cid is deduplicated per sender as a
  message's is. The message's row is updated under the same lock: the events
  of one message apply in id order, and one after a deletion is refused.
- A room's row (the stream lock of its messages) also holds its settings: a
  create of the room, and a joiner's membership, lock it with the streams, then
  read the room in a statement of its own. Of two processes creating one room,
  one creates it and the other is answered room_exists; a joiner whose join was
  read before another process created the room private does not become one of
  its members. A row without created_at is only a stream lock (a room
  with messages that nobody created or joined): not in the directory, as in
  SQLite, where it has no row. A read mark moves forward only, in one
  conditional UPDATE that a concurrent one waits for and is checked again
  after. Refused and UnknownUser answer their operation; the batch goes on.
- Failure. Each connect and each statement is bounded (`timeout`). When the
  connection is lost, the operations queued fail at once with StoreError
  (the hub answers `unavailable`, clients resend), health() gives the reason
  (so /healthz answers 503), and the store reconnects by itself with capped,
  jittered backoff, then serves again. An operation whose own statement fails
  (a table missing, say) fails alone: the transaction is rolled back and the
  rest of its batch runs again. Consecutive appends share their statements and
  would fail together, so what PostgreSQL would refuse of a value is refused
  before it is sent (below).
- Migrations are versioned (MIGRATIONS; the version in `imserver_schema`), in
  the configured schema, applied in one transaction under an advisory lock
  keyed by the schema: processes that start together migrate once.

Departures from the SQLite store: PostgreSQL text cannot hold NUL, and an index
entry only a few kilobytes, so an operation carrying a NUL, a lone surrogate, or
an id or name over KEY_MAX_BYTES is refused with StoreError before it reaches
the database, answered in its place in the queue. And a stream's last id
survives retention: once every message of a room has been deleted, the next one
still links to the last id the room had (SQLite's links start again from 0).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

import asyncpg

from ..config import hide_password
from ..core.errors import NameTaken, Refused, StoreError, UnknownUser
from ..core.store import (
    DELETE,
    EDIT,
    UNREAD_MAX,
    UNREAD_ROOMS,
    Appended,
    JoinedRoom,
    Message,
    Page,
    ReadMark,
    Recovery,
    RoomInfo,
    Unread,
    recovery_of,
    refusal_for_mute,
)
from .base import AuditEntry, Ban, IdentitySnapshot, KnownUsers, Mute, StoredToken

log = logging.getLogger("imserver.store")

# Each entry moves the schema from version i to i + 1; never edit a released one.
MIGRATIONS: list[str] = [
    """
    CREATE SEQUENCE message_ids AS BIGINT;
    CREATE TABLE messages (
        id             BIGINT PRIMARY KEY,
        sender         TEXT NOT NULL,
        text           TEXT NOT NULL,
        ts             DOUBLE PRECISION NOT NULL,
        cid            TEXT,
        room           TEXT,
        recipient      TEXT,
        dm_key         TEXT,
        sender_name    TEXT NOT NULL,
        recipient_name TEXT
    );
    CREATE INDEX messages_room ON messages (room, id) WHERE room IS NOT NULL;
    CREATE INDEX messages_dm ON messages (dm_key, id) WHERE dm_key IS NOT NULL;
    CREATE INDEX messages_dm_sender ON messages (sender, id) WHERE dm_key IS NOT NULL;
    CREATE INDEX messages_dm_recipient ON messages (recipient, id) WHERE dm_key IS NOT NULL;
    CREATE UNIQUE INDEX messages_cid ON messages (sender, cid) WHERE cid IS NOT NULL;
    CREATE INDEX messages_ts ON messages (ts);
    -- One row per stream, locked by a batch before it draws ids for the stream.
    CREATE TABLE rooms (
        name    TEXT PRIMARY KEY,
        last_id BIGINT NOT NULL DEFAULT 0
    );
    CREATE TABLE dm_streams (
        user_id TEXT PRIMARY KEY,
        last_id BIGINT NOT NULL DEFAULT 0
    );
    CREATE TABLE users (
        id        TEXT PRIMARY KEY,
        name      TEXT NOT NULL,
        last_seen DOUBLE PRECISION NOT NULL
    );
    CREATE TABLE name_claims (
        name_key TEXT PRIMARY KEY,
        user_id  TEXT NOT NULL,
        name     TEXT NOT NULL
    );
    CREATE TABLE tokens (
        jti     TEXT PRIMARY KEY,
        user_id TEXT NOT NULL,
        expires DOUBLE PRECISION NOT NULL,
        revoked BOOLEAN NOT NULL DEFAULT false
    );
    CREATE INDEX tokens_user ON tokens (user_id, expires);
    CREATE INDEX tokens_expires ON tokens (expires);
    """,
    # 2: users kept out by an operator; until NULL: until lifted.
    """
    CREATE TABLE bans (
        user_id   TEXT PRIMARY KEY,
        reason    TEXT NOT NULL,
        until     DOUBLE PRECISION,
        banned_by TEXT,
        banned_at DOUBLE PRECISION NOT NULL
    );
    """,
    # 3: conversations: edits and deletions as events, rooms with topics and owners,
    # durable membership with each member's read mark, direct-conversation read marks,
    # mutes, and the operators' audit log.
    """
    ALTER TABLE messages ADD COLUMN kind TEXT;
    ALTER TABLE messages ADD COLUMN target BIGINT;
    ALTER TABLE messages ADD COLUMN edited DOUBLE PRECISION;
    ALTER TABLE messages ADD COLUMN deleted BOOLEAN NOT NULL DEFAULT false;
    ALTER TABLE messages ADD COLUMN actor TEXT;
    ALTER TABLE rooms ADD COLUMN topic TEXT NOT NULL DEFAULT '';
    ALTER TABLE rooms ADD COLUMN private BOOLEAN NOT NULL DEFAULT false;
    ALTER TABLE rooms ADD COLUMN owner TEXT;
    ALTER TABLE rooms ADD COLUMN created_at DOUBLE PRECISION;
    CREATE TABLE room_members (
        room      TEXT NOT NULL,
        user_id   TEXT NOT NULL,
        read_id   BIGINT NOT NULL DEFAULT 0,
        joined_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (room, user_id)
    );
    CREATE INDEX room_members_user ON room_members (user_id);
    CREATE TABLE dm_reads (
        user_id TEXT NOT NULL,
        other   TEXT NOT NULL,
        read_id BIGINT NOT NULL,
        PRIMARY KEY (user_id, other)
    );
    CREATE TABLE mutes (
        room     TEXT NOT NULL,
        user_id  TEXT NOT NULL,
        reason   TEXT NOT NULL,
        until    DOUBLE PRECISION,
        muted_by TEXT,
        muted_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (room, user_id)
    );
    CREATE TABLE audit (
        id       BIGSERIAL PRIMARY KEY,
        ts       DOUBLE PRECISION NOT NULL,
        operator TEXT NOT NULL,
        action   TEXT NOT NULL,
        target   TEXT NOT NULL,
        reason   TEXT NOT NULL DEFAULT '',
        detail   TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX audit_ts ON audit (ts);
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)

RECONNECT_FIRST = 0.05  # seconds before the first reconnect attempt; doubles up to the cap
RECONNECT_CAP = 2.0
CLIENT_GRACE = 1.0  # seconds the client waits for a statement beyond the server's own timeout
BATCH_RETRIES = 3  # runs of a batch again after a deadlock or serialization failure
ID_MAX = (1 << 63) - 1
KEY_MAX_BYTES = 2000  # ids and names are indexed; a B-tree entry holds at most about 2700 bytes

_COLUMNS = ("id, sender, text, ts, cid, room, recipient, sender_name, recipient_name, kind, target,"
            " edited, deleted, actor")
_LOCK_ROOMS = (
    "INSERT INTO rooms (name) SELECT n FROM unnest($1::text[]) AS n ORDER BY n COLLATE \"C\""
    " ON CONFLICT (name) DO UPDATE SET last_id = rooms.last_id RETURNING name, last_id")
_LOCK_USERS = (
    "INSERT INTO dm_streams (user_id) SELECT u FROM unnest($1::text[]) AS u ORDER BY u COLLATE \"C\""
    " ON CONFLICT (user_id) DO UPDATE SET last_id = dm_streams.last_id RETURNING user_id, last_id")
_LOCK_CLAIMS = (
    "INSERT INTO name_claims AS c (name_key, user_id, name) SELECT * FROM unnest($1::text[],"
    " $2::text[], $3::text[]) AS v(k, u, n) ORDER BY k COLLATE \"C\" ON CONFLICT (name_key)"
    " DO UPDATE SET user_id = c.user_id RETURNING c.name_key, c.user_id")
_SAVE_ROOMS = ("UPDATE rooms SET last_id = v.last FROM unnest($1::text[], $2::bigint[]) AS v(name, last)"
               " WHERE rooms.name = v.name")
_SAVE_USERS = ("UPDATE dm_streams SET last_id = v.last FROM unnest($1::text[], $2::bigint[])"
               " AS v(user_id, last) WHERE dm_streams.user_id = v.user_id")
_NEXT_IDS = "SELECT nextval('message_ids') FROM generate_series(1, $1)"
_INSERT = (
    "INSERT INTO messages (id, sender, text, ts, cid, room, recipient, dm_key, sender_name,"
    " recipient_name, kind, target, actor) SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[],"
    " $4::float8[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[],"
    " $11::text[], $12::bigint[], $13::text[])"
    " ON CONFLICT (sender, cid) WHERE cid IS NOT NULL DO NOTHING RETURNING id")
_BY_CID = (f"SELECT {_COLUMNS} FROM messages WHERE (sender, cid) IN"
           " (SELECT * FROM unnest($1::text[], $2::text[]))")
_DM_SIDES = ("SELECT {cols} FROM ((SELECT {cols} FROM messages WHERE dm_key IS NOT NULL AND sender = $1"
             " {cond} ORDER BY id {order} LIMIT {limit}) UNION (SELECT {cols} FROM messages"
             " WHERE dm_key IS NOT NULL AND recipient = $1 {cond} ORDER BY id {order} LIMIT {limit}))"
             " AS m ORDER BY id {order} LIMIT {limit}")
_DM_LATEST = _DM_SIDES.format(cols=_COLUMNS, cond="AND kind IS NULL", order="DESC", limit="$2")
_DM_AFTER = _DM_SIDES.format(cols=_COLUMNS, cond="AND id > $2", order="", limit="$3")

# The mutes in force on (room, user) pairs.
_MUTED = ("SELECT room, user_id, reason, until FROM mutes WHERE (room, user_id) IN"
          " (SELECT * FROM unnest($1::text[], $2::text[])) AND (until IS NULL OR until > $3)")
# The stream of the messages (not events) with these ids: what an edit or a deletion
# of one of them locks.
_TARGETS = "SELECT room, sender, recipient FROM messages WHERE id = ANY($1::bigint[]) AND kind IS NULL"
# A room as a user sees it: its settings and the user's read mark (NULL: no member).
# A row with no created_at is only the stream lock of a room with messages: no room
# yet for the directory, as in SQLite (where it has no row).
_ROOM = ("SELECT r.topic, r.private, r.owner, m.read_id FROM rooms r LEFT JOIN room_members m"
         " ON m.room = r.name AND m.user_id = $2 WHERE r.name = $1 AND r.created_at IS NOT NULL")
# The directory as user $1 sees it.
_DIRECTORY = (
    "SELECT r.name, r.topic, r.private, r.owner,"
    " (SELECT count(*) FROM room_members m WHERE m.room = r.name) AS members,"
    " EXISTS (SELECT 1 FROM room_members m WHERE m.room = r.name AND m.user_id = $1) AS member"
    " FROM rooms r WHERE r.created_at IS NOT NULL")
_MEMBER = ("INSERT INTO room_members (room, user_id, read_id, joined_at) {values}"
           " ON CONFLICT (room, user_id) DO NOTHING")
_ADD_MEMBER = _MEMBER.format(values="VALUES ($1, $2, $3, $4)")
# A joiner becomes a member of any room but a private one it does not own.
_ADD_JOINER = _MEMBER.format(
    values="SELECT $1, $2, $3::bigint, $4::float8 WHERE NOT EXISTS"
           " (SELECT 1 FROM rooms WHERE name = $1 AND private AND owner IS DISTINCT FROM $2)")


def _unread_in_room(room: str, read: str, user: str) -> str:
    """Others' messages (not events, not deleted) in a room after a read mark, counted up
    to UNREAD_MAX: an SQL expression of the three SQL expressions given."""
    return (f"(SELECT count(*) FROM (SELECT 1 FROM messages WHERE room = {room} AND id > {read}"
            f" AND kind IS NULL AND NOT deleted AND sender <> {user} LIMIT {UNREAD_MAX}) AS u)")


_UNREAD_IN_ROOM = "SELECT " + _unread_in_room("$1", "$2", "$3")
_UNREAD_ROOMS = (f"SELECT m.room, m.read_id, {_unread_in_room('m.room', 'm.read_id', '$1')}"
                 " FROM room_members m WHERE m.user_id = $1"
                 f" ORDER BY m.joined_at DESC, m.room COLLATE \"C\" LIMIT {UNREAD_ROOMS}")
# Per other user, the direct messages it sent to $1 after $1's mark for it.
_UNREAD_DIRECT = (
    "SELECT d.sender, coalesce(u.name, d.sender), d.read, d.n FROM (SELECT m.sender,"
    " coalesce(r.read_id, 0) AS read, count(*) AS n FROM messages m LEFT JOIN dm_reads r"
    " ON r.user_id = m.recipient AND r.other = m.sender WHERE m.dm_key IS NOT NULL"
    " AND m.recipient = $1 AND m.sender <> m.recipient AND m.kind IS NULL AND NOT m.deleted"
    " AND m.id > coalesce(r.read_id, 0) GROUP BY m.sender, r.read_id) AS d"
    " LEFT JOIN users u ON u.id = d.sender")

# SQLSTATE classes of errors that belong to one statement (a value refused, a table
# missing, a row too large): the operation that ran it fails alone.
_OWN_ERROR_CLASSES = ("22", "23", "42", "54")
# Deadlock, serialization failure: nothing was committed, the batch may run again.
_RETRY_STATES = ("40P01", "40001")


def _dm_key(a: str, b: str) -> str:
    """The conversation of two users, whoever sent: unambiguous without a separator."""
    lo, hi = (a, b) if a <= b else (b, a)
    return f"{len(lo)}:{lo}{hi}"


def _row(r: Any) -> Message:
    return Message(id=r[0], sender=r[1], text=r[2], ts=r[3], cid=r[4], room=r[5], recipient=r[6],
                   name=r[7], to_name=r[8] if r[6] is not None else None, kind=r[9], target=r[10],
                   edited=r[11], deleted=r[12], actor=r[13])


def _count(status: str) -> int:
    """The row count of a command status such as 'DELETE 3'."""
    return int(status.rsplit(" ", 1)[-1])


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _check(values: Iterable[object]) -> None:
    """Refuse, before the database does, what PostgreSQL cannot store: so that a
    statement fails only for reasons of the database, never for one operation's
    value (an append run shares its statements)."""
    for value in values:
        if isinstance(value, str):
            if "\x00" in value:
                raise StoreError("PostgreSQL text cannot hold NUL characters")
            try:
                size = len(value.encode("utf-8"))
            except UnicodeEncodeError:
                raise StoreError("a value is not valid Unicode (lone surrogate)") from None
            if size > KEY_MAX_BYTES:
                raise StoreError(f"a name or id of {size} bytes: at most {KEY_MAX_BYTES}")
        elif isinstance(value, int) and not -ID_MAX - 1 <= value <= ID_MAX:
            raise StoreError(f"{value} is out of PostgreSQL's 64-bit range")


def _encodes(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class _Append:
    sender: str
    text: str
    cid: str | None
    room: str | None
    recipient: str | None
    name: str | None


@dataclass(slots=True)
class _Op:
    write: bool
    call: Callable[[_Session], Awaitable[Any]] | None  # None: an append
    future: asyncio.Future[Any]
    append: _Append | None = None
    touches: str | None = None  # the user id a touch_user or claim_name writes
    claim: tuple[str, str, str] | None = None  # a claim_name's name key, user id and name
    rooms: tuple[str, ...] = ()  # the rooms whose rows a create or a new member locks with the streams
    target: int | None = None  # the message an edit or a deletion is of: its stream is locked
    refused: StoreError | None = None


_Answer = tuple[Any, BaseException | None]


class _OwnFailure(Exception):
    """Operations whose own statement failed; the transaction was rolled back."""

    def __init__(self, positions: list[int], error: BaseException) -> None:
        super().__init__(str(error))
        self.positions = positions
        self.error = error


class _Again(Exception):
    """The batch was rolled back for a reason of the moment (a deadlock): run it again."""


class _Session:
    """One batch's statements over the writer's connection, with what the batch has
    learnt: the users known (for direct messages) and the locked streams' last ids."""

    def __init__(self, conn: Any, timeout: float) -> None:
        self.conn = conn
        self.timeout = timeout
        self.names: dict[str, str] = {}  # user id -> name, as of this point of the batch
        self.holders: dict[str, str] = {}  # name key -> user id, for the claims the batch locked
        self.last: dict[tuple[str, str], int] = {}  # ("r", room) or ("u", user) -> last id
        self.changed: set[tuple[str, str]] = set()

    async def fetch(self, sql: str, *args: Any) -> list[Any]:
        return list(await self.conn.fetch(sql, *args, timeout=self.timeout))

    async def execute(self, sql: str, *args: Any) -> str:
        return str(await self.conn.execute(sql, *args, timeout=self.timeout))

    # --- appends ---

    async def lock_streams(self, appends: list[_Append], touched: set[str], rooms: Iterable[str],
                           targets: list[int]) -> None:
        """Lock the row of every stream the batch writes to, before any id is drawn:
        rooms, then users' direct-message streams, each in one sorted order. The
        streams are those of the appends, the rooms created or joined (a room's row
        also holds its settings), and those of the messages edited or deleted. A
        recipient's stream is locked only for a user that exists (or that the batch
        writes), so that unknown names sent by clients leave no rows behind."""
        recipients = sorted({a.recipient for a in appends if a.recipient is not None})
        if recipients:
            rows = await self.fetch("SELECT id, name FROM users WHERE id = ANY($1::text[])", recipients)
            self.names = {r[0]: r[1] for r in rows}
        locked = {a.room for a in appends if a.room is not None}.union(rooms)
        users = {a.sender for a in appends if a.recipient is not None}
        users.update(r for r in recipients if r in self.names or r in touched)
        if targets:
            for room, sender, recipient in await self.fetch(_TARGETS, sorted(set(targets))):
                if room is not None:
                    locked.add(room)
                else:
                    users.update((sender, recipient))
        await self.lock("r", locked)
        await self.lock("u", users)

    async def lock(self, kind: str, keys: Iterable[str]) -> None:
        """Lock the rows of the rooms ("r") or users' streams ("u") not locked yet, in
        sorted order, and learn their last ids."""
        wanted = sorted({key for key in keys if (kind, key) not in self.last})
        if wanted:
            for key, last in await self.fetch(_LOCK_ROOMS if kind == "r" else _LOCK_USERS, wanted):
                self.last[(kind, key)] = last

    async def append_run(self, run: list[_Append]) -> list[_Answer]:
        """Store consecutive appends with one nextval and one INSERT; answers in order."""
        ts = round(time.time(), 3)
        muted = await self.mutes([(a.room, a.sender) for a in run if a.room is not None])
        new: dict[int, Message] = {}
        for i, a in enumerate(run):
            if (a.room, a.sender) in muted or (a.recipient is not None and a.recipient not in self.names):
                continue
            new[i] = Message(0, a.sender, a.text, ts, a.cid, a.room, a.recipient,
                             a.name if a.name is not None else a.sender,
                             self.names[a.recipient] if a.recipient is not None else None)
        stored = dict(zip(new, await self.insert(list(new.values())), strict=True))
        # The others are duplicates (their cid is stored, by anyone, even earlier in
        # this run), refused (muted), or direct messages to users nobody knows.
        found = await self.by_cid([(a.sender, a.cid) for i, a in enumerate(run)
                                   if stored.get(i) is None and a.cid is not None])
        answers: list[_Answer] = []
        for i, a in enumerate(run):
            message = stored.get(i)
            if message is not None:
                answers.append((self._link(message), None))
            elif (a.sender, a.cid) in found:
                answers.append((Appended(found[(a.sender, a.cid)], True), None))
            elif a.room is not None and (a.room, a.sender) in muted:
                answers.append((None, refusal_for_mute(a.room, *muted[(a.room, a.sender)])))
            elif a.recipient is not None and a.recipient not in self.names:
                answers.append((None, UnknownUser(f"no user {a.recipient!r}")))
            else:  # its cid's row was deleted between the two statements (retention)
                answers.append((None, StoreError("the message was not stored, try again")))
        return answers

    async def mutes(self, pairs: list[tuple[str, str]]) -> dict[tuple[str, str], tuple[str, float | None]]:
        """The mutes in force on these (room, user): (reason, until)."""
        if not pairs:
            return {}
        rows = await self.fetch(_MUTED, [room for room, _ in pairs], [user for _, user in pairs], time.time())
        return {(r[0], r[1]): (r[2], r[3]) for r in rows}

    async def insert(self, messages: list[Message]) -> list[Message | None]:
        """Store new messages or events, whose streams the batch has locked, with one
        nextval and one INSERT: each with its id, or None where its (sender, cid) is
        stored already."""
        if not messages:
            return []
        drawn = sorted(r[0] for r in await self.fetch(_NEXT_IDS, len(messages)))
        numbered = [replace(m, id=msg_id) for m, msg_id in zip(messages, drawn, strict=True)]
        rows = await self.fetch(
            _INSERT, drawn, [m.sender for m in numbered], [m.text for m in numbered],
            [m.ts for m in numbered], [m.cid for m in numbered], [m.room for m in numbered],
            [m.recipient for m in numbered],
            [_dm_key(m.sender, m.recipient) if m.recipient is not None else None for m in numbered],
            [m.name for m in numbered], [m.to_name for m in numbered], [m.kind for m in numbered],
            [m.target for m in numbered], [m.actor for m in numbered])
        inserted = {r[0] for r in rows}
        return [m if m.id in inserted else None for m in numbered]

    async def by_cid(self, keys: list[tuple[str, str | None]]) -> dict[tuple[str, str | None], Message]:
        """The stored messages and events with these (sender, cid)."""
        found: dict[tuple[str, str | None], Message] = {}
        if keys:
            for r in await self.fetch(_BY_CID, [k[0] for k in keys], [k[1] for k in keys]):
                message = _row(r)
                found[(message.sender, message.cid)] = message
        return found

    def _link(self, message: Message) -> Appended:
        """The answer for a newly stored message or event, linked to its streams' previous ids."""
        if message.room is not None:
            return Appended(message, False, self._advance(("r", message.room), message.id))
        assert message.recipient is not None
        previous = self._advance(("u", message.sender), message.id)
        previous_recipient = previous if message.recipient == message.sender else \
            self._advance(("u", message.recipient), message.id)
        return Appended(message, False, previous, previous_recipient)

    def _advance(self, stream: tuple[str, str], msg_id: int) -> int:
        previous = self.last[stream]
        self.last[stream] = msg_id
        self.changed.add(stream)
        return previous

    async def append_event(self, actor: str, kind: str, target: int, text: str, cid: str | None,
                           room: str | None, operator: bool) -> Appended:
        """An edit or a deletion, stored as an event in its message's stream like a
        message of it (the stream locked, its id drawn under the lock, linked, its cid
        deduplicated), and the message's row updated to its latest version."""
        if cid is not None:
            found = await self.by_cid([(actor, cid)])
            if found:
                return Appended(found[(actor, cid)], True)
        rows = await self.fetch(f"SELECT {_COLUMNS} FROM messages WHERE id = $1", target)
        message = _row(rows[0]) if rows else None
        if message is None or message.kind is not None or (not operator and message.room != room):
            where = f"in room {room}" if room is not None else "among your direct messages"
            raise Refused("not_found", f"no message {target} {where}")
        if not operator and message.sender != actor:
            raise Refused("forbidden", "only its author may edit or delete a message")
        if message.deleted:
            raise Refused("deleted", f"message {target} is deleted")
        if kind == EDIT and message.room is not None and not operator:
            muted = await self.mutes([(message.room, actor)])
            if muted:
                raise refusal_for_mute(message.room, *muted[(message.room, actor)])
        # The stream was locked with the batch's (lock_streams), unless the message was
        # not there yet then: it is locked now (a rare wait out of order, which may
        # deadlock; then the batch runs again).
        if message.room is not None:
            await self.lock("r", [message.room])
        else:
            assert message.recipient is not None
            await self.lock("u", [message.sender, message.recipient])
        now = round(time.time(), 3)
        by = "operator" if operator else None
        (event,) = await self.insert([replace(
            message, text=text, ts=now, cid=None if operator else cid, kind=kind, target=target,
            edited=None, deleted=False, actor=by)])
        if event is None:  # another process stored this cid meanwhile
            found = await self.by_cid([(actor, cid)])
            if not found:
                raise StoreError("the event was not stored, try again")
            return Appended(found[(actor, cid)], True)
        edit = kind != DELETE
        await self.execute("UPDATE messages SET text = $2, edited = coalesce($3, edited),"
                           " deleted = deleted OR $4 WHERE id = $1",
                           target, text if edit else "", now if edit else None, not edit)
        return self._link(event)

    async def save_streams(self) -> None:
        for kind, sql in (("r", _SAVE_ROOMS), ("u", _SAVE_USERS)):
            keys = sorted(key for k, key in self.changed if k == kind)
            if keys:
                await self.execute(sql, keys, [self.last[(kind, key)] for key in keys])

    # --- other writes ---

    async def touch_user(self, user_id: str, name: str) -> None:
        await self.execute(
            "INSERT INTO users (id, name, last_seen) VALUES ($1, $2, $3) ON CONFLICT (id)"
            " DO UPDATE SET name = excluded.name, last_seen = excluded.last_seen",
            user_id, name, time.time())
        self.names[user_id] = name

    async def lock_claims(self, claims: list[tuple[str, str, str]]) -> None:
        """Lock the row of every name the batch claims, in one sorted order (so that two
        processes' batches cannot deadlock on them), inserting those nobody holds for
        their first claimant: another process claiming one of the names waits until
        this transaction ends."""
        first: dict[str, tuple[str, str]] = {}
        for key, user_id, name in claims:
            first.setdefault(key, (user_id, name))
        for key, holder in await self.fetch(
                _LOCK_CLAIMS, list(first), [u for u, _ in first.values()], [n for _, n in first.values()]):
            self.holders[key] = holder

    async def claim_name(self, key: str, user_id: str, name: str, jti: str, expires: float) -> None:
        # The claim's row is locked (lock_claims) before the holder's tokens are looked at,
        # in a statement of its own, so with a snapshot taken after any wait for another
        # process's claim: a check inside the locking statement could miss the tokens of
        # a holder that committed while it waited, and two logins would get the name.
        if key not in self.holders:
            await self.lock_claims([(key, user_id, name)])
        if self.holders[key] == user_id:
            await self.execute("UPDATE name_claims SET name = $2 WHERE name_key = $1 AND name <> $2",
                               key, name)
        elif await self.fetch(
                "UPDATE name_claims c SET user_id = $2, name = $3 WHERE name_key = $1 AND NOT EXISTS"
                " (SELECT 1 FROM tokens t WHERE t.user_id = c.user_id AND NOT t.revoked"
                " AND t.expires > $4) RETURNING 1", key, user_id, name, time.time()):
            self.holders[key] = user_id
        else:
            raise NameTaken(f"the name {name!r} is held by another user")
        await self.execute(
            "INSERT INTO tokens (jti, user_id, expires, revoked) VALUES ($1, $2, $3, false)"
            " ON CONFLICT (jti) DO UPDATE SET user_id = excluded.user_id, expires = excluded.expires,"
            " revoked = false", jti, user_id, expires)
        await self.touch_user(user_id, name)

    async def revoke_token(self, jti: str, user_id: str, expires: float) -> None:
        await self.execute(
            "INSERT INTO tokens (jti, user_id, expires, revoked) VALUES ($1, $2, $3, true)"
            " ON CONFLICT (jti) DO UPDATE SET revoked = true", jti, user_id, expires)

    async def prune_identities(self, now: float) -> int:
        removed = _count(await self.execute("DELETE FROM tokens WHERE expires <= $1", now))
        removed += _count(await self.execute(
            "DELETE FROM name_claims c WHERE NOT EXISTS (SELECT 1 FROM tokens t WHERE"
            " t.user_id = c.user_id AND NOT t.revoked AND t.expires > $1)", now))
        return removed

    async def ban(self, ban: Ban) -> None:
        await self.execute(
            "INSERT INTO bans (user_id, reason, until, banned_by, banned_at) VALUES ($1, $2, $3, $4, $5)"
            " ON CONFLICT (user_id) DO UPDATE SET reason = excluded.reason, until = excluded.until,"
            " banned_by = excluded.banned_by, banned_at = excluded.banned_at",
            ban.user_id, ban.reason, ban.until, ban.by, ban.at)
        await self.execute("DELETE FROM bans WHERE until IS NOT NULL AND until <= $1", time.time())

    async def lift_ban(self, user_id: str) -> bool:
        return _count(await self.execute("DELETE FROM bans WHERE user_id = $1", user_id)) > 0

    async def bans(self, now: float) -> list[Ban]:
        rows = await self.fetch(
            "SELECT user_id, reason, until, banned_by, banned_at FROM bans"
            " WHERE until IS NULL OR until > $1 ORDER BY banned_at, user_id", now)
        return [Ban(r[0], r[1], None if r[2] is None else float(r[2]), r[3], float(r[4])) for r in rows]

    async def mute(self, mute: Mute) -> None:
        await self.execute(
            "INSERT INTO mutes (room, user_id, reason, until, muted_by, muted_at)"
            " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (room, user_id) DO UPDATE SET"
            " reason = excluded.reason, until = excluded.until, muted_by = excluded.muted_by,"
            " muted_at = excluded.muted_at",
            mute.room, mute.user_id, mute.reason, mute.until, mute.by, mute.at)
        await self.execute("DELETE FROM mutes WHERE until IS NOT NULL AND until <= $1", time.time())

    async def lift_mute(self, room: str, user_id: str, now: float) -> bool:
        lifted = _count(await self.execute(
            "DELETE FROM mutes WHERE room = $1 AND user_id = $2 AND (until IS NULL OR until > $3)",
            room, user_id, now)) > 0
        await self.execute("DELETE FROM mutes WHERE until IS NOT NULL AND until <= $1", now)
        return lifted

    async def mutes_in_force(self, now: float, room: str | None) -> list[Mute]:
        rows = await self.fetch(
            "SELECT room, user_id, reason, until, muted_by, muted_at FROM mutes"
            " WHERE (until IS NULL OR until > $1) AND ($2::text IS NULL OR room = $2)"
            " ORDER BY muted_at, room, user_id", now, room)
        return [Mute(r[0], r[1], r[2], None if r[3] is None else float(r[3]), r[4], float(r[5]))
                for r in rows]

    async def record_audit(self, entry: AuditEntry) -> AuditEntry:
        rows = await self.fetch(
            "INSERT INTO audit (ts, operator, action, target, reason, detail)"
            " VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            entry.ts, entry.operator, entry.action, entry.target, entry.reason, entry.detail)
        return replace(entry, id=int(rows[0][0]))

    async def audit(self, before: int | None, limit: int) -> list[AuditEntry]:
        rows = await self.fetch(
            "SELECT id, ts, operator, action, target, reason, detail FROM audit WHERE id < $1"
            " ORDER BY id DESC LIMIT $2", before if before is not None else ID_MAX, limit)
        return [AuditEntry(int(r[0]), float(r[1]), r[2], r[3], r[4], r[5], r[6]) for r in rows]

    async def prune(self, older_than: float | None, keep_per_room: int | None) -> int:
        removed = 0
        if older_than is not None:
            removed += _count(await self.execute("DELETE FROM messages WHERE ts < $1", older_than))
        if keep_per_room:
            removed += _count(await self.execute(
                "DELETE FROM messages m USING rooms r, LATERAL (SELECT id FROM messages"
                " WHERE room = r.name ORDER BY id DESC OFFSET $1 LIMIT 1) AS cut"
                " WHERE m.room = r.name AND m.id <= cut.id", keep_per_room))
        return removed

    # --- conversations: rooms, membership, read marks ---

    async def _room(self, room: str, user: str) -> tuple[str, bool, str | None, int | None] | None:
        """A room's topic, privacy and owner, and `user`'s read mark (None: no member);
        None for no room."""
        rows = await self.fetch(_ROOM, room, user)
        return None if not rows else (rows[0][0], rows[0][1], rows[0][2], rows[0][3])

    async def _check_reader(self, room: str, user: str) -> tuple[str, bool, str | None, int | None] | None:
        found = await self._room(room, user)
        if found is not None and found[1] and found[2] != user and found[3] is None:
            raise Refused("forbidden", f"room {room} is private: only its members may read it")
        return found

    async def join_room(self, user: str, room: str, since: int | None, limit: int,
                        page: int) -> JoinedRoom:
        found = await self._check_reader(room, user) or ("", False, None, None)
        recovery = await self.room_recover(room, since, limit, page)
        read = found[3]
        if read is None:  # a new member has read everything before it came
            return JoinedRoom(recovery, found[0], found[1], recovery.latest, 0, member=False,
                              owner=found[2])
        unread = (await self.fetch(_UNREAD_IN_ROOM, room, read, user))[0][0]
        return JoinedRoom(recovery, found[0], found[1], read, unread, owner=found[2])

    async def add_member(self, user: str, room: str, read: int) -> None:
        # The room's row is locked (lock_streams), inserted if it was not there: a create
        # of the room by another process either waits for this (and finds the room), or
        # committed before, and then its private room takes no member it did not invite
        # (this user's join was read before the room was created).
        now = time.time()
        await self.execute("UPDATE rooms SET created_at = $2 WHERE name = $1 AND created_at IS NULL",
                           room, now)
        await self._check_reader(room, user)  # private since this joiner's join was read: refused
        await self.execute(_ADD_JOINER, room, user, read, now)

    async def leave_room(self, user: str, room: str) -> None:
        await self.execute("DELETE FROM room_members WHERE room = $1 AND user_id = $2", room, user)

    async def room_history(self, user: str, room: str, before: int | None, limit: int) -> Page:
        await self._check_reader(room, user)
        return await self.room_before(room, before, limit)

    async def _info(self, room: str, user: str) -> RoomInfo:
        (row,) = await self.fetch(f"{_DIRECTORY} AND r.name = $2", user, room)
        return _room_info(row)

    async def create_room(self, user: str, room: str, topic: str, private: bool) -> RoomInfo:
        # The room's row is locked (lock_streams), inserted if it was not there: of two
        # processes creating the room, the second reads here what the first committed.
        # A room with messages exists, whether or not anyone joined it.
        (exists,) = await self.fetch(
            "SELECT created_at IS NOT NULL OR EXISTS (SELECT 1 FROM messages WHERE room = $1)"
            " FROM rooms WHERE name = $1", room)
        if exists[0]:
            raise Refused("room_exists", f"room {room} exists already")
        now = time.time()
        await self.execute("UPDATE rooms SET topic = $2, private = $3, owner = $4, created_at = $5"
                           " WHERE name = $1", room, topic, private, user, now)
        await self.execute(_ADD_MEMBER, room, user, 0, now)
        return await self._info(room, user)

    async def _owned_private(self, owner: str, room: str) -> None:
        found = await self._room(room, owner)
        if found is None:
            raise Refused("not_found", f"no room {room}")
        if not found[1]:
            raise Refused("bad_request", f"room {room} is public: anyone may join it")
        if found[2] != owner:
            raise Refused("forbidden", f"only the owner of room {room} may do that")

    async def invite(self, owner: str, room: str, user: str) -> RoomInfo:
        await self._owned_private(owner, room)
        if not await self.fetch("SELECT 1 FROM users WHERE id = $1", user):
            raise UnknownUser(f"no user {user!r}")
        await self.execute(_ADD_MEMBER, room, user, await self._room_latest(room), time.time())
        return await self._info(room, user)

    async def remove_member(self, owner: str, room: str, user: str) -> None:
        await self._owned_private(owner, room)
        await self.leave_room(user, room)

    async def list_rooms(self, user: str, limit: int) -> list[RoomInfo]:
        rows = await self.fetch(
            f"SELECT * FROM ({_DIRECTORY}) AS d WHERE NOT private OR owner = $1 OR member"
            " ORDER BY members DESC, name COLLATE \"C\" LIMIT $2", user, limit)
        return [_room_info(r) for r in rows]

    async def mark_read(self, user: str, room: str | None, other: str | None, read: int) -> ReadMark | None:
        # Only forward, also when two processes move one mark at once: the second
        # UPDATE waits for the first and checks its condition again on the new row.
        if room is not None:
            rows = await self.fetch(
                "UPDATE room_members SET read_id = $3 WHERE room = $1 AND user_id = $2 AND read_id < $3"
                f" RETURNING {_unread_in_room('$1', '$3', '$2')}", room, user, read)
        else:
            assert other is not None
            rows = await self.fetch(
                "INSERT INTO dm_reads AS r (user_id, other, read_id) VALUES ($1, $2, $3)"
                " ON CONFLICT (user_id, other) DO UPDATE SET read_id = excluded.read_id"
                " WHERE r.read_id < excluded.read_id RETURNING (SELECT count(*) FROM (SELECT 1"
                " FROM messages WHERE dm_key = $4 AND recipient = $1 AND sender = $2 AND id > $3"
                f" AND kind IS NULL AND NOT deleted LIMIT {UNREAD_MAX}) AS u)",
                user, other, read, _dm_key(user, other))
        return ReadMark(read, rows[0][0]) if rows else None

    async def unread(self, user: str) -> Unread:
        rooms = {r[0]: ReadMark(r[1], r[2]) for r in await self.fetch(_UNREAD_ROOMS, user)}
        direct = {r[0]: (r[1], ReadMark(r[2], min(r[3], UNREAD_MAX)))
                  for r in await self.fetch(_UNREAD_DIRECT, user)}
        return Unread(rooms, direct)

    # --- reads ---

    async def guest_token(self, jti: str, key: str) -> StoredToken | None:
        rows = await self.fetch(
            "SELECT t.user_id, t.expires, t.revoked, c.user_id, c.name FROM tokens t"
            " LEFT JOIN name_claims c ON c.name_key = $2 WHERE t.jti = $1", jti, key)
        if not rows:
            return None
        r = rows[0]
        return StoredToken(r[0], float(r[1]), bool(r[2]), r[3], r[4])

    async def identities(self, now: float) -> IdentitySnapshot:
        rows = await self.fetch(
            "SELECT c.name_key, c.user_id, c.name, t.jti, t.expires FROM name_claims c"
            " JOIN tokens t ON t.user_id = c.user_id WHERE NOT t.revoked AND t.expires > $1", now)
        return IdentitySnapshot([tuple(r) for r in rows])

    async def room_after(self, room: str, after: int, limit: int) -> Page:
        rows = await self.fetch(
            f"SELECT {_COLUMNS} FROM messages WHERE room = $1 AND id > $2 ORDER BY id LIMIT $3",
            room, after, limit + 1)
        return _page_after(rows, limit)

    async def room_before(self, room: str, before: int | None, limit: int) -> Page:
        rows = await self.fetch(
            f"SELECT {_COLUMNS} FROM messages WHERE room = $1 AND id < $2 AND kind IS NULL"
            " ORDER BY id DESC LIMIT $3",
            room, before if before is not None else ID_MAX, limit + 1)
        return _page_before(rows, limit)

    async def dm_before(self, user: str, other: str, before: int | None, limit: int) -> Page:
        rows = await self.fetch(
            f"SELECT {_COLUMNS} FROM messages WHERE dm_key = $1 AND id < $2 AND kind IS NULL"
            " ORDER BY id DESC LIMIT $3",
            _dm_key(user, other), before if before is not None else ID_MAX, limit + 1)
        return _page_before(rows, limit)

    async def dm_after(self, user: str, after: int | None, limit: int) -> Page:
        """Every direct message to or from `user` after an id (None: the latest page)."""
        if after is None:
            return _page_before(await self.fetch(_DM_LATEST, user, limit + 1), limit)
        return _page_after(await self.fetch(_DM_AFTER, user, after, limit + 1), limit)

    async def room_recover(self, room: str, since: int | None, limit: int, page: int) -> Recovery:
        """What a (re)join gets: every message after `since`, or, when more than `limit`
        were missed (or no `since`), the latest `page`; and the room's newest id."""
        # The newest id first: the messages, read after, are at least as new.
        latest = await self._room_latest(room)
        if since is not None:
            missed = await self.room_after(room, since, limit)
            if not missed.more:
                return recovery_of(missed.messages, False, latest)
        return recovery_of((await self.room_before(room, None, page)).messages, since is not None,
                         latest)

    async def dm_recover(self, user: str, since: int | None, limit: int, page: int) -> Recovery:
        """As room_recover, for every direct message to or from `user`."""
        latest = await self._last_id("SELECT last_id FROM dm_streams WHERE user_id = $1", user)
        if since is not None:
            missed = await self.dm_after(user, since, limit)
            if not missed.more:
                return recovery_of(missed.messages, False, latest)
        return recovery_of((await self.dm_after(user, None, page)).messages, since is not None,
                         latest)

    async def _room_latest(self, room: str) -> int:
        """A room's newest id: as this batch has it when it locked the room, else as stored."""
        locked = self.last.get(("r", room))
        if locked is not None:
            return locked
        return await self._last_id("SELECT last_id FROM rooms WHERE name = $1", room)

    async def _last_id(self, query: str, key: str) -> int:
        rows = await self.fetch(query, key)
        return int(rows[0][0]) if rows else 0

    async def count(self) -> int:
        """How many messages are stored."""
        return int((await self.fetch("SELECT count(*) FROM messages"))[0][0])


def _room_info(r: Any) -> RoomInfo:
    return RoomInfo(r[0], r[1], r[2], r[4], r[5], r[3])


def _page_after(rows: list[Any], limit: int) -> Page:
    return Page([_row(r) for r in rows[:limit]], len(rows) > limit)


def _page_before(rows: list[Any], limit: int) -> Page:
    return Page([_row(r) for r in reversed(rows[:limit])], len(rows) > limit)


class PostgresStore:
    """The message store on PostgreSQL; every method returns an awaitable (see the
    module's docstring for what it guarantees). `await open()` before anything else."""

    shared = True  # several server processes may use one database

    def __init__(self, dsn: str, *, schema: str = "public", batch_max: int = 512,
                 timeout: float = 10.0, health_deadline: float = 10.0) -> None:
        self.dsn = dsn
        self.schema = schema
        self.where = f"{hide_password(dsn)} schema {schema}"
        self.timeout = timeout
        # The server cancels a statement at `timeout` (statement_timeout) and the
        # connection goes on; the client gives up a little later, for a server that
        # does not answer at all.
        self.client_timeout = timeout + CLIENT_GRACE
        self.health_deadline = health_deadline
        self._batch_max = batch_max
        self._queue: collections.deque[_Op] = collections.deque()
        self._wake: asyncio.Event | None = None
        self._conn: Any = None  # the writer's asyncpg connection, None while there is none
        self._problem: str | None = "the message store is not open"
        self._writer: asyncio.Task[None] | None = None
        self._reconnect: asyncio.Task[None] | None = None
        self._opened = False
        self._closed = False
        self._busy_since: float | None = None
        self.batches = 0
        self.committed = 0
        self.reconnects = 0
        self.reruns = 0  # batches run again after a deadlock or a serialization failure
        self._known_users = KnownUsers()

    # --- start, health, close ---

    async def open(self, now: float) -> IdentitySnapshot:
        """Connect, bring the schema up to date, read the identities; then serve."""
        if self._opened:
            raise RuntimeError("the message store is open already")
        try:
            conn = await self._connect()
        except _CONNECT_ERRORS as exc:
            raise StoreError(f"cannot connect to PostgreSQL ({self.where}): {_describe(exc)}") from None
        try:
            await self._migrate(conn)
            snapshot = await _Session(conn, self.client_timeout).identities(now)
        except BaseException as exc:
            conn.terminate()
            if isinstance(exc, StoreError):
                raise
            if isinstance(exc, _CONNECT_ERRORS):
                raise StoreError(f"PostgreSQL ({self.where}): {_describe(exc)}") from None
            raise
        self._conn = conn
        self._problem = None
        self._opened = True
        self._wake = asyncio.Event()
        self._writer = asyncio.get_running_loop().create_task(self._run())
        return snapshot

    def health(self) -> str | None:
        """Why the store cannot be trusted now (for /healthz), or None when it can."""
        if self._closed:
            return None
        if self._writer is not None and self._writer.done():
            return "the message store task is not running"
        if self._problem is not None:
            return self._problem
        if self._conn is None or self._conn.is_closed():
            return "no connection to PostgreSQL"
        busy = self._busy_since
        if busy is not None and time.monotonic() - busy > self.health_deadline:
            return f"the message store has been stuck on one batch for over {self.health_deadline:g} s"
        return None

    async def close(self) -> None:
        """Finish every queued operation, then close the connection."""
        if self._closed:
            return
        self._closed = True
        if self._writer is not None and self._wake is not None:
            self._wake.set()
            await self._writer
        if self._reconnect is not None:
            self._reconnect.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reconnect
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                await asyncio.wait_for(conn.close(), self.client_timeout)
            except Exception:
                conn.terminate()

    # --- public API ---

    def append_room(self, sender: str, room: str, text: str, cid: str | None,
                    name: str | None = None) -> asyncio.Future[Appended]:
        return self._submit(True, None, (sender, room, cid, name), text,
                            append=_Append(sender, text, cid, room, None, name))

    def append_direct(self, sender: str, recipient: str, text: str,
                      cid: str | None, name: str | None = None) -> asyncio.Future[Appended]:
        return self._submit(True, None, (sender, recipient, cid, name), text,
                            append=_Append(sender, text, cid, None, recipient, name))

    def touch_user(self, user_id: str, name: str) -> asyncio.Future[None]:
        """Remember a user (direct messages may be sent only to known users). Written
        once per user per run: reconnects after a restart cost no commit each."""
        if self._known_users.written(user_id, name):
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            done.set_result(None)
            return done
        self._known_users.remember(user_id, name)
        future = self._submit(True, lambda s: s.touch_user(user_id, name), (user_id, name),
                              touches=user_id)
        self._known_users.until_failed(future, user_id, name)
        return future

    def claim_name(self, key: str, user_id: str, name: str, jti: str,
                   expires: float) -> asyncio.Future[None]:
        self._known_users.remember(user_id, name)
        future = self._submit(True, lambda s: s.claim_name(key, user_id, name, jti, expires),
                              (key, user_id, name, jti), touches=user_id, claim=(key, user_id, name))
        self._known_users.until_failed(future, user_id, name)
        return future

    def revoke_token(self, jti: str, user_id: str, expires: float) -> asyncio.Future[None]:
        return self._submit(True, lambda s: s.revoke_token(jti, user_id, expires), (jti, user_id))

    def guest_token(self, jti: str, key: str) -> asyncio.Future[StoredToken | None]:
        return self._submit(False, lambda s: s.guest_token(jti, key), (jti, key))

    def read_identities(self, now: float) -> asyncio.Future[IdentitySnapshot]:
        return self._submit(False, lambda s: s.identities(now), ())

    def prune_identities(self, now: float) -> asyncio.Future[int]:
        return self._submit(True, lambda s: s.prune_identities(now), ())

    def ban(self, ban: Ban) -> asyncio.Future[None]:
        return self._submit(True, lambda s: s.ban(ban), (ban.user_id, ban.reason, ban.by))

    def lift_ban(self, user_id: str) -> asyncio.Future[bool]:
        return self._submit(True, lambda s: s.lift_ban(user_id), (user_id,))

    def read_bans(self, now: float) -> asyncio.Future[list[Ban]]:
        return self._submit(False, lambda s: s.bans(now), ())

    def mute(self, mute: Mute) -> asyncio.Future[None]:
        return self._submit(True, lambda s: s.mute(mute), (mute.room, mute.user_id, mute.reason, mute.by))

    def lift_mute(self, room: str, user_id: str, now: float) -> asyncio.Future[bool]:
        return self._submit(True, lambda s: s.lift_mute(room, user_id, now), (room, user_id))

    def read_mutes(self, now: float, room: str | None = None) -> asyncio.Future[list[Mute]]:
        return self._submit(False, lambda s: s.mutes_in_force(now, room), (room,))

    def record_audit(self, entry: AuditEntry) -> asyncio.Future[AuditEntry]:
        return self._submit(True, lambda s: s.record_audit(entry),
                            (entry.operator, entry.action, entry.target), entry.reason + entry.detail)

    def read_audit(self, before: int | None, limit: int) -> asyncio.Future[list[AuditEntry]]:
        return self._submit(False, lambda s: s.audit(before, limit), (before, limit))

    def prune(self, *, max_age_seconds: float | None, keep_per_room: int | None) -> asyncio.Future[int]:
        older_than = time.time() - max_age_seconds if max_age_seconds else None
        return self._submit(True, lambda s: s.prune(older_than, keep_per_room), (keep_per_room,))

    def room_before(self, room: str, before: int | None, limit: int) -> asyncio.Future[Page]:
        return self._submit(False, lambda s: s.room_before(room, before, limit), (room, before, limit))

    def dm_before(self, user: str, other: str, before: int | None, limit: int) -> asyncio.Future[Page]:
        return self._submit(False, lambda s: s.dm_before(user, other, before, limit),
                            (user, other, before, limit))

    def room_after(self, room: str, after: int, limit: int) -> asyncio.Future[Page]:
        return self._submit(False, lambda s: s.room_after(room, after, limit), (room, after, limit))

    def dm_after(self, user: str, after: int, limit: int) -> asyncio.Future[Page]:
        return self._submit(False, lambda s: s.dm_after(user, after, limit), (user, after, limit))

    def room_recover(self, room: str, since: int | None, limit: int, page: int) -> asyncio.Future[Recovery]:
        return self._submit(False, lambda s: s.room_recover(room, since, limit, page),
                            (room, since, limit, page))

    def dm_recover(self, user: str, since: int | None, limit: int, page: int) -> asyncio.Future[Recovery]:
        return self._submit(False, lambda s: s.dm_recover(user, since, limit, page),
                            (user, since, limit, page))

    # --- conversations ---

    def join_room(self, user: str, room: str, since: int | None, limit: int,
                  page: int) -> asyncio.Future[JoinedRoom]:
        return self._submit(False, lambda s: s.join_room(user, room, since, limit, page),
                            (user, room, since, limit, page))

    def add_member(self, user: str, room: str, read: int) -> asyncio.Future[None]:
        return self._submit(True, lambda s: s.add_member(user, room, read), (user, room, read),
                            rooms=(room,))

    def leave_room(self, user: str, room: str) -> asyncio.Future[None]:
        return self._submit(True, lambda s: s.leave_room(user, room), (user, room))

    def room_history(self, user: str, room: str, before: int | None,
                     limit: int) -> asyncio.Future[Page]:
        return self._submit(False, lambda s: s.room_history(user, room, before, limit),
                            (user, room, before, limit))

    def create_room(self, user: str, room: str, topic: str, private: bool) -> asyncio.Future[RoomInfo]:
        return self._submit(True, lambda s: s.create_room(user, room, topic, private),
                            (user, room, topic), rooms=(room,))

    def invite(self, owner: str, room: str, user: str) -> asyncio.Future[RoomInfo]:
        return self._submit(True, lambda s: s.invite(owner, room, user), (owner, room, user))

    def remove_member(self, owner: str, room: str, user: str) -> asyncio.Future[None]:
        return self._submit(True, lambda s: s.remove_member(owner, room, user), (owner, room, user))

    def list_rooms(self, user: str, limit: int) -> asyncio.Future[list[RoomInfo]]:
        return self._submit(False, lambda s: s.list_rooms(user, limit), (user, limit))

    def mark_read(self, user: str, room: str | None, other: str | None,
                  read: int) -> asyncio.Future[ReadMark | None]:
        return self._submit(True, lambda s: s.mark_read(user, room, other, read), (user, room, other, read))

    def unread(self, user: str) -> asyncio.Future[Unread]:
        return self._submit(False, lambda s: s.unread(user), (user,))

    def append_event(self, actor: str, kind: str, target: int, text: str, cid: str | None,
                     room: str | None, *, operator: bool = False) -> asyncio.Future[Appended]:
        return self._submit(True, lambda s: s.append_event(actor, kind, target, text, cid, room, operator),
                            (actor, kind, target, cid, room), text, target=target)

    # --- the queue ---

    def _submit(self, write: bool, call: Callable[[_Session], Awaitable[Any]] | None,
                values: Iterable[object] = (), text: str = "", *, append: _Append | None = None,
                touches: str | None = None, claim: tuple[str, str, str] | None = None,
                rooms: tuple[str, ...] = (), target: int | None = None) -> asyncio.Future[Any]:
        """Queue an operation. `values` are the ids, names and numbers it sends (checked
        here), `text` a message's text (any length)."""
        future = asyncio.get_running_loop().create_future()
        if self._closed:  # shutting down: an upgrade or a frame still on its way is answered so
            future.set_exception(StoreError("the message store is closed"))
            return future
        if not self._opened or self._wake is None:
            future.set_exception(StoreError("the message store is not open"))
            return future
        if self._writer is not None and self._writer.done():
            future.set_exception(StoreError("the message store task is not running"))
            return future
        op = _Op(write, call, future, append, touches, claim, rooms, target)
        try:
            _check(values)
            if "\x00" in text or not (text.isascii() or _encodes(text)):
                raise StoreError("the text has NUL characters or lone surrogates")
        except StoreError as exc:
            op.refused = exc
            op.touches = None
            op.claim = None
            op.rooms = ()
            op.target = None
        self._queue.append(op)
        self._wake.set()
        return future

    async def _run(self) -> None:
        """The writer task: batches of what is queued, one after the other, until closed
        and drained."""
        assert self._wake is not None
        while True:
            if not self._queue:
                if self._closed:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            batch = [self._queue.popleft() for _ in range(min(len(self._queue), self._batch_max))]
            self._busy_since = time.monotonic()
            try:
                await self._run_batch(batch)
            except Exception:  # the task serves on: only this batch fails
                log.exception("message store (%s): a batch failed", self.where)
                error = StoreError("message store error")
                _resolve_all([(op.future, None, error) for op in batch])
            finally:
                self._busy_since = None

    async def _run_batch(self, batch: list[_Op]) -> None:
        answers: dict[int, _Answer] = {i: (None, op.refused) for i, op in enumerate(batch) if op.refused}
        live = [i for i in range(len(batch)) if i not in answers]
        retries = 0
        while live:
            conn = self._conn
            if conn is not None and conn.is_closed():
                self._lost(conn, f"lost the connection to PostgreSQL ({self.where})")
                conn = None
            if conn is None:
                error = StoreError(self._problem or "no connection to PostgreSQL")
                answers.update((i, (None, error)) for i in live)
                break
            ops = [batch[i] for i in live]
            try:
                results = await self._attempt(conn, ops)
            except _OwnFailure as failed:
                log.error("message store (%s): operation refused: %s", self.where, failed.error)
                error = StoreError(f"PostgreSQL: {_describe(failed.error)}")
                answers.update((live[k], (None, error)) for k in failed.positions)
                live = [i for k, i in enumerate(live) if k not in failed.positions]
                continue
            except _Again as again:
                retries += 1
                if retries <= BATCH_RETRIES:
                    self.reruns += 1
                    log.info("message store (%s): batch rolled back (%s), running it again",
                             self.where, again)
                    continue
                error = StoreError(f"PostgreSQL: {again}")
            except Exception as exc:
                error = self._trouble(conn, exc)
            else:
                answers.update(zip(live, results, strict=True))
                writes = sum(op.write for op in ops)
                if writes:
                    self.batches += 1
                    self.committed += writes
                break
            answers.update((i, (None, error)) for i in live)
            break
        _resolve_all([(op.future, *answers[i]) for i, op in enumerate(batch)])

    async def _attempt(self, conn: Any, ops: list[_Op]) -> list[_Answer]:
        """Run operations in queue order, in one transaction when any writes; their
        answers, valid once this returns (after the COMMIT)."""
        session = _Session(conn, self.client_timeout)
        locking = [k for k, op in enumerate(ops)
                   if op.append is not None or op.rooms or op.target is not None]
        in_transaction = False
        current: list[int] = []  # the operations whose statements are running
        try:
            if any(op.write for op in ops):
                await session.execute("BEGIN")
                in_transaction = True
            claims = [k for k, op in enumerate(ops) if op.claim is not None]
            if claims:
                current = claims
                await session.lock_claims([c for op in ops if (c := op.claim) is not None])
            if locking:
                current = locking
                touched = {op.touches for op in ops if op.touches is not None}
                await session.lock_streams(
                    [op.append for op in ops if op.append is not None], touched,
                    [room for op in ops for room in op.rooms],
                    [op.target for op in ops if op.target is not None])
            answers: list[_Answer] = []
            k = 0
            while k < len(ops):
                if ops[k].append is not None:
                    end = k
                    while end < len(ops) and ops[end].append is not None:
                        end += 1
                    current = list(range(k, end))
                    answers += await session.append_run(
                        [op.append for op in ops[k:end] if op.append is not None])
                    k = end
                    continue
                current = [k]
                call = ops[k].call
                assert call is not None
                try:
                    answers.append((await call(session), None))
                except (NameTaken, Refused, UnknownUser) as answer:  # the transaction goes on
                    answers.append((None, answer))
                k += 1
            if locking:
                current = locking
                await session.save_streams()
            current = []  # a failed COMMIT is the whole batch's
            if in_transaction:
                await session.execute("COMMIT")
                in_transaction = False
            return answers
        except asyncpg.PostgresError as exc:
            if in_transaction:
                await conn.execute("ROLLBACK", timeout=self.client_timeout)
            # After a schema change a cached statement may no longer fit: asyncpg
            # prepares it again on the next run.
            if exc.sqlstate in _RETRY_STATES or isinstance(exc, asyncpg.InvalidCachedStatementError):
                raise _Again(str(exc)) from None
            if current and str(exc.sqlstate)[:2] in _OWN_ERROR_CLASSES:
                raise _OwnFailure(current, exc) from None
            raise
        except asyncpg.DataError as exc:  # a value the driver could not send
            if in_transaction:
                await conn.execute("ROLLBACK", timeout=self.client_timeout)
            if current:
                raise _OwnFailure(current, exc) from None
            raise

    def _trouble(self, conn: Any, exc: Exception) -> StoreError:
        """The error for a batch that failed as a whole. Anything but a plain refusal
        from the server leaves the connection in doubt (a COMMIT may or may not have
        happened): it is dropped, and the store reconnects."""
        if isinstance(exc, asyncpg.PostgresError) and not conn.is_closed():
            log.error("message store (%s): batch failed: %s", self.where, _describe(exc))
            return StoreError(f"PostgreSQL: {_describe(exc)}")
        self._lost(conn, f"lost the connection to PostgreSQL ({self.where}): {_describe(exc)}")
        return StoreError(self._problem or "lost the connection to PostgreSQL")

    # --- the connection ---

    async def _connect(self) -> Any:
        ms = str(int(self.timeout * 1000))
        conn = await asyncpg.connect(
            self.dsn, timeout=self.timeout, command_timeout=self.client_timeout,
            server_settings={
                "search_path": _quote(self.schema),
                "application_name": "imserver",
                "statement_timeout": ms,
                # A process stalled inside a transaction must not hold its rows' locks
                # for long: the other processes wait on them.
                "idle_in_transaction_session_timeout": str(int(max(3 * self.timeout, 30) * 1000)),
            })
        conn.add_termination_listener(self._terminated)
        return conn

    def _terminated(self, conn: Any) -> None:
        """asyncpg calls this when a connection closes, also when the server goes away
        while the store is idle: health() tells at once, and reconnecting starts."""
        if conn is self._conn and not self._closed:
            self._lost(conn, f"lost the connection to PostgreSQL ({self.where})")

    def _lost(self, conn: Any, problem: str) -> None:
        if conn is not self._conn:
            return
        log.warning("message store: %s; reconnecting", problem)
        self._conn = None
        self._problem = problem
        if not conn.is_closed():
            conn.terminate()
        if not self._closed and (self._reconnect is None or self._reconnect.done()):
            self._reconnect = asyncio.get_running_loop().create_task(self._reconnect_loop())

    async def _reconnect_loop(self) -> None:
        delay = RECONNECT_FIRST
        while not self._closed:
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, RECONNECT_CAP)
            try:
                conn = await self._connect()
            except _CONNECT_ERRORS as exc:
                self._problem = f"cannot reach PostgreSQL ({self.where}): {_describe(exc)}"
                log.debug("message store: %s", self._problem)
                continue
            if self._closed:
                conn.terminate()
                return
            self._conn = conn
            self._problem = None
            self.reconnects += 1
            log.warning("message store: connected to PostgreSQL again (%s)", self.where)
            return

    async def _migrate(self, conn: Any) -> None:
        """Bring the schema to SCHEMA_VERSION, one process at a time."""
        schema = _quote(self.schema)
        key = int.from_bytes(hashlib.sha256(f"imserver {self.schema}".encode()).digest()[:8],
                             "big", signed=True)
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", key)
            if not await conn.fetchval("SELECT 1 FROM pg_namespace WHERE nspname = $1", self.schema):
                await conn.execute(f"CREATE SCHEMA {schema}")
            await conn.execute(f"SET LOCAL search_path TO {schema}")
            await conn.execute("CREATE TABLE IF NOT EXISTS imserver_schema (version INTEGER NOT NULL)")
            version = await conn.fetchval("SELECT coalesce(max(version), 0) FROM imserver_schema")
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"PostgreSQL schema {self.schema} has imserver schema version {version}, "
                    f"newer than this imserver knows ({SCHEMA_VERSION})")
            for target in range(version + 1, SCHEMA_VERSION + 1):
                await conn.execute(MIGRATIONS[target - 1])
                log.info("PostgreSQL schema %s migrated to version %d", self.schema, target)
            if version < SCHEMA_VERSION:
                await conn.execute("DELETE FROM imserver_schema")
                await conn.execute("INSERT INTO imserver_schema (version) VALUES ($1)", SCHEMA_VERSION)


# What a connect may raise when the server is away, refuses, or is starting up.
_CONNECT_ERRORS = (OSError, asyncio.TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _resolve_all(results: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    for future, value, error in results:
        if future.done():  # cancelled meanwhile
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)
