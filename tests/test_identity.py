"""Who a guest is: an opaque user id bound to a display name that nobody else can claim
while one of its tokens is valid; logout revokes a token for good (across restarts)."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError

from imserver.testing import ServerProcess, SyncClient
from tests.conftest import make_config

# The chat tests run against one server and against two nodes of a cluster.
CLUSTER_TOO = True


def fullwidth(text: str) -> str:
    """The same letters in their fullwidth forms (NFKC folds them back)."""
    return "".join(chr(ord(c) + 0xFEE0) if c.isascii() and c.isalpha() else c for c in text)


async def login(chat: Any, name: Any,
                headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any], str]:
    """POST /api/login: (status, body, session cookie "name=value" or "")."""
    response = await chat.http.fetch(
        f"{chat.url}/api/login", method="POST", body=json.dumps({"name": name}),
        headers={"Content-Type": "application/json", **(headers or {})}, raise_error=False)
    cookie = response.headers.get("Set-Cookie", "").split(";")[0]
    return response.code, json.loads(response.body or b"{}"), cookie


async def logout(chat: Any, headers: dict[str, str]) -> int:
    response = await chat.http.fetch(f"{chat.url}/api/logout", method="POST", body=b"",
                                     headers=headers, raise_error=False)
    return int(response.code)


async def me(chat: Any, headers: dict[str, str]) -> int:
    response = await chat.http.fetch(f"{chat.url}/api/me", headers=headers, raise_error=False)
    return int(response.code)


async def dms_of(client: Any, other: str) -> tuple[list[Any], list[Any]]:
    """(dm_sync messages, history `with` other) as seen by `client`."""
    client.send({"type": "dm_sync"})
    sync = (await client.expect("dm_sync"))["messages"]
    client.send({"type": "history", "with": other})
    hist = (await client.expect("history"))["messages"]
    return sync, hist


@pytest.mark.gen_test
async def test_guest_ids_are_opaque_and_bound_to_the_name(chat):
    status, body, _ = await login(chat, "alice")
    assert status == 200
    user = body["user"]
    assert user["name"] == "alice" and user["id"] != "alice" and user["id"].startswith("g:")
    client = await chat.connect(token=body["token"])
    assert client.welcome["user"] == user


@pytest.mark.gen_test
async def test_impostor_of_a_live_user_gets_409_and_cannot_read_its_dms(chat):
    alice, bob = await chat.connect("alice"), await chat.connect("bob")
    bob.send({"type": "dm", "to": chat.id("alice"), "text": "secret", "cid": "s1"})
    await bob.expect("ack")
    assert (await alice.expect("message"))["text"] == "secret"
    for name in ("alice", "Alice", "ALICE", fullwidth("alice")):
        status, body, cookie = await login(chat, name)
        assert status == 409, name
        assert body["error"] == "name_taken" and "alice" in body["message"].lower()
        assert "token" not in body and not cookie
    # someone else's cookie or token does not open alice's name either
    for headers in ({"Authorization": f"Bearer {chat.tokens['bob']}"},
                    {"Authorization": "Bearer garbage"}, {"Cookie": "imserver_session=forged"}):
        assert (await login(chat, "alice", headers))[0] == 409
    # the only alice that can read the DM is alice
    _, body, _ = await login(chat, "mallory")
    mallory = await chat.connect(token=body["token"])
    sync, hist = await dms_of(mallory, chat.id("bob"))
    assert sync == [] and hist == []


@pytest.mark.gen_test
async def test_names_compare_after_nfkc_and_case_folding(chat):
    status, body, _ = await login(chat, "Alice")
    assert status == 200 and body["user"]["name"] == "Alice"
    assert (await login(chat, "alice"))[0] == 409
    assert (await login(chat, fullwidth("alice")))[0] == 409
    # what the user typed is kept, after NFKC
    status, body, _ = await login(chat, fullwidth("carol"))
    assert status == 200 and body["user"]["name"] == "carol"
    assert (await login(chat, "CAROL"))[0] == 409


@pytest.mark.gen_test
@pytest.mark.parametrize("name", ["\ud800", "a\x00b", "x" * 10_000, "ﷺ", ["alice"], None, "g:abc"])
async def test_hostile_names_are_refused_400(chat, name):
    status, body, _ = await login(chat, name)
    assert status == 400 and body["error"] == "bad_name"


@pytest.mark.gen_test
async def test_holder_logging_in_again_keeps_its_id(chat):
    status, first, cookie = await login(chat, "alice")
    assert status == 200
    status, again, cookie2 = await login(chat, "alice", {"Cookie": cookie})
    assert status == 200 and again["user"] == first["user"] and again["token"] != first["token"]
    assert cookie2
    status, third, _ = await login(chat, "ALICE", {"Authorization": f"Bearer {again['token']}"})
    assert status == 200 and third["user"]["id"] == first["user"]["id"]
    for token in (first["token"], again["token"], third["token"]):  # all still valid
        client = await chat.connect(token=token)
        assert client.welcome["user"]["id"] == first["user"]["id"]


@pytest.mark.gen_test
async def test_logout_revokes_the_token_closes_its_sockets_and_frees_the_name(chat, metric):
    bob = await chat.connect("bob")
    status, first, cookie = await login(chat, "alice")
    old_id = first["user"]["id"]
    alice = await chat.connect(token="", headers={"Cookie": cookie})
    bob.send({"type": "dm", "to": old_id, "text": "for alice only", "cid": "p1"})
    await bob.expect("ack")
    await alice.expect("message")
    assert await logout(chat, {"Cookie": cookie}) == 204
    assert await alice.closed() == 4001
    assert await me(chat, {"Cookie": cookie}) == 401
    assert await chat.refused(f"?token={first['token']}") == 401
    assert await chat.refused("", headers={"Cookie": cookie}) == 401
    # the name is free again, but the new alice is someone else
    status, body, _ = await login(chat, "alice")
    assert status == 200 and body["user"]["id"] != old_id
    new_alice = await chat.connect(token=body["token"])
    sync, hist = await dms_of(new_alice, chat.id("bob"))
    assert sync == [] and hist == []
    assert await logout(chat, {"Cookie": cookie}) == 204  # again: nothing to do, no error


@pytest.mark.gen_test
async def test_logout_by_bearer_closes_only_the_sockets_of_that_token(chat):
    _, first, _ = await login(chat, "alice")
    _, second, _ = await login(chat, "alice", {"Authorization": f"Bearer {first['token']}"})
    one = await chat.connect(token=first["token"])
    two = await chat.connect(token=second["token"])
    assert await logout(chat, {"Authorization": f"Bearer {first['token']}"}) == 204
    assert await one.closed() == 4001
    two.send("ping")
    assert await two.recv_raw() == "pong"
    # the second token still holds the name
    assert (await login(chat, "alice"))[0] == 409
    assert await me(chat, {"Authorization": f"Bearer {second['token']}"}) == 200
    assert await logout(chat, {"Authorization": f"Bearer {second['token']}"}) == 204
    assert await two.closed() == 4001
    assert (await login(chat, "alice"))[0] == 200


@pytest.mark.gen_test
async def test_logout_without_a_session_is_harmless(chat):
    for headers in ({}, {"Authorization": "Bearer nonsense"}, {"Cookie": "imserver_session=x"},
                    {"Authorization": "Basic eDp5"}):
        assert await logout(chat, headers) == 204


@pytest.fixture
def config(tmp_path, request):
    ttl = getattr(request, "param", None)
    return make_config(tmp_path, auth={"token_ttl_seconds": ttl} if ttl else {})


@pytest.mark.gen_test(timeout=20)
@pytest.mark.parametrize("config", [2], indirect=True)
async def test_an_expired_name_goes_to_a_new_id_that_sees_none_of_the_old_dms(chat, config):
    _, first, _ = await login(chat, "alice")
    old_id = first["user"]["id"]
    alice = await chat.connect(token=first["token"])
    bob_token = (await login(chat, "bob"))[1]["token"]
    bob = await chat.connect(token=bob_token)
    bob.send({"type": "dm", "to": "alice", "text": "before expiry", "cid": "e1"})  # by name
    await bob.expect("ack")
    assert (await alice.expect("message"))["to"] == old_id
    deadline = time.monotonic() + 10
    while True:
        status, body, _ = await login(chat, "alice")
        if status == 200:
            break
        assert status == 409 and time.monotonic() < deadline
        await asyncio.sleep(0.1)
    assert body["user"]["id"] != old_id
    new_alice = await chat.connect(token=body["token"])
    sync, _ = await dms_of(new_alice, "bob")
    assert sync == []
    new_alice.send({"type": "history", "with": old_id})
    assert (await new_alice.expect("history"))["messages"] == []


@pytest.mark.gen_test
async def test_dm_and_history_accept_a_claimed_name(chat):
    alice, bob = await chat.connect("alice"), await chat.connect("bob")
    alice.send({"type": "dm", "to": "Bob", "text": "by name", "cid": "n1"})
    ack = await alice.expect("ack")
    msg = await bob.expect("message")
    assert msg["from"] == chat.id("alice") and msg["to"] == chat.id("bob")
    assert msg["name"] == "alice" and msg["id"] == ack["id"]
    bob.send({"type": "history", "with": "alice"})
    hist = await bob.expect("history")
    assert hist["with"] == "alice" and [m["text"] for m in hist["messages"]] == ["by name"]
    assert hist["messages"][0]["name"] == "alice"
    alice.send({"type": "dm", "to": "nobody", "text": "?", "cid": "n2"})
    assert (await alice.expect("error"))["code"] == "unknown_user"


@pytest.mark.gen_test
async def test_room_frames_carry_display_names(chat):
    alice, bob = await chat.connect("alice"), await chat.connect("bob")
    joined = await alice.join("names")
    assert joined["members"] == [chat.id("alice")]
    assert joined["names"] == {chat.id("alice"): "alice"}
    joined = await bob.join("names")
    assert joined["names"] == {chat.id("alice"): "alice", chat.id("bob"): "bob"}
    presence = await alice.expect("presence")
    assert presence["joined"] == [chat.id("bob")] and presence["names"] == {chat.id("bob"): "bob"}
    bob.send({"type": "say", "room": "names", "text": "hi", "cid": "r1"})
    await bob.expect("ack")
    msg = await alice.expect("message")
    assert msg["from"] == chat.id("bob") and msg["name"] == "bob"
    alice.send({"type": "history", "room": "names"})
    assert (await alice.expect("history"))["messages"][0]["name"] == "bob"


def _post(host: str, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    request = urllib.request.Request(f"http://{host}{path}", data=body, headers=headers,
                                     method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _login(host: str, name: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    status, body = _post(host, "/api/login", json.dumps({"name": name}).encode(),
                         {"Content-Type": "application/json", **(headers or {})})
    return status, json.loads(body)


def test_revocations_and_name_claims_survive_a_restart(tmp_path):
    server = ServerProcess(tmp_path).start()
    try:
        _, alice = _login(server.host, "alice")
        _, bob = _login(server.host, "bob")
        bearer = {"Authorization": f"Bearer {alice['token']}"}
        assert _post(server.host, "/api/logout", b"", bearer)[0] == 204
        server.stop()
        server.start()
        with pytest.raises(ConnectionRefusedError, match="401"):
            SyncClient(server.host, f"/ws?token={alice['token']}")
        # bob's claim is kept: nobody else gets the name, bob keeps its id
        assert _login(server.host, "BOB")[0] == 409
        status, again = _login(server.host, "bob", {"Authorization": f"Bearer {bob['token']}"})
        assert status == 200 and again["user"] == bob["user"]
        client = SyncClient(server.host, f"/ws?token={bob['token']}")
        assert client.recv_json()["user"] == bob["user"]
        client.close()
        # alice's name was freed by the logout: a new alice is a new id
        status, new_alice = _login(server.host, "alice")
        assert status == 200 and new_alice["user"]["id"] != alice["user"]["id"]
    finally:
        server.stop()
    assert "Traceback" not in server.output()


@pytest.mark.gen_test
async def test_wrong_kind_of_credentials_are_refused_not_crashed(chat):
    _, body, _ = await login(chat, "alice")
    status, _, _ = await login(chat, "alice", {"Authorization": "Bearer " + "x" * 5000})
    assert status == 409
    with pytest.raises(HTTPClientError):
        await chat.http.fetch(f"{chat.url}/api/me", headers={"Authorization": "Bearer \u00ff"})
    assert body["token"]


def test_a_server_that_keeps_nothing_forgets_its_guests_at_a_restart(tmp_path):
    """With storage.path ':memory:' no claim survives a restart, so neither may the tokens
    that held them: a name would otherwise be claimable while its holder's token works."""
    server = ServerProcess(tmp_path, {"storage": {"path": ":memory:"}}).start()
    try:
        _, alice = _login(server.host, "alice")
        server.stop()
        server.start()
        with pytest.raises(ConnectionRefusedError, match="401"):
            SyncClient(server.host, f"/ws?token={alice['token']}")
        status, again = _login(server.host, "alice", {"Authorization": f"Bearer {alice['token']}"})
        assert status == 200 and again["user"]["id"] != alice["user"]["id"]
    finally:
        server.stop()
