"""The admin API and push channel, against real chat connections."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.websocket import websocket_connect

from imserver.http.admin import AdminAuth
from tests.conftest import make_config
from tests.core import run

TOKEN = "admin-token-for-tests"
BEARER = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def config(tmp_path):
    return make_config(tmp_path, admin={"token": TOKEN})


async def api(chat, method, path, *, headers=None, body=None, expect=200):
    kwargs = {"method": method, "headers": {**(headers or {})}}
    if method == "POST":
        kwargs["body"] = json.dumps(body) if body is not None else ""
        if body is not None:
            kwargs["headers"]["Content-Type"] = "application/json"
    try:
        response = await chat.http.fetch(f"{chat.url}{path}", **kwargs)
    except HTTPClientError as exc:
        assert exc.code == expect, (path, exc.code, exc.response.body if exc.response else None)
        return exc.response
    assert response.code == expect, (path, response.code)
    return response


def test_generated_token_when_none_is_configured():
    auth = AdminAuth("", "secret")
    assert auth.generated and len(auth.token) >= 32 and auth.token_ok(auth.token)
    assert not auth.token_ok(auth.token + "x") and not auth.token_ok("")
    assert AdminAuth("", "secret").token != auth.token
    configured = AdminAuth("mine", "secret")
    assert not configured.generated and configured.token_ok("mine")


@pytest.mark.gen_test
async def test_api_refuses_without_admin_credential(chat):
    login = await chat.http.fetch(f"{chat.url}/api/login", method="POST",
                                  body=json.dumps({"name": "mallory"}),
                                  headers={"Content-Type": "application/json"})
    chat_cookie = {"Cookie": login.headers["Set-Cookie"].split(";")[0]}
    chat_bearer = {"Authorization": f"Bearer {json.loads(login.body)['token']}"}
    for headers in (None, chat_cookie, chat_bearer, {"Authorization": "Bearer wrong"}):
        for path in ("/admin/api/clients", "/admin/api/closed", "/admin/api/stats"):
            await api(chat, "GET", path, headers=headers, expect=401)
        await api(chat, "POST", "/admin/api/users/alice/disconnect", headers=headers, body={}, expect=401)
    await api(chat, "POST", "/admin/api/login", body={"token": "wrong"}, expect=401)
    with pytest.raises(HTTPClientError) as info:
        await websocket_connect(HTTPRequest(f"ws://{chat.host}/admin/ws", headers=chat_cookie))
    assert info.value.code == 401


@pytest.mark.gen_test
async def test_cookie_login_needs_csrf_for_actions_and_logout_ends_it(chat):
    victim = await chat.connect("victim")
    login = await api(chat, "POST", "/admin/api/login", body={"token": TOKEN})
    cookie = {"Cookie": login.headers["Set-Cookie"].split(";")[0]}
    assert "HttpOnly" in login.headers["Set-Cookie"] and "SameSite=Strict" in login.headers["Set-Cookie"]
    csrf = json.loads(login.body)["csrf"]
    assert json.loads((await api(chat, "GET", "/admin/api/session", headers=cookie)).body)["csrf"] == csrf
    clients = json.loads((await api(chat, "GET", "/admin/api/clients", headers=cookie)).body)["clients"]
    assert [c["user"] for c in clients] == [chat.id("victim")]
    assert [c["name"] for c in clients] == ["victim"]
    path = f"/admin/api/clients/{clients[0]['id']}/disconnect"
    await api(chat, "POST", path, headers=cookie, body={"reason": "x"}, expect=403)
    await api(chat, "POST", path, headers={**cookie, "X-CSRF-Token": "forged"}, body={"reason": "x"},
              expect=403)
    await victim.nothing(0.1)  # still connected
    await api(chat, "POST", path, headers={**cookie, "X-CSRF-Token": csrf}, body={"reason": "bye now"})
    assert await victim.closed() == 4003
    await api(chat, "POST", "/admin/api/logout", headers={**cookie, "X-CSRF-Token": csrf}, body={},
              expect=204)
    await api(chat, "GET", "/admin/api/clients", headers=cookie, expect=401)


@pytest.mark.gen_test
async def test_client_list_matches_connections_field_by_field(chat, app):
    before = time.time()
    alice = await chat.connect("alice", headers={"User-Agent": "test-agent/1.0"})
    bob = await chat.connect("bob", query="&reconnect=3&cause=network")
    await alice.join("general")
    await alice.join("random")
    await bob.join("general")
    await alice.expect("presence")
    alice.send("ping")
    assert await alice.recv_raw() == "pong"
    clients = json.loads((await api(chat, "GET", "/admin/api/clients", headers=BEARER)).body)["clients"]
    by_user = {c["name"]: c for c in clients}
    assert set(by_user) == {"alice", "bob"}
    assert by_user["alice"]["user"] == chat.id("alice")
    a, b = by_user["alice"], by_user["bob"]
    assert a["id"] == alice.welcome["conn"] and b["id"] == bob.welcome["conn"]
    assert a["rooms"] == ["general", "random"] and b["rooms"] == ["general"]
    assert a["remote"] == "127.0.0.1" and a["user_agent"] == "test-agent/1.0"
    assert before <= a["connected_at"] <= time.time()
    assert a["connected_at"] <= a["last_seen"] <= time.time() + 0.01
    assert a["frames_in"] == 3  # two joins and a ping
    assert a["frames_out"] == 5  # welcome, two joined, pong, presence
    assert a["reconnect"] == 0 and b["reconnect"] == 3
    assert a["cause"] == "" and b["cause"] == "network"
    assert a["health"] == "green" and 0 <= a["idle"] < 5
    assert set(a) >= {"id", "user", "rooms", "remote", "user_agent", "connected_at", "last_seen",
                      "rtt", "frames_in", "frames_out", "reconnect"}


@pytest.mark.gen_test
async def test_disconnect_client_and_user_close_with_4003_and_count(chat, metric):
    alice1, alice2, bob = (await chat.connect("alice"), await chat.connect("alice"),
                           await chat.connect("bob"))
    await api(chat, "POST", "/admin/api/clients/nope/disconnect", headers=BEARER, body={}, expect=404)
    await api(chat, "POST", f"/admin/api/clients/{bob.welcome['conn']}/disconnect", headers=BEARER,
              body={"reason": "spamming the room"})
    assert await bob.closed() == 4003
    assert bob.ws.close_reason == "spamming the room"
    response = await api(chat, "POST", "/admin/api/users/alice/disconnect", headers=BEARER,
                         body={"reason": "account suspended"})
    assert sorted(json.loads(response.body)["disconnected"]) == sorted(
        [alice1.welcome["conn"], alice2.welcome["conn"]])
    for client in (alice1, alice2):
        assert await client.closed() == 4003 and client.ws.close_reason == "account suspended"
    assert metric("imserver_terminations_total", reason="kicked") == 3
    assert metric("imserver_connections_closed_total", reason="kicked") == 3
    assert metric("imserver_connections") == 0
    closed = json.loads((await api(chat, "GET", "/admin/api/closed", headers=BEARER)).body)
    assert [c["reason"] for c in closed] == ["kicked"] * 3
    assert {c["name"] for c in closed} == {"alice", "bob"}
    assert {c["user"] for c in closed} == {chat.id("alice"), chat.id("bob")}
    assert all(c["closed_by"] == "server" and c["code"] == 4003 and c["lived"] >= 0 for c in closed)
    await api(chat, "POST", f"/admin/api/clients/{alice1.welcome['conn']}/disconnect",
              headers=BEARER, body={"reason": "   "}, expect=400)


@pytest.mark.gen_test
async def test_client_close_is_logged_as_client_close(chat):
    alice = await chat.connect("alice")
    alice.ws.close(1000, "done")
    for _ in range(50):
        closed = json.loads((await api(chat, "GET", "/admin/api/closed", headers=BEARER)).body)
        if closed:
            break
        await alice.nothing(0.02)
    assert closed[0]["reason"] == "client_close" and closed[0]["closed_by"] == "client"
    assert closed[0]["code"] == 1000


@pytest.mark.gen_test
async def test_stats(chat, app):
    alice, bob = await chat.connect("alice"), await chat.connect("bob", query="&reconnect=1&cause=error")
    await alice.join("general")
    alice.send({"type": "say", "room": "general", "text": "hi", "cid": "1"})
    await alice.expect("ack")
    app.runtime.sample()
    stats = json.loads((await api(chat, "GET", "/admin/api/stats", headers=BEARER)).body)
    assert stats["connections"] == 2 and stats["users"] == 2 and stats["rooms"] == 1
    assert stats["reconnects_5m"] == 1 and stats["terminations_5m"] == 0
    assert stats["series"]["connections"][-1] == 2
    assert len(stats["series"]["t"]) == len(stats["series"]["messages_per_second"])
    del bob


@pytest.mark.gen_test
async def test_push_channel_sends_snapshot_and_page_then_follows_the_view(chat, app):
    alice = await chat.connect("alice")
    login = await api(chat, "POST", "/admin/api/login", body={"token": TOKEN})
    cookie = login.headers["Set-Cookie"].split(";")[0]
    ws = await websocket_connect(HTTPRequest(f"ws://{chat.host}/admin/ws", headers={"Cookie": cookie}))

    async def next_of(kind):
        while True:
            event = json.loads(await ws.read_message())
            if event["type"] == kind:
                return event

    try:
        snapshot = json.loads(await ws.read_message())
        assert snapshot["type"] == "snapshot"
        assert snapshot["stats"]["connections"] == 1 and "series" in snapshot["stats"]
        assert snapshot["summary"]["top_users"][0]["user"] == chat.id("alice")
        page = json.loads(await ws.read_message())
        assert page["type"] == "page" and page["seq"] == 0
        assert page["ids"] == [alice.welcome["conn"]]
        assert [r["user"] for r in page["rows"]] == [chat.id("alice")]
        assert "idle" not in page["rows"][0] and page["rows"][0]["last_seen"] > 0  # the page works it out
        assert page["totals"]["connections"] == 1 and page["matched"] == 1

        # A new view: only bob's connections, answered at once with every row in it.
        bob = await chat.connect("bob")
        ws.write_message(json.dumps({"type": "view", "seq": 1, "query": {"user": "BOB"}}))
        page = await next_of("page")
        assert page["seq"] == 1 and page["ids"] == [bob.welcome["conn"]] and len(page["rows"]) == 1
        assert page["totals"]["connections"] == 2 and page["matched"] == 1

        # Each tick: the totals, the new closed ones; the page again, without the rows
        # that did not change.
        carol = await chat.connect("carol")
        carol.close()
        await carol.closed()
        app.runtime.sample()
        tick = await next_of("tick")
        assert [c["user"] for c in tick["closed"]] == [chat.id("carol")]
        assert tick["stats"]["connections"] == 2
        page = await next_of("page")
        assert page["seq"] == 1 and page["ids"] == [bob.welcome["conn"]] and page["rows"] == []

        # A connection in view that closes is shown gone at once, before the next tick
        # (which brings the totals up to date).
        bob.close()
        await bob.closed()
        page = await next_of("page")
        assert page["ids"] == []
        app.runtime.sample()
        page = await next_of("page")
        assert page["ids"] == [] and page["totals"]["connections"] == 1

        # A view that cannot be taken is answered with an error; the last one stands.
        for bad in ("nonsense", json.dumps({"type": "view", "seq": 2, "query": {"sort": "password"}}),
                    json.dumps({"type": "view", "seq": -1, "query": {}}),
                    json.dumps({"type": "view", "seq": 3, "query": {"limit": 5}}),
                    json.dumps([1, 2])):
            ws.write_message(bad)
            error = await next_of("error")
            assert error["seq"] == 1 and error["message"]
        ws.write_message("x" * 20_000)  # past the channel's message size: closed
        assert await ws.read_message() is None or await ws.read_message() is None
    finally:
        ws.close()


def test_sessions_expire_and_are_capped(monkeypatch):
    auth = AdminAuth("t", "secret", session_seconds=60, max_sessions=3)
    sessions = [auth.open_session() for _ in range(4)]
    assert not auth.session_ok(sessions[0])  # the oldest was dropped past the cap
    assert all(auth.session_ok(s) for s in sessions[1:])
    later = time.monotonic() + 61
    monkeypatch.setattr("imserver.http.admin.time.monotonic", lambda: later)
    assert not auth.session_ok(sessions[1])


@pytest.mark.gen_test
async def test_logout_closes_that_sessions_push_channel(chat):
    login = await api(chat, "POST", "/admin/api/login", body={"token": TOKEN})
    cookie = login.headers["Set-Cookie"].split(";")[0]
    csrf = json.loads(login.body)["csrf"]
    ws = await websocket_connect(HTTPRequest(f"ws://{chat.host}/admin/ws", headers={"Cookie": cookie}))
    assert json.loads(await ws.read_message())["type"] == "snapshot"
    await api(chat, "POST", "/admin/api/logout", headers={"Cookie": cookie, "X-CSRF-Token": csrf},
              body={}, expect=204)
    while await ws.read_message() is not None:
        pass
    assert ws.close_code == 4001
    ws.close()


@pytest.mark.gen_test
async def test_disconnecting_a_user_without_connections_is_404(chat):
    await api(chat, "POST", "/admin/api/users/nobody/disconnect", headers=BEARER, body={}, expect=404)


@pytest.mark.gen_test
async def test_pages_and_modules_are_revalidated(chat):
    for path in ("/", "/static/js/app.js", "/admin", "/dashboard/js/app.js"):
        response = await chat.http.fetch(f"{chat.url}{path}")
        assert response.headers["Cache-Control"] == "no-cache", path


@pytest.mark.gen_test
async def test_disconnect_user_takes_the_user_id_or_a_guest_name_held_now(chat):
    alice, bob = await chat.connect("alice"), await chat.connect("bob")
    response = await api(chat, "POST", f"/admin/api/users/{chat.id('alice')}/disconnect",
                         headers=BEARER, body={"reason": "by id"})
    assert json.loads(response.body)["disconnected"] == [alice.welcome["conn"]]
    assert await alice.closed() == 4003
    response = await api(chat, "POST", "/admin/api/users/BOB/disconnect", headers=BEARER,
                         body={"reason": "by name"})
    assert json.loads(response.body)["disconnected"] == [bob.welcome["conn"]]
    assert await bob.closed() == 4003


def test_the_view_follows_the_registry_and_the_samples_without_a_server():
    from imserver.core.registry import Connection, Registry, User
    from imserver.http.adminview import AdminView, Subscriber
    from imserver.ops.stats import Sample, Samples

    class Pushed:
        session = None

        def __init__(self):
            self.events = []
            self.subscriber = Subscriber()

        def write_message(self, text):
            self.events.append(json.loads(text))

        def close(self, code=None, reason=None):
            pass

    async def scenario():
        registry, samples = Registry(), Samples()
        view = AdminView(registry, samples, ping_timeout=20.0, started_at=time.time())
        dashboard = Pushed()
        assert await view.open(dashboard)
        conn = Connection(id="c1", user=User("u1", "ann"), transport=None, remote="10.0.0.1",  # type: ignore[arg-type]
                          reconnect=2, cause="network", rooms={"lobby"})
        registry.add(conn)
        conn.close_reason = "kicked"
        registry.remove(conn)
        samples.add(Sample(t=time.time(), connections=0, users=0, rooms=0, messages=0, terminations=1,
                           reconnects=0))
        await asyncio.sleep(0.01)
        return view, dashboard.events

    view, pushed = run(scenario())
    assert [event["type"] for event in pushed] == ["snapshot", "page", "tick", "page"]
    assert pushed[1]["ids"] == [] and pushed[1]["matched"] == 0
    tick = pushed[2]
    assert [c["id"] for c in tick["closed"]] == ["c1"] and tick["closed"][0]["reason"] == "kicked"
    assert tick["summary"]["terminations"] == {"kicked": 1}
    assert tick["summary"]["reconnects"] == {"network": 1}
    assert tick["stats"]["terminations_5m"] == 1 and tick["stats"]["reconnects_5m"] == 1
    assert view.closed()[0]["id"] == "c1"


def test_each_token_names_its_operator_and_a_session_keeps_it():
    auth = AdminAuth("main", "secret", operators={"alice": "a" * 16, "bob": "b" * 16})
    assert [auth.operator_of(t) for t in ("main", "a" * 16, "b" * 16, "c" * 16, "", "main ")] == [
        "admin", "alice", "bob", None, None, None]
    session = auth.open_session("bob")
    assert auth.session_operator(session) == "bob" and auth.session_ok(session)
    assert auth.session_operator(auth.open_session()) == "admin"
    auth.close_session(session)
    assert auth.session_operator(session) is None and auth.session_operator("forged") is None


def test_the_closed_log_keeps_what_the_operator_said_for_kicked_connections_only():
    from imserver.core.protocol import CLOSE_KICKED
    from imserver.core.registry import Connection, User
    from imserver.ops.stats import ClosedLog

    class Transport:
        def __init__(self):
            self.closes = []

        def close(self, code, reason):
            self.closes.append((code, reason))

    log = ClosedLog(size=2)
    conns = [Connection(id=f"c{i}", user=User("u", "ann"), transport=Transport()) for i in range(3)]  # type: ignore[arg-type]
    conns[0].end("kicked", CLOSE_KICKED, "flooding")
    assert conns[0].transport.closes == [(4003, "flooding")]
    assert log.add(conns[0]).operator_reason == "flooding"
    conns[1].close_reason = "heartbeat_timeout"  # it was ending otherwise before the kick
    conns[1].end("kicked", CLOSE_KICKED, "spam")
    assert log.add(conns[1]).operator_reason == ""
    conns[2].end("shutdown", 1001, "server shutting down")  # not an operator's words
    assert log.add(conns[2]).operator_reason == ""
    assert [e.id for e in log.entries()] == ["c2", "c1"]


def test_a_dashboard_that_stops_reading_is_dropped_and_closed():
    from tornado.iostream import StreamBufferFullError

    from imserver.core.registry import Registry
    from imserver.http.adminview import AdminView, Subscriber
    from imserver.ops.stats import Samples

    class Stuck:
        session = None

        def __init__(self):
            self.subscriber = Subscriber()
            self.closed = False

        def write_message(self, text):
            raise StreamBufferFullError("full")

        def close(self, code=None, reason=None):
            self.closed = True

    async def scenario():
        view = AdminView(Registry(), Samples(), ping_timeout=20.0, started_at=time.time())
        stuck = Stuck()
        assert not await view.open(stuck)
        return view, stuck

    view, stuck = run(scenario())
    assert stuck.closed and not view.dashboards
