"""server.compression on: permessage-deflate negotiated, Tornado's own reader and
per-connection writes instead of push mode and prebuilt frames; the chat is the same."""

from __future__ import annotations

import pytest
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

from tests.conftest import Client, make_config


@pytest.fixture
def config(tmp_path):
    return make_config(tmp_path, server={"compression": True})


async def deflate_client(chat, name: str) -> Client:
    token = await chat.login(name)
    ws = await websocket_connect(HTTPRequest(f"ws://{chat.host}/ws?token={token}"),
                                 compression_options={})
    client = Client(ws)
    chat.clients.append(client)
    client.welcome = await client.expect("welcome")
    return client


@pytest.mark.gen_test(timeout=15)
async def test_chat_over_permessage_deflate(chat, app, metric):
    alice, bob = await deflate_client(chat, "alice"), await deflate_client(chat, "bob")
    assert alice.ws.protocol._compressor is not None  # the extension was agreed
    assert not app.runtime.registry.get(alice.welcome["conn"]).transport.prebuilt
    await alice.join("zip")
    await bob.join("zip")
    assert (await alice.expect("presence"))["joined"] == [chat.id("bob")]
    text = " ".join(["squeeze me"] * 200)  # compresses well: a real deflate round trip
    alice.send({"type": "say", "room": "zip", "text": text, "cid": "z1"})
    assert (await alice.expect("ack"))["cid"] == "z1"
    message = await bob.expect("message")
    assert message["text"] == text and message["room"] == "zip"
    bob.send("ping")
    assert await bob.recv_raw() == "pong"
    bob.send('{"type": "say", "room": "nowhere", "text": "x"}')
    assert (await bob.expect("error"))["code"] == "not_in_room"
    assert metric("imserver_messages_received_total", type="say") == 2
    await alice.nothing(app.runtime.config.heartbeat.ping_interval * 2)  # pings answered, no drop
    assert metric("imserver_heartbeat_rtt_seconds_count") >= 2
