"""The exceptions imserver raises on purpose.

    ImserverError
    ├── ConfigError        config.yaml is missing, malformed or out of range
    ├── ListenError        the server cannot listen on its address and port
    ├── StoreError         the message database cannot be opened or used
    │   └── UnknownUser    a direct message names a user never seen
    ├── Refused            the store refuses an operation for what it holds
                           (a private room, someone else's message, a mute);
                           carries the protocol error code sent back
    ├── AuthError          a token or login is not acceptable
    ├── NameTaken          a guest name is held by another user
    └── ProtocolError      a client frame breaks the wire protocol (carries
                           the protocol error code sent back to the client)
"""

from __future__ import annotations


class ImserverError(Exception):
    """Base of every error imserver raises on purpose."""


class ConfigError(ImserverError):
    """A configuration value is missing, malformed or out of range."""


class ListenError(ImserverError):
    """The server cannot listen on the address and port it was given."""


class StoreError(ImserverError):
    """The message store cannot be opened or used."""


class UnknownUser(StoreError):
    """A direct message is addressed to a user the server has never seen."""


class Refused(ImserverError):
    """The store refuses an operation for what it holds, not for a failure: a private
    room, a message that is not the sender's, a mute. `code` is the wire error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class AuthError(ImserverError):
    """A token or a login name is not acceptable."""


class NameTaken(ImserverError):
    """A guest name is held by another user: one of whose tokens is valid."""


class ProtocolError(ImserverError):
    """A client frame breaks the protocol; `code` is the wire error code."""

    def __init__(self, code: str, message: str, cid: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.cid = cid
