"""Coalesced socket writes: at most one send per connection per event-loop pass.

A connection queues the prebuilt wire bytes of its frames; once per loop pass
the writer asks every connection with something queued to flush it, so that a
burst of frames to one client goes out in one send, and with TCP_NODELAY set
no frame waits for Nagle's algorithm.
"""

from __future__ import annotations

import asyncio
from typing import Protocol


class Flushable(Protocol):
    def flush_queued(self) -> None:
        """Write out what is queued."""


class CoalescingWriter:
    """Calls `flush_queued()` on each connection that queued bytes, once, at the end of the loop pass."""

    def __init__(self) -> None:
        self._dirty: list[Flushable] = []
        self._scheduled = False

    def mark(self, target: Flushable) -> None:
        """`target` has just queued its first bytes since its last flush."""
        self._dirty.append(target)
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self.flush_all)

    def flush_all(self) -> None:
        self._scheduled = False
        dirty, self._dirty = self._dirty, []
        for target in dirty:
            target.flush_queued()
