"""What an imserver.client ChatClient handed on, kept for a test to wait on and check."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any, TypeVar

from imserver.client import Event, Frame, Message, State, StateChange

T = TypeVar("T", bound=Event)


class Seen:
    """Every event a client handed on, with when (monotonic), for a test to wait on."""

    def __init__(self) -> None:
        self.events: list[tuple[float, Event]] = []
        self._changed = asyncio.Event()

    def __call__(self, event: Event) -> None:
        self.events.append((time.monotonic(), event))
        self._changed.set()

    def of(self, kind: type[T]) -> list[T]:
        return [e for _, e in self.events if isinstance(e, kind)]

    def messages(self, room: str | None) -> list[Message]:
        return [m for m in self.of(Message) if m.room == room]

    def frames(self, kind: str) -> list[Frame]:
        return [f for f in self.of(Frame) if f.type == kind]

    def states(self, state: State) -> list[StateChange]:
        return [e for e in self.of(StateChange) if e.state is state]

    async def until(self, check: Callable[[], Any], timeout: float = 10.0) -> Any:
        """Wait until check() is truthy; returns it."""
        deadline = time.monotonic() + timeout
        while not (found := check()):
            assert time.monotonic() < deadline, f"timed out; events: {[e for _, e in self.events]}"
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), deadline - time.monotonic())
        return found
