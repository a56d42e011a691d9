"""Connected loopback TCP pairs, for the tests of the send path."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

S = TypeVar("S", bound=socket.socket)


@contextmanager
def loopback_pairs(count: int,
                   adopt: Callable[[socket.socket], S]) -> Iterator[list[tuple[S, socket.socket]]]:
    """`count` connected pairs (the server's end, non-blocking, as `adopt` makes it;
    the client's end), closed on leaving."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=128)
    made: list[tuple[S, socket.socket]] = []
    try:
        for _ in range(count):
            client = socket.create_connection(listener.getsockname())
            accepted, _ = listener.accept()
            server_end = adopt(accepted)
            server_end.setblocking(False)
            made.append((server_end, client))
    finally:
        listener.close()
    try:
        yield made
    finally:
        for server_end, client in made:
            server_end.close()
            client.close()


def read_exactly(sock: socket.socket, size: int) -> bytes:
    """`size` bytes from `sock`, waiting at most 5 s for each read."""
    sock.settimeout(5)
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        assert chunk, "closed early"
        data += chunk
    return data
