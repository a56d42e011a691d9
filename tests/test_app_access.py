"""What the host application decides, in `jwt` mode, on one server and on two nodes:
a token refreshed on a live connection, the rooms a token's claim allows, and the
application's join hook (a real HTTP app beside the test: allowing, refusing, slow,
down), with its answers cached."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import jwt
import pytest
import tornado.web
from tornado.httpserver import HTTPServer
from tornado.testing import bind_unused_port

from tests.conftest import Client, make_config

CLUSTER_TOO = True

SECRET = "host-application-shared-secret-0123456789"
HOOK_TOKEN = "the-hook-token"


def token(sub: str, *, ttl: float = 60, **claims: Any) -> str:
    return jwt.encode({"sub": sub, "exp": int(time.time() + ttl), **claims}, SECRET,
                      algorithm="HS256")


class HookApp:
    """The application's join hook: `rules` room -> "allow" | "deny" | "slow" | "garbage"."""

    def __init__(self) -> None:
        self.rules: dict[str, str] = {}
        self.calls: list[dict[str, Any]] = []
        self.bad_auth = 0
        hook = self

        class Handler(tornado.web.RequestHandler):
            async def post(self) -> None:
                if self.request.headers.get("Authorization") != f"Bearer {HOOK_TOKEN}":
                    hook.bad_auth += 1
                body = json.loads(self.request.body)
                hook.calls.append(body)
                rule = hook.rules.get(body["room"], "deny")
                if rule == "slow":
                    await asyncio.sleep(3)
                if rule == "garbage":
                    self.write("<html>oops</html>")
                    return
                self.write({"allow": rule == "allow", "reason": "members of the team only"})

        sock, self.port = bind_unused_port()
        self.server = HTTPServer(tornado.web.Application([("/can-join", Handler)]))
        self.server.add_sockets([sock])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/can-join"


@pytest.fixture
def hook(io_loop):
    app = HookApp()
    yield app
    app.server.stop()


@pytest.fixture
def config(tmp_path, hook, request):
    auth: dict[str, Any] = {"mode": "jwt", "jwt": {"secret": SECRET, "rooms_claim": "rooms"}}
    if "with_hook" in request.keywords:
        auth["jwt"]["rooms_claim"] = ""
        auth["join_hook"] = {"url": hook.url, "token": HOOK_TOKEN, "timeout_seconds": 0.5,
                             "cache_seconds": 30}
    return make_config(tmp_path, auth=auth)


async def refused(client: Client, frame: dict[str, Any]) -> dict[str, Any]:
    client.send(frame)
    error = await client.expect("error")
    return error


@pytest.mark.gen_test(timeout=30)
async def test_a_refreshed_token_keeps_the_connection_past_the_first_ones_expiry(chat):
    first_expiry = int(time.time() + 2)
    client = await chat.connect(token=jwt.encode({"sub": "ann", "exp": first_expiry}, SECRET))
    assert client.welcome["expires"] == first_expiry
    other = await chat.connect(token=token("bob"))
    assert (await refused(client, {"type": "refresh", "token": token("bob")}))["code"] == "forbidden"
    assert (await refused(client, {"type": "refresh", "token": "garbage"}))["code"] == "bad_token"
    expired = token("ann", ttl=-3600)
    assert (await refused(client, {"type": "refresh", "token": expired}))["code"] == "bad_token"
    fresh = token("ann", ttl=3600)
    client.send({"type": "refresh", "token": fresh})
    refreshed = await client.expect("refreshed")
    assert refreshed["expires"] == jwt.decode(fresh, SECRET, algorithms=["HS256"])["exp"]
    await asyncio.sleep(max(0.0, first_expiry - time.time()) + 1.0)  # past the first expiry
    client.send("ping")
    assert await client.recv_raw() == "pong"  # still open
    unrefreshed = await chat.connect(token=jwt.encode({"sub": "cy", "exp": int(time.time() + 1)}, SECRET))
    assert await unrefreshed.closed(timeout=5) == 4001  # as before, without a refresh
    other.close()


@pytest.mark.gen_test(timeout=30)
async def test_the_rooms_claim_decides_which_rooms_a_token_joins_and_reads(chat):
    ann = await chat.connect(token=token("ann", rooms=["general", "team-*"]))
    await ann.join("general")
    await ann.join("team-blue")
    error = await refused(ann, {"type": "join", "room": "secret", "since": 0})
    assert error["code"] == "forbidden" and "secret" in error["message"]
    assert (await refused(ann, {"type": "history", "room": "secret"}))["code"] == "forbidden"
    none = await chat.connect(token=token("bob"))  # the claim is configured: without it, no room
    assert (await refused(none, {"type": "join", "room": "general"}))["code"] == "forbidden"
    everything = await chat.connect(token=token("cy", rooms=["*"]))
    await everything.join("secret")
    # A refresh brings the new token's claim.
    ann.send({"type": "refresh", "token": token("ann", ttl=600, rooms=["secret"])})
    await ann.expect("refreshed")
    await ann.join("secret")
    for bad in ("general", ["bad room"], [1], ["x"] * 1001):
        assert await chat.refused(f"?token={token('dan', rooms=bad)}") == 401


@pytest.mark.gen_test(timeout=30)
@pytest.mark.with_hook
async def test_the_join_hook_allows_refuses_and_fails_closed(chat, hook):
    hook.rules = {"team": "allow", "slow": "slow", "garbage": "garbage"}
    ann = await chat.connect(token=token("ann", name="Ann"))
    joined = await ann.join("team", since=0)
    assert joined["room"] == "team"
    assert hook.calls[-1] == {"user": "ann", "name": "Ann", "room": "team"} and hook.bad_auth == 0
    error = await refused(ann, {"type": "join", "room": "board"})
    assert (error["code"], error["message"]) == (
        "forbidden", "the application does not let you into room board: members of the team only")
    assert (await refused(ann, {"type": "history", "room": "board"}))["code"] == "forbidden"
    assert (await refused(ann, {"type": "say", "room": "board", "text": "x"}))["code"] == "not_in_room"
    started = time.monotonic()
    assert (await refused(ann, {"type": "join", "room": "slow"}))["code"] == "unavailable"
    assert time.monotonic() - started < 2.5  # the timeout, not the application's 3 s
    assert (await refused(ann, {"type": "join", "room": "garbage"}))["code"] == "unavailable"
    calls = len(hook.calls)
    ann.send({"type": "leave", "room": "team"})
    await ann.expect("left")
    await ann.join("team")  # cached on this node
    assert len(hook.calls) == calls
    hook.server.stop()  # the application is down: refused, not let in
    for room in ("down-1", "down-2"):
        assert (await refused(ann, {"type": "join", "room": room}))["code"] == "unavailable"
