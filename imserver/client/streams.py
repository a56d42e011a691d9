"""Each stream's items once and in order, across reconnects: bookkeeping without I/O.

A stream is a room, or the user's direct messages. The server numbers its items
(messages, edits, deletions) with strictly increasing ids, and a client that was
given id N of a stream was given every earlier one. So one number per stream
says what was handled, is the `since` of the next recovery (join, dm_sync), and
makes any item at or below it a repeat.

What a new socket must get right: a recovery page and live items may overlap
(direct messages flow live before the `dm_sync` answer), so live items that
arrive before the page are held, merged with it by id, and only then handed on.
"""

from __future__ import annotations

from typing import Any


class Stream:
    """One stream's position, and its live items held until the recovery answer."""

    def __init__(self, since: int | None = None) -> None:
        self.highest = since  # every item up to here was handled: the next `since`
        self.synced = False  # this socket's recovery answer arrived
        self.repeats = 0  # items dropped as given already (or older than that)
        self._held: list[dict[str, Any]] = []
        self._own: set[int] = set()  # ids this client's acks gave, not yet passed

    def new_socket(self) -> None:
        """A new socket: live items wait for its recovery answer again."""
        self.synced = False
        self._held.clear()

    def mark_own(self, item_id: int) -> None:
        """An ack gave `item_id`: when the stream brings it back (in a recovery page
        after a reconnect), it is passed over, not handed on (the ack was its delivery)."""
        if self.highest is None or item_id > self.highest:
            self._own.add(item_id)

    def recovered(self, items: list[dict[str, Any]]) -> list[tuple[dict[str, Any], bool]]:
        """The recovery answer's items (any order): with the live items held until it,
        what to hand on, in id order, each with whether it came from the page."""
        self.synced = True
        merged = sorted([(item, True) for item in items] + [(item, False) for item in self._held],
                        key=lambda pair: int(pair[0]["id"]))
        self._held.clear()
        return [(item, backlog) for item, backlog in merged if self._take(item)]

    def live(self, item: dict[str, Any]) -> list[dict[str, Any]]:
        """A live item: itself when new, nothing when a repeat or held (see recovered)."""
        if not self.synced:
            self._held.append(item)
            return []
        return [item] if self._take(item) else []

    def _take(self, item: dict[str, Any]) -> bool:
        item_id = int(item["id"])
        if self.highest is not None and item_id <= self.highest:
            self.repeats += 1
            return False
        self.highest = item_id
        if self._own:
            own = item_id in self._own
            self._own = {i for i in self._own if i > item_id}
            return not own
        return True
