"""Load-generator side helpers: log in and open chat connections."""

from __future__ import annotations

import json

from tornado.httpclient import AsyncHTTPClient
from tornado.websocket import WebSocketClientConnection, websocket_connect


async def login(host: str, name: str) -> str:
    response = await AsyncHTTPClient().fetch(
        f"http://{host}/api/login", method="POST", body=json.dumps({"name": name}),
        headers={"Content-Type": "application/json"})
    token: str = json.loads(response.body)["token"]
    return token


async def connect(host: str, name: str) -> WebSocketClientConnection:
    """A connection that has had its welcome frame."""
    ws = await websocket_connect(f"ws://{host}/ws?token={await login(host, name)}",
                                 max_message_size=64 * 1024 * 1024)
    welcome = json.loads(await ws.read_message() or "{}")
    assert welcome.get("type") == "welcome", welcome
    return ws


async def join(ws: WebSocketClientConnection, room: str) -> None:
    ws.write_message(json.dumps({"type": "join", "room": room}))
    while True:
        frame = json.loads(await ws.read_message() or "{}")
        if frame.get("type") == "joined":
            return
