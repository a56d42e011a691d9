"""Bans on one server, against real sockets and a real SQLite file: a ban closes the
user's connections and refuses their upgrades and guest logins until it is lifted or
expires, and it survives a restart. (Two nodes: tests/test_admin_cluster.py.)"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time
from typing import Any

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from tornado.websocket import websocket_connect

from imserver.http import admin as admin_module
from imserver.http.bans import ban_from_message
from imserver.testing import ServerProcess
from tests.chatters import JWT_SETTINGS, app_token
from tests.conftest import make_config
from tests.core import run
from tests.test_admin import BEARER, TOKEN, api
from tests.waiting import until


@pytest.fixture
def config(tmp_path):
    return make_config(tmp_path, admin={"token": TOKEN})


async def upgrade(host: str, token: str) -> tuple[int, dict[str, Any]]:
    """An upgrade's answer when it is refused: status and JSON body (101: not refused)."""
    headers = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
               "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode()}
    try:
        await AsyncHTTPClient().fetch(f"http://{host}/ws?token={token}", headers=headers,
                                      request_timeout=5)
    except HTTPClientError as exc:
        if exc.code == 599:
            return 101, {}  # accepted: the plain HTTP client cannot speak WebSocket
        assert exc.response is not None
        return exc.code, json.loads(exc.response.body)
    raise AssertionError("an upgrade answered 200")



@pytest.mark.gen_test(timeout=30)
async def test_ban_closes_refuses_lists_and_lift_lets_in(chat, metric):
    alice1, alice2, bob = (await chat.connect("alice"), await chat.connect("alice"),
                           await chat.connect("bob"))
    token = chat.tokens["alice"]
    answer = json.loads((await api(chat, "POST", "/admin/api/users/ALICE/ban", headers=BEARER,
                                   body={"reason": "spamming", "seconds": 3600})).body)
    assert answer["user"] == chat.id("alice") and answer["reason"] == "spamming"
    assert sorted(answer["disconnected"]) == sorted([alice1.welcome["conn"], alice2.welcome["conn"]])
    assert answer["until"] == pytest.approx(time.time() + 3600, abs=5)
    for client in (alice1, alice2):
        assert await client.closed() == 4003 and client.ws.close_reason == "spamming"
    await bob.nothing(0.1)  # others stay

    status, body = await upgrade(chat.host, token)
    assert status == 403 and body["error"] == "banned"
    assert body["reason"] == "spamming" and body["until"] == answer["until"]
    assert metric("imserver_refused_total", reason="banned") == 1
    # A guest login with the name (with or without the holder's token) is refused too.
    for headers in ({}, {"Authorization": f"Bearer {token}"}):
        response = await api(chat, "POST", "/api/login", headers=headers, body={"name": "Alice"},
                             expect=403)
        assert json.loads(response.body)["error"] == "banned"
    assert metric("imserver_refused_total", reason="banned") == 3

    bans = json.loads((await api(chat, "GET", "/admin/api/bans", headers=BEARER)).body)
    assert [(b["user"], b["reason"], b["until"]) for b in bans] == [
        (chat.id("alice"), "spamming", answer["until"])]
    assert bans[0]["by"] == "api from 127.0.0.1" and bans[0]["at"] <= time.time()

    lifted = await chat.http.fetch(f"{chat.url}/admin/api/users/{chat.id('alice')}/ban",
                                   method="DELETE", headers=BEARER)
    assert json.loads(lifted.body) == {"lifted": chat.id("alice")}
    assert json.loads((await api(chat, "GET", "/admin/api/bans", headers=BEARER)).body) == []
    again = await chat.connect("alice")  # the same user, its name and token
    assert again.welcome["user"]["id"] == chat.id("alice")
    with pytest.raises(HTTPClientError) as info:
        await chat.http.fetch(f"{chat.url}/admin/api/users/{chat.id('alice')}/ban",
                              method="DELETE", headers=BEARER)
    assert info.value.code == 404


@pytest.mark.gen_test(timeout=30)
async def test_ban_input_is_checked_and_needs_admin_and_csrf(chat):
    await chat.connect("carol")
    path = "/admin/api/users/carol/ban"
    for body in ({"reason": ""}, {"reason": 5}, {"seconds": 59}, {"seconds": 10 * 365 * 86400 + 1},
                 {"seconds": 3600.5}, {"seconds": True}, {"seconds": "3600"}, {"reason": "x", "until": 1},
                 {"reason": ["x"]}):
        response = await api(chat, "POST", path, headers=BEARER, body=body, expect=400)
        assert json.loads(response.body)["error"] == "bad_request", body
    await api(chat, "POST", "/admin/api/users/" + "x" * 600 + "/ban", headers=BEARER,
              body={"reason": "x"}, expect=400)
    await api(chat, "POST", path, body={"reason": "x"}, expect=401)
    await api(chat, "GET", "/admin/api/bans", expect=401)
    login = await api(chat, "POST", "/admin/api/login", body={"token": TOKEN})
    cookie = {"Cookie": login.headers["Set-Cookie"].split(";")[0]}
    await api(chat, "POST", path, headers=cookie, body={"reason": "x"}, expect=403)  # no CSRF
    for method in ("DELETE",):
        with pytest.raises(HTTPClientError) as info:
            await chat.http.fetch(f"{chat.url}{path}", method=method, headers=cookie)
        assert info.value.code == 403
    csrf = json.loads(login.body)["csrf"]
    answer = json.loads((await api(chat, "POST", path, headers={**cookie, "X-CSRF-Token": csrf},
                                   body={"reason": "x" * 300})).body)
    assert answer["reason"] == "x" * 120 and answer["until"] is None
    assert answer["by"] == "dashboard from 127.0.0.1"


@pytest.mark.gen_test(timeout=30)
async def test_a_ban_with_seconds_expires(chat, monkeypatch):
    monkeypatch.setattr(admin_module, "MIN_SECONDS", 1)  # a short ban, not a minute's wait
    dave = await chat.connect("dave")
    token = chat.tokens["dave"]
    await api(chat, "POST", "/admin/api/users/dave/ban", headers=BEARER,
              body={"reason": "cool down", "seconds": 1})
    assert await dave.closed() == 4003
    assert (await upgrade(chat.host, token))[0] == 403
    banned_at = time.monotonic()

    async def let_in() -> bool:
        return (await upgrade(chat.host, token))[0] == 101

    await until(let_in, "the ban expires", timeout=5)
    assert time.monotonic() - banned_at < 3
    assert json.loads((await api(chat, "GET", "/admin/api/bans", headers=BEARER)).body) == []


def test_remote_ban_fields_are_checked():
    good = {"k": "ban", "user": "u", "reason": "r", "until": None, "by": None, "at": 1.0}
    assert ban_from_message(good).user_id == "u"
    for bad in ({"user": ""}, {"user": 5}, {"user": "x" * 600}, {"reason": ""}, {"reason": None},
                {"until": "soon"}, {"until": float("nan")}, {"until": True}, {"at": None},
                {"at": -1}, {"by": 7}):
        with pytest.raises(ValueError):
            ban_from_message({**good, **bad})
    assert ban_from_message({**good, "reason": "y" * 500, "by": "z" * 500}).reason == "y" * 120


def test_a_ban_survives_a_restart(tmp_path):
    settings = {"auth": JWT_SETTINGS, "admin": {"token": TOKEN}}
    (tmp_path / "one").mkdir()
    server = ServerProcess(tmp_path / "one", settings).start()

    async def ban() -> None:
        ws = await websocket_connect(f"ws://{server.host}/ws?token={app_token('erin', 'erin')}")
        await ws.read_message()  # welcome
        await AsyncHTTPClient().fetch(HTTPRequest(
            f"http://{server.host}/admin/api/users/erin/ban", method="POST",
            headers={**BEARER, "Content-Type": "application/json"},
            body=json.dumps({"reason": "for good"})))
        while await ws.read_message() is not None:
            pass
        ws.close()  # closed by the server: this side's part
        assert ws.close_code == 4003

    async def after_restart() -> None:
        token = app_token("erin", "erin")
        status, body = await upgrade(server.host, token)
        assert status == 403 and body["reason"] == "for good" and body["until"] is None
        response = await AsyncHTTPClient().fetch(f"http://{server.host}/admin/api/bans", headers=BEARER)
        assert [b["user"] for b in json.loads(response.body)] == ["erin"]
        await AsyncHTTPClient().fetch(f"http://{server.host}/admin/api/users/erin/ban",
                                      method="DELETE", headers=BEARER)
        assert (await upgrade(server.host, token))[0] == 101

    try:
        run(ban())
        server.stop()
        server.start(port=server.port)
        run(after_restart())
    finally:
        server.stop()


@pytest.mark.gen_test
async def test_reading_again_takes_bans_made_elsewhere_and_keeps_changes_made_meanwhile(tmp_path):
    from imserver.core.registry import Registry
    from imserver.http.bans import Bans
    from imserver.storage import Ban
    from imserver.storage.sqlite import MessageStore

    store = MessageStore(str(tmp_path / "chat.db"))
    bans = Bans(store, Registry())
    try:
        bans.load(await store.read_bans(time.time()))
        assert bans.in_force() == []
        await store.ban(Ban("eve", "elsewhere", None, None, 1.0))  # as another node would
        assert bans.of("eve") is None
        await bans.reload()
        assert bans.of("eve") is not None and bans.of("eve").reason == "elsewhere"
        await store.lift_ban("eve")
        await bans.reload()
        assert bans.of("eve") is None
        # A ban made here while a read is under way is not undone by the read.
        reading = asyncio.ensure_future(bans.reload())
        await bans.ban("mallory", "here", seconds=None, by=None)
        await reading
        assert bans.of("mallory") is not None
        bans.remote_lift({"user": "mallory"})
        assert bans.of("mallory") is None
        with pytest.raises(ValueError):
            bans.remote_lift({"user": 5})
    finally:
        await store.close()
