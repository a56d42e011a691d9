"""imserver.client: an asyncio client of imserver for bots and backends.

    from imserver.client import ChatClient, Message, login

    session = await login("http://127.0.0.1:8080", "bot")      # or a JWT from your app
    async with ChatClient("ws://127.0.0.1:8080/ws", token=session.token) as client:
        await client.join("general")
        await client.say("general", "hello")                    # returns with the ack
        async for event in client:
            if isinstance(event, Message):
                print(event.room, event.name, event.text)

It keeps the browser client's guarantees (static/js/connection.js): jittered
backoff that honours `retry_after`, messages resent with the same cid until
acked (stored once), recovery with `since` and `dm_sync`, each message handed
on once and in order, a stop on 4001 and 4003. It imports nothing of the
server but the protocol's constants (imserver.core.protocol).
"""

from .backoff import Policy, backoff_ceiling, backoff_delay
from .connection import ChatClient
from .errors import ChatError, ClientError, ClientStopped, LoginError, OutboxFull
from .events import Ack, Cause, Event, Frame, Gap, Joined, Message, State, StateChange, StopReason
from .login import Session, login

__all__ = [
    "Ack", "Cause", "ChatClient", "ChatError", "ClientError", "ClientStopped", "Event", "Frame",
    "Gap", "Joined", "LoginError", "Message", "OutboxFull", "Policy", "Session", "State",
    "StateChange", "StopReason", "backoff_ceiling", "backoff_delay", "login",
]
