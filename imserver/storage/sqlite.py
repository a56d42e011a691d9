"""Message storage: SQLite in WAL mode behind one database thread.

Every operation is queued to a single thread that owns the connection. The
thread takes whatever has queued up (a batch), runs it in queue order in one
transaction, commits once (one fsync for the whole batch: group commit), and
only then answers it. So:

- a message is acknowledged only once it is durable;
- the event loop never waits on the disk;
- a read sees exactly the writes queued before it, and answers reach the
  event loop in queue order: the hub relies on both for recovery.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


def _dm_key(a: str, b: str) -> str:
    return f"{a}\x00{b}" if a <= b else f"{b}\x00{a}"


# Rows from before schema version 2 have no names: the sender's id was its name then.
_COLUMNS = ("id, sender, text, ts, cid, room, recipient, coalesce(sender_name, sender),"
            " coalesce(recipient_name, recipient), kind, target, edited, deleted, actor")

# Each entry moves the schema from version i to i + 1; never edit a released one.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE messages (
        id        INTEGER PRIMARY KEY AUTOINCREMENT,
        sender    TEXT NOT NULL,
        text      TEXT NOT NULL,
        ts        REAL NOT NULL,
        cid       TEXT,
        room      TEXT,
        recipient TEXT,
        dm_key    TEXT
    );
    CREATE INDEX messages_room ON messages(room, id) WHERE room IS NOT NULL;
    CREATE INDEX messages_dm ON messages(dm_key, id) WHERE dm_key IS NOT NULL;
    CREATE INDEX messages_dm_sender ON messages(sender, id) WHERE dm_key IS NOT NULL;
    CREATE INDEX messages_dm_recipient ON messages(recipient, id) WHERE dm_key IS NOT NULL;
    CREATE UNIQUE INDEX messages_cid ON messages(sender, cid) WHERE cid IS NOT NULL;
    CREATE INDEX messages_ts ON messages(ts);
    CREATE TABLE users (
        id        TEXT PRIMARY KEY,
        name      TEXT NOT NULL,
        last_seen REAL NOT NULL
    );
    """,
    # 2: display names apart from user ids; guest name claims and issued guest tokens.
    """
    ALTER TABLE messages ADD COLUMN sender_name TEXT;
    ALTER TABLE messages ADD COLUMN recipient_name TEXT;
    CREATE TABLE name_claims (
        name_key  TEXT PRIMARY KEY,
        user_id   TEXT NOT NULL,
        name      TEXT NOT NULL
    );
    CREATE TABLE tokens (
        jti       TEXT PRIMARY KEY,
        user_id   TEXT NOT NULL,
        expires   REAL NOT NULL,
        revoked   INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX tokens_user ON tokens(user_id, expires);
    CREATE INDEX tokens_expires ON tokens(expires);
    """,
    # 3: users kept out by an operator; until NULL: until lifted.
    """
    CREATE TABLE bans (
        user_id   TEXT PRIMARY KEY,
        reason    TEXT NOT NULL,
        until     REAL,
        banned_by TEXT,
        banned_at REAL NOT NULL
    );
    """,
    # 4: conversations: edits and deletions as events, rooms with topics and owners,
    # durable membership with each member's read mark, direct-conversation read marks,
    # mutes, and the operators' audit log.
    """
    ALTER TABLE messages ADD COLUMN kind TEXT;
    ALTER TABLE messages ADD COLUMN target INTEGER;
    ALTER TABLE messages ADD COLUMN edited REAL;
    ALTER TABLE messages ADD COLUMN deleted INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE messages ADD COLUMN actor TEXT;
    CREATE TABLE rooms (
        name       TEXT PRIMARY KEY,
        topic      TEXT NOT NULL DEFAULT '',
        private    INTEGER NOT NULL DEFAULT 0,
        owner      TEXT,
        created_at REAL NOT NULL
    );
    CREATE TABLE room_members (
        room      TEXT NOT NULL,
        user_id   TEXT NOT NULL,
        read_id   INTEGER NOT NULL DEFAULT 0,
        joined_at REAL NOT NULL,
        PRIMARY KEY (room, user_id)
    );
    CREATE INDEX room_members_user ON room_members(user_id);
    CREATE TABLE dm_reads (
        user_id TEXT NOT NULL,
        other   TEXT NOT NULL,
        read_id INTEGER NOT NULL,
        PRIMARY KEY (user_id, other)
    );
    CREATE TABLE mutes (
        room     TEXT NOT NULL,
        user_id  TEXT NOT NULL,
        reason   TEXT NOT NULL,
        until    REAL,
        muted_by TEXT,
        muted_at REAL NOT NULL,
        PRIMARY KEY (room, user_id)
    );
    CREATE TABLE audit (
        id       INTEGER PRIMARY KEY AUTOINCREMENT,
        ts       REAL NOT NULL,
        operator TEXT NOT NULL,
        action   TEXT NOT NULL,
        target   TEXT NOT NULL,
        reason   TEXT NOT NULL DEFAULT '',
        detail   TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX audit_ts ON audit(ts);
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)


# The newest id of a room, and of a user's direct messages (sent or received); 0 if none.
_LAST_IN_ROOM = "SELECT coalesce(max(id), 0) FROM messages WHERE room = ?"
_LAST_DIRECT = (
    "SELECT max(coalesce((SELECT max(id) FROM messages WHERE dm_key IS NOT NULL AND sender = ?), 0),"
    " coalesce((SELECT max(id) FROM messages WHERE dm_key IS NOT NULL AND recipient = ?), 0))")


def _mute(r: tuple[Any, ...]) -> Mute:
    return Mute(r[0], r[1], r[2], None if r[3] is None else float(r[3]), r[4], float(r[5]))


def _row(r: tuple[Any, ...]) -> Message:
    return Message(id=r[0], sender=r[1], text=r[2], ts=r[3], cid=r[4], room=r[5], recipient=r[6],
                   name=r[7], to_name=r[8] if r[6] is not None else None, kind=r[9], target=r[10],
                   edited=r[11], deleted=bool(r[12]), actor=r[13])


# Others' messages (not events, not deleted) in a room after a read mark, counted up to
# UNREAD_MAX; and in a direct conversation, to the reader from one other user.
_UNREAD_IN_ROOM = (
    "SELECT count(*) FROM (SELECT 1 FROM messages WHERE room = ? AND id > ? AND kind IS NULL"
    f" AND deleted = 0 AND sender != ? LIMIT {UNREAD_MAX})")
# A user's read marks in the rooms it joined last, each with its count: one statement.
_UNREAD_ROOMS = (
    "SELECT j.room, j.read_id, (SELECT count(*) FROM (SELECT 1 FROM messages WHERE room = j.room"
    " AND id > j.read_id AND kind IS NULL AND deleted = 0 AND sender != j.user_id"
    f" LIMIT {UNREAD_MAX})) FROM room_members j WHERE j.user_id = ?"
    f" ORDER BY j.joined_at DESC, j.room LIMIT {UNREAD_ROOMS}")
_UNREAD_DIRECT = (
    "SELECT m.sender, coalesce(u.name, m.sender), coalesce(r.read_id, 0), count(*) FROM messages m"
    " LEFT JOIN users u ON u.id = m.sender"
    " LEFT JOIN dm_reads r ON r.user_id = m.recipient AND r.other = m.sender"
    " WHERE m.dm_key IS NOT NULL AND m.recipient = ? AND m.sender != m.recipient"
    " AND m.kind IS NULL AND m.deleted = 0 AND m.id > coalesce(r.read_id, 0) GROUP BY m.sender")
_MUTED = ("SELECT reason, until FROM mutes WHERE room = ? AND user_id = ?"
          " AND (until IS NULL OR until > ?)")


class _Database:
    """The SQLite connection and the statements; used only from the store thread."""

    def __init__(self, path: str, synchronous: str) -> None:
        self.path = path
        try:
            if path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute(f"PRAGMA synchronous={synchronous}")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot open message database {path}: {exc}") from None
        except OSError as exc:
            raise StoreError(f"cannot open message database {path}: {exc.strerror}") from None

    def _migrate(self) -> None:
        (version,) = self.db.execute("PRAGMA user_version").fetchone()
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"message database {self.path} has schema version {version}, "
                f"newer than this imserver knows ({SCHEMA_VERSION})")
        for target in range(version + 1, SCHEMA_VERSION + 1):
            self.db.execute("BEGIN IMMEDIATE")
            for statement in MIGRATIONS[target - 1].split(";"):
                if statement.strip():
                    self.db.execute(statement)
            self.db.execute(f"PRAGMA user_version={target}")
            self.db.execute("COMMIT")
            log.info("message database %s migrated to schema version %d", self.path, target)
        # Make sure the existing tables are readable now, not at the first message.
        self.db.execute("SELECT max(id) FROM messages").fetchone()

    # --- writes (inside a transaction) ---

    def append(self, sender: str, text: str, cid: str | None,
               room: str | None, recipient: str | None, name: str | None = None) -> Appended:
        if cid is not None:
            found = self.db.execute(
                f"SELECT {_COLUMNS} FROM messages WHERE sender = ? AND cid = ?",
                (sender, cid)).fetchone()
            if found is not None:
                return Appended(_row(found), duplicate=True)
        if room is not None:
            self.check_mute(room, sender)
        to_name = None
        if recipient is not None:
            known = self.db.execute("SELECT name FROM users WHERE id = ?", (recipient,)).fetchone()
            if known is None:
                raise UnknownUser(f"no user {recipient!r}")
            to_name = known[0]
        ts = round(time.time(), 3)
        dm_key = _dm_key(sender, recipient) if recipient is not None else None
        # The links to the streams' previous messages: one thread writes, so the newest
        # stored id of a stream (an index lookup) is the one before this message.
        if recipient is None:
            (previous,) = self.db.execute(_LAST_IN_ROOM, (room,)).fetchone()
            previous_recipient = 0
        else:
            (previous,) = self.db.execute(_LAST_DIRECT, (sender, sender)).fetchone()
            previous_recipient = previous if recipient == sender else \
                self.db.execute(_LAST_DIRECT, (recipient, recipient)).fetchone()[0]
        cursor = self.db.execute(
            "INSERT INTO messages (sender, text, ts, cid, room, recipient, dm_key, sender_name,"
            " recipient_name) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (sender, text, ts, cid, room, recipient, dm_key, name, to_name))
        assert cursor.lastrowid is not None
        return Appended(Message(cursor.lastrowid, sender, text, ts, cid, room, recipient,
                                name if name is not None else sender, to_name), False,
                        previous, previous_recipient)

    def touch_user(self, user_id: str, name: str) -> None:
        self.db.execute(
            "INSERT INTO users (id, name, last_seen) VALUES (?, ?, ?) "
            "ON CONFLICT(id) DO UPDATE SET name = excluded.name, last_seen = excluded.last_seen",
            (user_id, name, time.time()))

    def claim_name(self, key: str, user_id: str, name: str, jti: str, expires: float) -> None:
        """A guest login: the name is `user_id`'s, and one more token of it is valid; when
        the name is free or `user_id`'s already, else NameTaken before anything is
        written. One thread writes, in transactions that exclude other processes: the
        check and the write cannot be split."""
        held = self.db.execute("SELECT user_id FROM name_claims WHERE name_key = ?", (key,)).fetchone()
        if held is not None and held[0] != user_id and self.db.execute(
                "SELECT 1 FROM tokens WHERE user_id = ? AND revoked = 0 AND expires > ? LIMIT 1",
                (held[0], time.time())).fetchone() is not None:
            raise NameTaken(f"the name {name!r} is held by another user")
        self.db.execute(
            "INSERT INTO name_claims (name_key, user_id, name) VALUES (?, ?, ?) ON CONFLICT(name_key)"
            " DO UPDATE SET user_id = excluded.user_id, name = excluded.name", (key, user_id, name))
        self.db.execute("INSERT OR REPLACE INTO tokens (jti, user_id, expires, revoked)"
                        " VALUES (?, ?, ?, 0)", (jti, user_id, expires))
        self.touch_user(user_id, name)

    def revoke_token(self, jti: str, user_id: str, expires: float) -> None:
        self.db.execute(
            "INSERT INTO tokens (jti, user_id, expires, revoked) VALUES (?, ?, ?, 1)"
            " ON CONFLICT(jti) DO UPDATE SET revoked = 1", (jti, user_id, expires))

    def prune_identities(self, now: float) -> int:
        """Forget expired tokens, and the name claims that no valid token holds."""
        removed = self.db.execute("DELETE FROM tokens WHERE expires <= ?", (now,)).rowcount
        removed += self.db.execute(
            "DELETE FROM name_claims WHERE NOT EXISTS (SELECT 1 FROM tokens t WHERE"
            " t.user_id = name_claims.user_id AND t.revoked = 0 AND t.expires > ?)", (now,)).rowcount
        return removed

    def guest_token(self, jti: str, key: str) -> StoredToken | None:
        row = self.db.execute(
            "SELECT t.user_id, t.expires, t.revoked, c.user_id, c.name FROM tokens t"
            " LEFT JOIN name_claims c ON c.name_key = ? WHERE t.jti = ?", (key, jti)).fetchone()
        if row is None:
            return None
        return StoredToken(row[0], float(row[1]), bool(row[2]), row[3], row[4])

    def identities(self, now: float) -> IdentitySnapshot:
        claims = self.db.execute(
            "SELECT c.name_key, c.user_id, c.name, t.jti, t.expires FROM name_claims c"
            " JOIN tokens t ON t.user_id = c.user_id WHERE t.revoked = 0 AND t.expires > ?",
            (now,)).fetchall()
        return IdentitySnapshot([tuple(r) for r in claims])

    def ban(self, ban: Ban) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO bans (user_id, reason, until, banned_by, banned_at)"
            " VALUES (?, ?, ?, ?, ?)", (ban.user_id, ban.reason, ban.until, ban.by, ban.at))
        self.db.execute("DELETE FROM bans WHERE until IS NOT NULL AND until <= ?", (time.time(),))

    def lift_ban(self, user_id: str) -> bool:
        return self.db.execute("DELETE FROM bans WHERE user_id = ?", (user_id,)).rowcount > 0

    def bans(self, now: float) -> list[Ban]:
        rows = self.db.execute(
            "SELECT user_id, reason, until, banned_by, banned_at FROM bans"
            " WHERE until IS NULL OR until > ? ORDER BY banned_at, user_id", (now,)).fetchall()
        return [Ban(r[0], r[1], None if r[2] is None else float(r[2]), r[3], float(r[4])) for r in rows]

    def mute(self, mute: Mute) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO mutes (room, user_id, reason, until, muted_by, muted_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (mute.room, mute.user_id, mute.reason, mute.until, mute.by, mute.at))
        self.db.execute("DELETE FROM mutes WHERE until IS NOT NULL AND until <= ?", (time.time(),))

    def lift_mute(self, room: str, user_id: str, now: float) -> bool:
        lifted = self.db.execute(
            "DELETE FROM mutes WHERE room = ? AND user_id = ? AND (until IS NULL OR until > ?)",
            (room, user_id, now)).rowcount > 0
        self.db.execute("DELETE FROM mutes WHERE until IS NOT NULL AND until <= ?", (now,))
        return lifted

    def mutes_in_force(self, now: float, room: str | None) -> list[Mute]:
        rows = self.db.execute(
            "SELECT room, user_id, reason, until, muted_by, muted_at FROM mutes"
            " WHERE (until IS NULL OR until > ?) AND (? IS NULL OR room = ?)"
            " ORDER BY muted_at, room, user_id", (now, room, room)).fetchall()
        return [_mute(r) for r in rows]

    def record_audit(self, entry: AuditEntry) -> AuditEntry:
        cursor = self.db.execute(
            "INSERT INTO audit (ts, operator, action, target, reason, detail) VALUES (?, ?, ?, ?, ?, ?)",
            (entry.ts, entry.operator, entry.action, entry.target, entry.reason, entry.detail))
        assert cursor.lastrowid is not None
        return dataclasses.replace(entry, id=cursor.lastrowid)

    def audit(self, before: int | None, limit: int) -> list[AuditEntry]:
        rows = self.db.execute(
            "SELECT id, ts, operator, action, target, reason, detail FROM audit WHERE id < ?"
            " ORDER BY id DESC LIMIT ?", (before if before is not None else 1 << 62, limit)).fetchall()
        return [AuditEntry(r[0], float(r[1]), *r[2:]) for r in rows]

    # --- conversations: membership, read marks, edits and deletions ---

    def check_mute(self, room: str, user: str) -> None:
        found = self.db.execute(_MUTED, (room, user, time.time())).fetchone()
        if found is not None:
            raise refusal_for_mute(room, found[0], found[1])

    def _room(self, room: str) -> tuple[str, bool, str | None] | None:
        row = self.db.execute("SELECT topic, private, owner FROM rooms WHERE name = ?",
                              (room,)).fetchone()
        return None if row is None else (row[0], bool(row[1]), row[2])

    def _read_mark(self, room: str, user: str) -> int | None:
        row = self.db.execute("SELECT read_id FROM room_members WHERE room = ? AND user_id = ?",
                              (room, user)).fetchone()
        return None if row is None else int(row[0])

    def _check_reader(self, room: str, user: str) -> tuple[str, bool, str | None] | None:
        found = self._room(room)
        if found is not None and found[1] and found[2] != user \
                and self._read_mark(room, user) is None:
            raise Refused("forbidden", f"room {room} is private: only its members may read it")
        return found

    def join_room(self, user: str, room: str, since: int | None, limit: int,
                  page: int) -> JoinedRoom:
        found = self._check_reader(room, user) or ("", False, None)
        recovery = self.room_recover(room, since, limit, page)
        read = self._read_mark(room, user)
        if read is None:  # a new member has read everything before it came
            return JoinedRoom(recovery, found[0], found[1], recovery.latest, 0, member=False,
                              owner=found[2])
        (unread,) = self.db.execute(_UNREAD_IN_ROOM, (room, read, user)).fetchone()
        return JoinedRoom(recovery, found[0], found[1], read, unread, owner=found[2])

    def add_member(self, user: str, room: str, read: int) -> None:
        now = time.time()
        self.db.execute("INSERT INTO rooms (name, created_at) VALUES (?, ?) ON CONFLICT DO NOTHING",
                        (room, now))
        self._check_reader(room, user)  # private since this joiner's join was read: refused
        self.db.execute("INSERT INTO room_members (room, user_id, read_id, joined_at)"
                        " VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING", (room, user, read, now))

    def leave_room(self, user: str, room: str) -> None:
        self.db.execute("DELETE FROM room_members WHERE room = ? AND user_id = ?", (room, user))

    def room_history(self, user: str, room: str, before: int | None, limit: int) -> Page:
        self._check_reader(room, user)
        return self.room_before(room, before, limit)

    def _info(self, room: str, user: str) -> RoomInfo:
        found = self._room(room)
        assert found is not None
        (members,) = self.db.execute("SELECT count(*) FROM room_members WHERE room = ?",
                                     (room,)).fetchone()
        return RoomInfo(room, found[0], found[1], members,
                        self._read_mark(room, user) is not None, found[2])

    def create_room(self, user: str, room: str, topic: str, private: bool) -> RoomInfo:
        if self._room(room) is not None or self.db.execute(
                "SELECT 1 FROM messages WHERE room = ? LIMIT 1", (room,)).fetchone() is not None:
            raise Refused("room_exists", f"room {room} exists already")
        now = time.time()
        self.db.execute("INSERT INTO rooms (name, topic, private, owner, created_at)"
                        " VALUES (?, ?, ?, ?, ?)", (room, topic, int(private), user, now))
        self.db.execute("INSERT INTO room_members (room, user_id, read_id, joined_at)"
                        " VALUES (?, ?, 0, ?)", (room, user, now))
        return self._info(room, user)

    def _owned_private(self, owner: str, room: str) -> tuple[str, bool, str | None]:
        found = self._room(room)
        if found is None:
            raise Refused("not_found", f"no room {room}")
        if not found[1]:
            raise Refused("bad_request", f"room {room} is public: anyone may join it")
        if found[2] != owner:
            raise Refused("forbidden", f"only the owner of room {room} may do that")
        return found

    def invite(self, owner: str, room: str, user: str) -> RoomInfo:
        self._owned_private(owner, room)
        if self.db.execute("SELECT 1 FROM users WHERE id = ?", (user,)).fetchone() is None:
            raise UnknownUser(f"no user {user!r}")
        (latest,) = self.db.execute(_LAST_IN_ROOM, (room,)).fetchone()
        self.db.execute("INSERT INTO room_members (room, user_id, read_id, joined_at)"
                        " VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                        (room, user, latest, time.time()))
        return self._info(room, user)

    def remove_member(self, owner: str, room: str, user: str) -> None:
        self._owned_private(owner, room)
        self.leave_room(user, room)

    def list_rooms(self, user: str, limit: int) -> list[RoomInfo]:
        rows = self.db.execute(
            "SELECT r.name, r.topic, r.private, r.owner,"
            " (SELECT count(*) FROM room_members m WHERE m.room = r.name) AS members,"
            " EXISTS (SELECT 1 FROM room_members m WHERE m.room = r.name AND m.user_id = ?)"
            " AS member FROM rooms r WHERE r.private = 0 OR r.owner = ? OR member"
            " ORDER BY members DESC, r.name LIMIT ?", (user, user, limit)).fetchall()
        return [RoomInfo(r[0], r[1], bool(r[2]), r[4], bool(r[5]), r[3]) for r in rows]

    def mark_read(self, user: str, room: str | None, other: str | None,
                  read: int) -> ReadMark | None:
        if room is not None:
            moved = self.db.execute(
                "UPDATE room_members SET read_id = ? WHERE room = ? AND user_id = ? AND read_id < ?",
                (read, room, user, read)).rowcount
            if not moved:
                return None
            (unread,) = self.db.execute(_UNREAD_IN_ROOM, (room, read, user)).fetchone()
            return ReadMark(read, unread)
        assert other is not None
        moved = self.db.execute(
            "INSERT INTO dm_reads (user_id, other, read_id) VALUES (?, ?, ?) ON CONFLICT"
            " DO UPDATE SET read_id = excluded.read_id WHERE excluded.read_id > dm_reads.read_id",
            (user, other, read)).rowcount
        if not moved:
            return None
        (unread,) = self.db.execute(
            "SELECT count(*) FROM (SELECT 1 FROM messages WHERE dm_key = ? AND recipient = ?"
            f" AND sender = ? AND id > ? AND kind IS NULL AND deleted = 0 LIMIT {UNREAD_MAX})",
            (_dm_key(user, other), user, other, read)).fetchone()
        return ReadMark(read, unread)

    def unread(self, user: str) -> Unread:
        rooms = {room: ReadMark(read, count)
                 for room, read, count in self.db.execute(_UNREAD_ROOMS, (user,)).fetchall()}
        direct = {other: (name, ReadMark(read, min(count, UNREAD_MAX)))
                  for other, name, read, count in self.db.execute(_UNREAD_DIRECT, (user,)).fetchall()}
        return Unread(rooms, direct)

    def append_event(self, actor: str, kind: str, target: int, text: str, cid: str | None,
                     room: str | None, operator: bool) -> Appended:
        if cid is not None:
            found = self.db.execute(
                f"SELECT {_COLUMNS} FROM messages WHERE sender = ? AND cid = ?",
                (actor, cid)).fetchone()
            if found is not None:
                return Appended(_row(found), duplicate=True)
        row = self.db.execute(f"SELECT {_COLUMNS} FROM messages WHERE id = ?", (target,)).fetchone()
        message = None if row is None else _row(row)
        where = f"in room {room}" if room is not None else "among your direct messages"
        if message is None or message.kind is not None or (not operator and (
                message.room != room or (room is None and message.room is not None))):
            raise Refused("not_found", f"no message {target} {where}")
        if not operator and message.sender != actor:
            raise Refused("forbidden", "only its author may edit or delete a message")
        if message.deleted:
            raise Refused("deleted", f"message {target} is deleted")
        if kind == EDIT and message.room is not None and not operator:
            self.check_mute(message.room, actor)
        now = round(time.time(), 3)
        if kind == DELETE:
            self.db.execute("UPDATE messages SET text = '', deleted = 1 WHERE id = ?", (target,))
        else:
            self.db.execute("UPDATE messages SET text = ?, edited = ? WHERE id = ?",
                            (text, now, target))
        sender, recipient = message.sender, message.recipient
        if recipient is None:
            (previous,) = self.db.execute(_LAST_IN_ROOM, (message.room,)).fetchone()
            previous_recipient = 0
        else:
            (previous,) = self.db.execute(_LAST_DIRECT, (sender, sender)).fetchone()
            previous_recipient = previous if recipient == sender else \
                self.db.execute(_LAST_DIRECT, (recipient, recipient)).fetchone()[0]
        by = "operator" if operator else None
        cursor = self.db.execute(
            "INSERT INTO messages (sender, text, ts, cid, room, recipient, dm_key, sender_name,"
            " recipient_name, kind, target, actor) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (sender, text, now, None if operator else cid, message.room, recipient,
             None if recipient is None else _dm_key(sender, recipient), message.name,
             message.to_name, kind, target, by))
        assert cursor.lastrowid is not None
        event = Message(cursor.lastrowid, sender, text, now, None if operator else cid,
                        message.room, recipient, message.name, message.to_name, kind, target,
                        actor=by)
        return Appended(event, False, previous, previous_recipient)

    def prune(self, older_than: float | None, keep_per_room: int | None) -> int:
        removed = 0
        if older_than is not None:
            removed += self.db.execute("DELETE FROM messages WHERE ts < ?", (older_than,)).rowcount
        if keep_per_room:
            rooms = [r[0] for r in self.db.execute(
                "SELECT DISTINCT room FROM messages WHERE room IS NOT NULL")]
            for room in rooms:
                removed += self.db.execute(
                    "DELETE FROM messages WHERE room = ? AND id <= ("
                    " SELECT id FROM messages WHERE room = ? ORDER BY id DESC LIMIT 1 OFFSET ?)",
                    (room, room, keep_per_room)).rowcount
        return removed

    # --- reads ---

    def room_after(self, room: str, after: int, limit: int) -> Page:
        rows = self.db.execute(
            f"SELECT {_COLUMNS} FROM messages WHERE room = ? AND id > ? ORDER BY id LIMIT ?",
            (room, after, limit + 1)).fetchall()
        return self._page_after(rows, limit)

    def room_before(self, room: str, before: int | None, limit: int) -> Page:
        rows = self.db.execute(
            f"SELECT {_COLUMNS} FROM messages WHERE room = ? AND id < ? AND kind IS NULL"
            " ORDER BY id DESC LIMIT ?",
            (room, before if before is not None else 1 << 62, limit + 1)).fetchall()
        return self._page_before(rows, limit)

    def dm_before(self, user: str, other: str, before: int | None, limit: int) -> Page:
        rows = self.db.execute(
            f"SELECT {_COLUMNS} FROM messages WHERE dm_key = ? AND id < ? AND kind IS NULL"
            " ORDER BY id DESC LIMIT ?",
            (_dm_key(user, other), before if before is not None else 1 << 62, limit + 1)).fetchall()
        return self._page_before(rows, limit)

    def dm_after(self, user: str, after: int | None, limit: int) -> Page:
        """Every direct message to or from `user` after an id (None: the latest page)."""
        if after is None:
            rows = self.db.execute(
                f"SELECT {_COLUMNS} FROM messages WHERE dm_key IS NOT NULL AND sender = ?"
                " AND kind IS NULL"
                f" UNION SELECT {_COLUMNS} FROM messages WHERE dm_key IS NOT NULL AND recipient = ?"
                " AND kind IS NULL ORDER BY id DESC LIMIT ?", (user, user, limit + 1)).fetchall()
            return self._page_before(rows, limit)
        rows = self.db.execute(
            f"SELECT {_COLUMNS} FROM messages WHERE dm_key IS NOT NULL AND sender = ? AND id > ?"
            f" UNION SELECT {_COLUMNS} FROM messages WHERE dm_key IS NOT NULL AND recipient = ? AND id > ?"
            " ORDER BY id LIMIT ?", (user, after, user, after, limit + 1)).fetchall()
        return self._page_after(rows, limit)

    def room_recover(self, room: str, since: int | None, limit: int, page: int) -> Recovery:
        """What a (re)join gets: every message after `since`, or, when more than `limit`
        were missed (or no `since`), the latest `page`. One read, one snapshot."""
        (latest,) = self.db.execute("SELECT coalesce(max(id), 0) FROM messages WHERE room = ?",
                                    (room,)).fetchone()
        if since is not None:
            missed = self.room_after(room, since, limit)
            if not missed.more:
                return recovery_of(missed.messages, False, latest)
        return recovery_of(self.room_before(room, None, page).messages, since is not None, latest)

    def dm_recover(self, user: str, since: int | None, limit: int, page: int) -> Recovery:
        """As room_recover, for every direct message to or from `user`."""
        latest = self.db.execute(
            "SELECT max(id) FROM messages WHERE dm_key IS NOT NULL AND sender = ?"
            " UNION ALL SELECT max(id) FROM messages WHERE dm_key IS NOT NULL AND recipient = ?",
            (user, user)).fetchall()
        newest = max((r[0] for r in latest if r[0] is not None), default=0)
        if since is not None:
            missed = self.dm_after(user, since, limit)
            if not missed.more:
                return recovery_of(missed.messages, False, newest)
        return recovery_of(self.dm_after(user, None, page).messages, since is not None, newest)

    @staticmethod
    def _page_after(rows: list[Any], limit: int) -> Page:
        return Page([_row(r) for r in rows[:limit]], len(rows) > limit)

    @staticmethod
    def _page_before(rows: list[Any], limit: int) -> Page:
        return Page([_row(r) for r in reversed(rows[:limit])], len(rows) > limit)


_STOP = object()


@dataclass(slots=True)
class _Op:
    write: bool
    call: Callable[[_Database], Any]
    future: asyncio.Future[Any]


class MessageStore:
    """The message store used by the hub; every method returns an awaitable.

    Write answers come back in the order the writes were queued, each after the
    batch holding it committed; reads queued after a write see that write.
    """

    shared = False  # one server process owns the file

    def __init__(self, path: str, *, batch_max: int = 512, synchronous: str = "FULL",
                 health_deadline: float = 10.0) -> None:
        self.path = path
        self._db = _Database(path, synchronous)
        self._identity = _file_identity(path)
        self._batch_max = batch_max
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._run, name="imserver-store", daemon=True)
        self._started = False
        self._closed = False
        self._dead = False
        self.health_deadline = health_deadline
        self._busy_since: float | None = None  # monotonic start of the batch being run
        self._file_problem: str | None = None  # once set, writes are refused for good
        self.batches = 0
        self.committed = 0
        self._known_users = KnownUsers()

    def health(self) -> str | None:
        """Why the store cannot be trusted now (for /healthz), or None when it can."""
        if self._dead or (self._started and not self._closed and not self._thread.is_alive()):
            return "the message store thread is not running"
        busy = self._busy_since
        if busy is not None and time.monotonic() - busy > self.health_deadline:
            return f"the message store has been stuck on one batch for over {self.health_deadline:g} s"
        return self._file_problem or self._check_file()

    def _check_file(self) -> str | None:
        """Has the database file been deleted or replaced since it was opened? Writes
        into an unlinked file would be acknowledged and then lost at the next start."""
        if self._identity is not None and self._file_problem is None \
                and _file_identity(self.path) != self._identity:
            self._file_problem = f"message database {self.path} was deleted or replaced while open"
            log.error("%s: refusing writes until restarted", self._file_problem)
        return self._file_problem

    # --- public API ---

    def append_room(self, sender: str, room: str, text: str, cid: str | None,
                    name: str | None = None) -> asyncio.Future[Appended]:
        return self._submit(True, lambda db: db.append(sender, text, cid, room, None, name))

    def append_direct(self, sender: str, recipient: str, text: str,
                      cid: str | None, name: str | None = None) -> asyncio.Future[Appended]:
        return self._submit(True, lambda db: db.append(sender, text, cid, None, recipient, name))

    def claim_name(self, key: str, user_id: str, name: str, jti: str,
                   expires: float) -> asyncio.Future[None]:
        self._known_users.remember(user_id, name)
        future = self._submit(True, lambda db: db.claim_name(key, user_id, name, jti, expires))
        self._known_users.until_failed(future, user_id, name)
        return future

    def guest_token(self, jti: str, key: str) -> asyncio.Future[StoredToken | None]:
        return self._submit(False, lambda db: db.guest_token(jti, key))

    def read_identities(self, now: float) -> asyncio.Future[IdentitySnapshot]:
        return self._submit(False, lambda db: db.identities(now))

    def revoke_token(self, jti: str, user_id: str, expires: float) -> asyncio.Future[None]:
        return self._submit(True, lambda db: db.revoke_token(jti, user_id, expires))

    def prune_identities(self, now: float) -> asyncio.Future[int]:
        return self._submit(True, lambda db: db.prune_identities(now))

    def ban(self, ban: Ban) -> asyncio.Future[None]:
        return self._submit(True, lambda db: db.ban(ban))

    def lift_ban(self, user_id: str) -> asyncio.Future[bool]:
        return self._submit(True, lambda db: db.lift_ban(user_id))

    def read_bans(self, now: float) -> asyncio.Future[list[Ban]]:
        return self._submit(False, lambda db: db.bans(now))

    def mute(self, mute: Mute) -> asyncio.Future[None]:
        return self._submit(True, lambda db: db.mute(mute))

    def lift_mute(self, room: str, user_id: str, now: float) -> asyncio.Future[bool]:
        return self._submit(True, lambda db: db.lift_mute(room, user_id, now))

    def read_mutes(self, now: float, room: str | None = None) -> asyncio.Future[list[Mute]]:
        return self._submit(False, lambda db: db.mutes_in_force(now, room))

    def record_audit(self, entry: AuditEntry) -> asyncio.Future[AuditEntry]:
        return self._submit(True, lambda db: db.record_audit(entry))

    def read_audit(self, before: int | None, limit: int) -> asyncio.Future[list[AuditEntry]]:
        return self._submit(False, lambda db: db.audit(before, limit))

    async def open(self, now: float) -> IdentitySnapshot:
        """The database was opened by the constructor; this reads the identities."""
        return self.load_identities(now)

    def load_identities(self, now: float) -> IdentitySnapshot:
        """A synchronous read, for start-up only: before the store thread owns the database."""
        if self._started:
            raise RuntimeError("load_identities is for start-up, before the store thread runs")
        try:
            return self._db.identities(now)
        except sqlite3.Error as exc:
            raise StoreError(f"message database {self.path}: {exc}") from None

    def touch_user(self, user_id: str, name: str) -> asyncio.Future[None]:
        """Remember a user (direct messages may be sent only to known users). Written
        once per user per run: reconnects after a restart cost no commit each."""
        if self._known_users.written(user_id, name):
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            done.set_result(None)
            return done
        self._known_users.remember(user_id, name)
        return self._submit(True, lambda db: db.touch_user(user_id, name))

    def room_before(self, room: str, before: int | None, limit: int) -> asyncio.Future[Page]:
        return self._submit(False, lambda db: db.room_before(room, before, limit))

    def dm_before(self, user: str, other: str, before: int | None, limit: int) -> asyncio.Future[Page]:
        return self._submit(False, lambda db: db.dm_before(user, other, before, limit))

    def prune(self, *, max_age_seconds: float | None, keep_per_room: int | None) -> asyncio.Future[int]:
        older_than = time.time() - max_age_seconds if max_age_seconds else None
        return self._submit(True, lambda db: db.prune(older_than, keep_per_room))

    def room_after(self, room: str, after: int, limit: int) -> asyncio.Future[Page]:
        return self._submit(False, lambda db: db.room_after(room, after, limit))

    def dm_after(self, user: str, after: int, limit: int) -> asyncio.Future[Page]:
        return self._submit(False, lambda db: db.dm_after(user, after, limit))

    def room_recover(self, room: str, since: int | None, limit: int, page: int) -> asyncio.Future[Recovery]:
        return self._submit(False, lambda db: db.room_recover(room, since, limit, page))

    def dm_recover(self, user: str, since: int | None, limit: int, page: int) -> asyncio.Future[Recovery]:
        return self._submit(False, lambda db: db.dm_recover(user, since, limit, page))

    def join_room(self, user: str, room: str, since: int | None, limit: int,
                  page: int) -> asyncio.Future[JoinedRoom]:
        return self._submit(False, lambda db: db.join_room(user, room, since, limit, page))

    def add_member(self, user: str, room: str, read: int) -> asyncio.Future[None]:
        return self._submit(True, lambda db: db.add_member(user, room, read))

    def leave_room(self, user: str, room: str) -> asyncio.Future[None]:
        return self._submit(True, lambda db: db.leave_room(user, room))

    def room_history(self, user: str, room: str, before: int | None,
                     limit: int) -> asyncio.Future[Page]:
        return self._submit(False, lambda db: db.room_history(user, room, before, limit))

    def create_room(self, user: str, room: str, topic: str, private: bool) -> asyncio.Future[RoomInfo]:
        return self._submit(True, lambda db: db.create_room(user, room, topic, private))

    def invite(self, owner: str, room: str, user: str) -> asyncio.Future[RoomInfo]:
        return self._submit(True, lambda db: db.invite(owner, room, user))

    def remove_member(self, owner: str, room: str, user: str) -> asyncio.Future[None]:
        return self._submit(True, lambda db: db.remove_member(owner, room, user))

    def list_rooms(self, user: str, limit: int) -> asyncio.Future[list[RoomInfo]]:
        return self._submit(False, lambda db: db.list_rooms(user, limit))

    def mark_read(self, user: str, room: str | None, other: str | None,
                  read: int) -> asyncio.Future[ReadMark | None]:
        return self._submit(True, lambda db: db.mark_read(user, room, other, read))

    def unread(self, user: str) -> asyncio.Future[Unread]:
        return self._submit(False, lambda db: db.unread(user))

    def append_event(self, actor: str, kind: str, target: int, text: str, cid: str | None,
                     room: str | None, *, operator: bool = False) -> asyncio.Future[Appended]:
        return self._submit(True, lambda db: db.append_event(actor, kind, target, text, cid,
                                                             room, operator))

    async def close(self) -> None:
        """Finish every queued operation, then close the database."""
        if self._closed:
            return
        self._closed = True
        if self._started:
            self._queue.put(_STOP)
            await asyncio.get_running_loop().run_in_executor(None, self._thread.join)
        self._db.db.close()

    # --- the store thread ---

    def _submit(self, write: bool, call: Callable[[_Database], Any]) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        if self._closed:  # shutting down: an upgrade or a frame still on its way is answered so
            closed: asyncio.Future[Any] = loop.create_future()
            closed.set_exception(StoreError("the message store is closed"))
            return closed
        if not self._started:
            self._loop = loop
            self._started = True
            self._thread.start()
        future = loop.create_future()
        if self._dead:
            future.set_exception(StoreError("the message store thread is not running"))
        else:
            self._queue.put(_Op(write, call, future))
        return future

    def _run(self) -> None:
        batch: list[_Op] = []
        try:
            stop = False
            while not stop:
                batch = [self._queue.get()]
                while len(batch) < self._batch_max:
                    try:
                        batch.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                if _STOP in batch:
                    stop = True
                    batch = [op for op in batch if op is not _STOP]
                if batch:
                    self._busy_since = time.monotonic()
                    try:
                        self._run_batch(batch)
                    except Exception:  # the thread serves on: only this batch fails
                        log.exception("message database %s: a batch failed", self.path)
                        self._answer(self._failed(batch, StoreError("message store error")))
                    finally:
                        self._busy_since = None
        except BaseException:  # the thread cannot go on: nobody may wait for it forever
            self._dead = True
            log.critical("message store thread stopped", exc_info=True)
            while True:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            ops = [op for op in batch if op is not _STOP]
            self._answer(self._failed(ops, StoreError("the message store thread is not running")))

    @staticmethod
    def _failed(batch: list[_Op], error: StoreError) -> list[_Result]:
        return [(op.future, None, error) for op in batch]

    def _answer(self, results: list[_Result]) -> None:
        assert self._loop is not None
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting any more
            self._loop.call_soon_threadsafe(_resolve_all, results)

    def _run_batch(self, batch: list[_Op]) -> None:
        # Everything runs in queue order, in one transaction when there are writes, and
        # is answered in that order after the commit: a read sees exactly the writes
        # queued before it. So a re-joining member gets in its backlog the messages
        # stored before its join, and live (after the backlog) those stored after it:
        # each once. And a join queued before a say is answered before the say's ack.
        writes = sum(op.write for op in batch)
        refused = self._check_file() if writes else None
        if not writes:
            results = [self._call(op) for op in batch]
        elif refused is not None:
            error = StoreError(refused)
            results = [(op.future, None, error) if op.write else self._call(op) for op in batch]
        else:
            try:
                self._db.db.execute("BEGIN IMMEDIATE")
                results = [self._call(op) for op in batch]
                self._db.db.execute("COMMIT")
                self.batches += 1
                self.committed += writes
            except sqlite3.Error as exc:
                log.error("message database %s: commit failed: %s", self.path, exc)
                if self._db.db.in_transaction:
                    self._db.db.execute("ROLLBACK")
                # The reads saw writes that are now undone: they fail with them.
                results = self._failed(batch, StoreError(f"message database {self.path}: {exc}"))
        self._answer(results)

    def _call(self, op: _Op) -> _Result:
        """Run one operation; its failure is its own, except for an error that breaks
        the whole transaction (I/O, a lock, a corrupt file), which fails the batch."""
        try:
            return (op.future, op.call(self._db), None)
        except (UnknownUser, NameTaken, Refused) as exc:  # answers, not failures
            return (op.future, None, exc)
        except sqlite3.DatabaseError as exc:
            # SQLite undoes just the failing statement for these; the others break the
            # transaction, and with it every write of the batch.
            if op.write and not isinstance(exc, _STATEMENT_ERRORS):
                raise
            return (op.future, None, StoreError(str(exc)))
        except Exception as exc:  # e.g. a value SQLite cannot bind: this operation fails alone
            log.error("message database %s: operation refused: %r", self.path, exc)
            return (op.future, None, StoreError(f"{type(exc).__name__}: {exc}"))


_Result = tuple[asyncio.Future[Any], Any, BaseException | None]
# Errors after which the transaction goes on (SQLite undid only the failing statement).
_STATEMENT_ERRORS = (sqlite3.IntegrityError, sqlite3.ProgrammingError, sqlite3.DataError)


def _file_identity(path: str) -> tuple[int, int] | None:
    """The (device, inode) of a database file; None for an in-memory database, and
    (-1, -1) when the file is missing."""
    if path == ":memory:":
        return None
    try:
        st = os.stat(path)
    except OSError:
        return (-1, -1)
    return (st.st_dev, st.st_ino)


def _resolve_all(results: list[_Result]) -> None:
    for future, value, error in results:
        if future.done():  # cancelled, or answered before the thread stopped
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)
