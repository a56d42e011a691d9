"""Redis bus benchmark: messages per second through cluster.redisbus, with and without pipelining.

Two buses (nodes A and B) in this one process, on one loop, against a real Redis
(default: the machine's, 127.0.0.1:6379), under a random key prefix. A queues
`--messages` messages at once; the figures are from the first publish to the
last one Redis answered (published/s), and to the last one B's handler got
(delivered/s). `publish only` has no subscriber: Redis drops what it takes.
Each batch size runs `--runs` times; the table shows the median. Batch 1 sends
one PUBLISH per round trip; larger batches pipeline that many per round trip.

    python -m bench bus [--messages 50000] [--payload 100] [--runs 3] [--url redis://...]

Needs the `cluster` extra (redis, hiredis); not part of `all`.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter

from imserver.cluster.redisbus import BusMetrics, RedisBus
from imserver.ops.metrics import Metrics

from .report import median, own_cpu_seconds, print_table

BATCHES = (1, 16, 64, 256, 1024)


class Tally:
    """A counter that also keeps its total as a plain int, for polling."""

    def __init__(self, inner: Counter) -> None:
        self.inner = inner
        self.total = 0.0

    def inc(self, amount: float = 1) -> None:
        self.total += amount
        self.inner.inc(amount)


class BenchMetrics:
    """The server's metrics (the bus pays for them as it would there), published counted aside."""

    def __init__(self) -> None:
        real = Metrics(CollectorRegistry(), cluster=True)
        self.broker_published = Tally(real.broker_published)
        self.broker_received = real.broker_received
        self.broker_dropped = real.broker_dropped
        self.broker_reconnects = real.broker_reconnects
        self.broker_connected = real.broker_connected
        self.broker_deaf = real.broker_deaf


class Counting:
    """A handler that counts, and notes when the expected count is reached."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.count = 0
        self.done_at = 0.0

    def on_message(self, topic: str, payload: bytes) -> None:
        self.count += 1
        if self.count == self.expected:
            self.done_at = time.perf_counter()

    def on_resync(self) -> None:
        pass


async def until(predicate: Callable[[], bool], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("the benchmark's messages did not all arrive")
        await asyncio.sleep(0.001)


async def one_run(url: str, batch: int, messages: int, payload: int,
                  receive: bool) -> tuple[float, float, float]:
    """(published/s, delivered/s or nan, CPU seconds per 1000 messages)."""
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    settings: dict[str, Any] = {"outbox_limit": messages + 1, "batch_max": batch,
                                "liveness_interval": 1.0, "liveness_timeout": 10.0}
    metrics_a = BenchMetrics()
    counter = Counting(messages)
    metrics: tuple[BusMetrics, BusMetrics] = (metrics_a, BenchMetrics())
    a = RedisBus(url, prefix, "A", Counting(0), metrics[0], **settings)
    b = RedisBus(url, prefix, "B", counter, metrics[1], **settings)
    if receive:
        b.subscribe("room:bench")
    await a.start()
    await b.start()
    try:
        await until(lambda: a.connected and b.connected)
        body = b"x" * payload
        published = metrics_a.broker_published
        cpu = own_cpu_seconds()
        started = time.perf_counter()
        for _ in range(messages):
            a.publish("room:bench", body)
        await until(lambda: published.total >= messages)
        acked = time.perf_counter() - started
        delivered = float("nan")
        if receive:
            await until(lambda: counter.count >= messages)
            delivered = messages / (counter.done_at - started)
        cpu = own_cpu_seconds() - cpu
        return messages / acked, delivered, cpu / messages * 1000
    finally:
        await a.close()
        await b.close()


async def main(url: str, messages: int, payload: int, runs: int) -> None:
    rows = []
    for receive in (False, True):
        for batch in BATCHES:
            results = [await one_run(url, batch, messages, payload, receive) for _ in range(runs)]
            rows.append(["publish + receive" if receive else "publish only", str(batch),
                         f"{median([r[0] for r in results]):,.0f}",
                         "-" if not receive else f"{median([r[1] for r in results]):,.0f}",
                         f"{median([r[2] for r in results]) * 1000:.1f}"])
    print_table(f"redis bus: {messages} messages of {payload} bytes, median of {runs}",
                ["load", "batch", "published/s", "delivered/s", "CPU ms / 1000 msgs"], rows)
    print("One process, one loop: with a receiver, the same loop also reads and dispatches every message.")


def cli(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench bus")
    parser.add_argument("--url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--payload", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    asyncio.run(main(args.url, args.messages, args.payload, args.runs))
