"""Coalesced socket writes: at most two sends per connection per event-loop pass.

The first frame a connection gets in a pass goes straight to its socket (see
outbound.PrebuiltOutput); the frames after it queue their prebuilt wire bytes, and at
the end of the pass the writer asks every connection with something queued to
flush it, so that a burst of frames to one client goes out in one more send.
With TCP_NODELAY set no frame waits for Nagle's algorithm.

In a burst (a pass that carried more than one fan-out, as when the store commits
several messages at once) the first frame waits in the queue too, until the
burst ends: each connection then gets one send per pass instead of two.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from .sendpool import SendPool


class Flushable(Protocol):
    def flush_queued(self) -> None:
        """Write out what is queued."""


class CoalescingWriter:
    """Calls `flush_queued()` on each connection that queued bytes, once, at the end of the loop pass."""

    def __init__(self, pool: SendPool) -> None:
        self.pool = pool
        self._dirty: list[Flushable] = []
        self._scheduled = False
        self.pass_number = 0  # counts the loop passes in which anything was written
        self._fanouts = 0  # fan-outs begun in this pass
        self.bursting = False  # the last pass carried more than one fan-out

    def fanout_begins(self) -> bool:
        """A fan-out begins in this pass; returns whether its frames may go straight to
        the sockets (not during a burst: see the module's docstring)."""
        self._fanouts += 1
        return not self.bursting

    def mark(self, target: Flushable) -> None:
        """`target` has just queued its first bytes since its last flush."""
        self._dirty.append(target)
        self._end_of_pass()

    def direct_sent(self) -> int:
        """A connection writes straight to its socket; returns the number of this pass,
        which changes when the pass ends, so that it does so at most once a pass."""
        self._end_of_pass()
        return self.pass_number

    def _end_of_pass(self) -> None:
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self.flush_all)

    def flush_all(self) -> None:
        self._scheduled = False
        self.pass_number += 1
        self.bursting = self._fanouts > 1
        self._fanouts = 0
        dirty, self._dirty = self._dirty, []
        with self.pool.fanout(len(dirty)):
            for target in dirty:
                target.flush_queued()
