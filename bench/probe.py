"""Chat delivery while a scenario runs: one message every 0.1 s between two clients."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from typing import Any

PROBE_ROOM = "bench-probe"


class Probe:
    """Two chat clients on one node, in a room of their own: one says a message every
    0.1 s, the other records how long each took to arrive (one clock)."""

    def __init__(self, token: Callable[[str], str], host: str) -> None:
        """`token(user)`: a token for the user, as the server takes it."""
        self.token = token
        self.host = host
        self.latencies: list[float] = []
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="probe", daemon=True)
        self.thread.start()
        self._task = asyncio.run_coroutine_threadsafe(self._talk(), self.loop)

    async def _talk(self) -> None:
        from tornado.websocket import websocket_connect

        async def joined(user: str) -> Any:
            ws = await websocket_connect(f"ws://{self.host}/ws?token={self.token(user)}")
            await ws.read_message()  # the welcome
            ws.write_message(json.dumps({"type": "join", "room": PROBE_ROOM}))
            while json.loads(await ws.read_message() or "{}").get("type") != "joined":
                pass
            return ws

        sender, receiver = await joined("probe-sender"), await joined("probe-receiver")

        async def receive() -> None:
            while (raw := await receiver.read_message()) is not None:
                frame = json.loads(raw)
                if frame.get("type") == "message" and frame.get("room") == PROBE_ROOM:
                    self.latencies.append(time.time() - float(frame["text"]))

        async def drain() -> None:  # the sender's acks and own copies: read (it answers pings) and drop
            while await sender.read_message() is not None:
                pass

        readers = [asyncio.ensure_future(receive()), asyncio.ensure_future(drain())]
        try:
            while True:
                say = {"type": "say", "room": PROBE_ROOM, "text": repr(time.time())}
                sender.write_message(json.dumps(say))
                await asyncio.sleep(0.1)
        finally:
            for reader in readers:
                reader.cancel()
            sender.close()
            receiver.close()

    def take(self) -> list[float]:
        """The latencies since the last take."""
        found, self.latencies = self.latencies, []
        return found

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self._task.cancel)
        time.sleep(0.2)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
