"""The admin side's list of connections, filtered, sorted and paged on the server.

The rows are this node's connections (Connection objects: their live fields are
read when a page is built) and, in a cluster, the other nodes' rows as the
directory has them (dicts). A `Query` names the filters, a sort column and its
order, a page size and a cursor; `ClientList.page` answers one page of the
matching rows, with the totals.

What a page costs: the matching rows are filtered and sorted once into an
`Ordered` index, kept while nothing it was built from changed (the registry's
generation, and the directory's list of the other nodes' rows, which stays the
same object while no node's rows changed) and, for a sort or filter on a live
field (last frame, round trip, frames, health), for under a second. Every page
of the index, from any request or dashboard, is then a binary search and the
JSON of its own rows: with 40,000 connections and nothing changing, a
dashboard's page a second costs about a millisecond.

Cursors are keyset cursors: the sort value and the id of the row a page ends
(or starts) with, so that a page stays put while connections come and go
around it. They are opaque to clients (base64 of JSON) and checked as hostile
input.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import time
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..core.protocol import RECONNECT_CAUSES
from ..core.registry import Connection, Registry

DEFAULT_LIMIT = 100  # rows a page holds when the request does not say: no request returns every row
MAX_LIMIT = 1000
MAX_TEXT = 200  # characters of a filter's value
MAX_CURSOR = 2048  # characters of a cursor (a text sort value: MAX_TEXT characters at most)
MAX_WORDS = 8  # words of a search
TOP = 10  # rows of each summary table when the request does not say
MAX_TOP = 100
LIVE_MAX_AGE = 0.9  # seconds an index sorted or filtered on a live field is kept
KEPT_INDEXES = 16  # indexes kept for different filters and sorts (the least recently used goes)

HEALTHS = ("green", "amber", "unknown")
CAUSES = ("none", *RECONNECT_CAUSES, "other")  # none: a first connection


class BadQuery(ValueError):
    """A query argument that cannot be taken; the message says which and why."""


Row = Connection | dict[str, Any]


@dataclass(frozen=True, slots=True)
class Context:
    """What the live fields of this node's connections are computed against."""

    mono: float  # time.monotonic() now
    wall_offset: float  # time.time() - time.monotonic(), kept steady
    ping_timeout: float
    node: str = ""  # this node's id in a cluster

    def last_seen(self, conn: Connection) -> float:
        return round(conn.last_seen + self.wall_offset, 3)

    def health(self, conn: Connection) -> str:
        return "amber" if self.mono - conn.last_seen > self.ping_timeout / 2 else "green"


def _health_rank(health: str | None) -> int | None:
    return None if health is None else int(health == "amber")


@dataclass(frozen=True, slots=True)
class Column:
    """A sortable column: its value for this node's connections and for the other
    nodes' rows (None: not known there); `live` when it changes without a connection
    opening, closing, joining or leaving."""

    numeric: bool
    local: Callable[[Connection, Context], Any]
    remote: Callable[[dict[str, Any]], Any]
    live: bool = False


def _rooms_text(rooms: Iterable[str]) -> str:
    return ", ".join(sorted(rooms))


# Sorting on "idle" (time since the last frame) sorts on the negated time of the last
# frame, which stays put while nothing arrives: a cursor on it does not drift. Values
# are the exact ones (not rounded as shown): a cursor carries one, and finds its row.
COLUMNS: dict[str, Column] = {
    "id": Column(False, lambda c, x: c.id, lambda r: r["id"]),
    "user": Column(False, lambda c, x: c.user.name or c.user.id, lambda r: r["name"] or r["user"]),
    "rooms": Column(False, lambda c, x: _rooms_text(c.rooms), lambda r: _rooms_text(r["rooms"])),
    "remote": Column(False, lambda c, x: c.remote, lambda r: r["remote"]),
    "node": Column(False, lambda c, x: x.node, lambda r: r.get("node") or ""),
    "user_agent": Column(False, lambda c, x: c.user_agent, lambda r: r["user_agent"]),
    "connected_at": Column(True, lambda c, x: c.connected_at, lambda r: r["connected_at"]),
    "idle": Column(True, lambda c, x: -c.last_seen, lambda r: None, live=True),
    "rtt": Column(True, lambda c, x: c.rtt, lambda r: r["rtt"], live=True),
    "frames_in": Column(True, lambda c, x: c.frames_in, lambda r: r["frames_in"], live=True),
    "frames_out": Column(True, lambda c, x: c.frames_out, lambda r: r["frames_out"], live=True),
    "reconnect": Column(True, lambda c, x: c.reconnect, lambda r: r["reconnect"]),
    "cause": Column(False, lambda c, x: c.cause, lambda r: r.get("cause") or ""),
    "health": Column(True, lambda c, x: _health_rank(x.health(c)), lambda r: _health_rank(r["health"]),
                     live=True),
}
DEFAULT_SORT = "connected_at"  # newest first

FILTERS = ("q", "user", "room", "remote", "node", "health", "cause")
ARGUMENTS = frozenset((*FILTERS, "sort", "order", "limit", "cursor"))


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where a page starts: after (`next`) or before (`prev`) the row with this sort
    value and id, in the query's order."""

    sort: str
    order: str
    value: Any
    id: str
    direction: str  # "next" or "prev"

    def encode(self) -> str:
        raw = json.dumps({"s": self.sort, "o": self.order, "v": self.value, "i": self.id,
                          "d": self.direction}, separators=(",", ":"), ensure_ascii=False)
        return base64.urlsafe_b64encode(raw.encode("utf-8")).decode("ascii").rstrip("=")


@dataclass(frozen=True, slots=True)
class Query:
    """What a page shows: filters (name -> value), a column and order, how many rows
    and from where."""

    filters: tuple[tuple[str, str], ...] = ()
    sort: str = DEFAULT_SORT
    order: str = "desc"
    limit: int = DEFAULT_LIMIT
    cursor: Cursor | None = None

    @property
    def index_key(self) -> tuple[Any, ...]:
        """What the rows' order depends on (not the page size, not the cursor)."""
        return (self.filters, self.sort, self.order)

    @property
    def live(self) -> bool:
        return COLUMNS[self.sort].live or any(name == "health" for name, _ in self.filters)

    def to_json(self) -> dict[str, Any]:
        return {**dict(self.filters), "sort": self.sort, "order": self.order, "limit": self.limit}


def _text_argument(name: str, value: str) -> str:
    value = value.strip()
    if len(value) > MAX_TEXT or not value.isprintable():
        raise BadQuery(f"{name} must be at most {MAX_TEXT} printable characters")
    return value


def _whole(name: str, value: str, low: int, high: int) -> int:
    if not (value.isascii() and value.isdigit()) or len(value) > len(str(high)) \
            or not low <= int(value) <= high:
        raise BadQuery(f"{name} must be a whole number from {low} to {high}")
    return int(value)


def parse_query(args: Mapping[str, str]) -> Query:
    """A Query from request arguments (each given once); BadQuery names what is wrong."""
    unknown = sorted(set(args) - ARGUMENTS)
    if unknown:
        raise BadQuery(f"unknown argument {unknown[0][:40]!r}: the client list takes "
                       f"{', '.join(sorted(ARGUMENTS))}")
    for name, value in args.items():
        if not isinstance(value, str):
            raise BadQuery(f"{name} must be text")
    filters = []
    for name in FILTERS:
        if name not in args:
            continue
        value = _text_argument(name, args[name])
        if not value:
            continue
        if name == "health" and value not in HEALTHS:
            raise BadQuery(f"health must be one of {', '.join(HEALTHS)}")
        if name == "cause" and value not in CAUSES:
            raise BadQuery(f"cause must be one of {', '.join(CAUSES)}")
        if name == "q" and len(value.split()) > MAX_WORDS:
            raise BadQuery(f"q holds at most {MAX_WORDS} words")
        filters.append((name, value))
    sort = args.get("sort", DEFAULT_SORT)
    column = COLUMNS.get(sort)
    if column is None:
        raise BadQuery(f"sort must be one of {', '.join(COLUMNS)}")
    order = args.get("order", "desc" if column.numeric else "asc")
    if order not in ("asc", "desc"):
        raise BadQuery("order must be asc or desc")
    limit = _whole("limit", args["limit"], 1, MAX_LIMIT) if "limit" in args else DEFAULT_LIMIT
    cursor = decode_cursor(args["cursor"], sort, order) if args.get("cursor") else None
    return Query(tuple(filters), sort, order, limit, cursor)


def decode_cursor(text: str, sort: str, order: str) -> Cursor:
    """A cursor from a page's `next` or `prev`, for a query in `sort` and `order`."""
    if len(text) > MAX_CURSOR:
        raise BadQuery("cursor is not one this server gave")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        data = json.loads(raw.decode("utf-8"))
    except (ValueError, binascii.Error, UnicodeDecodeError, RecursionError):
        raise BadQuery("cursor is not one this server gave") from None
    if not isinstance(data, dict) or set(data) != {"s", "o", "v", "i", "d"}:
        raise BadQuery("cursor is not one this server gave")
    value, conn_id, direction = data["v"], data["i"], data["d"]
    if data["s"] != sort or data["o"] != order:
        raise BadQuery("cursor is of another sort or order: ask for the first page again")
    numeric = COLUMNS[sort].numeric
    if value is not None and (
            (numeric and (isinstance(value, bool) or not isinstance(value, int | float)
                          or not math.isfinite(value)))
            or (not numeric and (not isinstance(value, str) or len(value) > MAX_TEXT))):
        raise BadQuery("cursor is not one this server gave")
    if not isinstance(conn_id, str) or not 0 < len(conn_id) <= MAX_TEXT \
            or direction not in ("next", "prev"):
        raise BadQuery("cursor is not one this server gave")
    return Cursor(sort, order, value, conn_id, direction)


def query_arguments(arguments: Mapping[str, list[bytes]]) -> dict[str, str]:
    """A request's query arguments, each given once and UTF-8 (BadQuery otherwise)."""
    found = {}
    for name, values in arguments.items():
        if len(values) != 1:
            raise BadQuery(f"{name[:40]!r} is given {len(values)} times")
        try:
            found[name] = values[0].decode("utf-8")
        except UnicodeDecodeError:
            raise BadQuery(f"{name[:40]!r} is not UTF-8") from None
    return found


# --- the order of the matching rows ---

_DIGITS = re.compile(r"(\d+)")


class Ordered:
    """The rows matching a query's filters, in its order, for paging by position or
    by cursor. `keys` ascend; a descending query reads them backward."""

    def __init__(self, keys: list[tuple[Any, ...]], *, descending: bool, built: float,
                 version: tuple[int, list[dict[str, Any]]]) -> None:
        # (rank, sort value, id, n, raw value, row): n is unique, so nothing after it
        # is ever compared; rank puts missing values last in either direction.
        self.keys = keys
        self.descending = descending
        self.built = built
        self.version = version

    def __len__(self) -> int:
        return len(self.keys)

    def span(self, start: int, stop: int) -> list[tuple[Any, ...]]:
        """The entries at reading positions start..stop-1."""
        n = len(self.keys)
        start, stop = max(0, start), min(n, stop)
        if start >= stop:
            return []
        if not self.descending:
            return self.keys[start:stop]
        return self.keys[n - stop:n - start][::-1]

    def around(self, probe: tuple[Any, ...]) -> tuple[int, int]:
        """Reading positions: of the first entry after `probe`, and the end of those before."""
        n = len(self.keys)
        lo = bisect_left(self.keys, probe)
        hi = lo + 1 if lo < n and self.keys[lo][:3] == probe else lo
        return (hi, lo) if not self.descending else (n - lo, n - hi)


@dataclass
class Page:
    """One page of a query, as the API and the push channel send it."""

    rows: list[dict[str, Any]]
    matched: int
    position: int  # of the first row, in the matching rows' order (0: the first page)
    next: str | None
    prev: str | None
    totals: dict[str, int]
    query: Query

    def to_json(self) -> dict[str, Any]:
        return {"clients": self.rows, "matched": self.matched, "position": self.position,
                "next": self.next, "prev": self.prev, "totals": self.totals,
                "sort": self.query.sort, "order": self.query.order, "limit": self.query.limit}


@dataclass
class _Aggregates:
    version: tuple[int, list[dict[str, Any]]]
    built: float
    totals: dict[str, int]
    users: Counter[str]  # user -> connections
    room_members: dict[str, set[str]]
    room_connections: Counter[str]
    nodes: dict[str, tuple[int, int]]  # node -> (connections, users)
    summaries: dict[int, dict[str, Any]] = field(default_factory=dict)  # by the number of rows


def client_json(conn: Connection, context: Context, *, node: str | None = None,
                idle: bool = True) -> dict[str, Any]:
    """One of this node's connections as the admin API shows it (with `idle` the time
    since its last frame, which the dashboard works out itself from `last_seen`)."""
    row = {
        "id": conn.id, "user": conn.user.id, "name": conn.user.name, "rooms": sorted(conn.rooms),
        "remote": conn.remote, "user_agent": conn.user_agent,
        "connected_at": round(conn.connected_at, 3), "last_seen": context.last_seen(conn),
        "rtt": None if conn.rtt is None else round(conn.rtt, 6),
        "frames_in": conn.frames_in, "frames_out": conn.frames_out, "reconnect": conn.reconnect,
        "cause": conn.cause, "health": context.health(conn),
    }
    if idle:
        row["idle"] = round(max(0.0, context.mono - conn.last_seen), 3)
    if node is not None:
        row["node"] = node
    return row


class ClientList:
    """The cluster's connections as pages and small tables: this node's from the
    registry, the others' as given (the directory's rows, or none)."""

    def __init__(self, registry: Registry, *, ping_timeout: float, node: str | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time) -> None:
        self.registry = registry
        self.ping_timeout = ping_timeout
        self.node = node  # this node's id in a cluster; None for a server alone
        self.clock = clock
        self.wall = wall
        self._wall_offset = wall() - clock()
        self._indexes: dict[tuple[Any, ...], Ordered] = {}  # least recently used first
        self._aggregates: _Aggregates | None = None
        self._natural: dict[str, tuple[Any, ...]] = {}
        self._no_rows: list[dict[str, Any]] = []  # the other nodes' rows of a server alone
        self.builds = 0  # indexes built (for the tests: what a page costs)

    def context(self) -> Context:
        mono = self.clock()
        offset = self.wall() - mono
        if abs(offset - self._wall_offset) > 0.5:  # the wall clock was set: follow it
            self._wall_offset = offset
        return Context(mono, self._wall_offset, self.ping_timeout, self.node or "")

    def _version(self, others: list[dict[str, Any]]) -> tuple[int, list[dict[str, Any]]]:
        return (self.registry.generation, others)

    @staticmethod
    def _same(a: tuple[int, list[dict[str, Any]]], b: tuple[int, list[dict[str, Any]]]) -> bool:
        """The same versions: the same generation and the very same list of other rows
        (compared by identity: the directory hands out a new list when any row changed)."""
        return a[0] == b[0] and a[1] is b[1]

    # --- pages ---

    def page(self, query: Query, others: list[dict[str, Any]] | None = None, *,
             idle: bool = True, stale_ok: float = 0.0) -> Page:
        """One page of the rows matching `query`, with the totals. `others`: the other
        nodes' rows, the same list while none changed. With `stale_ok`, an index and
        totals built that many seconds ago at most serve even if connections came and
        went since (those that closed are left out of the page): a page sent between
        two ticks does not sort everything again."""
        others = self._no_rows if others is None else others
        context = self.context()
        ordered = self._ordered(query, others, context, stale_ok)
        limit, n = query.limit, len(ordered)
        cursor = query.cursor
        start = 0
        if cursor is not None:
            after, before = ordered.around(self._probe(query, cursor.value, cursor.id))
            start = after if cursor.direction == "next" else max(0, before - limit)
        if start >= n and n:  # its rows went away: the last page instead
            start = max(0, n - limit)
        entries = [entry for entry in ordered.span(start, start + limit)
                   if not (isinstance(entry[5], Connection) and entry[5].closed)]
        rows = [self._json(entry[5], context, idle) for entry in entries]
        more_after = start + len(entries) < n
        return Page(
            rows=rows, matched=n, position=start,
            next=self._cursor(query, entries[-1], "next") if entries and more_after else None,
            prev=self._cursor(query, entries[0], "prev") if entries and start > 0 else None,
            totals=self._aggregate(others, context.mono, stale_ok).totals, query=query)

    def _json(self, row: Row, context: Context, idle: bool) -> dict[str, Any]:
        if isinstance(row, Connection):
            return client_json(row, context, node=self.node, idle=idle)
        if idle:
            return row
        return {k: v for k, v in row.items() if k != "idle"}

    def _cursor(self, query: Query, entry: tuple[Any, ...], direction: str) -> str:
        return Cursor(query.sort, query.order, entry[4], entry[2], direction).encode()

    def _natural_key(self, text: str) -> tuple[Any, ...]:
        """Text in the order people expect: case-folded, numbers by value ("user2" < "user10")."""
        key = self._natural.get(text)
        if key is None:
            parts: list[Any] = _DIGITS.split(text.casefold())
            # A number as (its length, its digits): by value, however long (int() is not).
            parts[1::2] = [(len(d), d) for d in (p.lstrip("0") for p in parts[1::2])]
            key = tuple(parts)
            if len(self._natural) > 200_000:
                self._natural.clear()
            self._natural[text] = key
        return key

    def _probe(self, query: Query, value: Any, conn_id: str) -> tuple[Any, ...]:
        """The first three parts of the key of a row with this value and id."""
        descending = query.order == "desc"
        if value is None:
            return (0 if descending else 1, 0 if COLUMNS[query.sort].numeric else (), conn_id)
        sortable = value if COLUMNS[query.sort].numeric else self._natural_key(value[:MAX_TEXT])
        return (1 if descending else 0, sortable, conn_id)

    def _ordered(self, query: Query, others: list[dict[str, Any]], context: Context,
                 stale_ok: float = 0.0) -> Ordered:
        version = self._version(others)
        key = query.index_key
        found = self._indexes.pop(key, None)
        age = float("inf") if found is None else context.mono - found.built
        fresh = found is not None and self._same(found.version, version) and (
            not query.live or age <= LIVE_MAX_AGE)
        if found is not None and (fresh or age < stale_ok):
            self._indexes[key] = found  # most recently used last
            return found
        ordered = self._build(query, others, context, version)
        self._indexes[key] = ordered
        while len(self._indexes) > KEPT_INDEXES:
            del self._indexes[next(iter(self._indexes))]
        return ordered

    def _build(self, query: Query, others: list[dict[str, Any]], context: Context,
               version: tuple[int, list[dict[str, Any]]]) -> Ordered:
        """The matching rows' keys, sorted. Comprehensions, not loops: at 40,000 rows
        this is what a change costs (about 40 ms on the 2-core VM)."""
        self.builds += 1
        column = COLUMNS[query.sort]
        descending = query.order == "desc"
        present, missing = (1, 0) if descending else (0, 1)
        blank: Any = 0 if column.numeric else ()
        local_ok, remote_ok = _predicates(query, context, self.node or "")
        conns = [c for c in self.registry if local_ok(c)] if query.filters else list(self.registry)
        rows = [r for r in others if remote_ok(r)] if query.filters else others
        local_value, remote_value = column.local, column.remote
        entries: list[tuple[Any, str, Row]] = [(local_value(c, context), c.id, c) for c in conns]
        entries += [(remote_value(r), r["id"], r) for r in rows]
        if column.numeric:
            keys = [(missing, blank, i, n, None, row) if v is None else (present, v, i, n, v, row)
                    for n, (v, i, row) in enumerate(entries)]
        else:  # text sorts on its first MAX_TEXT characters: a cursor carries no more
            natural = self._natural_key
            cut = [(None if v is None else v[:MAX_TEXT], i, row) for v, i, row in entries]
            keys = [(missing, blank, i, n, None, row) if v is None else (present, natural(v), i, n, v, row)
                    for n, (v, i, row) in enumerate(cut)]
        keys.sort()
        return Ordered(keys, descending=descending, built=context.mono, version=version)

    # --- totals and the small tables ---

    def totals(self, others: list[dict[str, Any]] | None = None) -> dict[str, int]:
        """Connections, users, rooms and nodes of the whole cluster."""
        return self._aggregate(self._no_rows if others is None else others, self.clock()).totals

    def summary(self, others: list[dict[str, Any]] | None = None, *, top: int = TOP) -> dict[str, Any]:
        """The small tables of an incident: the users with the most connections (with
        where they are), the rooms with the most members, the connections by node."""
        others = self._no_rows if others is None else others
        found = self._aggregate(others, self.clock())
        cached = found.summaries.get(top)
        if cached is not None:
            return cached
        users = sorted(found.users.items(), key=lambda item: (-item[1], item[0]))[:top]
        rooms = sorted(found.room_members.items(), key=lambda item: (-len(item[1]), item[0]))[:top]
        # Where the top users are, and their names: one pass over the other nodes' rows.
        here = self.node or ""
        where: dict[str, Counter[str]] = {}
        names: dict[str, str] = {}
        for user, _ in users:
            conns = self.registry.of_user(user)
            where[user] = Counter({here: len(conns)} if conns else {})
            if conns:
                names[user] = conns[0].user.name
        for row in others:
            counts = where.get(row["user"])
            if counts is not None:
                counts[row.get("node") or ""] += 1
                names.setdefault(row["user"], row["name"])
        summary = {
            "top_users": [{"user": user, "name": names.get(user, user), "connections": n,
                           "nodes": dict(sorted(where[user].items()))} for user, n in users],
            "rooms": [{"room": room, "members": len(members),
                       "connections": found.room_connections[room]} for room, members in rooms],
            "nodes": [{"node": node or None, "connections": conns, "users": users_there}
                      for node, (conns, users_there) in sorted(found.nodes.items())],
        }
        found.summaries[top] = summary
        return summary

    def _aggregate(self, others: list[dict[str, Any]], now: float, stale_ok: float = 0.0) -> _Aggregates:
        version = self._version(others)
        found = self._aggregates
        if found is not None and (self._same(found.version, version) or now - found.built < stale_ok):
            return found
        conns = list(self.registry)
        here = self.node or ""
        by_node: dict[str, list[str]] = {here: [c.user.id for c in conns]}  # node -> a user per connection
        for row in others:
            by_node.setdefault(row.get("node") or "", []).append(row["user"])
        users: Counter[str] = Counter()
        for held in by_node.values():
            users.update(held)
        members: dict[str, set[str]] = {}
        room_connections: Counter[str] = Counter()
        for user, rooms in [(c.user.id, c.rooms) for c in conns if c.rooms] + [
                (r["user"], r["rooms"]) for r in others if r["rooms"]]:
            room_connections.update(rooms)
            for room in rooms:
                found_members = members.get(room)
                if found_members is None:
                    members[room] = {user}
                else:
                    found_members.add(user)
        nodes = {node: (len(held), len(set(held))) for node, held in by_node.items()}
        totals = {"connections": len(conns) + len(others), "users": len(users), "rooms": len(members),
                  "nodes": len(nodes)}
        found = self._aggregates = _Aggregates(version, now, totals, users, members, room_connections,
                                               nodes)
        return found


LocalTest = Callable[[Connection], bool]
RemoteTest = Callable[[dict[str, Any]], bool]


def _predicates(query: Query, context: Context, here: str) -> tuple[LocalTest, RemoteTest]:
    """Whether one of this node's connections, and one of the other nodes' rows, match
    the query's filters."""
    tests = [_filter(name, value, context, here) for name, value in query.filters]
    return _every([t[0] for t in tests]), _every([t[1] for t in tests])


def _filter(name: str, value: str, context: Context, here: str) -> tuple[LocalTest, RemoteTest]:
    """One filter, for this node's connections and for the other nodes' rows."""
    if name == "q":  # every word in the user id, the name, the address, the node or a room
        words = value.casefold().split()

        def local(c: Connection) -> bool:
            return _all_in(words, (c.user.id, c.user.name, c.remote, here, *c.rooms))

        def remote(r: dict[str, Any]) -> bool:
            return _all_in(words, (r["user"], r["name"], r["remote"], r.get("node") or "", *r["rooms"]))
    elif name == "user":  # the user id, or the display name in any case
        folded = value.casefold()

        def local(c: Connection) -> bool:
            return c.user.id == value or c.user.name.casefold() == folded

        def remote(r: dict[str, Any]) -> bool:
            return bool(r["user"] == value or r["name"].casefold() == folded)
    elif name == "room":
        def local(c: Connection) -> bool:
            return value in c.rooms

        def remote(r: dict[str, Any]) -> bool:
            return value in r["rooms"]
    elif name == "remote":  # an address, or its beginning ("10.0.")
        def local(c: Connection) -> bool:
            return c.remote.startswith(value)

        def remote(r: dict[str, Any]) -> bool:
            return bool(r["remote"].startswith(value))
    elif name == "node":
        def local(c: Connection) -> bool:
            return here == value

        def remote(r: dict[str, Any]) -> bool:
            return bool(r.get("node") == value)
    elif name == "health":  # the other nodes' rows have none: "unknown"
        def local(c: Connection) -> bool:
            return context.health(c) == value

        def remote(r: dict[str, Any]) -> bool:
            return (r["health"] or "unknown") == value
    elif name == "cause":
        want = "" if value == "none" else value

        def local(c: Connection) -> bool:
            return c.cause == want

        def remote(r: dict[str, Any]) -> bool:
            return (r.get("cause") or "") == want
    else:
        raise BadQuery(f"no filter {name!r}")
    return local, remote


def _every(tests: list[Callable[[Any], bool]]) -> Callable[[Any], bool]:
    if not tests:
        return lambda row: True
    if len(tests) == 1:
        return tests[0]
    return lambda row: all(test(row) for test in tests)


def _all_in(words: list[str], texts: tuple[str, ...]) -> bool:
    """Every word is part of one of the texts, case-insensitively (words hold no NUL:
    none matches across two texts)."""
    haystack = "\0".join(texts).casefold()
    return all(w in haystack for w in words)
