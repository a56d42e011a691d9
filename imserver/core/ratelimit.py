"""Rate limits: a token bucket, a flood detector, and a per-address limiter."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

Clock = Callable[[], float]


class TokenBucket:
    """`rate` tokens a second, at most `burst` saved up; each take() spends one."""

    __slots__ = ("burst", "clock", "rate", "tokens", "updated")

    def __init__(self, rate: float, burst: float, clock: Clock = time.monotonic) -> None:
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self.tokens = burst
        self.updated = clock()

    def take(self, now: float | None = None) -> bool:
        """Spend a token if there is one; `now` saves a clock read for a caller that has it."""
        if now is None:
            now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class FloodGuard:
    """Counts refusals in fixed windows; `strike()` is True once a window holds `limit`."""

    __slots__ = ("clock", "count", "limit", "window", "window_start")

    def __init__(self, limit: int, window: float = 2.0, clock: Clock = time.monotonic) -> None:
        self.limit = limit
        self.window = window
        self.clock = clock
        self.count = 0
        self.window_start = clock()

    def strike(self) -> bool:
        now = self.clock()
        if now - self.window_start >= self.window:
            self.window_start, self.count = now, 0
        self.count += 1
        return self.count >= self.limit


class KeyedLimiter:
    """A token bucket per key (a remote address), remembering at most `max_keys` keys."""

    def __init__(self, rate: float, burst: float, max_keys: int = 10_000,
                 clock: Clock = time.monotonic) -> None:
        self.rate = rate
        self.burst = burst
        self.max_keys = max_keys
        self.clock = clock
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def take(self, key: str) -> bool:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(self.rate, self.burst, self.clock)
            if len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        return bucket.take()

    def allows(self, key: str) -> bool:
        """Whether take(key) would succeed now; spends nothing."""
        bucket = self._buckets.get(key)
        if bucket is None:
            return True
        saved = bucket.tokens + (self.clock() - bucket.updated) * bucket.rate
        return min(bucket.burst, saved) >= 1
