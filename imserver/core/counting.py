"""The shapes of the counters the core and the cluster count through: Prometheus's
Counter, Gauge and Histogram have them (ops/metrics.py), and nothing here imports
Prometheus."""

from __future__ import annotations

from typing import Protocol


class Counter(Protocol):
    def inc(self, amount: float = 1) -> None: ...


class Labelled(Protocol):
    def labels(self, *values: str) -> Counter: ...


class Gauge(Protocol):
    def set(self, value: float) -> None: ...


class Histogram(Protocol):
    def observe(self, amount: float) -> None: ...
