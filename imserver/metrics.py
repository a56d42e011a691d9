"""Every Prometheus metric of imserver, behind one object built from a registry.

Labelled series are created up front, so that a rate() or an alert has a
series to read before the first event of its kind.
"""

from __future__ import annotations

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

from . import __version__
from .protocol import RECONNECT_CAUSES
from .registry import CLOSE_REASONS, TERMINATION_REASONS

MESSAGE_TYPES = ("ping", "join", "leave", "say", "dm", "history", "dm_sync", "invalid")
RTT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
STORE_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Metrics:
    """The metrics of one server; pass a fresh CollectorRegistry per test."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
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
        self.received = Counter(
            "imserver_messages_received_total", "Frames received from clients, by type.",
            ["type"], registry=r)
        self.delivered = Counter(
            "imserver_messages_delivered_total", "Frames sent to clients.", registry=r)
        self.app_pings = Counter(
            "imserver_app_pings_total", "Application-level ping frames answered.", registry=r)
        self.rtt = Histogram(
            "imserver_heartbeat_rtt_seconds", "Round trip of WebSocket ping frames.",
            buckets=RTT_BUCKETS, registry=r)
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
        # Bound once: labels() costs more than the increment on the per-frame path.
        self.received_by_type = {kind: self.received.labels(kind) for kind in MESSAGE_TYPES}
