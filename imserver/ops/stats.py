"""What the admin dashboard shows besides the live clients: recent closes and samples.

`Samples` takes one sample a second of a few totals, keeps 15 minutes of them,
and answers "how many in the last 5 minutes" and "per second now" from them.
`ClosedLog` keeps the last few hundred closed connections, with what an operator
said when it closed one (the close frame's reason). `RecentCounts` counts events
by kind (terminations by reason, reconnects by cause) over the last minutes.
"""

from __future__ import annotations

import itertools
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from ..core.registry import TERMINATION_REASONS, Connection


@dataclass(frozen=True, slots=True)
class Closed:
    id: str
    user: str
    name: str
    remote: str
    user_agent: str
    connected_at: float
    closed_at: float
    lived: float
    reason: str
    closed_by: str  # "client" or "server"
    code: int | None
    reconnect: int
    operator_reason: str = ""  # what the operator said, when one closed it ("kicked")

    @classmethod
    def of(cls, conn: Connection, now: float) -> Closed:
        reason = conn.close_reason or "client_close"
        return cls(id=conn.id, user=conn.user.id, name=conn.user.name, remote=conn.remote,
                   user_agent=conn.user_agent,
                   connected_at=conn.connected_at, closed_at=round(now, 3),
                   lived=round(now - conn.connected_at, 3), reason=reason,
                   closed_by="server" if reason in TERMINATION_REASONS or reason == "error" else "client",
                   code=conn.close_code, reconnect=conn.reconnect,
                   operator_reason=conn.close_message if reason == KICKED else "")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


KICKED = "kicked"  # the close reason of an operator's disconnect or ban


class ClosedLog:
    """The most recently closed connections, newest first."""

    def __init__(self, size: int = 300) -> None:
        self._entries: deque[Closed] = deque(maxlen=size)

    def add(self, conn: Connection) -> Closed:
        entry = Closed.of(conn, time.time())
        self._entries.appendleft(entry)
        return entry

    def entries(self) -> list[Closed]:
        return list(self._entries)


@dataclass(frozen=True, slots=True)
class Sample:
    t: float
    connections: int
    users: int
    rooms: int
    messages: float  # running totals
    terminations: float
    reconnects: float


class Samples:
    """One Sample a second over a window (15 minutes by default)."""

    def __init__(self, window_seconds: int = 900) -> None:
        self._samples: deque[Sample] = deque(maxlen=window_seconds + 1)
        self.on_add: list[Callable[[], None]] = []  # called after each new sample

    def add(self, sample: Sample) -> None:
        self._samples.append(sample)
        for listener in self.on_add:
            listener()

    def _window(self, seconds: float) -> tuple[Sample, Sample] | None:
        """The oldest sample within the last `seconds`, and the newest."""
        if len(self._samples) < 2:
            return None
        last = self._samples[-1]
        first = next((s for s in self._samples if s.t >= last.t - seconds), last)
        return first, last

    def since(self, seconds: float, field: str) -> float:
        """How much a running total grew over the last `seconds` (as far back as kept)."""
        window = self._window(seconds)
        if window is None:
            return 0.0
        first, last = window
        return float(getattr(last, field) - getattr(first, field))

    def rate(self, field: str, seconds: float = 5.0) -> float:
        """Per-second growth of a running total over the last few seconds."""
        window = self._window(seconds)
        if window is None or window[1].t <= window[0].t:
            return 0.0
        first, last = window
        return float(getattr(last, field) - getattr(first, field)) / (last.t - first.t)

    def series(self) -> dict[str, list[float]]:
        """Per-sample values for the charts: connections, and messages per second."""
        samples = list(self._samples)
        messages = [0.0] + [_per_second(a, b) for a, b in itertools.pairwise(samples)]
        return {"t": [round(s.t, 1) for s in samples],
                "connections": [float(s.connections) for s in samples],
                "messages_per_second": [round(m, 2) for m in messages[:len(samples)]]}

    def newest_point(self) -> dict[str, float] | None:
        """The last entry of `series()`, for pushing one point a second."""
        if not self._samples:
            return None
        last = self._samples[-1]
        rate = _per_second(self._samples[-2], last) if len(self._samples) > 1 else 0.0
        return {"t": round(last.t, 1), "connections": float(last.connections),
                "messages_per_second": round(rate, 2)}


def _per_second(a: Sample, b: Sample) -> float:
    return max(0.0, (b.messages - a.messages) / max(b.t - a.t, 1e-9))


class RecentCounts:
    """How many events of each kind happened over the last `window` seconds, in
    one-second buckets: adding is O(1), and so is reading, whatever the rate (a
    reconnect storm adds thousands a second)."""

    def __init__(self, window: float = 300.0, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.window = window
        self.clock = clock
        self._buckets: deque[tuple[int, Counter[str]]] = deque()  # (second, counts), oldest first
        self._totals: Counter[str] = Counter()

    def add(self, kind: str, n: int = 1) -> None:
        second = int(self.clock())
        self._expire(second)
        if not self._buckets or self._buckets[-1][0] != second:
            self._buckets.append((second, Counter()))
        self._buckets[-1][1][kind] += n
        self._totals[kind] += n

    def counts(self) -> dict[str, int]:
        """Each kind seen within the window, with its count (most first)."""
        self._expire(int(self.clock()))
        return {kind: n for kind, n in self._totals.most_common() if n > 0}

    def _expire(self, second: int) -> None:
        oldest = second - int(self.window)
        while self._buckets and self._buckets[0][0] <= oldest:
            _, gone = self._buckets.popleft()
            self._totals.subtract(gone)
