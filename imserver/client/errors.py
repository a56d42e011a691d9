"""The exceptions of the Python client.

    ClientError
    ├── ChatError       the server refused a frame for good (its error code and message)
    ├── ClientStopped   the client stopped (closed, 4001, 4003, gave up) before the
    │                   answer came; carries the StopReason, and the cid of an
    │                   unacknowledged message, which can be sent again with it
    ├── OutboxFull      too many messages wait for their ack
    └── LoginError      POST /api/login refused or failed
"""

from __future__ import annotations

from .events import StopReason


class ClientError(Exception):
    """Base of every error the client raises on purpose."""


class ChatError(ClientError):
    """The server answered a frame with an error that resending cannot mend."""

    def __init__(self, code: str, message: str, cid: str | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.cid = cid


class ClientStopped(ClientError):
    """The client stopped before an answer came.

    For a message, it may or may not have been stored: send it again with the same
    `cid` (say(..., cid=exc.cid)) after connect(), and the server stores it at most once.
    """

    def __init__(self, reason: StopReason, message: str = "", cid: str | None = None) -> None:
        super().__init__(f"client stopped ({reason.value}){': ' + message if message else ''}")
        self.reason = reason
        self.message = message
        self.cid = cid


class OutboxFull(ClientError):
    """`outbox_limit` messages wait for their ack already."""


class LoginError(ClientError):
    """A login failed: `status` is the HTTP status (None: no answer), `code` the server's error."""

    def __init__(self, status: int | None, code: str, message: str) -> None:
        super().__init__(f"login failed ({status}): {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
