"""Soak: hundreds of clients chatting, joining, leaving, dropping and reconnecting at
random for a set time, some sending garbage. At the end: nothing acked is lost, no
client saw a message twice, every client saw every message of its rooms since it
first joined, the server's memory is flat after warm-up, and the server's metrics
agree with the clients' own counts.

    python -m bench soak [--clients 300] [--seconds 60]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import random
import sqlite3
import tempfile
import time
import urllib.request
from collections import Counter, defaultdict, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tornado.websocket import WebSocketClientConnection, WebSocketClosedError, websocket_connect

from imserver.testing import ServerProcess

from .loadgen import login_user
from .report import print_table

ROOMS = [f"soak-{i}" for i in range(12)]
GARBAGE = ["{not json", "[]", '{"type": "teleport"}', '{"type": "say", "room": "no such room!"}',
           '{"type": "join"}', "\x00\x01", '{"type": "say", "room": "soak-0", "text": ""}']


@dataclass
class Totals:
    opened: int = 0
    reconnects: int = 0
    says: int = 0
    garbage: int = 0
    drops: int = 0
    app_pings: int = 0
    live_duplicates: int = 0
    asked_again: int = 0
    errors: Counter[str] = field(default_factory=Counter)


@dataclass
class SoakClient:
    name: str
    host: str
    rng: random.Random
    totals: Totals
    token: str = ""
    user_id: str = ""  # the opaque id the server gave this guest: what `from` carries
    ws: WebSocketClientConnection | None = None
    rooms: set[str] = field(default_factory=set)
    seen: dict[str, set[int]] = field(default_factory=lambda: defaultdict(set))  # room -> ids known
    # room -> ids in the order message frames brought them (live or in a backlog); an own
    # message known by its ack is left out: a resend's ack brings an old id late.
    delivered: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    first_seen: dict[str, int] = field(default_factory=dict)
    last_id: dict[str, int] = field(default_factory=dict)
    truncated: set[str] = field(default_factory=set)
    unacked: dict[str, tuple[str, str]] = field(default_factory=dict)  # cid -> (room, text)
    acked: dict[str, int] = field(default_factory=dict)
    own: set[int] = field(default_factory=set)  # ids of own messages seen
    pending_since: dict[str, deque] = field(default_factory=lambda: defaultdict(deque))
    reading: asyncio.Future | None = None
    last_frame_at: float = 0.0
    number: int = 0
    connects: int = 0

    async def connect(self) -> None:
        query = f"&reconnect={self.connects}&cause=close" if self.connects else ""
        self.ws = await websocket_connect(f"ws://{self.host}/ws?token={self.token}{query}")
        self.connects += 1
        self.totals.opened += 1
        self.totals.reconnects += self.connects > 1
        await self.read_until("welcome")
        for room in sorted(self.rooms):
            self.send_join(room)
        for cid, (room, text) in list(self.unacked.items()):  # resend with the original cid
            if room in self.rooms:
                self.totals.says += self.send({"type": "say", "room": room, "text": text, "cid": cid})
        # One reader for the connection's whole life: cancelling a read can lose a frame.
        self.reading = asyncio.ensure_future(self.reader())

    @property
    def dropped(self) -> bool:
        return self.reading is None or self.reading.done()

    def send(self, frame: dict | str) -> bool:
        assert self.ws is not None
        try:
            self.ws.write_message(frame if isinstance(frame, str) else json.dumps(frame))
        except WebSocketClosedError:
            return False
        return True

    def send_join(self, room: str) -> None:
        frame: dict = {"type": "join", "room": room}
        if room in self.last_id:
            frame["since"] = self.last_id[room]
        self.rooms.add(room)
        if self.send(frame):
            self.pending_since[room].append(frame.get("since"))

    async def read_until(self, kind: str) -> dict:
        while True:
            frame = await self.next_frame()
            if frame["type"] == kind:
                return frame

    async def next_frame(self) -> dict:
        assert self.ws is not None
        raw = await self.ws.read_message()
        self.last_frame_at = time.monotonic()
        if raw is None:
            raise ConnectionError(f"closed with {self.ws.close_code}")
        if raw == "pong":
            return {"type": "pong"}
        frame = json.loads(raw)
        kind = frame["type"]
        if kind == "message" and "room" in frame:
            self.record(frame, live=True)
        elif kind == "joined":
            if frame["truncated"]:
                self.truncated.add(frame["room"])
            asked = self.pending_since[frame["room"]]
            since = asked.popleft() if asked else None
            for m in frame["messages"]:
                if since is not None:
                    assert m["id"] > since, f"backlog message {m['id']} not after since {since}"
                self.record(m, live=False)
        elif kind == "ack":
            sent = self.unacked.pop(frame["cid"], None)
            self.acked[frame["cid"]] = frame["id"]
            if sent is not None and frame["id"] not in self.own:
                # An own message is seen through its ack (unless a backlog had it already).
                self.record({"room": sent[0], "id": frame["id"], "from": self.user_id}, live=False,
                            ack=True)
        elif kind == "error":
            self.totals.errors[frame["code"]] += 1
            if frame.get("cid") in self.unacked and frame["code"] != "rate_limited":
                del self.unacked[frame["cid"]]
        return frame

    def record(self, m: dict, *, live: bool, ack: bool = False) -> None:
        """Keep a message once, as the browser client does (by id). A second copy is a
        server fault if it came live; in a backlog it was asked for by a `since` sent
        while the first copy was still on its way."""
        if m["from"] == self.user_id:
            if m["id"] in self.own:
                return  # the ack of a resend, or a backlog repeating what an ack showed
            self.own.add(m["id"])
        room = m["room"]
        if m["id"] in self.seen[room]:
            if live:
                self.totals.live_duplicates += 1
            else:
                self.totals.asked_again += 1
            return
        self.seen[room].add(m["id"])
        if not ack:
            self.delivered[room].append(m["id"])
        self.first_seen.setdefault(room, m["id"])
        self.last_id[room] = max(self.last_id.get(room, 0), m["id"])

    async def reader(self) -> None:
        with contextlib.suppress(ConnectionError):
            while True:
                await self.next_frame()

    async def run(self, until: float) -> None:
        self.token, self.user_id = await login_user(self.host, self.name)
        self.rooms = set(self.rng.sample(ROOMS, 2))
        await self.connect()
        while time.monotonic() < until:
            await self.act_until_drop(until)
            if time.monotonic() < until:
                await asyncio.sleep(self.rng.uniform(0.1, 1.0))
                await self.connect()

    async def act_until_drop(self, until: float) -> None:
        while time.monotonic() < until and not self.dropped:
            await asyncio.sleep(self.rng.expovariate(1.0))  # about one action a second
            roll = self.rng.random()
            if roll < 0.70 and self.rooms:
                self.say(self.rng.choice(sorted(self.rooms)))
            elif roll < 0.78:
                room = self.rng.choice(ROOMS)
                if room not in self.rooms:
                    self.send_join(room)
            elif roll < 0.84 and len(self.rooms) > 1:
                room = self.rng.choice(sorted(self.rooms))
                self.rooms.discard(room)
                self.send({"type": "leave", "room": room})
            elif roll < 0.90:
                self.totals.app_pings += self.send("ping")
            elif roll < 0.95 and self.name.endswith("7"):  # one client in ten sends garbage
                self.totals.garbage += self.send(self.rng.choice(GARBAGE))
            elif roll > 0.985:  # drop the TCP connection without a close frame
                assert self.ws is not None and self.ws.protocol is not None
                self.ws.protocol.stream.close()
                self.totals.drops += 1
                assert self.reading is not None
                await asyncio.wait([self.reading])  # the reader sees the close
                return

    def say(self, room: str) -> None:
        cid = f"{self.name}-{self.number}"
        self.number += 1
        text = f"{self.name} says {self.number}"
        self.unacked[cid] = (room, text)
        self.totals.says += self.send({"type": "say", "room": room, "text": text, "cid": cid})

    async def finish(self) -> None:
        """Come back if dropped at the very end, and wait for outstanding acks."""
        if self.dropped:
            await self.connect()
        deadline = time.monotonic() + 10
        while self.unacked and time.monotonic() < deadline:
            await asyncio.sleep(0.05)

    async def drain(self, quiet: float = 1.0) -> None:
        """Wait until nothing has come for `quiet` seconds (everyone has finished sending)."""
        while time.monotonic() - self.last_frame_at < quiet:
            await asyncio.sleep(0.1)


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def scrape(host: str) -> dict[str, float]:
    with urllib.request.urlopen(f"http://{host}/metrics", timeout=10) as response:
        text = response.read().decode()
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return values


async def soak(clients: int, seconds: float, seed: int, send_threads: int | None = None) -> None:
    settings: dict[str, dict[str, Any]] = {
        "limits": {"max_connections_per_address": clients * 2, "login_attempts_per_minute": 1e6,
                   # all clients connect at once from one address
                   "max_pending_per_address": max(100, clients * 2),
                   "max_pending_connections": max(1000, clients * 2)},
        "logging": {"level": "info"}}
    if send_threads is not None:
        settings["server"] = {"send_threads": send_threads}
    with tempfile.TemporaryDirectory() as tmp:
        server = ServerProcess(Path(tmp), settings).start()
        assert server.proc is not None
        pid = server.proc.pid
        try:
            totals = Totals()
            rng = random.Random(seed)
            swarm = [SoakClient(f"c{i}", server.host, random.Random(rng.random()), totals)
                     for i in range(clients)]
            started = time.monotonic()
            until = started + seconds
            rss: list[tuple[float, int]] = []

            async def sample_memory() -> None:
                while time.monotonic() < until:
                    rss.append((time.monotonic() - started, rss_kib(pid)))
                    await asyncio.sleep(1)

            sampler = asyncio.ensure_future(sample_memory())
            await asyncio.gather(*(c.run(until) for c in swarm))
            await sampler
            await asyncio.gather(*(c.finish() for c in swarm))
            await asyncio.gather(*(c.drain() for c in swarm))
            metrics = scrape(server.host)
            live = sum(not c.dropped for c in swarm)
            for c in swarm:
                assert c.ws is not None and c.reading is not None
                c.reading.cancel()
                c.ws.close()
        finally:
            server.stop()
        problems = [line for line in server.output().splitlines()
                    if " ERROR " in line or "Traceback" in line]
        for line in problems[:20]:
            print("server:", line)
        db = sqlite3.connect(Path(tmp) / "data" / "imserver.db")
        rows = db.execute("SELECT id, room, sender, cid FROM messages").fetchall()
        db.close()
    report(swarm, totals, rows, metrics, rss, live, clients, seconds)


def report(swarm: list[SoakClient], totals: Totals, rows: list, metrics: dict[str, float],
           rss: list[tuple[float, int]], live: int, clients: int, seconds: float) -> None:
    by_cid = Counter((sender, cid) for _, _, sender, cid in rows)
    stored_ids = {(sender, cid): msg_id for msg_id, _, sender, cid in rows}
    acked = {(c.user_id, cid): msg_id for c in swarm for cid, msg_id in c.acked.items()}
    lost = sum(1 for key, msg_id in acked.items() if stored_ids.get(key) != msg_id)
    doubled_in_store = sum(1 for n in by_cid.values() if n > 1)
    room_ids: dict[str, list[int]] = defaultdict(list)
    for msg_id, room, _, _ in rows:
        room_ids[room].append(msg_id)
    missing = out_of_order = 0
    for c in swarm:
        for ids in c.delivered.values():
            out_of_order += sum(1 for a, b in itertools.pairwise(ids) if b < a)
        for room, ids in c.seen.items():
            if room in c.rooms and room not in c.truncated:
                expected = {i for i in room_ids[room] if i >= c.first_seen[room]}
                missing += len(expected - ids)
    warm = [kib for t, kib in rss if t >= seconds * 0.25]
    growth = (warm[-1] - warm[0]) if len(warm) > 1 else 0

    def metric(name: str) -> float:
        return metrics.get(name, 0.0)

    reconnect_metric = sum(v for k, v in metrics.items() if k.startswith("imserver_reconnects_total{"))
    checks = [
        ("connections opened", totals.opened, metric("imserver_connections_opened_total")),
        ("reconnects", totals.reconnects, reconnect_metric),
        ("live connections", live, metric("imserver_connections")),
        ("says received", totals.says, metric('imserver_messages_received_total{type="say"}')),
        ("garbage frames (invalid)", totals.garbage,
         metric('imserver_messages_received_total{type="invalid"}')),
        ("app pings", totals.app_pings, metric("imserver_app_pings_total")),
    ]
    print_table(f"soak: {clients} clients, {seconds:g} s", ["figure", "value"], [
        ["messages acked", f"{len(acked)}"],
        ["messages stored", f"{len(rows)}"],
        ["acked but lost", f"{lost}"],
        ["stored twice (same cid)", f"{doubled_in_store}"],
        ["delivered twice live", f"{totals.live_duplicates}"],
        ["repeated in a backlog (stale since)", f"{totals.asked_again}"],
        ["delivered out of id order", f"{out_of_order}"],
        ["missing from a client's rooms", f"{missing}"],
        ["drops / reconnects", f"{totals.drops} / {totals.reconnects}"],
        ["error frames by code", ", ".join(f"{k} {v}" for k, v in sorted(totals.errors.items()))],
        ["server RSS after warm-up -> end", f"{warm[0] if warm else 0} -> {warm[-1] if warm else 0} KiB"
                                            f" ({growth:+d} KiB)"],
        ["server RSS at 25/50/75/100 %", " / ".join(
            f"{rss[min(len(rss) - 1, int(len(rss) * q))][1]}" for q in (0.25, 0.5, 0.75, 1.0)) + " KiB"],
    ])
    print_table("soak: the server's metrics against the clients' own counts",
                ["count", "clients", "server", "agree"],
                [[name, f"{mine:g}", f"{theirs:g}", "yes" if mine == theirs else "NO"]
                 for name, mine, theirs in checks])


def cli(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench soak")
    parser.add_argument("--clients", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--send-threads", type=int, default=None,
                        help="server.send_threads (default: config.yaml's default, 0)")
    args = parser.parse_args(argv)
    asyncio.run(soak(args.clients, args.seconds, args.seed, args.send_threads))
