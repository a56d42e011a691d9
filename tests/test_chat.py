"""The chat over real sockets: login, auth, rooms, DMs, presence, errors, ping."""

from __future__ import annotations

import gc
import json

import pytest
from tornado.http1connection import HTTP1Connection, HTTP1ServerConnection
from tornado.httpclient import HTTPClientError

from imserver.app import ImServerApp
from imserver.http.chat import ChatSocket

# The chat tests run against one server and against two nodes of a cluster.
CLUSTER_TOO = True


@pytest.mark.gen_test
async def test_login_returns_token_user_and_httponly_cookie(chat):
    response = await chat.http.fetch(
        f"{chat.url}/api/login", method="POST", body=json.dumps({"name": "alice"}),
        headers={"Content-Type": "application/json"})
    body = json.loads(response.body)
    assert body["user"]["name"] == "alice" and body["user"]["id"].startswith("g:")
    assert body["token"]
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("imserver_session=") and "HttpOnly" in cookie


@pytest.mark.gen_test
@pytest.mark.parametrize("name", ["", "a" * 33, "bad name", "<script>", 42])
async def test_login_refuses_bad_names(chat, name):
    with pytest.raises(HTTPClientError) as info:
        await chat.http.fetch(f"{chat.url}/api/login", method="POST",
                              body=json.dumps({"name": name}),
                              headers={"Content-Type": "application/json"})
    assert info.value.code == 400
    assert json.loads(info.value.response.body)["error"] == "bad_name"


@pytest.mark.gen_test
async def test_login_refuses_non_json(chat):
    with pytest.raises(HTTPClientError) as info:
        await chat.http.fetch(f"{chat.url}/api/login", method="POST", body="name=alice",
                              headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert info.value.code == 415


@pytest.mark.gen_test
async def test_session_cookie_authenticates_me_and_websocket(chat):
    response = await chat.http.fetch(
        f"{chat.url}/api/login", method="POST", body=json.dumps({"name": "carol"}),
        headers={"Content-Type": "application/json"})
    cookie = response.headers["Set-Cookie"].split(";")[0]
    me = await chat.http.fetch(f"{chat.url}/api/me", headers={"Cookie": cookie})
    user = json.loads(response.body)["user"]
    assert json.loads(me.body)["user"] == user
    client = await chat.connect(token="", headers={"Cookie": cookie})
    assert client.welcome["user"] == user


@pytest.mark.gen_test
async def test_upgrade_without_valid_token_is_refused_401(chat, metric):
    assert await chat.refused("") == 401
    assert await chat.refused("?token=garbage") == 401
    assert metric("imserver_refused_total", reason="unauthenticated") == 2
    assert metric("imserver_connections") == 0


@pytest.mark.gen_test
async def test_cross_origin_upgrade_is_refused_403(chat):
    token = await chat.login("alice")
    status = await chat.refused(f"?token={token}", headers={"Origin": "http://evil.example"})
    assert status == 403
    same = await chat.connect(token=token, headers={"Origin": f"http://{chat.host}"})
    assert same.welcome["user"]["id"] == chat.id("alice")


@pytest.mark.gen_test
async def test_welcome_frame(chat, config):
    client = await chat.connect("alice")
    w = client.welcome
    assert w["user"] == {"id": chat.id("alice"), "name": "alice"}
    assert w["heartbeat"] == {"interval": config.heartbeat.client_interval,
                              "timeout": config.heartbeat.client_timeout}
    assert isinstance(w["conn"], str) and w["conn"]
    assert isinstance(w["server_time"], float)


@pytest.mark.gen_test
async def test_room_chat_presence_and_leave_between_three_clients(chat):
    alice, bob, carol = [await chat.connect(n) for n in ("alice", "bob", "carol")]
    a, b, c_ = chat.id("alice"), chat.id("bob"), chat.id("carol")
    joined = await alice.join("general")
    assert joined["members"] == [a] and joined["messages"] == [] and joined["truncated"] is False
    joined = await bob.join("general")
    assert joined["members"] == sorted([a, b])
    assert joined["names"] == {a: "alice", b: "bob"}
    assert await alice.expect("presence") == {"type": "presence", "room": "general",
                                              "joined": [b], "left": [], "names": {b: "bob"}}
    await carol.join("general")
    for c in (alice, bob):
        assert (await c.expect("presence"))["joined"] == [c_]

    alice.send({"type": "say", "room": "general", "text": "hello all", "cid": "a1"})
    ack = await alice.expect("ack")
    assert ack["cid"] == "a1" and isinstance(ack["id"], int)
    for c in (bob, carol):
        msg = await c.expect("message")
        assert msg == {"type": "message", "id": ack["id"], "room": "general", "from": a,
                       "name": "alice", "text": "hello all", "ts": ack["ts"], "cid": "a1"}
    await alice.nothing()  # the sender gets the ack, not its own message

    carol.send({"type": "leave", "room": "general"})
    assert await carol.expect("left") == {"type": "left", "room": "general"}
    for c in (alice, bob):
        assert (await c.expect("presence"))["left"] == [c_]
    bob.send({"type": "say", "room": "general", "text": "carol is gone", "cid": "b1"})
    await bob.expect("ack")
    await alice.expect("message")
    await carol.nothing()


@pytest.mark.gen_test
async def test_same_users_other_tab_gets_room_message(chat):
    tab1, tab2 = await chat.connect("alice"), await chat.connect("alice")
    await tab1.join("r1")
    await tab2.join("r1")
    await tab1.nothing(0.2)  # same user: no presence change
    tab1.send({"type": "say", "room": "r1", "text": "from tab 1", "cid": "t1"})
    await tab1.expect("ack")
    assert (await tab2.expect("message"))["text"] == "from tab 1"


@pytest.mark.gen_test
async def test_direct_message_reaches_recipient_and_senders_other_tabs(chat):
    alice, alice2, bob, carol = [await chat.connect(n) for n in ("alice", "alice", "bob", "carol")]
    alice.send({"type": "dm", "to": "bob", "text": "psst", "cid": "d1"})
    ack = await alice.expect("ack")
    for c in (bob, alice2):
        msg = await c.expect("message")
        assert msg == {"type": "message", "id": ack["id"], "from": chat.id("alice"),
                       "name": "alice", "to": chat.id("bob"), "to_name": "bob",
                       "text": "psst", "ts": ack["ts"], "cid": "d1"}
    await carol.nothing()
    await alice.nothing(0.1)


@pytest.mark.gen_test
async def test_dm_to_unknown_user(chat):
    alice = await chat.connect("alice")
    alice.send({"type": "dm", "to": "nobody", "text": "hello?", "cid": "x"})
    assert await alice.expect("error") == {"type": "error", "code": "unknown_user",
                                           "message": "no user 'nobody'", "cid": "x"}


@pytest.mark.gen_test
async def test_duplicate_cid_answers_original_ack_and_is_not_delivered_twice(chat, metric):
    alice, bob = await chat.connect("alice"), await chat.connect("bob")
    await alice.join("general")
    await bob.join("general")
    await alice.expect("presence")
    alice.send({"type": "say", "room": "general", "text": "once", "cid": "same"})
    first = await alice.expect("ack")
    await bob.expect("message")
    # Resent from another connection of the same user, as after a reconnect.
    again = await chat.connect("alice")
    await again.join("general")
    again.send({"type": "say", "room": "general", "text": "once", "cid": "same"})
    assert await again.expect("ack") == first
    await bob.nothing()
    # Another user may use the same cid.
    bob.send({"type": "say", "room": "general", "text": "mine", "cid": "same"})
    assert (await bob.expect("ack"))["id"] > first["id"]


@pytest.mark.gen_test
async def test_malformed_frames_get_errors_and_connection_stays_open(chat):
    alice = await chat.connect("alice")
    cases = [
        ("{not json", "bad_request"),
        ("[1, 2]", "bad_request"),
        (json.dumps({"type": "launch"}), "bad_request"),
        (json.dumps({"room": "general"}), "bad_request"),
        (json.dumps({"type": "join", "room": "bad room!"}), "bad_request"),
        (json.dumps({"type": "join", "room": "x" * 65}), "bad_request"),
        (json.dumps({"type": "join", "room": "ok", "since": "1"}), "bad_request"),
        (json.dumps({"type": "say", "room": "general", "text": "", "cid": "e1"}), "bad_request"),
        (json.dumps({"type": "say", "room": "general", "text": "hi", "cid": "e2"}), "not_in_room"),
        (json.dumps({"type": "say", "room": "general", "text": "x" * 5000, "cid": "e3"}), "too_long"),
        (json.dumps({"type": "leave", "room": "general"}), "not_in_room"),
        (json.dumps({"type": "dm", "to": "", "text": "hi"}), "bad_request"),
        ("[" * 100 + "]" * 100, "bad_request"),
    ]
    for raw, code in cases:
        alice.send(raw)
        error = await alice.expect("error")
        assert error["code"] == code, (raw[:40], error)
        assert error["message"]
    alice.send({"type": "say", "room": "general", "text": "x" * 5000, "cid": "e3"})
    assert (await alice.expect("error"))["cid"] == "e3"
    alice.ws.write_message(b"\x00\x01", binary=True)
    assert (await alice.expect("error"))["code"] == "bad_request"
    await alice.join("general")  # still usable
    alice.send("ping")
    assert await alice.recv_raw() == "pong"


@pytest.mark.gen_test
async def test_app_ping_gets_pong(chat, metric):
    alice = await chat.connect("alice")
    for _ in range(3):
        alice.send("ping")
        assert await alice.recv_raw() == "pong"
    assert metric("imserver_app_pings_total") == 3


@pytest.mark.gen_test
async def test_join_without_since_returns_latest_page_and_history_pages_back(chat, app: ImServerApp):
    alice = await chat.connect("alice")
    await alice.join("busy")
    page = app.runtime.config.limits.history_page
    ids = []
    for i in range(page + 5):
        alice.send({"type": "say", "room": "busy", "text": f"m{i}", "cid": f"c{i}"})
        ids.append((await alice.expect("ack"))["id"])
    bob = await chat.connect("bob")
    joined = await bob.join("busy")
    assert [m["id"] for m in joined["messages"]] == ids[-page:]
    bob.send({"type": "history", "room": "busy", "before": ids[-page], "limit": 3})
    hist = await bob.expect("history")
    assert [m["id"] for m in hist["messages"]] == ids[-page - 3:-page] and hist["more"] is True
    bob.send({"type": "history", "room": "busy", "before": ids[2]})
    hist = await bob.expect("history")
    assert [m["id"] for m in hist["messages"]] == ids[:2] and hist["more"] is False


@pytest.mark.gen_test
async def test_join_since_recovers_exactly_the_missed_messages(chat):
    alice, bob = await chat.connect("alice"), await chat.connect("bob")
    await alice.join("room")
    await bob.join("room")
    await alice.expect("presence")
    alice.send({"type": "say", "room": "room", "text": "seen", "cid": "s1"})
    seen = (await alice.expect("ack"))["id"]
    await bob.expect("message")
    bob.close()
    await alice.expect("presence")
    missed = []
    for i in range(3):
        alice.send({"type": "say", "room": "room", "text": f"missed {i}", "cid": f"m{i}"})
        missed.append((await alice.expect("ack"))["id"])
    bob2 = await chat.connect("bob", query="&reconnect=1&cause=close")
    joined = await bob2.join("room", since=seen)
    assert [m["id"] for m in joined["messages"]] == missed
    assert joined["truncated"] is False


@pytest.mark.gen_test
async def test_dm_history_and_sync(chat):
    alice, bob = await chat.connect("alice"), await chat.connect("bob")
    ids = []
    for i in range(3):
        alice.send({"type": "dm", "to": "bob", "text": f"d{i}", "cid": f"d{i}"})
        ids.append((await alice.expect("ack"))["id"])
        await bob.expect("message")
    bob.send({"type": "history", "with": "alice", "limit": 2})
    hist = await bob.expect("history")
    assert hist["with"] == "alice" and [m["id"] for m in hist["messages"]] == ids[1:]
    assert hist["more"] is True
    bob.send({"type": "dm_sync", "since": ids[0]})
    sync = await bob.expect("dm_sync")
    assert [m["id"] for m in sync["messages"]] == ids[1:] and sync["truncated"] is False
    carol = await chat.connect("carol")
    carol.send({"type": "history", "with": "alice"})
    assert (await carol.expect("history"))["messages"] == []


@pytest.mark.gen_test
async def test_rejoin_of_a_joined_room_while_messages_flow_gives_each_once(chat):
    alice, bob = await chat.connect("alice"), await chat.connect("bob")
    await alice.join("flow")
    first = await bob.join("flow")
    await alice.expect("presence")
    since = max([m["id"] for m in first["messages"]], default=0)
    for i in range(30):
        alice.send({"type": "say", "room": "flow", "text": f"m{i}", "cid": f"f{i}"})
        if i == 10:
            bob.send({"type": "join", "room": "flow", "since": since})
    acks = [(await alice.expect("ack"))["id"] for _ in range(30)]
    seen = []
    while len(set(seen)) < 30:
        frame = await bob.recv()
        if frame["type"] == "joined":
            seen += [m["id"] for m in frame["messages"]]
        elif frame["type"] == "message":
            seen.append(frame["id"])
    assert sorted(seen) == acks  # every message once, none twice
    await bob.nothing(0.2)


@pytest.mark.gen_test
async def test_an_open_socket_keeps_nothing_of_its_upgrade_request(chat, app: ImServerApp):
    """Held for hours, an idle socket drops what the upgrade needed: its token, the
    request's headers, and the HTTP/1 connection (with the server's) it came on."""
    client = await chat.connect("keeper", headers={"User-Agent": "kept/1.0"})
    await client.join("r")
    (conn,) = [c for c in app.runtime.registry if c.user.name == "keeper"]
    assert conn.user_agent == "kept/1.0"
    handler = conn.transport.socket
    assert isinstance(handler, ChatSocket)
    request = handler.request
    assert "token" not in request.uri and not request.query_arguments and not list(request.headers.get_all())
    assert request.connection is None and request.server_connection is None
    assert not handler._transforms and not list(handler._headers.get_all())
    gc.collect()
    stream = handler.ws_connection.stream
    left = [o for o in gc.get_objects() if isinstance(o, HTTP1Connection | HTTP1ServerConnection)
            and o.stream is stream]
    assert not left, f"still alive for an open WebSocket: {left}"
    # And the socket works as before.
    client.send("ping")
    assert await client.recv_raw() == "pong"
