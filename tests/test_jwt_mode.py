"""`jwt` mode: tokens from the host application, no guest login."""

from __future__ import annotations

import json
import time

import jwt
import pytest
from tornado.httpclient import HTTPClientError

from tests.conftest import make_config

# The chat tests run against one server and against two nodes of a cluster.
CLUSTER_TOO = True

SECRET = "host-application-shared-secret-0123456789"


def fullwidth(text: str) -> str:
    """The same letters in their fullwidth forms (NFKC folds them back)."""
    return "".join(chr(ord(c) + 0xFEE0) if c.isascii() and c.isalpha() else c for c in text)


@pytest.fixture
def config(tmp_path):
    return make_config(tmp_path, auth={"mode": "jwt", "jwt": {
        "secret": SECRET, "issuer": "https://app.example", "audience": "chat"}})


def host_token(sub: str, name: str | None = None, **overrides) -> str:
    claims = {"sub": sub, "iss": "https://app.example", "aud": "chat", "exp": int(time.time()) + 60}
    if name:
        claims["name"] = name
    claims.update(overrides)
    return jwt.encode(claims, SECRET, algorithm="HS256")


@pytest.mark.gen_test
async def test_guest_login_is_disabled(chat):
    with pytest.raises(HTTPClientError) as info:
        await chat.login("alice")
    assert info.value.code == 403
    assert json.loads(info.value.response.body)["error"] == "login_disabled"


@pytest.mark.gen_test
async def test_host_tokens_connect_and_chat(chat):
    ann = await chat.connect(token=host_token("auth0|1", "Ann Lee"))
    assert ann.welcome["user"] == {"id": "auth0|1", "name": "Ann Lee"}
    ben = await chat.connect(token=host_token("auth0|2"))
    ann.send({"type": "dm", "to": "auth0|2", "text": "hello", "cid": "1"})
    await ann.expect("ack")
    assert (await ben.expect("message"))["from"] == "auth0|1"


@pytest.mark.gen_test
async def test_bad_host_tokens_are_refused(chat):
    for token in (host_token("a", exp=int(time.time()) - 3600), host_token("a", iss="https://evil"),
                  host_token("a", aud="other"), jwt.encode({"sub": "a"}, SECRET)):
        assert await chat.refused(f"?token={token}") == 401


@pytest.mark.gen_test(timeout=60)
async def test_connection_is_closed_with_4001_when_its_token_expires(chat, metric):
    # The server's leeway (30 s) admits the token even if the connect itself is slow;
    # the connection is closed once the token's own expiry has passed, never before.
    expires = int(time.time()) + 2
    soon = await chat.connect(token=host_token("short", exp=expires))
    later = await chat.connect(token=host_token("long"))
    assert await soon.closed(timeout=45) == 4001
    assert time.time() >= expires
    assert soon.ws.close_reason == "token expired"
    await later.nothing(0.1)
    later.send("ping")
    assert await later.recv_raw() == "pong"
    assert metric("imserver_terminations_total", reason="token_expired") == 1


@pytest.mark.gen_test
@pytest.mark.parametrize("name", ["\ud800", "Ann\ud83d", "a\x00b", "tab\there", "\u202e", " ", "x" * 65])
async def test_host_name_claims_that_are_not_names_fall_back_to_the_sub(chat, name):
    odd = await chat.connect(token=host_token("auth0|7", name))
    assert odd.welcome["user"] == {"id": "auth0|7", "name": "auth0|7"}
    other = await chat.connect(token=host_token("auth0|8", "Ben"))
    await odd.join("lobby")
    await other.join("lobby")
    await odd.expect("presence")
    odd.send({"type": "say", "room": "lobby", "text": "stored", "cid": "s1"})
    ack = await odd.expect("ack")
    msg = await other.expect("message")
    assert msg["id"] == ack["id"] and msg["from"] == "auth0|7" and msg["name"] == "auth0|7"
    other.send({"type": "dm", "to": "auth0|7", "text": "back", "cid": "d1"})
    await other.expect("ack")
    assert (await odd.expect("message"))["name"] == "Ben"


@pytest.mark.gen_test
async def test_host_names_are_nfkc_normalised(chat):
    client = await chat.connect(token=host_token("auth0|5", fullwidth("Ann Lee")))
    assert client.welcome["user"] == {"id": "auth0|5", "name": "Ann Lee"}


@pytest.mark.gen_test
async def test_logout_leaves_host_tokens_alone(chat):
    token = host_token("auth0|3", jti="host-jti-1")
    client = await chat.connect(token=token)
    response = await chat.http.fetch(f"{chat.url}/api/logout", method="POST", body=b"",
                                     headers={"Authorization": f"Bearer {token}"})
    assert response.code == 204
    client.send("ping")
    assert await client.recv_raw() == "pong"
    again = await chat.connect(token=token)
    assert again.welcome["user"]["id"] == "auth0|3"
