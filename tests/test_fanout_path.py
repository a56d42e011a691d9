"""transport.fanout on real loopback sockets: each receiver's frame straight to its
socket, a burst's frames one send a socket, and a socket that fails or is closing
neither stops the fan-out nor counts as a delivery."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator

import pytest
from tornado.iostream import IOStream

from imserver.core.frames import Outbound
from imserver.core.registry import Connection, User
from imserver.transport.fanout import fan_out
from imserver.transport.outbound import PrebuiltOutput
from imserver.transport.sendpool import SendPool
from imserver.transport.writer import CoalescingWriter
from tests.core import run
from tests.sockets import loopback_pairs, read_exactly


class Handler:
    """The chat socket's side of an output: what it was asked to do."""

    def __init__(self) -> None:
        self.slow = False

    def close(self, code: int | None = None, reason: str | None = None) -> None:
        pass

    def abort(self) -> None:
        pass

    def slow_consumer(self) -> None:
        self.slow = True


@pytest.fixture
def pairs() -> Iterator[list[tuple[socket.socket, socket.socket]]]:
    """Five connected loopback TCP pairs: (the server's end, the client's end)."""
    with loopback_pairs(5, lambda accepted: accepted) as made:
        yield made


def connections(pairs: list[tuple[socket.socket, socket.socket]],
                writer: CoalescingWriter) -> list[Connection]:
    return [Connection(id=f"c{i}", user=User("u", "u"),
                       transport=PrebuiltOutput(Handler(), IOStream(server_end), writer))
            for i, (server_end, _) in enumerate(pairs)]


def test_a_lone_frame_goes_straight_to_every_socket_and_a_failed_one_is_not_counted(pairs):
    async def scenario() -> None:
        writer = CoalescingWriter(SendPool(0))
        conns = connections(pairs, writer)
        pairs[1][0].shutdown(socket.SHUT_WR)  # its sends now fail with EPIPE
        conns[2].closed = True
        conns[3].transport.closing(flush=False)
        frame = Outbound({"type": "message", "text": "hi"})
        assert fan_out(writer, conns, frame) == 2
        assert [c.frames_out for c in conns] == [1, 0, 0, 0, 1]
        for i in (0, 4):  # sent before the end of the loop pass: nothing was queued
            assert not conns[i].transport._queued
            assert read_exactly(pairs[i][1], len(frame.wire)) == frame.wire
        assert conns[1].transport._stream.closed()
        await asyncio.sleep(0)

    run(scenario())


def test_in_a_burst_each_socket_gets_the_frames_of_a_pass_in_one_send(pairs):
    async def scenario() -> None:
        writer = CoalescingWriter(SendPool(0))
        conns = connections(pairs, writer)
        frames = [Outbound({"type": "message", "text": f"m{i}"}) for i in range(6)]
        fan_out(writer, conns, frames[0])  # straight to the sockets
        fan_out(writer, conns, frames[1])  # queued: a burst
        assert all(c.transport._queued == [frames[1].wire] for c in conns)
        await asyncio.sleep(0)  # the pass ends: the queues are flushed
        assert writer.bursting and all(not c.transport._queued for c in conns)
        for frame in frames[2:4]:  # the next pass: every frame waits for its end
            fan_out(writer, conns, frame)
            assert all(c.transport._queued[-1] == frame.wire for c in conns)
        await asyncio.sleep(0)
        fan_out(writer, conns, frames[4])  # the burst is still on: one fan-out more in that pass
        await asyncio.sleep(0)
        assert not writer.bursting
        fan_out(writer, conns, frames[5])  # over: straight to the sockets again
        assert all(not c.transport._queued for c in conns)
        expected = b"".join(f.wire for f in frames)
        for _, client in pairs:
            assert read_exactly(client, len(expected)) == expected

    run(scenario())
