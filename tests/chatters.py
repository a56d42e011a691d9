"""Clients that chat through faults, as the browser client does, and the bookkeeping
that tells whether anything was lost or doubled.

A Chatter is one user in one room on imserver.client's ChatClient: it sends
numbered messages with cids, which the client keeps until their ack and, on any
failure (a dropped connection, `unavailable`), resends with the same cids after
reconnecting to the next of its servers and re-joining with `since`. It records
every message id the server gives it, in order, in backlog and live alike, as
the frames come (before the client's own de-duplication, so that a server that
sends a message twice is caught): `Tally` checks them against the store
afterwards.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import jwt

from imserver.client import Ack, ChatClient, Event, Policy, State, StateChange, StopReason, login

# The host application's secret, when the nodes are in `jwt` mode (JWT_SETTINGS).
APP_SECRET = "the-host-application-secret-" + "y" * 20
JWT_SETTINGS = {"mode": "jwt", "jwt": {"algorithm": "HS256", "secret": APP_SECRET}}
# Back soon, and the next node soon after that: the faults last a second or two.
POLICY = Policy(base=0.1, factor=2.0, cap=0.5, connect_timeout=3.0)


def app_token(user_id: str, name: str) -> str:
    """A token as the host application issues it: any node takes it, no state."""
    return jwt.encode({"sub": user_id, "name": name, "exp": int(time.time()) + 3600},
                      APP_SECRET, algorithm="HS256")


@dataclass
class Chatter:
    name: str
    hosts: list[str]  # the nodes it may use, the first one first
    room: str
    reconnect: bool = True  # False: once its connection is gone, it stays gone
    token: str = ""
    user_id: str = ""
    seen: list[int] = field(default_factory=list)  # every message id given to it, in order
    acked: dict[str, int] = field(default_factory=dict)  # cid -> id
    sent = 0
    reconnects = 0  # connections lost (and, while it runs, made again)
    unavailable = 0
    left_seen: set[str] = field(default_factory=set)  # users announced as gone
    members: set[str] = field(default_factory=set)
    client: ChatClient | None = None

    async def start(self, *, guest: bool = False) -> None:
        if guest:
            session = await login(f"http://{self.hosts[0]}", self.name)
            self.token, self.user_id = session.token, session.user_id
        else:
            self.user_id = self.name
            self.token = app_token(self.name, self.name)
        policy = POLICY if self.reconnect else Policy(attempts=0)
        self.client = ChatClient([f"ws://{host}/ws" for host in self.hosts], token=self.token,
                                 policy=policy, resend_delay=0.5, on_frame=self._frame,
                                 on_event=self._event)
        await asyncio.wait_for(self.client.connect(), 30)
        await asyncio.wait_for(self.client.join(self.room), 15)

    def _frame(self, frame: dict[str, Any]) -> None:
        kind = frame["type"]
        if kind == "joined" and frame["room"] == self.room:
            self.members = set(frame["members"])
            self.seen += [m["id"] for m in frame["messages"]]
        elif kind == "message" and frame.get("room") == self.room:
            self.seen.append(frame["id"])
        elif kind == "presence":
            self.members |= set(frame["joined"])
            self.members -= set(frame["left"])
            self.left_seen |= set(frame["left"])
        elif kind == "error" and frame.get("code") == "unavailable":
            self.unavailable += 1

    def _event(self, event: Event) -> None:
        if isinstance(event, StateChange) and event.previous is State.OPEN \
                and event.reason is not StopReason.CLOSED:
            self.reconnects += 1

    def say(self) -> None:
        """Queue the next numbered message (the client sends it when it can)."""
        assert self.client is not None
        self.sent += 1
        cid = f"{self.name}-{self.sent}"
        self.client.say(self.room, f"{self.name} #{self.sent}", cid=cid).add_done_callback(
            lambda done: self._acked(cid, done))

    def _acked(self, cid: str, done: asyncio.Future[Ack]) -> None:
        if not done.cancelled() and done.exception() is None:
            self.acked[cid] = done.result().id

    async def close(self) -> None:
        if self.client is not None:
            await self.client.close()


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
