"""The send pool on real TCP sockets: every byte in order, the unfinished handed back."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator

import pytest

from imserver.transport.sendpool import SendPool
from imserver.transport.writer import CoalescingWriter
from tests.conftest import make_config
from tests.core import run
from tests.sockets import loopback_pairs, read_exactly


class RecordingSocket(socket.socket):
    """A socket that notes which threads sent on it."""

    senders: set[int]

    def send(self, data, flags=0):  # type: ignore[no-untyped-def, override]
        self.senders.add(threading.get_ident())
        return super().send(data, flags)


class Owner:
    def __init__(self) -> None:
        self.unfinished: list[tuple[bytes, int, OSError | None, int]] = []

    def send_unfinished(self, data: bytes, sent: int, error: OSError | None) -> None:
        self.unfinished.append((data, sent, error, threading.get_ident()))


def recording(accepted: socket.socket) -> RecordingSocket:
    server_end = RecordingSocket(fileno=accepted.detach())
    server_end.senders = set()
    return server_end


@pytest.fixture
def pairs() -> Iterator[list[tuple[RecordingSocket, socket.socket]]]:
    """100 connected loopback TCP pairs: (the server's end, the client's end)."""
    with loopback_pairs(100, recording) as made:
        yield made


def test_a_fan_out_is_shared_with_the_helper_and_every_socket_gets_its_bytes(pairs):
    pool = SendPool(1, chunk=16, min_receivers=64)
    owners = [Owner() for _ in pairs]
    try:
        assert pool.begin(len(pairs))
        for i, ((server_end, _), owner) in enumerate(zip(pairs, owners, strict=True)):
            pool.send(owner, server_end, f"frame {i:03d}".encode())
            if i == 15:  # the first chunk goes out at once, from the caller's thread
                assert read_exactly(pairs[0][1], 9) == b"frame 000"
        pool.end()
        assert not pool.active
        for i, (_, client) in enumerate(pairs[1:], start=1):
            assert read_exactly(client, 9) == f"frame {i:03d}".encode()
        assert all(not owner.unfinished for owner in owners)
        senders = set().union(*(server_end.senders for server_end, _ in pairs))
        assert threading.get_ident() in senders and len(senders) == 2
        assert pool.fanouts == 1 and pool.helper_chunks == 3  # chunks 1, 3, 5 of 0-6
    finally:
        pool.close()


def test_what_a_send_did_not_take_comes_back_to_its_owner_on_the_callers_thread(pairs):
    pool = SendPool(1, chunk=4, min_receivers=8)
    full_end, _ = pairs[0]
    full_end.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)  # its peer never reads
    closed_end, _ = pairs[1]
    closed_end.close()
    big = b"x" * (4 << 20)
    owners = [Owner() for _ in pairs[:20]]
    try:
        assert pool.begin(20)
        pool.send(owners[0], full_end, big)
        pool.send(owners[1], closed_end, b"to nobody")
        for (server_end, _), owner in zip(pairs[2:20], owners[2:], strict=True):
            pool.send(owner, server_end, b"fine")
        pool.end()
        (data, sent, error, thread), = owners[0].unfinished
        assert data is big and 0 < sent < len(big) and error is None
        assert thread == threading.get_ident()
        (data, sent, error, thread), = owners[1].unfinished
        assert data == b"to nobody" and sent == 0 and isinstance(error, OSError)
        assert all(not owner.unfinished for owner in owners[2:])
        for _, client in pairs[2:20]:
            assert read_exactly(client, 4) == b"fine"
    finally:
        pool.close()


def test_small_fan_outs_and_a_pool_without_threads_are_not_shared():
    pool = SendPool(1, min_receivers=64)
    assert not pool.begin(63)
    assert not SendPool(0).begin(10_000)
    assert pool.begin(64)
    assert not pool.begin(64)  # one at a time: a nested fan-out sends through the open one
    pool.end()
    pool.close()


def test_close_stops_the_helper_threads(pairs):
    pool = SendPool(2, chunk=1, min_receivers=1)
    pool.begin(3)
    for server_end, _ in pairs[:3]:
        pool.send(Owner(), server_end, b"x")
    pool.end()
    helpers = [t for t in threading.enumerate() if t.name.startswith("imserver-send-")]
    assert len(helpers) == 2
    pool.close()
    assert not any(t.is_alive() for t in helpers)


@pytest.fixture
def config(tmp_path):
    # A fan-out of 200 x 70 large frames holds the loop, and on a busy machine for
    # longer than the suite's short heartbeat: this test is not about the heartbeat.
    return make_config(tmp_path, server={"send_threads": 1},
                       limits={"messages_per_second": 1e6, "burst": 1_000_000,
                               "login_attempts_per_minute": 1e6},
                       heartbeat={"ping_interval": 30, "ping_timeout": 60,
                                  "client_interval": 30, "client_timeout": 60})


@pytest.mark.gen_test(timeout=60)
async def test_a_large_room_shares_its_fan_outs_and_each_connection_keeps_its_order(chat, app):
    sender = await chat.connect("sender")
    await sender.join("large")
    readers = [await chat.connect(f"reader-{i}") for i in range(70)]  # the pool takes 64 or more
    for reader in readers:
        await reader.join("large")
    # The server's side of one reader takes a few KiB at a time: the pool's sends to it
    # come back unfinished, and the rest must go on through that connection's stream.
    (narrow,) = app.runtime.registry.of_user(chat.id("reader-0"))
    narrow.transport._stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    pool = app.runtime.send_pool
    fanouts, helper_chunks, handed_back = pool.fanouts, pool.helper_chunks, pool.handed_back
    count, text = 200, "w" * 3000
    for i in range(count):
        sender.send({"type": "say", "room": "large", "text": f"{i:04d}{text}", "cid": str(i)})
    acked = 0
    while acked < count:
        acked += (await sender.recv())["type"] == "ack"

    async def numbers(reader) -> list[int]:
        got = []
        while len(got) < count:
            frame = await reader.recv(20)
            if frame["type"] == "message":
                assert frame["text"][4:] == text
                got.append(int(frame["text"][:4]))
        return got

    for got in await asyncio.gather(*(numbers(reader) for reader in readers)):
        assert got == list(range(count))
    assert pool.fanouts > fanouts and pool.helper_chunks > helper_chunks
    assert pool.handed_back > handed_back


def test_after_a_pass_of_several_fan_outs_the_next_ones_wait_for_the_pass_too():
    """In a burst each socket gets one send a pass (every frame queued) instead of two
    (the first frame straight away, the rest at the end of the pass)."""
    async def passes() -> list[bool]:
        writer = CoalescingWriter(SendPool(0))
        seen = [writer.fanout_begins()]  # a lone message: straight to the sockets
        writer.flush_all()
        seen.append(writer.fanout_begins())
        seen.append(writer.fanout_begins())  # a second in the same pass: a burst
        writer.flush_all()
        seen.append(writer.fanout_begins())  # the burst goes on: queued
        writer.flush_all()
        seen.append(writer.fanout_begins())  # the last pass had one: over
        return seen

    assert run(passes()) == [True, True, True, False, True]
