"""A push-mode IOStream: each chunk the socket yields goes straight to a callback.

Tornado's WebSocket reader awaits `read_bytes()` three times per frame. Each
frame then costs Futures, a recv that finds nothing, a zeroed 64 KiB buffer
for it, and an epoll re-registration, since the stream stops listening
between the header and the payload. At 10,000 mostly idle connections, each
with a ping and a pong every few seconds, that was most of the server's CPU.

A PushStream stays registered for reading, and the event loop calls
`_on_readable` for the socket directly: one recv per readable event, the
bytes handed to `on_data`. Writing and closing stay IOStream's own, but its two
write queues become SparseDeques, which hold no storage while empty.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from tornado.ioloop import IOLoop
from tornado.iostream import IOStream
from tornado.platform.asyncio import BaseAsyncIOLoop

log = logging.getLogger("imserver.ws")


class PushStream(IOStream):
    on_data: Callable[[bytes], None] | None = None

    @classmethod
    def adopt(cls, stream: IOStream, on_data: Callable[[bytes], None]) -> PushStream:
        """Switch a connected plain-TCP IOStream (the same object) to push mode,
        handing `on_data` first whatever the stream had already buffered."""
        if type(stream) is not IOStream:
            raise TypeError(f"only a plain IOStream can push, not {type(stream).__name__}")
        stream.__class__ = cls
        pushed: PushStream = stream  # type: ignore[assignment]
        pushed.on_data = on_data
        # Written through only when the socket does not take a send at once (outbound.py),
        # the queues are empty on an idle connection, yet a deque holds a block of 64 slots
        # even then: 1.5 KB per connection for the two.
        pushed._write_futures = SparseDeque(pushed._write_futures)  # type: ignore[assignment]
        write_buffer = pushed._write_buffer
        if write_buffer is not None:
            write_buffer._buffers = SparseDeque(write_buffer._buffers)  # type: ignore[assignment]
        buffered = pushed._read_buffer_size
        if buffered:
            on_data(pushed._consume(buffered))
        if pushed.closed():
            return pushed
        pushed._add_io_state(IOLoop.READ)
        loop = pushed.io_loop
        if isinstance(loop, BaseAsyncIOLoop):
            # Tornado keeps the socket registered for reading from now on (reading()
            # stays true), so its own read callback can be replaced by ours: the
            # event loop then calls _on_readable without Tornado's dispatch between.
            # Closing the stream unregisters the socket, and this callback with it.
            loop.selector_loop.add_reader(pushed.fileno(), pushed._on_readable)
        return pushed

    def reading(self) -> bool:
        # Keeps the socket registered for reading while a write is pending, too.
        return self.on_data is not None or super().reading()

    def _handle_read(self) -> None:
        if self.on_data is None:
            super()._handle_read()
        else:
            self._on_readable()

    def _on_readable(self) -> None:
        on_data, sock = self.on_data, self.socket
        if on_data is None or sock is None:
            return
        try:
            data = sock.recv(self.read_chunk_size)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self.close(exc_info=exc)
            return
        if not data:
            self.close()
            return
        try:
            on_data(data)
        except Exception as exc:
            log.exception("error handling data received on %s", sock)
            self.close(exc_info=exc)


class SparseDeque:
    """The part of a deque that IOStream uses on its write queues (append, popleft,
    indexing, iteration, clear), holding no deque while it is empty: a
    collections.deque allocates a block of 64 slots (about 740 bytes) even then."""

    __slots__ = ("_items",)

    def __init__(self, items: Iterable[Any] = ()) -> None:
        self._items: deque[Any] | None = None
        for item in items:
            self.append(item)

    def __len__(self) -> int:
        items = self._items
        return 0 if items is None else len(items)

    def __bool__(self) -> bool:
        return self._items is not None

    def __getitem__(self, index: int) -> Any:
        items = self._items
        if items is None:
            raise IndexError("deque index out of range")
        return items[index]

    def __iter__(self) -> Iterator[Any]:
        return iter(()) if self._items is None else iter(self._items)

    def append(self, item: Any) -> None:
        items = self._items
        if items is None:
            items = self._items = deque()
        items.append(item)

    def popleft(self) -> Any:
        items = self._items
        if items is None:
            raise IndexError("pop from an empty deque")
        item = items.popleft()
        if not items:
            self._items = None  # empty again: the block goes back
        return item

    def clear(self) -> None:
        self._items = None
