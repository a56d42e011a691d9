"""The prebuilt fan-out path against a real server: order and integrity under partial writes."""

from __future__ import annotations

import pytest

from bench.servers import server_process
from imserver.testing import SyncClient, login

# The chat tests run against one server and against two nodes of a cluster.
CLUSTER_TOO = True

COUNT = 300
TEXT_SIZE = 3000


@pytest.fixture(scope="module", params=["prebuilt", "write_message"])
def server(request, tmp_path_factory):
    proc = server_process(tmp_path_factory.mktemp(request.param), {
        "limits": {"messages_per_second": 1e6, "burst": 1_000_000}}, request.param)
    proc.start()
    yield proc
    proc.stop()


def connect(server, name: str, **kwargs) -> SyncClient:
    client = SyncClient(server.host, f"/ws?token={login(server.host, name)}", **kwargs)
    assert client.recv_json()["type"] == "welcome"
    return client


def join(client: SyncClient, room: str) -> None:
    client.send_json({"type": "join", "room": room})
    while client.recv_json()["type"] != "joined":
        pass


def test_slow_reader_with_a_tiny_window_gets_every_frame_in_order(server):
    room = f"partial-{server.port}"
    sender = connect(server, "sender")
    # A 4 KiB receive window forces the server into partial sends and its own buffering.
    reader = connect(server, "reader", receive_buffer=4096, timeout=20)
    join(sender, room)
    join(reader, room)
    acked = 0
    for i in range(COUNT):
        sender.send_json({"type": "say", "room": room, "text": f"{i:05d}" + "z" * TEXT_SIZE, "cid": str(i)})
    while acked < COUNT:
        frame = sender.recv_json()
        acked += frame["type"] == "ack"
    # Each ack leaves in the same callback as its fan-out, so by now the server has handed
    # all 300 messages to the reader's connection: the reader has read nothing yet, and the
    # server holds what its 4 KiB window did not take.
    numbers = []
    while len(numbers) < COUNT:
        frame = reader.recv_json()
        if frame["type"] == "message":
            assert frame["text"][5:] == "z" * TEXT_SIZE
            numbers.append(int(frame["text"][:5]))
    assert numbers == list(range(COUNT))
    reader.send_text("ping")
    assert reader.recv() == "pong"
    sender.close()
    reader.close()

