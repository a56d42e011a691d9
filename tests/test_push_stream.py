"""Reading in push mode, over real sockets: frames however the bytes arrive, and reads
that go on while the server has output pending for the same client."""

from __future__ import annotations

import asyncio
import base64
import gc
import json
import os
import random
import socket
import time
from collections import deque

import pytest

from imserver.core.frames import text_frame
from imserver.http.chat import ChatSocket
from imserver.testing import ServerProcess, SyncClient, login
from imserver.transport.stream import PushStream, SparseDeque

# The chat tests run against one server and against two nodes of a cluster.
CLUSTER_TOO = True


@pytest.fixture
def server(tmp_path):
    # A long heartbeat: nothing here may depend on the sweep.
    settings = {
        "heartbeat": {"ping_interval": 60, "ping_timeout": 120},
        "limits": {"max_outbound_buffer_bytes": 64 << 20, "max_text_chars": 10_000,
                   "messages_per_second": 10_000, "burst": 10_000},
    }
    proc = ServerProcess(tmp_path, settings).start()
    yield proc
    proc.stop()


def masked(payload: bytes, opcode: int = 0x1) -> bytes:
    key = os.urandom(4)
    assert len(payload) < 126
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + key + bytes(
        b ^ key[i % 4] for i, b in enumerate(payload))


def test_frames_sent_with_the_upgrade_request_are_read(server):
    """A client may pipeline frames behind its request: they sit in Tornado's buffer
    when the stream switches to push mode, and must not be lost."""
    token = login(server.host, "eager")
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    key = base64.b64encode(os.urandom(16)).decode()
    request = (f"GET /ws?token={token} HTTP/1.1\r\nHost: {server.host}\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n")
    join = json.dumps({"type": "join", "room": "r"}).encode()
    sock.sendall(request.encode() + masked(b"ping") + masked(join))
    received = b""
    deadline = time.monotonic() + 5
    while b'"type":"joined"' not in received.replace(b" ", b"") and time.monotonic() < deadline:
        received += sock.recv(65536)
    sock.close()
    assert received.startswith(b"HTTP/1.1 101")
    assert text_frame(b"pong") in received
    assert b'"welcome"' in received and b'"joined"' in received


def test_a_frame_written_one_byte_at_a_time_is_read_whole(server):
    client = SyncClient(server.host, f"/ws?token={login(server.host, 'trickle')}")
    client.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    assert client.recv_json()["type"] == "welcome"
    frame = masked(json.dumps({"type": "join", "room": "slow"}).encode())
    for byte in frame:
        client.sock.sendall(bytes([byte]))
        time.sleep(0.002)
    assert client.recv_json()["type"] == "joined"
    client.close()


def test_frames_are_read_while_output_to_the_same_client_is_pending(server):
    """A client that is slow to read what it is sent is still heard: its messages reach
    the room while the server holds megabytes of output it has not read yet."""
    host = server.host
    listener = SyncClient(host, f"/ws?token={login(host, 'listener')}")
    laggard = SyncClient(host, f"/ws?token={login(host, 'laggard')}", receive_buffer=4096)
    for client in (listener, laggard):
        assert client.recv_json()["type"] == "welcome"
        client.send_json({"type": "join", "room": "lag"})
        assert client.recv_json()["type"] == "joined"
    assert listener.recv_json()["type"] == "presence"
    # The listener floods the room; the laggard does not read, so its output piles up
    # in the server beyond what the kernel's buffers hold (up to 4 MiB on loopback).
    count, text = 1500, "z" * 8000
    for n in range(count):
        listener.send_json({"type": "say", "room": "lag", "text": text, "cid": f"flood-{n}"})
    acks = 0
    while acks < count:
        if listener.recv_json()["type"] == "ack":
            acks += 1
    # It reads a little, which lets the server write some more while most stays queued.
    seen: list[str] = []
    while len(seen) < 200:
        frame = laggard.recv_json()
        if frame["type"] == "message":
            seen.append(frame["cid"])
    laggard.send_json({"type": "say", "room": "lag", "text": "still here", "cid": "late"})
    while True:
        frame = listener.recv_json()
        if frame["type"] == "message" and frame["cid"] == "late":
            break
    # Everything it was sent is still on its way to the laggard, in order.
    while len(seen) < count + 1:
        frame = laggard.recv_json()
        if frame["type"] in ("message", "ack"):
            seen.append(frame["cid"] if frame["type"] == "message" else "late-ack")
    assert seen[:count] == [f"flood-{n}" for n in range(count)]
    listener.close()
    laggard.close()


@pytest.mark.gen_test(timeout=30)
async def test_closed_connections_leave_nothing_behind(chat, app):
    """The push-mode reader ties the stream, the protocol and the handler together;
    once a connection is closed, all of them must be collectable."""
    def alive() -> int:
        gc.collect()
        return sum(isinstance(o, ChatSocket | PushStream) for o in gc.get_objects())

    tokens = [await chat.login(f"leak{i}") for i in range(4)]
    baseline = alive()
    for _ in range(3):
        clients = [await chat.connect(token=tokens[i % 4]) for i in range(20)]
        for client in clients:
            await client.join("leaky")
            client.send("ping")
        for client in clients:
            client.close()
        await until(lambda: len(app.runtime.registry) == 0, "every connection closed")
    # The last closes' callbacks may still hold a handler for a loop pass or two.
    await until(lambda: alive() - baseline == 0, "every closed connection collected")


async def until(predicate, what: str, timeout: float = 10.0) -> None:
    """Poll `predicate` until it holds; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


def test_a_sparse_deque_does_what_a_deque_does():
    """IOStream's write queues, once the stream pushes: the same answers as a deque
    over a random run of the operations IOStream uses, and no deque while empty."""
    rng = random.Random(20)
    sparse, real = SparseDeque([1, 2]), deque([1, 2])
    for step in range(5000):
        op = rng.choice(("append", "append", "popleft", "clear", "peek"))
        if op == "append":
            sparse.append(step)
            real.append(step)
        elif op == "popleft":
            if real:
                assert sparse.popleft() == real.popleft()
            else:
                with pytest.raises(IndexError):
                    sparse.popleft()
        elif op == "clear" and rng.random() < 0.1:
            sparse.clear()
            real.clear()
        elif op == "peek":
            if real:
                assert (sparse[0], sparse[-1]) == (real[0], real[-1])
            else:
                with pytest.raises(IndexError):
                    sparse[0]
        assert bool(sparse) == bool(real) and len(sparse) == len(real)
        assert list(sparse) == list(real)
        assert (sparse._items is None) == (not real)
