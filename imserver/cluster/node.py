"""One node's part in a cluster: the hub's Broker, over the Redis bus.

What goes between nodes, on the bus's topics:

- `room:<name>`: each message stored in the room, with the id before it in the
  room, and each presence change of a node (a user's first connection there
  joined, or its last one left);
- `user:<id>`: each direct message to or from the user, with the ids before it
  in the sender's and the recipient's streams;
- `ctl`: a node leaving, and operator actions that reach every node.

Events that are not stored (typing, a read mark's news for a user's other
devices, an invitation, a removal from a room) go on the room's or the user's
topic as `re`/`ue`; the hub's room_event and user_event take them.

What the hub cannot lose is in the store: a message whose publish is lost is
read from it when the next one shows the gap, or at the resync after the bus
was deaf. Presence lives in Redis beside the messages: a hash per room of who
is in it on which node, and a lease per node; a node whose lease runs out is
gone, and so are its members.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable
from typing import Any, Protocol

from ..core.registry import Connection, Registry
from ..core.store import Appended, Message

log = logging.getLogger("imserver.cluster")


class Bus(Protocol):
    """What the link needs of the Redis bus (redisbus.RedisBus)."""

    async def start(self) -> None: ...
    async def close(self) -> None: ...
    def health(self) -> str | None: ...
    @property
    def connected(self) -> bool: ...
    def subscribe(self, topic: str) -> None: ...
    def unsubscribe(self, topic: str) -> None: ...
    def publish(self, topic: str, payload: bytes) -> None: ...
    @property
    def redis(self) -> Any: ...


class HubSide(Protocol):
    """What reaches the hub from the other nodes (core.hub.Hub has it)."""

    def room_published(self, message: Message, previous: int) -> None: ...
    def direct_published(self, message: Message, previous: int, previous_recipient: int) -> None: ...
    def remote_presence(self, node: str, room_name: str, user_id: str, name: str,
                        present: bool) -> None: ...
    def remote_members(self, room_name: str) -> set[tuple[str, str]]: ...
    def node_gone(self, node: str) -> None: ...
    def resync(self) -> None: ...
    def user_event(self, user: str, event: dict[str, Any]) -> None: ...
    def room_event(self, room: str, event: dict[str, Any]) -> None: ...


# How long a join waits for its room's subscription to be confirmed before it reads the
# backlog anyway (the bus is down then; its resync reads what was missed).
WATCH_TIMEOUT = 3.0


def new_node_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


def encode_message(message: Message) -> dict[str, Any]:
    data = {"id": message.id, "from": message.sender, "text": message.text, "ts": message.ts,
            "cid": message.cid, "room": message.room, "to": message.recipient,
            "name": message.name, "to_name": message.to_name}
    if message.kind is not None:  # an edit or a deletion
        data.update(kind=message.kind, target=message.target, actor=message.actor)
    return data


def decode_message(data: dict[str, Any]) -> Message:
    """A message from the bus; KeyError/TypeError/ValueError when it is not one."""
    message = Message(id=int(data["id"]), sender=str(data["from"]), text=str(data["text"]),
                      ts=float(data["ts"]), cid=_optional(data["cid"]), room=_optional(data["room"]),
                      recipient=_optional(data["to"]), name=_optional(data["name"]),
                      to_name=_optional(data["to_name"]), kind=_optional(data.get("kind")),
                      target=None if data.get("target") is None else int(data["target"]),
                      actor=_optional(data.get("actor")))
    if (message.room is None) == (message.recipient is None):
        raise ValueError("a message is either in a room or to a user")
    return message


def _optional(value: Any) -> str | None:
    return None if value is None else str(value)


class ClusterLink:
    """The hub's Broker and the bus's handler, for one node."""

    def __init__(self, bus_factory: Callable[[ClusterLink], Bus], registry: Registry, *,
                 node_id: str, prefix: str, lease_seconds: float,
                 observe_lag: Callable[[float], None] = lambda seconds: None) -> None:
        self.node_id = node_id
        self.prefix = prefix
        self.lease_seconds = lease_seconds
        self.registry = registry
        self.observe_lag = observe_lag
        self.hub: HubSide | None = None
        self.bus = bus_factory(self)
        self.rooms: dict[str, set[str]] = {}  # room watched -> users here in it
        self.users: set[str] = set()  # users with connections here (their topics heard)
        self.peers: set[str] = set()  # other nodes whose members this node shows
        self._heard: dict[tuple[str, str, str], float] = {}  # (room, node, user) -> when it joined
        # Other kinds of `ctl` messages, by kind: what other parts of the node (identities,
        # operator actions) hear from the other nodes. Each takes the decoded message.
        self.handlers: dict[str, Callable[[dict[str, Any]], object]] = {}
        self.on_resync_hooks: list[Callable[[], None]] = []
        self._marks: dict[str, asyncio.Future[None]] = {}  # watch_room's marks not heard yet
        self._tasks: set[asyncio.Future[Any]] = set()
        self._lease_task: asyncio.Task[None] | None = None
        self.closed = False
        registry.on_open.append(self._opened)
        registry.on_close.append(self._closed)

    def attach(self, hub: HubSide) -> None:
        self.hub = hub

    # --- keys ---

    def _members_key(self, room: str) -> str:
        return f"{self.prefix}:members:{room}"

    def _lease_key(self, node: str) -> str:
        return f"{self.prefix}:node:{node}"

    def _rooms_of_key(self, node: str) -> str:
        return f"{self.prefix}:rooms-of:{node}"

    # --- lifecycle ---

    def start(self) -> None:
        """Join the cluster (on the running loop): hear the others, keep the lease."""
        self.bus.subscribe("ctl")
        self._spawn(self.bus.start())
        self._lease_task = asyncio.get_running_loop().create_task(self._keep_lease())

    def health(self) -> str | None:
        return self.bus.health()

    async def close(self) -> None:
        """Leave the cluster: the others drop this node's members at once."""
        self.closed = True
        if self._lease_task is not None:
            self._lease_task.cancel()
        self.bus.publish("ctl", _dump({"k": "bye", "node": self.node_id}))
        try:
            await asyncio.wait_for(self._forget_node(self.node_id), 2.0)
        except Exception as exc:  # Redis away: the lease runs out instead
            log.warning("could not remove this node's presence from Redis: %r", exc)
        await self.bus.close()
        pending = [*self._tasks, *([self._lease_task] if self._lease_task is not None else [])]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)  # ended before the loop is

    async def _keep_lease(self) -> None:
        """Renew this node's lease, and see which other nodes' leases ran out."""
        period = self.lease_seconds / 3
        while True:
            try:
                redis = self.bus.redis
                await redis.set(self._lease_key(self.node_id), "1",
                                px=int(self.lease_seconds * 1000))
                peers = sorted(self.peers)
                if peers:
                    pipe = redis.pipeline(transaction=False)
                    for peer in peers:
                        pipe.exists(self._lease_key(peer))
                    found = await pipe.execute()
                    for peer, exists in zip(peers, found, strict=True):
                        if not exists:
                            log.warning("node %s is gone (its lease ran out)", peer)
                            self._peer_gone(peer)
                            self._spawn(self._forget_node(peer))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis away: the bus says so; try again next period
                log.debug("lease renewal failed: %r", exc)
            await asyncio.sleep(period)

    def _peer_gone(self, node: str) -> None:
        self.peers.discard(node)
        if self.hub is not None:
            self.hub.node_gone(node)

    async def _forget_node(self, node: str) -> None:
        """Remove a gone node's members from the rooms' member hashes."""
        redis = self.bus.redis
        rooms = await redis.smembers(self._rooms_of_key(node))
        mark = f"{node}\x00".encode()
        for room in rooms:
            key = self._members_key(room.decode() if isinstance(room, bytes) else room)
            fields = [f for f in await redis.hkeys(key) if _bytes(f).startswith(mark)]
            if fields:
                await redis.hdel(key, *fields)
        await redis.delete(self._rooms_of_key(node), self._lease_key(node))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Future[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("cluster bookkeeping failed: %r", task.exception())

    # --- the hub's Broker ---

    def publish_control(self, message: dict[str, Any]) -> None:
        """Tell every other node something (a kind of `handlers`), on `ctl`."""
        self.bus.publish("ctl", _dump({**message, "node": self.node_id}))

    def publish_room(self, done: Appended) -> None:
        msg = done.message
        self.bus.publish(f"room:{msg.room}", _dump(
            {"k": "m", "node": self.node_id, "m": encode_message(msg), "p": done.previous}))

    def publish_direct(self, done: Appended) -> None:
        msg = done.message
        payload = _dump({"k": "d", "node": self.node_id, "m": encode_message(msg),
                         "p": done.previous, "q": done.previous_recipient})
        self.bus.publish(f"user:{msg.sender}", payload)
        if msg.recipient is not None and msg.recipient != msg.sender:
            self.bus.publish(f"user:{msg.recipient}", payload)

    def tell_user(self, user_id: str, event: dict[str, Any]) -> None:
        self.bus.publish(f"user:{user_id}", _dump({"k": "ue", "node": self.node_id, "e": event}))

    def tell_room(self, room: str, event: dict[str, Any]) -> None:
        self.bus.publish(f"room:{room}", _dump({"k": "re", "node": self.node_id, "e": event}))

    def watch_room(self, room: str) -> asyncio.Future[None]:
        """Hear the room, then learn who is in it on the other nodes; answered once this
        node has heard its own mark on the room's channel (so the subscription is in
        place: whatever is stored after the joiner's backlog read arrives live) and has
        read the members, or after WATCH_TIMEOUT (then the bus is down, and its resync
        reads what was missed)."""
        self.rooms.setdefault(room, set())
        topic = f"room:{room}"
        self.bus.subscribe(topic)
        loop = asyncio.get_running_loop()
        heard: asyncio.Future[None] = loop.create_future()
        mark = secrets.token_hex(8)
        if self.bus.connected:
            self._marks[mark] = heard
            self.bus.publish(topic, _dump({"k": "mark", "node": self.node_id, "mark": mark}))
        else:  # nothing to wait for: the resync after the reconnect reads what was missed
            heard.set_result(None)
        members: asyncio.Future[None] = loop.create_future()
        self._spawn(self._read_members(room, members))
        done = asyncio.ensure_future(self._watched(mark, heard, members))
        self._tasks.add(done)
        done.add_done_callback(self._task_done)
        return done

    async def _watched(self, mark: str, heard: asyncio.Future[None],
                       members: asyncio.Future[None]) -> None:
        try:
            await asyncio.wait_for(asyncio.gather(heard, members), WATCH_TIMEOUT)
        except TimeoutError:
            log.warning("a room's subscription was not confirmed within %g s", WATCH_TIMEOUT)
        finally:
            self._marks.pop(mark, None)

    async def _read_members(self, room: str, done: asyncio.Future[None] | None = None,
                            *, drop_missing: bool = False) -> None:
        try:
            found = await self.bus.redis.hgetall(self._members_key(room))
        except Exception as exc:
            log.warning("could not read who is in room %s on other nodes: %r", room, exc)
            found = None
        finally:
            if done is not None and not done.done():
                done.set_result(None)
        if found is None or self.hub is None or room not in self.rooms:
            return
        there: set[tuple[str, str]] = set()
        for field, name in found.items():
            node, _, user = _bytes(field).decode("utf-8", "replace").partition("\x00")
            if node and user and node != self.node_id:
                there.add((node, user))
                self.peers.add(node)
                self.hub.remote_presence(node, room, user, _bytes(name).decode("utf-8", "replace"),
                                         True)
        if drop_missing:
            # After a resync: members the hash no longer has left while this node could
            # not hear it; but one that joined while the hash was read is no such member.
            recent = time.monotonic() - self.lease_seconds
            for node, user in self.hub.remote_members(room) - there:
                if self._heard.get((room, node, user), 0.0) < recent:
                    self.hub.remote_presence(node, room, user, "", False)

    async def room_members(self, room: str) -> dict[str, str]:
        """Who is in a room now on every node (this one too), from the presence hash:
        user id -> display name."""
        members = {}
        for field, name in (await self.bus.redis.hgetall(self._members_key(room))).items():
            node, _, user = _bytes(field).decode("utf-8", "replace").partition("\x00")
            if node and user:
                members[user] = _bytes(name).decode("utf-8", "replace")
        return members

    def unwatch_room(self, room: str) -> None:
        self.rooms.pop(room, None)
        for key in [k for k in self._heard if k[0] == room]:
            del self._heard[key]
        self.bus.unsubscribe(f"room:{room}")

    def presence(self, room: str, user_id: str, name: str, present: bool) -> None:
        users = self.rooms.setdefault(room, set())
        if present:
            users.add(user_id)
        else:
            users.discard(user_id)
        self._spawn(self._store_presence(room, user_id, name, present))
        self.bus.publish(f"room:{room}", _dump(
            {"k": "p", "node": self.node_id, "u": user_id, "name": name, "on": present}))

    async def _store_presence(self, room: str, user_id: str, name: str, present: bool) -> None:
        field = f"{self.node_id}\x00{user_id}"
        redis = self.bus.redis
        if present:
            pipe = redis.pipeline(transaction=False)
            pipe.hset(self._members_key(room), field, name)
            pipe.sadd(self._rooms_of_key(self.node_id), room)
            await pipe.execute()
        else:
            await redis.hdel(self._members_key(room), field)

    # --- direct messages: heard for the users connected here ---

    def _opened(self, conn: Connection) -> None:
        if conn.user.id not in self.users:
            self.users.add(conn.user.id)
            self.bus.subscribe(f"user:{conn.user.id}")

    def _closed(self, conn: Connection) -> None:
        if conn.user.id in self.users and not self.registry.of_user(conn.user.id):
            self.users.discard(conn.user.id)
            self.bus.unsubscribe(f"user:{conn.user.id}")

    # --- the bus's handler ---

    def on_message(self, topic: str, payload: bytes) -> None:
        hub = self.hub
        if hub is None:
            return
        try:
            data = json.loads(payload)
            kind = data["k"]
            node = str(data["node"])
            if kind == "mark":  # a node checking its subscription to a room
                if node == self.node_id:
                    heard = self._marks.pop(str(data["mark"]), None)
                    if heard is not None and not heard.done():
                        heard.set_result(None)
                return
            if node == self.node_id:
                return  # this node's own: delivered here already
            if kind == "m":
                message = decode_message(data["m"])
                self.observe_lag(time.time() - message.ts)
                hub.room_published(message, int(data["p"]))
            elif kind == "d":
                message = decode_message(data["m"])
                self.observe_lag(time.time() - message.ts)
                hub.direct_published(message, int(data["p"]), int(data["q"]))
            elif kind == "p":
                room = topic.partition(":")[2]
                present = bool(data["on"])
                user = str(data["u"])
                if present:
                    self.peers.add(node)
                    self._heard[(room, node, user)] = time.monotonic()
                else:
                    self._heard.pop((room, node, user), None)
                hub.remote_presence(node, room, user, str(data["name"]), present)
            elif kind == "ue" and topic.startswith("user:"):
                hub.user_event(topic.partition(":")[2], dict(data["e"]))
            elif kind == "re" and topic.startswith("room:"):
                hub.room_event(topic.partition(":")[2], dict(data["e"]))
            elif kind == "bye":
                self._peer_gone(node)
            elif kind in self.handlers and topic == "ctl":
                self.handlers[kind](data)
            else:
                log.warning("unknown message kind %r on %s", kind, topic)
        except (KeyError, TypeError, ValueError) as exc:
            log.warning("malformed message on %s dropped: %r", topic, exc)

    def on_resync(self) -> None:
        """The bus was deaf for a while (or Redis restarted, forgetting everything):
        say again what this node holds, then read what was missed."""
        if self.hub is None or self.closed:
            return
        self._spawn(self._reassert())
        self.hub.resync()
        for hook in self.on_resync_hooks:
            hook()

    async def _reassert(self) -> None:
        redis = self.bus.redis
        await redis.set(self._lease_key(self.node_id), "1", px=int(self.lease_seconds * 1000))
        for room, users in list(self.rooms.items()):
            for user in list(users):
                conns = [c for c in self.registry.of_user(user) if room in c.rooms]
                if conns:
                    await self._store_presence(room, user, conns[0].user.name, True)
                    self.bus.publish(f"room:{room}", _dump(
                        {"k": "p", "node": self.node_id, "u": user, "name": conns[0].user.name,
                         "on": True}))
        # The others say again what they hold too; what is still missing after a lease
        # period left while this node could not hear it.
        await asyncio.sleep(self.lease_seconds)
        for room in list(self.rooms):
            await self._read_members(room, drop_missing=True)


def _dump(data: dict[str, Any]) -> bytes:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _bytes(value: Any) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode("utf-8")
