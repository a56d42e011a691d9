"""An echo WebSocket for conformance tests (Autobahn|Testsuite): the chat socket's own
read, write and close path, with an echo for a handler. Mounted at /echo only when
`server.echo_endpoint` is set; it asks for no login."""

from __future__ import annotations

from typing import Any

from tornado.websocket import WebSocketHandler

from ..core.registry import Connection, User
from .chat import ChatSocket

ECHO_USER = User("echo", "echo")


class EchoSocket(ChatSocket):
    """Sends every text and binary message back as it came, through the chat socket's
    writer; the rate limit, the close handling and the limits on frames are the same."""

    async def get(self, *args: Any, **kwargs: Any) -> None:
        self.user, self.token_expires = ECHO_USER, float("inf")
        await WebSocketHandler.get(self, *args, **kwargs)

    def welcome(self, conn: Connection) -> None:
        pass  # an echo peer expects nothing it did not send

    def on_message(self, message: str | bytes) -> None:
        conn = self.conn
        if conn is None or not self._admit(conn, message):
            return
        if self.output is not None:
            self.output.send_message(message)
