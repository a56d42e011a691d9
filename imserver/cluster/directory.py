"""The cluster's directory of live connections, and each user's count of them.

Keys, under the cluster's prefix:

- `conns:<node>`: a hash per node, connection id -> a small JSON summary (user,
  name, address, connected_at, rooms, reconnect number, node). It expires with
  the node's lease and is refreshed with it, so a node that dies leaves no rows
  behind for longer than a lease; a node that leaves deletes it.
- `conns-ver:<node>`: a token that changes whenever the node writes rows (expires
  with the hash): a reader reads again only the hashes whose token changed, so
  that an open dashboard costs one small round trip a second while nothing moves.
- `recent:<node>`: the node's terminations by reason and reconnects by cause over
  the last minutes (JSON, written with each refresh, expiring with the lease).
- `conn-nodes`: the nodes that keep such a hash, so that a reader needs no SCAN.
- `user-conns:<user>`: a hash per user, node -> how many of the user's
  connections it holds. A connection is counted at its upgrade, by a Lua script
  that sums the live nodes' counts (dropping the nodes whose lease ran out) and
  adds one only when the sum is under the limit: the check and the count are one
  atomic step, whichever node the connection goes to.

Writes are batched: connections that open and close are queued, and one writer
task sends whatever is queued as one pipeline, while the next batch gathers; a
quiet node sends one small pipeline per refresh period (the expiry, the rooms
that changed, and the other nodes' sizes, for the cluster's connection count).
When a write fails, or the bus was deaf (the resync hook), the next one writes
this node's whole hash and its counts again.

On the bus's `ctl` topic: `{"k": "kick", "user" or "conn": id, "reason": text}`,
an operator's disconnect for the connections a node holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from ..core.protocol import CLOSE_KICKED
from ..core.registry import Connection, Registry
from .node import ClusterLink

log = logging.getLogger("imserver.cluster")

KICK = "kick"
MAX_ID = 512  # a user or connection id longer than this in a kick is not one
MAX_REASON = 120  # as the admin API cuts it: a close reason holds at most 123 bytes
ACQUIRE_TIMEOUT = 1.0  # an upgrade waits this long for Redis before counting locally

# KEYS[1] the user's hash; ARGV: this node, the limit, the lease keys' prefix.
# -1 when the user is at the limit, else the new total.
_ACQUIRE = """
local total = 0
local fields = redis.call('HGETALL', KEYS[1])
for i = 1, #fields, 2 do
  local node = fields[i]
  if node ~= ARGV[1] and redis.call('EXISTS', ARGV[3] .. node) == 0 then
    redis.call('HDEL', KEYS[1], node)
  else
    total = total + tonumber(fields[i + 1])
  end
end
if total >= tonumber(ARGV[2]) then return -1 end
redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
return total + 1
"""

# KEYS[1] the user's hash; ARGV: this node, how many of its connections closed.
_RELEASE = """
local left = redis.call('HINCRBY', KEYS[1], ARGV[1], -tonumber(ARGV[2]))
if left <= 0 then redis.call('HDEL', KEYS[1], ARGV[1]) end
return left
"""

# KEYS[1] the user's hash; ARGV: the lease keys' prefix. Node, count, ... of live nodes.
_LOCATE_USER = """
local found = {}
local fields = redis.call('HGETALL', KEYS[1])
for i = 1, #fields, 2 do
  if tonumber(fields[i + 1]) > 0 and redis.call('EXISTS', ARGV[1] .. fields[i]) == 1 then
    table.insert(found, fields[i])
    table.insert(found, fields[i + 1])
  end
end
return found
"""

# KEYS[1] the set of nodes; ARGV: the connection id, the hashes' prefix, the lease keys' prefix.
_LOCATE_CONN = """
for _, node in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('HEXISTS', ARGV[2] .. node, ARGV[1]) == 1
      and redis.call('EXISTS', ARGV[3] .. node) == 1 then
    return node
  end
end
return false
"""


def summary(conn: Connection, node: str) -> bytes:
    """One connection's row in the directory."""
    return json.dumps({"id": conn.id, "user": conn.user.id, "name": conn.user.name,
                       "remote": conn.remote, "connected_at": round(conn.connected_at, 3),
                       "rooms": sorted(conn.rooms), "reconnect": conn.reconnect, "cause": conn.cause,
                       "node": node},
                      separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def client_row(raw: bytes, node: str) -> dict[str, Any]:
    """A row of another node as the admin API shows it: what the directory has, and
    none of the live fields (round trip, idle time, frames) only that node knows."""
    data = json.loads(raw)
    rooms = data.get("rooms")
    return {"id": str(data["id"]), "user": str(data["user"]), "name": str(data.get("name", "")),
            "rooms": [str(r) for r in rooms] if isinstance(rooms, list) else [],
            "remote": str(data.get("remote", "")), "user_agent": "",
            "connected_at": float(data.get("connected_at", 0.0)), "last_seen": None, "idle": None,
            "rtt": None, "frames_in": None, "frames_out": None,
            "reconnect": int(data.get("reconnect", 0)), "cause": str(data.get("cause", "")),
            "health": None, "node": node}


def _recent(raw: bytes | None) -> dict[str, Any]:
    """Another node's recent counts, as hostile input: {"terminations": {reason: n},
    "reconnects": {cause: n}} with short keys and whole counts, or empty."""
    try:
        data = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    found: dict[str, Any] = {}
    for part in ("terminations", "reconnects"):
        counts = data.get(part) if isinstance(data, dict) else None
        if isinstance(counts, dict):
            found[part] = {str(k)[:40]: v for k, v in list(counts.items())[:40]
                           if isinstance(v, int) and not isinstance(v, bool) and 0 < v < 1 << 53}
    return found


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


class Directory:
    """This node's rows and counts in Redis, and the reads of the other nodes'."""

    def __init__(self, link: ClusterLink, *, refresh_seconds: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.link = link
        self.registry: Registry = link.registry
        self.node_id = link.node_id
        self.prefix = link.prefix
        self.lease_ms = int(link.lease_seconds * 1000)
        self.refresh_seconds = refresh_seconds or min(1.0, link.lease_seconds / 3)
        self.clock = clock
        self._changes: dict[str, bytes | None] = {}  # conn id -> row to write, None: delete
        self._rooms: dict[str, frozenset[str]] = {}  # conn id -> its rooms as last queued
        self._released: Counter[str] = Counter()  # user -> counted connections closed since
        self._counted: set[str] = set()  # this node's connections counted in user-conns
        self._pending: dict[str, str] = {}  # conn id -> user: counted at the upgrade, not open yet
        self._users_written: set[str] = set()  # users whose count this node may have written
        self._full = True  # write the whole hash and counts again (at start, after a failure)
        self._nodes: set[str] = set()  # the other nodes keeping a hash, as last read
        self._others_count = 0  # their connections, as of the last refresh
        # Per other node: field -> (its raw row, the row parsed from it).
        self._parsed: dict[str, dict[bytes, tuple[bytes, dict[str, Any]]]] = {}
        self._last: tuple[float, list[dict[str, Any]]] | None = None
        self._last_nodes: list[str] = []
        # Per other node, as last read: its hash's version token and its rows.
        self._read: dict[str, tuple[bytes | None, list[dict[str, Any]]]] = {}
        self._others_recent: dict[str, dict[str, Any]] = {}  # node -> its recent counts
        self._version = 0  # this node's rows' writes (its version token's counter)
        self._instance = secrets.token_hex(4)  # tokens of a restarted node never repeat
        self._rooms_seen = -1  # the registry's generation when rooms were last compared
        # This node's recent counts for the others (the admin view's), written with
        # each refresh; None: none.
        self.recent: Callable[[], dict[str, Any]] | None = None
        self._reading: asyncio.Future[list[dict[str, Any]]] | None = None
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._fallback_logged = False
        self._failed_at = -ACQUIRE_TIMEOUT  # when counting in Redis last failed
        self.registry.on_open.append(self._opened)
        self.registry.on_close.append(self._closed)
        link.handlers[KICK] = self._kick_heard
        link.on_resync_hooks.append(self._resync)

    # --- keys ---

    def _conns_key(self, node: str) -> str:
        return f"{self.prefix}:conns:{node}"

    @property
    def _nodes_key(self) -> str:
        return f"{self.prefix}:conn-nodes"

    def _version_key(self, node: str) -> str:
        return f"{self.prefix}:conns-ver:{node}"

    def _recent_key(self, node: str) -> str:
        return f"{self.prefix}:recent:{node}"

    def _user_key(self, user: str) -> str:
        return f"{self.prefix}:user-conns:{user}"

    @property
    def _lease_prefix(self) -> str:
        return f"{self.prefix}:node:"  # ClusterLink's lease keys: {prefix}:node:{node}

    # --- lifecycle ---

    def start(self) -> None:
        """Start writing (on the running loop)."""
        if self._task is None:
            self._wake = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        """Leave: this node's hash, its place in the set and its counts go at once."""
        if self._task is not None:
            self._task.cancel()
        users = self._users_written | set(self._pending.values()) | {
            c.user.id for c in self.registry}
        try:
            pipe = self.link.bus.redis.pipeline(transaction=False)
            pipe.delete(self._conns_key(self.node_id), self._version_key(self.node_id),
                        self._recent_key(self.node_id))
            pipe.srem(self._nodes_key, self.node_id)
            for user in users:
                pipe.hdel(self._user_key(user), self.node_id)
            await asyncio.wait_for(pipe.execute(), 2.0)
        except Exception as exc:  # Redis away: the rows expire, the counts stop counting
            log.warning("could not remove this node's connections from Redis: %r", exc)

    def _resync(self) -> None:
        self._full = True
        self._poke()

    def _poke(self) -> None:
        if self._wake is not None:
            self._wake.set()

    # --- following the registry ---

    def _opened(self, conn: Connection) -> None:
        if self._pending.pop(conn.id, None) is not None:
            self._counted.add(conn.id)
        self._rooms[conn.id] = frozenset(conn.rooms)
        self._changes[conn.id] = summary(conn, self.node_id)
        self._poke()

    def _closed(self, conn: Connection) -> None:
        self._rooms.pop(conn.id, None)
        self._changes[conn.id] = None
        if conn.id in self._counted:
            self._counted.discard(conn.id)
            self._released[conn.user.id] += 1
        self._poke()

    def _rooms_changed(self) -> None:
        """Queue the rows whose rooms changed since they were queued (joins and leaves
        reach the directory within a refresh period). Nothing to compare while the
        registry's generation stays the same (idle connections cost nothing here)."""
        if self.registry.generation == self._rooms_seen:
            return
        self._rooms_seen = self.registry.generation
        for conn in self.registry:
            rooms = self._rooms.get(conn.id)
            if rooms is None or rooms != conn.rooms:
                self._rooms[conn.id] = frozenset(conn.rooms)
                self._changes[conn.id] = summary(conn, self.node_id)

    # --- writing ---

    async def _run(self) -> None:
        assert self._wake is not None
        next_refresh = 0.0
        while True:
            now = self.clock()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(0.0, next_refresh - now))
            self._wake.clear()
            refresh = self.clock() >= next_refresh
            if refresh:
                next_refresh = self.clock() + self.refresh_seconds
                self._rooms_changed()
            try:
                await self._write(refresh)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis away: the bus says so; all of it again next time
                self._full = True
                log.debug("connection directory: write failed: %r", exc)
                await asyncio.sleep(min(1.0, self.refresh_seconds))

    async def _write(self, refresh: bool) -> None:
        """One pipeline: what changed (or everything), the expiry, and on a refresh the
        other nodes' liveness and sizes."""
        key, node = self._conns_key(self.node_id), self.node_id
        pipe = self.link.bus.redis.pipeline(transaction=False)
        if self._full:
            self._full = False
            rows = {c.id: summary(c, node) for c in self.registry}
            self._rooms = {c.id: frozenset(c.rooms) for c in self.registry}
            self._changes.clear()
            self._released.clear()
            counts = Counter(c.user.id for c in self.registry) + Counter(self._pending.values())
            pipe.delete(key)
            if rows:
                pipe.hset(key, mapping=rows)
            for user in self._users_written - counts.keys():
                pipe.hdel(self._user_key(user), node)
            for user, count in counts.items():
                pipe.hset(self._user_key(user), node, count)
            self._users_written = set(counts)
            self._counted = set(rows)
            self._new_version(pipe)
        else:
            changes, self._changes = self._changes, {}
            released, self._released = self._released, Counter()
            if not (changes or released or refresh):
                return
            upserts = {cid: row for cid, row in changes.items() if row is not None}
            deletes = [cid for cid, row in changes.items() if row is None]
            if upserts:
                pipe.hset(key, mapping=upserts)
            if deletes:
                pipe.hdel(key, *deletes)
            if changes:
                self._new_version(pipe)
            for user, count in released.items():
                pipe.eval(_RELEASE, 1, self._user_key(user), node, count)
                if not self.registry.of_user(user) and user not in self._pending.values():
                    self._users_written.discard(user)
        expire_at = len(pipe.command_stack)
        pipe.pexpire(key, self.lease_ms)
        pipe.sadd(self._nodes_key, node)
        others = sorted(self._nodes)
        if refresh:
            pipe.pexpire(self._version_key(node), self.lease_ms)
            pipe.smembers(self._nodes_key)
            for other in others:
                pipe.exists(self._lease_prefix + other)
                pipe.hlen(self._conns_key(other))
            if self.recent is not None:  # last: the indexes above stay as they are
                pipe.set(self._recent_key(node), json.dumps(self.recent(), separators=(",", ":")),
                         px=self.lease_ms)
        results = await pipe.execute()
        if not results[expire_at] and len(self.registry):
            self._full = True  # the hash expired meanwhile (a long stall): write it again
            self._poke()
        if refresh:
            found = results[expire_at + 3]
            total, gone = 0, []
            for i, other in enumerate(others):
                alive, size = results[expire_at + 4 + 2 * i: expire_at + 6 + 2 * i]
                if alive:
                    total += int(size)
                elif not size:
                    gone.append(other)
            self._others_count = total
            self._nodes = {_text(m) for m in found} - {node}
            if gone:  # no lease and no rows: out of the set (a node that starts adds itself again)
                await self.link.bus.redis.srem(self._nodes_key, *gone)

    def _new_version(self, pipe: Any) -> None:
        """This node's rows changed: a new version token, for the readers' caches."""
        self._version += 1
        pipe.set(self._version_key(self.node_id), f"{self._instance}:{self._version}",
                 px=self.lease_ms)

    # --- the per-user count ---

    async def acquire(self, user_id: str, conn_id: str, limit: int) -> bool:
        """Count a connection of the user about to open here, if the user's connections on
        every node are under `limit`; False when they are not. When Redis cannot answer,
        True: the caller's local count is all there is (logged once)."""
        # While Redis is known to be away, upgrades do not each wait for it.
        if self.link.bus.health() is not None and self.clock() < self._failed_at + ACQUIRE_TIMEOUT:
            self._fell_back(self.link.bus.health() or "the bus is down")
            return True
        try:
            total = await asyncio.wait_for(self.link.bus.redis.eval(
                _ACQUIRE, 1, self._user_key(user_id), self.node_id, limit, self._lease_prefix),
                ACQUIRE_TIMEOUT)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._failed_at = self.clock()
            self._full = True  # the count may or may not have been taken: write it again
            self._fell_back(repr(exc))
            return True
        self._fallback_logged = False
        if int(total) < 0:
            return False
        self._pending[conn_id] = user_id
        self._users_written.add(user_id)
        return True

    def _fell_back(self, why: str) -> None:
        if not self._fallback_logged:
            self._fallback_logged = True
            log.warning("connections per user: Redis cannot be reached (%s); counting this node's "
                        "connections only until it can (logged once)", why)

    def release_unopened(self, conn_id: str) -> None:
        """A connection counted at its upgrade that never opened."""
        user = self._pending.pop(conn_id, None)
        if user is not None:
            self._released[user] += 1
            self._poke()

    # --- reading ---

    def connections(self) -> int:
        """The cluster's connections: this node's now, the others' as of the last refresh."""
        return len(self.registry) + self._others_count

    async def others(self, max_age: float = 0.0) -> list[dict[str, Any]]:
        """The other nodes' rows: one pipelined read, shared by every caller while it
        runs, and kept for `max_age` seconds. While no node's rows changed, the same
        list as before (callers may keep what they built from it)."""
        last = self._last
        if last is not None and self.clock() - last[0] <= max_age:
            return last[1]
        if self._reading is None:
            reading = self._reading = asyncio.ensure_future(self._read_others())

            def done(_: object) -> None:
                self._reading = None

            reading.add_done_callback(done)
        return await asyncio.shield(self._reading)

    def others_recent(self) -> dict[str, dict[str, Any]]:
        """The other nodes' recent counts (node -> what its admin view wrote), as of
        the last read of their rows."""
        return self._others_recent

    async def _read_others(self) -> list[dict[str, Any]]:
        """The nodes, their leases, versions and recent counts in one round trip; then
        the hashes whose version changed (or is unknown) in a second."""
        redis = self.link.bus.redis
        for _ in range(2):  # a second time only when other nodes appeared in the set
            nodes = sorted(self._nodes)
            pipe = redis.pipeline(transaction=False)
            pipe.smembers(self._nodes_key)
            for node in nodes:
                pipe.exists(self._lease_prefix + node)
                pipe.get(self._version_key(node))
                pipe.get(self._recent_key(node))
            results = await pipe.execute()
            found = {_text(m) for m in results[0]} - {self.node_id}
            self._nodes = found
            if found <= set(nodes):
                break
        alive: list[str] = []
        stale: list[str] = []
        recent: dict[str, dict[str, Any]] = {}
        for i, node in enumerate(nodes):
            live, version, counts = results[1 + 3 * i: 4 + 3 * i]
            if not live or node not in found:
                continue  # gone: its rows expire with its lease
            alive.append(node)
            if version is None or node not in self._read or self._read[node][0] != version:
                stale.append(node)
            recent[node] = _recent(counts)
        if stale:
            pipe = redis.pipeline(transaction=False)
            for node in stale:
                pipe.get(self._version_key(node))  # before the hash: a write after it shows next time
                pipe.hgetall(self._conns_key(node))
            hashes = await pipe.execute()
            for i, node in enumerate(stale):
                self._read[node] = (hashes[2 * i], self._parse(node, hashes[2 * i + 1]))
        for node in set(self._read) - set(alive):
            del self._read[node]
            self._parsed.pop(node, None)
        self._others_recent = recent
        self._others_count = sum(len(self._read[node][1]) for node in alive)
        last = self._last
        if not stale and last is not None and self._last_nodes == alive:
            rows = last[1]  # nothing changed: the same list
        else:
            rows = [row for node in alive for row in self._read[node][1]]
        self._last_nodes = alive
        self._last = (self.clock(), rows)
        return rows

    def _parse(self, node: str, conns: dict[bytes, bytes]) -> list[dict[str, Any]]:
        """A node's rows; those that did not change since its last read are not parsed
        again."""
        rows: list[dict[str, Any]] = []
        parsed: dict[bytes, tuple[bytes, dict[str, Any]]] = {}
        before = self._parsed.get(node, {})
        for field, raw in conns.items():
            cached = before.get(field)
            if cached is not None and cached[0] == raw:
                row = cached[1]
            else:
                try:
                    row = client_row(raw, node)
                except (ValueError, TypeError, KeyError, AttributeError):
                    continue
            parsed[field] = (raw, row)
            rows.append(row)
        self._parsed[node] = parsed
        return rows

    async def locate_user(self, user_id: str) -> dict[str, int]:
        """The other live nodes holding connections of the user, with how many."""
        found = await self.link.bus.redis.eval(_LOCATE_USER, 1, self._user_key(user_id),
                                               self._lease_prefix)
        pairs = {_text(found[i]): int(found[i + 1]) for i in range(0, len(found), 2)}
        pairs.pop(self.node_id, None)
        return pairs

    async def locate_conn(self, conn_id: str) -> str | None:
        """The live node holding a connection, as the directory has it."""
        node = await self.link.bus.redis.eval(_LOCATE_CONN, 1, self._nodes_key, conn_id,
                                              f"{self.prefix}:conns:", self._lease_prefix)
        return None if node is None else _text(node)

    # --- disconnects across the cluster ---

    def kick(self, reason: str, *, user: str | None = None, conn: str | None = None) -> None:
        """Tell the other nodes to close the user's connections, or one connection."""
        message: dict[str, Any] = {"k": KICK, "reason": reason}
        if user is not None:
            message["user"] = user
        if conn is not None:
            message["conn"] = conn
        self.link.publish_control(message)

    def _kick_heard(self, data: dict[str, Any]) -> None:
        """Another node's operator disconnect: fields checked, as from anyone."""
        reason, user, conn = data.get("reason"), data.get("user"), data.get("conn")
        if not isinstance(reason, str) or not reason.strip():
            reason = "disconnected by an operator"
        reason = reason.strip().encode("utf-8", "ignore")[:MAX_REASON].decode("utf-8", "ignore")
        if (user is None) == (conn is None):
            raise ValueError("a kick names a user or a connection")
        target = user if user is not None else conn
        if not isinstance(target, str) or not target or len(target) > MAX_ID:
            raise ValueError("a kick's user or connection is not an id")
        if user is not None:
            conns = self.registry.of_user(target)
        else:
            found = self.registry.get(target)
            conns = [] if found is None else [found]
        for c in conns:
            c.end("kicked", CLOSE_KICKED, reason)
        if conns:
            log.info("operator on node %s disconnected %s %s here (%d connections): %s",
                     _text(data.get("node", "?"))[:MAX_ID], "user" if user is not None else "connection",
                     target, len(conns), reason)
