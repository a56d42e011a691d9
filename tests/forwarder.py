"""A TCP forwarder for fault tests: a service behind it can be refused, cut off, or
frozen one way or both (a half-open TCP connection, as its ends see it)."""

from __future__ import annotations

import asyncio

HOST = "127.0.0.1"


class _Pair:
    """One forwarded connection."""

    def __init__(self) -> None:
        self.flowing = {True: asyncio.Event(), False: asyncio.Event()}  # by direction: upstream?
        for event in self.flowing.values():
            event.set()
        self.head = b""  # the first bytes the client sent (HELLO, CLIENT SETNAME; an upgrade request)
        self.cut = False
        self.writers: list[asyncio.StreamWriter] = []
        self.tasks: list[asyncio.Task[None]] = []


class Forwarder:
    """A TCP forwarder (to Redis, to a chat server). `refuse` closes every connection as
    it comes; `cut` drops those there are; `freeze` stops forwarding on chosen
    connections, one way or both, without closing anything (as a half-open TCP
    connection looks to its ends)."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.refuse = False
        self.pairs: list[_Pair] = []
        self.server: asyncio.Server | None = None
        self.port = 0

    @property
    def url(self) -> str:
        """As a Redis URL."""
        return f"redis://{HOST}:{self.port}/0"

    @property
    def host(self) -> str:
        return f"{HOST}:{self.port}"

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._accept, HOST, 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.refuse:
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        pair = _Pair()
        pair.writers = [writer, up_writer]
        pair.tasks = [asyncio.create_task(self._pump(reader, up_writer, pair, upstream=True)),
                      asyncio.create_task(self._pump(up_reader, writer, pair, upstream=False))]
        self.pairs.append(pair)

    async def _pump(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, pair: _Pair,
                    upstream: bool) -> None:
        flowing = pair.flowing[upstream]
        try:
            while True:
                await flowing.wait()
                data = await src.read(65536)
                if not data:
                    break
                if upstream and len(pair.head) < 4096:
                    pair.head += data
                await flowing.wait()  # a chunk read just before a freeze is held too
                dst.write(data)
                await dst.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            if all(e.is_set() for e in pair.flowing.values()):  # a frozen pair stays open
                for w in pair.writers:
                    w.close()

    def freeze(self, marker: bytes, *, upstream: bool = True, downstream: bool = True) -> int:
        """Stop the connections whose handshake holds `marker`, in the directions given;
        returns how many."""
        frozen = [p for p in self.pairs if marker in p.head]
        for pair in frozen:
            for direction, stop in ((True, upstream), (False, downstream)):
                if stop:
                    pair.flowing[direction].clear()
        return len(frozen)

    def cut(self) -> int:
        """Drop every forwarded connection now (a reset, no goodbye at either end);
        returns how many."""
        cut = [p for p in self.pairs if not p.cut]
        for pair in cut:
            pair.cut = True
            for w in pair.writers:
                w.transport.abort()
        return len(cut)

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
        for pair in self.pairs:
            for task in pair.tasks:
                task.cancel()
            await asyncio.gather(*pair.tasks, return_exceptions=True)
            for w in pair.writers:
                w.close()
        if self.server is not None:
            await self.server.wait_closed()
