"""When to try again: the reconnect policy and its capped exponential backoff with full jitter.

Pure functions of numbers, as static/shared/backoff.js is for the browser:
the delay before reconnect attempt n is uniform in [0, min(cap, base *
factor^(n-1))). Full jitter applies below the cap too, so that clients which
have all reached the cap stay spread over the whole window instead of coming
back in lock step
(https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Policy:
    """How a client reconnects (seconds). The defaults are the server's `client.*`
    defaults (GET /api/client-config) but for `attempts`: a bot or a backend keeps
    trying for as long as it runs, where a browser tab gives up and shows a button."""

    base: float = 1.0
    factor: float = 2.0
    cap: float = 30.0
    attempts: int | None = None  # failed attempts in a row before giving up; None: never
    stable_after: float = 10.0  # open this long, and the attempt count starts again
    connect_timeout: float = 10.0  # for the upgrade and the welcome frame together

    def __post_init__(self) -> None:
        checks = (("base", self.base > 0), ("factor", self.factor >= 1), ("cap", self.cap >= 0),
                  ("stable_after", self.stable_after >= 0),
                  ("connect_timeout", self.connect_timeout > 0))
        for name, ok in checks:
            value = getattr(self, name)
            if not ok or not math.isfinite(value):
                raise ValueError(f"Policy.{name} out of range: {value!r}")
        if self.attempts is not None and self.attempts < 0:
            raise ValueError(f"Policy.attempts must be >= 0 or None, got {self.attempts!r}")


def backoff_ceiling(attempt: int, policy: Policy) -> float:
    """The upper bound of the delay before reconnect attempt `attempt` (1-based)."""
    if attempt < 1:
        raise ValueError(f"attempt must be >= 1, got {attempt}")
    try:
        grown = policy.base * policy.factor ** (attempt - 1)
    except OverflowError:  # Python floats raise where JavaScript's become Infinity
        return policy.cap
    return min(policy.cap, grown)


def backoff_delay(attempt: int, policy: Policy, random: Callable[[], float]) -> float:
    """The delay before reconnect attempt `attempt`: random() * ceiling, random() in [0, 1)."""
    return random() * backoff_ceiling(attempt, policy)
