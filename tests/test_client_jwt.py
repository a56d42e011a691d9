"""imserver.client in `jwt` mode: a token refreshed on the open connection before it
expires, and a fresh one fetched to come back after a 4001."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import jwt
import pytest

from imserver.client import Cause, ChatClient, ClientStopped, Policy, State, StopReason
from tests.client_events import Seen
from tests.conftest import ChatServer, make_config

SECRET = "host-application-shared-secret-for-the-client"
FAST = Policy(base=0.05, cap=0.2, connect_timeout=3)


def token(sub: str, ttl: float) -> str:
    return jwt.encode({"sub": sub, "exp": int(time.time() + ttl)}, SECRET, algorithm="HS256")


@pytest.fixture
def config(tmp_path: Path) -> Any:
    return make_config(tmp_path, auth={"mode": "jwt", "jwt": {"secret": SECRET}})


class Issuer:
    """The host application's token source: `tokens` in turn, then fresh ones."""

    def __init__(self, *tokens: str) -> None:
        self.tokens = list(tokens)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        return self.tokens.pop(0) if self.tokens else token("ann", 3600)


@pytest.mark.gen_test(timeout=20)
async def test_a_token_refreshed_in_time_keeps_the_one_connection_past_its_expiry(chat: ChatServer):
    seen = Seen()
    issuer = Issuer()
    first = token("ann", 4)  # refreshed after four fifths of its 3-4 s: room for a busy loop
    client = ChatClient(f"ws://{chat.host}/ws", token=first, refresh=issuer, policy=FAST,
                        on_event=seen)
    try:
        await client.connect()
        await client.join("lobby")
        (welcome,) = seen.frames("welcome")
        await seen.until(lambda: seen.frames("refreshed"))
        await asyncio.sleep(max(0.0, welcome.data["expires"] - time.time()) + 1.0)
        assert client.state is State.OPEN and seen.states(State.WAITING) == []
        assert issuer.calls == 1 and seen.frames("error") == []
        assert client.token != first  # a reconnect would bring the fresh one
        assert (await client.say("lobby", "still here")).id > 0
    finally:
        await client.close()


@pytest.mark.gen_test(timeout=20)
async def test_after_a_4001_it_comes_back_with_a_fresh_token_and_stops_without_one(chat: ChatServer):
    seen = Seen()
    issuer = Issuer("garbage")  # the refresh on the open connection is refused: bad_token
    client = ChatClient(f"ws://{chat.host}/ws", token=token("ann", 2), refresh=issuer,
                        policy=FAST, on_event=seen)
    try:
        await client.connect()
        await client.join("lobby")
        await seen.until(lambda: len(seen.states(State.OPEN)) == 2)
        assert [f.data["code"] for f in seen.frames("error")] == ["bad_token"]
        assert [s.cause for s in seen.states(State.WAITING)] == [Cause.CLOSE]  # the 4001
        assert issuer.calls == 2 and client.rooms == ["lobby"] and client.token != "garbage"
        assert (await client.say("lobby", "back")).id > 0
    finally:
        await client.close()

    # A source that has nothing newer: the client stops, as without one.
    expired = token("bob", -60)
    stale = ChatClient(f"ws://{chat.host}/ws", token=expired, policy=FAST,
                       refresh=Issuer(expired))
    with pytest.raises(ClientStopped) as info:
        await stale.connect()
    assert info.value.reason is StopReason.AUTH
    await stale.close()
