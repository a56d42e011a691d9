"""Clients that chat through faults, as the browser client does, and the bookkeeping
that tells whether anything was lost or doubled.

A Chatter keeps one room: it sends numbered messages with cids, keeps each until
its ack, and on any failure (a dropped connection, `unavailable`) reconnects to
the next of its servers, re-joins with `since` (the last id it saw) and resends
what was not acked, with the same cids. It records every message id it is
given, in order, in backlog and live alike: `Tally` checks them against the
store afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import jwt
from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from tornado.iostream import StreamClosedError
from tornado.websocket import WebSocketClientConnection, WebSocketClosedError, websocket_connect

# The host application's secret, when the nodes are in `jwt` mode (JWT_SETTINGS).
APP_SECRET = "the-host-application-secret-" + "y" * 20
JWT_SETTINGS = {"mode": "jwt", "jwt": {"algorithm": "HS256", "secret": APP_SECRET}}


def app_token(user_id: str, name: str) -> str:
    """A token as the host application issues it: any node takes it, no state."""
    return jwt.encode({"sub": user_id, "name": name, "exp": int(time.time()) + 3600},
                      APP_SECRET, algorithm="HS256")


async def login(host: str, name: str) -> tuple[str, str]:
    """A guest token and the user id, from one node."""
    response = await AsyncHTTPClient().fetch(
        f"http://{host}/api/login", method="POST", body=json.dumps({"name": name}),
        headers={"Content-Type": "application/json"})
    body = json.loads(response.body)
    return body["token"], body["user"]["id"]


@dataclass
class Chatter:
    name: str
    hosts: list[str]  # the nodes it may use, the first one first
    room: str
    token: str = ""
    user_id: str = ""
    seen: list[int] = field(default_factory=list)  # every message id given to it, in order
    pending: dict[str, str] = field(default_factory=dict)  # cid -> text, not acked yet
    acked: dict[str, int] = field(default_factory=dict)  # cid -> id
    sent = 0
    reconnects = 0
    unavailable = 0
    left_seen: set[str] = field(default_factory=set)  # users announced as gone
    members: set[str] = field(default_factory=set)
    ws: WebSocketClientConnection | None = None
    node = 0
    closed = False
    _reader: asyncio.Task[None] | None = None
    _reconnecting: asyncio.Future[None] | None = None
    _live: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self, *, guest: bool = False) -> None:
        if guest:
            self.token, self.user_id = await login(self.hosts[0], self.name)
        else:
            self.user_id = self.name
            self.token = app_token(self.name, self.name)
        await self._connect()

    async def _connect(self) -> None:
        """Connect to the current node (or the next ones), join, resend what is pending."""
        deadline = time.monotonic() + 30
        while True:
            host = self.hosts[self.node % len(self.hosts)]
            try:
                ws = await websocket_connect(HTTPRequest(
                    f"ws://{host}/ws?token={self.token}", connect_timeout=3, request_timeout=3))
                if self.closed:  # closed while connecting
                    ws.close()
                    return
                try:
                    welcome = json.loads(await asyncio.wait_for(ws.read_message(), 5) or "{}")
                    assert welcome.get("type") == "welcome", welcome
                except BaseException:
                    ws.close()
                    raise
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                self.node += 1
                await asyncio.sleep(0.2)
        self.ws = ws
        join: dict[str, Any] = {"type": "join", "room": self.room}
        if self.seen:
            join["since"] = self.seen[-1]
        self._live.clear()
        self._write(ws, join)
        self._reader = asyncio.ensure_future(self._read(ws))
        await asyncio.wait_for(self._live.wait(), 15)
        for cid, text in list(self.pending.items()):
            self._write(ws, {"type": "say", "room": self.room, "text": text, "cid": cid})

    async def _read(self, ws: WebSocketClientConnection) -> None:
        while True:
            raw = await ws.read_message()
            if raw is None:
                break
            frame = json.loads(raw)
            kind = frame["type"]
            if kind == "joined":
                self.members = set(frame["members"])
                self.seen += [m["id"] for m in frame["messages"]]
                self._live.set()
            elif kind == "message":
                self.seen.append(frame["id"])
            elif kind == "ack":
                if frame["cid"] in self.pending:
                    del self.pending[frame["cid"]]
                    self.acked[frame["cid"]] = frame["id"]
            elif kind == "presence":
                self.members |= set(frame["joined"])
                self.members -= set(frame["left"])
                self.left_seen |= set(frame["left"])
            elif kind == "error" and frame.get("code") in ("unavailable", "rate_limited"):
                self.unavailable += frame["code"] == "unavailable"
                cid = frame.get("cid")
                if cid in self.pending:  # resend after a moment, with the same cid
                    asyncio.get_running_loop().call_later(0.5, self._resend, ws, cid)
            elif kind == "ping":
                self._write(ws, {"type": "pong"})
        ws.close()  # closed from the other side: this side's part
        if not self.closed:  # the server went away: back, to the next node
            self.reconnects += 1
            self.node += 1
            self._reconnecting = asyncio.ensure_future(self._reconnect())

    async def _reconnect(self) -> None:
        await asyncio.sleep(0.1)
        if not self.closed:
            await self._connect()

    def _resend(self, ws: WebSocketClientConnection, cid: str) -> None:
        if cid in self.pending and ws is self.ws:
            self._write(ws, {"type": "say", "room": self.room, "text": self.pending[cid],
                             "cid": cid})

    def say(self) -> None:
        self.sent += 1
        cid = f"{self.name}-{self.sent}"
        text = f"{self.name} #{self.sent}"
        self.pending[cid] = text
        if self._live.is_set():
            self._write(self.ws, {"type": "say", "room": self.room, "text": text, "cid": cid})

    @staticmethod
    def _write(ws: WebSocketClientConnection | None, frame: dict[str, Any]) -> None:
        """Send, unless the connection is gone: what is pending is resent after the reconnect."""
        if ws is None or ws.protocol is None:
            return
        with contextlib.suppress(WebSocketClosedError, StreamClosedError):
            ws.write_message(json.dumps(frame))

    def close(self) -> None:
        self.closed = True
        if self._reconnecting is not None:
            self._reconnecting.cancel()
        if self.ws is not None:
            self.ws.close()


@dataclass
class Tally:
    """What happened to the messages of one room, from the store's side and the clients'."""
    sent: int
    acked: int
    stored: int
    stored_twice: int
    lost: int  # acked but not stored
    missed: int  # stored after a client joined, and never given to it
    doubled: int  # given to a client more than once
    out_of_order: int

    @classmethod
    def of(cls, chatters: list[Chatter], stored: list[tuple[int, str]]) -> Tally:
        """`stored`: (id, cid) of every message of the room, in id order."""
        ids = [i for i, _ in stored]
        cids = Counter(c for _, c in stored)
        acked = {cid: mid for c in chatters for cid, mid in c.acked.items()}
        missed = doubled = disorder = 0
        for chatter in chatters:
            given = Counter(chatter.seen)
            doubled += sum(n - 1 for n in given.values() if n > 1)
            disorder += sum(1 for a, b in zip(chatter.seen, chatter.seen[1:], strict=False) if b <= a)
            first = min(chatter.seen) if chatter.seen else None
            own = set(chatter.acked.values())  # its own messages come back as acks
            if first is not None:
                missed += sum(1 for i in ids if i >= first and i not in given and i not in own)
        return cls(sent=sum(c.sent for c in chatters), acked=len(acked), stored=len(stored),
                   stored_twice=sum(n - 1 for n in cids.values() if n > 1),
                   lost=sum(1 for mid in acked.values() if mid not in set(ids)),
                   missed=missed, doubled=doubled, out_of_order=disorder)

    def clean(self) -> bool:
        return (self.stored_twice == 0 and self.lost == 0 and self.missed == 0
                and self.doubled == 0 and self.out_of_order == 0 and self.acked == self.sent)
