"""Storage benchmark: messages stored and acked per second, and ack latency.

A real server process on a real SQLite file (synchronous=FULL, so every ack
is durable). Two loads: one sender keeping a window of messages in flight,
and 100 senders each sending its next message when the last one is acked.

    python -m bench storage [--seconds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path

from tornado.websocket import WebSocketClientConnection

from imserver.testing import ServerProcess

from .loadgen import connect, join
from .report import own_cpu_seconds, percentile, print_table, process_cpu_seconds
from .servers import bench_settings


async def sender(ws: WebSocketClientConnection, room: str, name: str, window: int,
                 until: float, latencies: list[float]) -> int:
    """Send with `window` messages in flight until the deadline; returns messages acked."""
    sent_at: dict[str, float] = {}
    number = acked = 0

    def send_more() -> None:
        nonlocal number
        while len(sent_at) < window and time.monotonic() < until:
            cid = f"{name}-{number}"
            number += 1
            sent_at[cid] = time.monotonic()
            ws.write_message(json.dumps({"type": "say", "room": room, "text": f"bench {cid}", "cid": cid}))

    send_more()
    while sent_at:
        frame = json.loads(await ws.read_message() or "{}")
        if frame.get("type") == "ack":
            latencies.append(time.monotonic() - sent_at.pop(frame["cid"]))
            acked += 1
            send_more()
    return acked


async def run_load(server: ServerProcess, senders: int, window: int, seconds: float) -> list[str]:
    """Each sender in a room of its own, so that the figure is storage, not fan-out."""
    names = [f"s{senders}w{window}n{i}" for i in range(senders)]
    conns = [await connect(server.host, name) for name in names]
    for ws, name in zip(conns, names, strict=True):
        await join(ws, name)
    latencies: list[float] = []
    assert server.proc is not None
    server_cpu, own_cpu = process_cpu_seconds(server.proc.pid), own_cpu_seconds()
    started = time.monotonic()
    until = started + seconds
    counts = await asyncio.gather(*[
        sender(ws, name, name, window, until, latencies) for ws, name in zip(conns, names, strict=True)])
    elapsed = time.monotonic() - started
    server_cpu = process_cpu_seconds(server.proc.pid) - server_cpu
    own_cpu = own_cpu_seconds() - own_cpu
    for ws in conns:
        ws.close()
    total = sum(counts)
    return [f"{senders} x window {window}", f"{total}", f"{total / elapsed:,.0f}",
            f"{percentile(latencies, 50) * 1000:.2f}", f"{percentile(latencies, 99) * 1000:.2f}",
            f"{100 * server_cpu / elapsed:.0f}%", f"{100 * own_cpu / elapsed:.0f}%"]


async def main(seconds: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        # 100 senders log in at once: past the default login limit too.
        server = ServerProcess(Path(tmp), bench_settings()).start()
        try:
            rows = [await run_load(server, 1, 1, seconds),
                    await run_load(server, 1, 32, seconds),
                    await run_load(server, 100, 1, seconds)]
        finally:
            server.stop()
    print_table(f"storage: durable acks (SQLite WAL, synchronous=FULL), {seconds:g} s per load",
                ["senders", "acked", "msgs/s", "p50 ack ms", "p99 ack ms", "server CPU",
                 "loadgen CPU"], rows)
    print("CPU is % of one core; a load generator near 100% bounds the figure.")


def cli(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench storage")
    parser.add_argument("--seconds", type=float, default=5.0)
    asyncio.run(main(parser.parse_args(argv).seconds))
