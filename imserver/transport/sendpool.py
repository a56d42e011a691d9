"""Helper threads that share the send() calls of a large fan-out.

A send() of a small frame costs a few microseconds of kernel time (TCP, and on
loopback the receiver's side too), nearly all of it outside the GIL, so one
thread sending a frame to 1000 sockets spends most of the fan-out waiting on
the kernel. While a fan-out is open, the sockets to be written go into chunks;
the event loop's thread sends every (threads + 1)-th chunk itself, starting
with the first, and helper threads send the others meanwhile.

The loop's thread waits for the helpers before the fan-out ends, so no socket
is ever written by two threads at once and each connection's order is kept.
What a send did not take (a full socket buffer, an error) goes back to its
owner on the loop's thread, which hands it to its stream as before.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import socket
import threading
from types import TracebackType
from typing import Protocol

log = logging.getLogger("imserver.sendpool")


Data = bytes | memoryview


class SendOwner(Protocol):
    def send_unfinished(self, data: Data, sent: int, error: OSError | None) -> None:
        """`data[sent:]` was not sent (error: why, when the socket failed)."""


_Send = tuple[SendOwner, socket.socket, Data]
_Unfinished = tuple[SendOwner, Data, int, "OSError | None"]


def _send_all(chunk: list[_Send]) -> list[_Unfinished]:
    unfinished: list[_Unfinished] = []
    for owner, sock, data in chunk:
        try:
            sent = sock.send(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError as exc:
            unfinished.append((owner, data, 0, exc))
            continue
        if sent != len(data):
            unfinished.append((owner, data, sent, None))
    return unfinished


def send_now(owner: SendOwner, sock: socket.socket, data: Data) -> bool:
    """Send `data` on `sock` from the loop's thread; what the socket did not take, or
    why it failed, goes straight back to `owner`. False when the socket failed."""
    try:
        sent = sock.send(data)
    except (BlockingIOError, InterruptedError):
        sent = 0
    except OSError as exc:
        owner.send_unfinished(data, 0, exc)
        return False
    if sent != len(data):
        owner.send_unfinished(data, sent, None)
    return True


_NOT_SHARED = contextlib.nullcontext()


class _Ending:
    """Ends the pool's open fan-out on leaving the `with` block."""

    def __init__(self, pool: SendPool) -> None:
        self.pool = pool

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.pool.end()


def spare_cores() -> int:
    """Cores this process may run on, less the event loop's."""
    try:
        return len(os.sched_getaffinity(0)) - 1
    except AttributeError:  # not on Linux
        return (os.cpu_count() or 1) - 1


class SendPool:
    """`threads` helper threads; fan-outs to at least `min_receivers` sockets use them."""

    def __init__(self, threads: int, *, chunk: int = 16, min_receivers: int = 64) -> None:
        self.threads = threads
        self.min_receivers = min_receivers
        self.active = False  # a fan-out is open: send() queues instead of the caller sending
        self._chunk = chunk
        self._pending: list[_Send] = []
        self._turn = 0
        self._outstanding = 0
        self._unfinished: list[_Unfinished] = []
        self._jobs: queue.SimpleQueue[list[_Send] | None] = queue.SimpleQueue()
        self._done: queue.SimpleQueue[list[_Unfinished]] = queue.SimpleQueue()
        self._workers: list[threading.Thread] = []
        self.fanouts = 0  # fan-outs shared so far
        self.helper_chunks = 0  # chunks the helper threads sent
        self.handed_back = 0  # sends that came back unfinished to their owners
        self._ending = _Ending(self)

    def fanout(self, receivers: int) -> contextlib.AbstractContextManager[None]:
        """`with pool.fanout(n):` around the writes of a fan-out to `n` sockets: shared
        with the helpers when it is worth it (see begin), ended on leaving the block."""
        return self._ending if self.begin(receivers) else _NOT_SHARED

    def begin(self, receivers: int) -> bool:
        """Open a fan-out to `receivers` sockets if it is worth the threads; returns whether it was."""
        if self.threads <= 0 or receivers < self.min_receivers or self.active:
            return False
        if not self._workers:
            self._workers = [threading.Thread(target=self._work, name=f"imserver-send-{i}", daemon=True)
                             for i in range(self.threads)]
            for worker in self._workers:
                worker.start()
        self.active = True
        self.fanouts += 1
        return True

    def send(self, owner: SendOwner, sock: socket.socket, data: Data) -> None:
        """Send `data` on `sock` within the open fan-out (the loop's thread only).

        At most once per socket and fan-out: two sends to one socket could leave
        from two threads in either order. A broadcast writes each connection
        once, and the writer's pass flushes each connection once."""
        pending = self._pending
        pending.append((owner, sock, data))
        if len(pending) >= self._chunk:
            self._pending = []
            turn = self._turn
            self._turn = turn + 1
            if turn % (self.threads + 1):
                self._outstanding += 1
                self.helper_chunks += 1
                self._jobs.put(pending)
            else:
                self._unfinished += _send_all(pending)

    def end(self) -> None:
        """Send what is left, wait for the helpers, and hand back what they could not send."""
        if self._pending:
            self._unfinished += _send_all(self._pending)
            self._pending = []
        while self._outstanding:
            self._unfinished += self._done.get()
            self._outstanding -= 1
        self.active = False
        self._turn = 0
        unfinished, self._unfinished = self._unfinished, []
        self.handed_back += len(unfinished)
        for owner, data, sent, error in unfinished:
            try:
                owner.send_unfinished(data, sent, error)
            except Exception:
                log.exception("handing back an unfinished send failed")

    def close(self) -> None:
        for _ in self._workers:
            self._jobs.put(None)
        for worker in self._workers:
            worker.join(timeout=5)
        self._workers = []

    def _work(self) -> None:
        while True:
            chunk = self._jobs.get()
            if chunk is None:
                return
            try:
                unfinished = _send_all(chunk)
            except BaseException as exc:  # the loop's thread is waiting: it must hear back
                log.exception("send thread failed")
                error = OSError(f"send thread failed: {exc!r}")
                unfinished = [(owner, data, 0, error) for owner, _, data in chunk]
            self._done.put(unfinished)
