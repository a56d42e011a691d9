"""RFC 6455 where it says MUST, over real sockets: invalid UTF-8 and broken or invalid
frames fail the connection with the right close code, after the frames before them are
answered; control frames count against the rate limit; and once the server has begun
to close, it takes nothing more from the peer but its close frame.

(tests/test_autobahn.py runs the standard suite against the same code.)
"""

from __future__ import annotations

import json
import struct
import time
import urllib.request
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError
from tornado.websocket import websocket_connect

from imserver.testing import ServerProcess, SyncClient, login
from tests.conftest import make_config
from tests.test_frames import CLOSE, CONTINUATION, PING, TEXT, client_frame

BAD_SAY = '{"type":"say","room":"r","text":"\xff\xfe"}'.encode("latin-1")


@pytest.fixture
def config(request, tmp_path):
    """The test config; parametrized indirectly with True, the echo endpoint is on."""
    return make_config(
        tmp_path, limits={"messages_per_second": 5, "burst": 5, "flood_strikes": 30},
        # pongs count against the rate limit: no heartbeat pings within these tests
        heartbeat={"ping_interval": 60, "ping_timeout": 120},
        server={"echo_endpoint": getattr(request, "param", False)})


def write(client: Any, data: bytes) -> None:
    """Raw bytes on a client's socket, in one write: the server reads them together."""
    client.ws.protocol.stream.write(data)


@pytest.mark.gen_test
async def test_invalid_utf8_fails_with_1007_after_the_frames_before_it_are_answered(chat, metric):
    alice = await chat.connect("alice")
    write(alice, client_frame(TEXT, b"ping") + client_frame(TEXT, BAD_SAY) + client_frame(TEXT, b"ping"))
    assert await alice.recv_raw() == "pong"
    assert await alice.closed() == 1007
    assert metric("imserver_messages_received_total", type="invalid") == 1
    assert metric("imserver_app_pings_total") == 1  # nothing after the bad frame


@pytest.mark.gen_test
async def test_a_fragmented_text_message_fails_at_its_first_bad_fragment(chat):
    alice = await chat.connect("alice")
    write(alice, client_frame(TEXT, b'{"type":"say","text":"', final=False))
    write(alice, client_frame(CONTINUATION, b"\xf4\x90\x80\x80", final=False))
    # the message is not over: the check does not wait for its end
    assert await alice.closed() == 1007


@pytest.mark.gen_test
async def test_a_text_frame_that_spans_reads_fails_before_it_is_all_there(chat):
    alice = await chat.connect("alice")
    frame = client_frame(TEXT, b"ok \xce\xba\xe1\xbd\xb9 \xed\xa0\x80" + b"x" * 500)
    write(alice, frame[:20])  # the invalid bytes, not the rest of the frame
    assert await alice.closed() == 1007


@pytest.mark.parametrize(("payload", "code"), [
    (b"\x03", 1002),  # one byte: no room for a code
    (struct.pack("!H", 999), 1002),
    (struct.pack("!H", 1004), 1002),
    (struct.pack("!H", 1005), 1002),  # "no code": never sent on the wire
    (struct.pack("!H", 1006), 1002),
    (struct.pack("!H", 1015), 1002),
    (struct.pack("!H", 2999), 1002),
    (struct.pack("!H", 5000), 1002),
    (struct.pack("!H", 65535), 1002),
    (struct.pack("!H", 1000) + b"\xff\xfe", 1007),  # reason not UTF-8
    (struct.pack("!H", 1000) + "bye \u00e9".encode(), 1000),  # valid: echoed
    (struct.pack("!H", 1011), 1011),
    (struct.pack("!H", 3000), 3000),
    (struct.pack("!H", 4999), 4999),
])
@pytest.mark.gen_test
async def test_close_frames_are_checked_and_a_valid_code_is_echoed(chat, payload, code):
    alice = await chat.connect("alice")
    write(alice, client_frame(CLOSE, payload))
    assert await alice.closed() == code


@pytest.mark.gen_test
async def test_the_frames_before_a_close_are_answered_before_it(chat):
    alice = await chat.connect("alice")
    write(alice, client_frame(TEXT, b"ping") + client_frame(PING, b"hb")
          + client_frame(CLOSE, struct.pack("!H", 1000)) + client_frame(TEXT, b"ping"))
    assert await alice.recv_raw() == "pong"
    assert await alice.closed() == 1000


@pytest.mark.gen_test
async def test_a_broken_frame_fails_with_1002_after_the_frames_before_it_are_answered(chat):
    alice = await chat.connect("alice")
    write(alice, client_frame(TEXT, b"ping") + client_frame(TEXT, b"ping", rsv=0x40))
    assert await alice.recv_raw() == "pong"
    assert await alice.closed() == 1002


@pytest.mark.gen_test
async def test_a_ping_flood_is_closed_with_4008_while_another_client_gets_its_pong(chat, metric):
    flooder, bob = await chat.connect("flooder"), await chat.connect("bob")
    write(flooder, b"".join(client_frame(PING, b"x" * 16) for _ in range(2000)))
    assert await flooder.closed() == 4008
    assert metric("imserver_terminations_total", reason="rate_limited") == 1
    bob.send("ping")
    assert await bob.recv_raw() == "pong"


@pytest.mark.gen_test
async def test_a_pong_flood_is_closed_with_4008(chat, metric):
    flooder = await chat.connect("flooder")
    write(flooder, b"".join(client_frame(0xA, b"") for _ in range(2000)))
    assert await flooder.closed() == 4008


@pytest.mark.gen_test
async def test_the_echo_endpoint_is_off_unless_configured(chat):
    with pytest.raises(HTTPClientError) as info:
        await websocket_connect(f"ws://{chat.host}/echo")
    assert info.value.code == 404


@pytest.mark.parametrize("config", [True], indirect=True)
@pytest.mark.gen_test
async def test_the_echo_endpoint_echoes_text_and_binary_without_a_login(config, chat):
    ws = await websocket_connect(f"ws://{chat.host}/echo")
    ws.write_message("héllo")
    ws.write_message(b"\x00\xff", binary=True)
    ws.write_message("ping")
    assert [await ws.read_message() for _ in range(3)] == ["héllo", b"\x00\xff", "ping"]
    ws.close()


def metric_value(host: str, name: str, **labels: str) -> float:
    """One sample from a server's /metrics."""
    with urllib.request.urlopen(f"http://{host}/metrics", timeout=10) as response:
        text = response.read().decode()
    want = name + ("{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}" if labels else "")
    for line in text.splitlines():
        if line.startswith(want + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def keep_talking(client: SyncClient) -> int:
    """Instead of answering the close: text pings, then reads until the server drops
    the connection. Returns how many pings went out."""
    sent = 0
    try:
        for _ in range(200):
            client.send_text("ping")
            sent += 1
        client.sock.settimeout(10)
        while client.sock.recv(65536):
            pass
    except OSError:
        pass
    return sent


def test_after_the_server_closes_nothing_more_is_handled_and_a_talking_peer_is_dropped(tmp_path):
    server = ServerProcess(tmp_path, {"admin": {"token": "admin-secret"},
                                      "heartbeat": {"ping_interval": 60, "ping_timeout": 120}})
    server.start()
    client: SyncClient | None = None
    try:
        client = SyncClient(server.host, f"/ws?token={login(server.host, 'alice')}")
        conn_id = json.loads(client.recv() or "{}")["conn"]
        request = urllib.request.Request(
            f"http://{server.host}/admin/api/clients/{conn_id}/disconnect", method="POST",
            data=b'{"reason": "go"}',
            headers={"Authorization": "Bearer admin-secret", "Content-Type": "application/json"})
        urllib.request.urlopen(request, timeout=10).close()
        assert client.recv() is None and client.close_code == 4003
        closed_at = time.monotonic()
        pings_before = metric_value(server.host, "imserver_messages_received_total", type="ping")
        sent = keep_talking(client)
        dropped_after = time.monotonic() - closed_at
        assert metric_value(server.host, "imserver_messages_received_total", type="ping") == pings_before
        # Dropped after a few frames, not at the end of the close handshake's 5 s.
        assert dropped_after < 4.0, (sent, dropped_after)
    finally:
        if client is not None:
            client.sock.close()
        server.stop()
