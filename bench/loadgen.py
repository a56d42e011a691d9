"""Load-generator side helpers: log in and open chat connections."""

from __future__ import annotations

import json

from tornado.httpclient import AsyncHTTPClient
from tornado.websocket import WebSocketClientConnection, websocket_connect


async def login(host: str, name: str) -> str:
    return (await login_user(host, name))[0]


async def login_user(host: str, name: str) -> tuple[str, str]:
    """A guest token and the user id it stands for (opaque: not the name)."""
    response = await AsyncHTTPClient().fetch(
        f"http://{host}/api/login", method="POST", body=json.dumps({"name": name}),
        headers={"Content-Type": "application/json"})
    body = json.loads(response.body)
    token: str = body["token"]
    user_id: str = body["user"]["id"]
    return token, user_id


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
