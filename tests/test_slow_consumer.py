"""A client that stops reading is dropped at the outbound bound; the others get everything."""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.conftest import make_config
from tests.test_heartbeat import open_dead_peer


@pytest.fixture
def config(tmp_path):
    # A long heartbeat: the stalled client must be dropped for not reading, not for silence.
    return make_config(tmp_path, limits={"max_outbound_buffer_bytes": 65536, "max_text_chars": 10_000},
                       heartbeat={"ping_interval": 10, "ping_timeout": 30})


@pytest.mark.gen_test(timeout=20)
async def test_slow_consumer_is_dropped_at_the_bound_and_others_get_everything(chat, app, metric):
    sender, reader = await chat.connect("sender"), await chat.connect("reader")
    stalled = await open_dead_peer(chat.host, await chat.login("stalled"))
    await stalled.write(_masked_text(json.dumps({"type": "join", "room": "busy"})))
    await sender.join("busy")
    await reader.join("busy")
    received: list[str] = []

    async def read_all() -> None:  # the reader keeps reading: it must never be dropped
        while True:
            frame = await reader.recv(30)
            if frame["type"] == "message":
                received.append(frame["cid"])

    reading = asyncio.ensure_future(read_all())
    text = "y" * 8000
    sent = 0
    while metric("imserver_connections_closed_total", reason="slow_consumer") == 0:
        assert sent < 3000, "the stalled client was never dropped"
        sender.send({"type": "say", "room": "busy", "text": text, "cid": str(sent)})
        while (await sender.recv())["type"] != "ack":
            pass  # presence of the others
        sent += 1
        if sent % 50 == 0:
            await asyncio.sleep(0.01)
    # The bound held: 64 KiB queued plus what the kernel buffers took.
    assert sent * 8000 > 65536
    assert metric("imserver_terminations_total", reason="slow_consumer") == 1
    for _ in range(500):
        if len(received) >= sent:
            break
        await asyncio.sleep(0.01)
    reading.cancel()
    assert received == [str(i) for i in range(sent)]
    assert metric("imserver_connections") == 2  # sender and reader are still there
    stalled.close()


def _masked_text(text: str) -> bytes:
    """A client text frame (clients must mask; a zero mask keeps the bytes as they are)."""
    payload = text.encode()
    assert len(payload) < 126
    return bytes([0x81, 0x80 | len(payload)]) + b"\x00\x00\x00\x00" + payload
