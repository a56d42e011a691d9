"""The frames that wait for their ack, in the order they were queued."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from .errors import OutboxFull
from .events import Ack


@dataclass(slots=True)
class Entry:
    frame: dict[str, Any]  # sent as is, first and after every reconnect, until its ack
    future: asyncio.Future[Ack]
    stream: str | None  # the room whose stream the ack's id is in; None: direct messages


class Outbox:
    """Unacknowledged frames by cid, oldest first; at most `limit` of them."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"outbox_limit must be >= 1, got {limit}")
        self.limit = limit
        self._entries: dict[str, Entry] = {}

    def add(self, frame: dict[str, Any], stream: str | None) -> Entry:
        """Queue `frame` (which holds its cid); a cid queued already keeps its entry."""
        cid = frame["cid"]
        if cid in self._entries:
            return self._entries[cid]
        if len(self._entries) >= self.limit:
            raise OutboxFull(f"{self.limit} messages wait for their ack")
        future: asyncio.Future[Ack] = asyncio.get_running_loop().create_future()
        # A caller that does not await the result learns of a failure from the
        # events (the error frame, the stop): no "exception never retrieved" log.
        future.add_done_callback(_retrieve)
        entry = self._entries[cid] = Entry(frame, future, stream)
        return entry

    def get(self, cid: str | None) -> Entry | None:
        return None if cid is None else self._entries.get(cid)

    def pop(self, cid: str | None) -> Entry | None:
        return None if cid is None else self._entries.pop(cid, None)

    def __contains__(self, cid: object) -> bool:
        return cid in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[Entry]:
        return iter(list(self._entries.values()))

    def fail_all(self, error: Callable[[str], Exception]) -> None:
        """Empty the outbox, failing each entry's future with `error(cid)`."""
        entries, self._entries = self._entries, {}
        for cid, entry in entries.items():
            if not entry.future.done():
                entry.future.set_exception(error(cid))


def _retrieve(future: asyncio.Future[Ack]) -> None:
    if not future.cancelled():
        future.exception()
