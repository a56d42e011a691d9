"""One stream of messages as this node delivers it: every message once, in id
order, with no hole.

A stream is a room's messages, or every direct message to or from one user.
Messages reach a node from its own writes and, in a cluster, from the broker;
each comes with the id of the one before it in its stream (the store tells,
at the write). So a node that has delivered up to id D can tell, for each
message that arrives:

- its `previous` is D: deliver it now;
- its id is D or less: it was delivered already (a publish heard twice, or a
  message that came in a fill first): drop it;
- otherwise something between was lost or is still on its way: hold it, and
  read what follows D from the store (a fill) before delivering anything newer.

Plain bookkeeping: the hub does the reading and the sending.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, TypeVar

from .store import Message

Origin = TypeVar("Origin")


@dataclass(slots=True)
class Held(Generic[Origin]):
    message: Message
    previous: int
    origin: Origin | None  # the connection that wrote it here, which gets an ack, not the message


@dataclass(slots=True)
class Feed(Generic[Origin]):
    """The delivery cursor of one stream. `delivered` None: not known yet (held until set)."""
    delivered: int | None = None
    held: dict[int, Held[Origin]] = field(default_factory=dict)
    filling: bool = False

    def offer(self, message: Message, previous: int,
              origin: Origin | None = None) -> list[Held[Origin]]:
        """A message arrived: what can go out now, in order (empty while a gap is open;
        then `needs_fill` tells whether to start a read)."""
        if self.delivered is not None and message.id <= self.delivered:
            return []
        if self.delivered is not None and previous <= self.delivered and not self.filling:
            self.delivered = message.id
            return [Held(message, previous, origin), *self._continue()]
        self.held.setdefault(message.id, Held(message, previous, origin))
        return []

    @property
    def needs_fill(self) -> bool:
        """Messages are held behind a gap and no read of it is under way."""
        return bool(self.held) and self.delivered is not None and not self.filling

    def start(self, delivered: int) -> list[Held[Origin]]:
        """The stream's position became known (the first read of it): what was held
        and follows it can go out; what it covers is dropped."""
        if self.delivered is None or delivered > self.delivered:
            self.delivered = delivered
        return self._continue()

    def filled(self, messages: list[Message]) -> list[Held[Origin]]:
        """A read of what follows `delivered` came back (in id order): what goes out now.
        Call with the read's messages; `filling` is cleared by the caller's `fill_done`."""
        out: list[Held[Origin]] = []
        for message in messages:
            if self.delivered is not None and message.id <= self.delivered:
                continue
            held = self.held.pop(message.id, None)
            out.append(held if held is not None else Held(message, 0, None))
            self.delivered = message.id
        return out

    def fill_done(self) -> list[Held[Origin]]:
        """The fill read (and its pages) ended: whatever now follows goes out."""
        self.filling = False
        return self._continue()

    def _continue(self) -> list[Held[Origin]]:
        """Deliver the held messages that now follow, and forget those now covered."""
        out: list[Held[Origin]] = []
        if not self.held:
            return out
        delivered = self.delivered
        assert delivered is not None  # every caller has set it
        for key in sorted(self.held):
            held = self.held[key]
            if key <= delivered:
                del self.held[key]
            elif held.previous <= delivered:
                del self.held[key]
                out.append(held)
                delivered = key
            else:
                break
        self.delivered = delivered
        return out
