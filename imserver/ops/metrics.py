"""Every Prometheus metric of imserver, behind one object built from a registry.

Labelled series are created up front, so that a rate() or an alert has a
series to read before the first event of its kind.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Iterator

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

from .. import __version__
from ..core.protocol import COMMANDS, RECONNECT_CAUSES
from ..core.registry import CLOSE_REASONS, TERMINATION_REASONS

# The `type` label of frames received: the text ping, every command, and what did not parse.
MESSAGE_TYPES = ("ping", *(command.kind for command in COMMANDS), "invalid")
RTT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
STORE_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
SWEEP_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
# The `connection` label of the broker's reconnects (cluster.redisbus: PUBLISH, SUBSCRIBE).
BROKER_CONNECTIONS = ("publish", "subscribe")


class Metrics:
    """The metrics of one server; pass a fresh CollectorRegistry per test."""

    def __init__(self, registry: CollectorRegistry | None = None, *, cluster: bool = False) -> None:
        # The *_created series double the exposition and no alert reads them.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        Info("imserver_build", "Version of the running imserver.", registry=r).info(
            {"version": __version__})
        self.connections = Gauge(
            "imserver_connections", "Live WebSocket connections.", registry=r)
        self.opened = Counter(
            "imserver_connections_opened_total", "WebSocket connections opened.", registry=r)
        self.closed = Counter(
            "imserver_connections_closed_total", "WebSocket connections closed, by reason.",
            ["reason"], registry=r)
        self.terminations = Counter(
            "imserver_terminations_total", "Connections the server itself ended, by reason.",
            ["reason"], registry=r)
        self.reconnects = Counter(
            "imserver_reconnects_total",
            "Connections that came with reconnect >= 1, by the cause the client gave.",
            ["cause"], registry=r)
        self.frames = FrameStats()
        r.register(self.frames)
        self.heartbeat_sweep = Histogram(
            "imserver_heartbeat_sweep_seconds",
            "Each tick of the heartbeat sweep: the time it held the event loop to visit its share "
            "of the connections (all of them once per half ping interval).",
            buckets=SWEEP_BUCKETS, registry=r)
        self.store_seconds = Histogram(
            "imserver_message_store_seconds", "From receipt of a message to its durable ack.",
            buckets=STORE_BUCKETS, registry=r)
        self.rooms = Gauge("imserver_rooms", "Rooms with at least one member.", registry=r)
        self.users_online = Gauge(
            "imserver_users_online", "Distinct users with a live connection.", registry=r)
        self.refused = Counter(
            "imserver_refused_total", "Requests and frames refused, by reason.",
            ["reason"], registry=r)
        self.errors = Counter(
            "imserver_protocol_errors_total", "Error frames sent to clients, by code.",
            ["code"], registry=r)
        # The cluster's Redis bus (cluster/redisbus.py): exposed only by a node of a cluster
        # (a server alone keeps them in a registry nobody scrapes: its bus is not "down").
        b = r if cluster else CollectorRegistry()
        self.broker_published = Counter(
            "imserver_broker_published_total", "Messages to the other nodes that Redis took.",
            registry=b)
        self.broker_received = Counter(
            "imserver_broker_received_total", "Messages from the nodes handed to the hub.", registry=b)
        self.broker_dropped = Counter(
            "imserver_broker_dropped_total",
            "Messages dropped, oldest first, from a full outbox while Redis did not take them.",
            registry=b)
        self.broker_reconnects = Counter(
            "imserver_broker_reconnects_total", "Redis connections made again after a loss, by connection.",
            ["connection"], registry=b)
        self.broker_connected = Gauge(
            "imserver_broker_connected",
            "1 while the Redis bus can publish and its subscription is live, else 0.", registry=b)
        self.broker_deaf = Counter(
            "imserver_broker_deaf_total",
            "Subscriptions found deaf: the node's own ping not heard back in time.", registry=b)
        self.broker_lag = Histogram(
            "imserver_broker_lag_seconds",
            "From a message's commit on another node to its arrival here.",
            buckets=LAG_BUCKETS, registry=b)
        self.gaps_filled = Counter(
            "imserver_gaps_filled_total",
            "Reads of a stream (a room's, or a user's direct messages) from the store to fill "
            "a gap before anything newer goes out, or after the bus was deaf; by stream.",
            ["stream"], registry=r)
        self._prime()

    @staticmethod
    def total(metric: Counter, **label_values: tuple[str, ...]) -> float:
        """A counter's value summed over its series, optionally only some label values."""
        return sum(
            sample.value
            for family in metric.collect() for sample in family.samples
            if sample.name.endswith("_total")
            and all(sample.labels.get(k) in v for k, v in label_values.items()))

    def _prime(self) -> None:
        """Create the labelled series up front, so that they exist before the first event."""
        for reason in CLOSE_REASONS:
            self.closed.labels(reason)
        for reason in TERMINATION_REASONS:
            self.terminations.labels(reason)
        for cause in (*RECONNECT_CAUSES, "other"):
            self.reconnects.labels(cause)
        for connection in BROKER_CONNECTIONS:
            self.broker_reconnects.labels(connection)
        for stream in ("room", "direct"):
            self.gaps_filled.labels(stream)


_RTT_LE = tuple(floatToGoString(bound) for bound in (*RTT_BUCKETS, math.inf))  # type: ignore[no-untyped-call]


class FrameStats:
    """The counters bumped for every frame, kept as plain ints that Prometheus reads
    when it scrapes. prometheus_client's inc() costs a lock and four calls; at several
    per frame, that was about a twentieth of what 10,000 idle connections cost the server.
    Only the event loop's thread touches them."""

    def __init__(self) -> None:
        self.received = dict.fromkeys(MESSAGE_TYPES, 0)  # by type
        self.delivered = 0
        self.app_pings = 0
        self.rtt_counts = [0] * (len(RTT_BUCKETS) + 1)  # per bucket, the last one +Inf
        self.rtt_sum = 0.0

    def observe_rtt(self, seconds: float) -> None:
        self.rtt_counts[bisect_left(RTT_BUCKETS, seconds)] += 1
        self.rtt_sum += seconds

    def collect(self) -> Iterator[Metric]:
        received = CounterMetricFamily("imserver_messages_received", "Frames received from clients, by type.",
                                       labels=["type"])
        for kind, count in self.received.items():
            received.add_metric([kind], count)
        yield received
        yield CounterMetricFamily("imserver_messages_delivered", "Frames sent to clients.",
                                  value=self.delivered)
        yield CounterMetricFamily("imserver_app_pings", "Application-level ping frames answered.",
                                  value=self.app_pings)
        buckets, cumulative = [], 0
        for le, count in zip(_RTT_LE, self.rtt_counts, strict=True):
            cumulative += count
            buckets.append((le, cumulative))
        yield HistogramMetricFamily("imserver_heartbeat_rtt_seconds", "Round trip of WebSocket ping frames.",
                                    buckets=buckets, sum_value=self.rtt_sum)
