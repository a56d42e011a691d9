"""Moderation through the admin API, against real sockets: mutes in a room, a room's
messages and an operator's deletion of one, the audit log of every operator action
(who, when, what, to what, why), and the closed-connection log with the operator's
reason. On one server (SQLite) and on two nodes of a cluster (PostgreSQL and Redis,
clients spread over both: what one node's operator does holds on the other).
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.websocket import websocket_connect

from imserver.core.errors import StoreError
from tests.conftest import make_config
from tests.test_admin import BEARER, TOKEN
from tests.waiting import until

CLUSTER_TOO = True

ALICE_OPS = "alice-operator-token-0123456789"


@pytest.fixture
def config(tmp_path):
    return make_config(tmp_path, admin={"token": TOKEN, "operators": [
        {"name": "alice.ops", "token": ALICE_OPS}]})


async def admin(chat, method: str, path: str, body: Any = None, *, expect: int = 200,
                headers: dict[str, str] | None = None, host: str | None = None) -> Any:
    """An admin API call (Bearer admin.token unless `headers` say otherwise): its JSON."""
    request = HTTPRequest(
        f"http://{host or chat.host}/admin/api{path}", method=method,
        headers={**(BEARER if headers is None else headers),
                 **({"Content-Type": "application/json"} if body is not None else {})},
        body=None if body is None else json.dumps(body), allow_nonstandard_methods=True)
    try:
        response = await chat.http.fetch(request)
    except HTTPClientError as exc:
        assert exc.code == expect, (path, exc.code, exc.response.body if exc.response else None)
        return json.loads(exc.response.body) if exc.response and exc.response.body else None
    assert response.code == expect, (path, response.code)
    return json.loads(response.body) if response.body else None


async def audit(chat, host: str | None = None, **query: Any) -> list[dict[str, Any]]:
    args = "&".join(f"{k}={v}" for k, v in query.items())
    return (await admin(chat, "GET", f"/audit?{args}", host=host))["entries"]


def last_host(chat) -> str:
    """The other node in a cluster; the only one otherwise."""
    return chat.hosts[-1]


async def say(client, room: str, text: str) -> dict[str, Any]:
    client.send({"type": "say", "room": room, "text": text, "cid": text})
    while True:
        frame = await client.recv()
        if frame["type"] in ("ack", "error") and frame.get("cid") == text:
            return frame


# --- mutes ---


@pytest.mark.gen_test(timeout=30)
async def test_a_mute_keeps_a_user_quiet_in_one_room_until_lifted(chat):
    alice, bob = await chat.connect("alice"), await chat.connect("bob")
    for client in (alice, bob):
        await client.join("general")
        await client.join("random")
    answer = await admin(chat, "POST", "/rooms/general/mutes/ALICE",
                         {"reason": "cool down", "seconds": 3600})
    assert (answer["room"], answer["user"], answer["reason"]) == ("general", chat.id("alice"), "cool down")
    assert answer["until"] == pytest.approx(time.time() + 3600, abs=5)
    assert answer["by"] == "api from 127.0.0.1" and "audited" not in answer

    refused = await say(alice, "general", "hello?")
    assert refused["type"] == "error" and refused["code"] == "muted"
    assert "cool down" in refused["message"]
    assert (await say(alice, "random", "still here"))["type"] == "ack"  # another room
    assert (await say(bob, "general", "hi"))["type"] == "ack"  # another user

    # Listed on every node (one store): all rooms, or one room's.
    for host in chat.hosts:
        listed = await admin(chat, "GET", "/mutes", host=host)
        assert [(m["room"], m["user"], m["reason"]) for m in listed] == [
            ("general", chat.id("alice"), "cool down")]
    assert await admin(chat, "GET", "/mutes?room=random") == []

    # Lifted through the other node: alice speaks again.
    lifted = await admin(chat, "DELETE", f"/rooms/general/mutes/{chat.id('alice')}",
                         {"reason": "served"}, host=last_host(chat))
    assert lifted == {"lifted": {"room": "general", "user": chat.id("alice")}}
    assert (await say(alice, "general", "thanks"))["type"] == "ack"
    assert await admin(chat, "GET", "/mutes") == []
    await admin(chat, "DELETE", f"/rooms/general/mutes/{chat.id('alice')}", expect=404)

    # A mute until lifted, replaced by another with a time.
    await admin(chat, "POST", f"/rooms/random/mutes/{chat.id('bob')}", {"reason": "flood"})
    again = await admin(chat, "POST", f"/rooms/random/mutes/{chat.id('bob')}",
                        {"reason": "flood, again", "seconds": 60})
    (only,) = (await admin(chat, "GET", "/mutes"))
    assert only == again and only["until"] is not None


@pytest.mark.gen_test(timeout=30)
async def test_mute_input_is_checked_and_needs_admin_and_csrf(chat):
    await chat.connect("carol")
    path = "/rooms/general/mutes/carol"
    for body in ({"reason": ""}, {"reason": 5}, {"seconds": 59}, {"seconds": 10 * 365 * 86400 + 1},
                 {"seconds": 3600.5}, {"seconds": True}, {"seconds": "3600"}, {"room": "x"},
                 {"reason": ["x"]}):
        assert (await admin(chat, "POST", path, body, expect=400))["error"] == "bad_request", body
    for bad_room in ("has%20space", "x" * 65, "%C3%A9t%C3%A9"):
        await admin(chat, "POST", f"/rooms/{bad_room}/mutes/carol", {"reason": "x"}, expect=400)
        await admin(chat, "DELETE", f"/rooms/{bad_room}/mutes/carol", expect=400)
    await admin(chat, "GET", "/mutes?room=a%20b", expect=400)
    await admin(chat, "POST", "/rooms/general/mutes/" + "x" * 600, {"reason": "x"}, expect=400)
    await admin(chat, "DELETE", path, {"reason": 7}, expect=400)
    await admin(chat, "DELETE", path, {"why": "x"}, expect=400)
    await admin(chat, "POST", path, "not an object", expect=400)
    await admin(chat, "POST", path, {"reason": "x"}, headers={}, expect=401)
    await admin(chat, "GET", "/mutes", headers={}, expect=401)
    login = await chat.http.fetch(f"{chat.url}/admin/api/login", method="POST",
                                  body=json.dumps({"token": TOKEN}),
                                  headers={"Content-Type": "application/json"})
    cookie = {"Cookie": login.headers["Set-Cookie"].split(";")[0]}
    await admin(chat, "POST", path, {"reason": "x"}, headers=cookie, expect=403)  # no CSRF
    await admin(chat, "DELETE", path, headers=cookie, expect=403)
    assert await admin(chat, "GET", "/mutes") == []
    csrf = {**cookie, "X-CSRF-Token": json.loads(login.body)["csrf"]}
    answer = await admin(chat, "POST", path, {"reason": "x" * 300}, headers=csrf)
    assert answer["reason"] == "x" * 120 and answer["until"] is None
    assert answer["by"] == "dashboard from 127.0.0.1"


# --- a room's messages, and an operator's deletion ---


@pytest.mark.gen_test(timeout=30)
async def test_an_operator_deletes_a_message_every_member_sees_it_and_the_history_keeps_it(chat):
    alice, bob = await chat.connect("alice"), await chat.connect("bob")
    await alice.join("general")
    await bob.join("general")
    ids = [(await say(alice, "general", f"message {i}"))["id"] for i in range(3)]

    page = await admin(chat, "GET", "/rooms/general/messages?limit=2", host=last_host(chat))
    assert page["room"] == "general" and page["more"] is True
    assert [(m["id"], m["text"], m["from"], m["name"], m["deleted"]) for m in page["messages"]] == [
        (ids[1], "message 1", chat.id("alice"), "alice", False),
        (ids[2], "message 2", chat.id("alice"), "alice", False)]
    older = await admin(chat, "GET", f"/rooms/general/messages?before={ids[1]}&limit=2")
    assert [m["id"] for m in older["messages"]] == [ids[0]] and older["more"] is False
    assert (await admin(chat, "GET", "/rooms/empty/messages"))["messages"] == []

    answer = await admin(chat, "DELETE", f"/messages/{ids[1]}", {"reason": "doxxing"})
    assert (answer["deleted"], answer["room"], answer["from"]) == (ids[1], "general", chat.id("alice"))
    for client in (alice, bob):
        frame = await client.recv()
        while frame["type"] != "delete":
            frame = await client.recv()
        assert (frame["target"], frame["id"], frame["by"], frame["text"]) == (
            ids[1], answer["id"], "operator", "")
    shown = (await admin(chat, "GET", "/rooms/general/messages"))["messages"]
    assert [(m["id"], m["deleted"], m["text"]) for m in shown] == [
        (ids[0], False, "message 0"), (ids[1], True, ""), (ids[2], False, "message 2")]

    # A reconnecting member gets the deletion with its backlog.
    late = await chat.connect("carol")
    joined = await late.join("general")
    assert [m["id"] for m in joined["messages"] if m.get("deleted")] == [ids[1]]

    await admin(chat, "DELETE", "/messages/999999999", {"reason": "x"}, expect=404)
    assert (await admin(chat, "DELETE", f"/messages/{ids[1]}", expect=409))["error"] == "deleted"
    await admin(chat, "DELETE", f"/messages/{answer['id']}", expect=404)  # an event, not a message
    for bad in ("0", "abc", "-1", "1.5", str(1 << 63), "%C2%B2", "9" * 5000, "0" * 30 + "5"):
        await admin(chat, "DELETE", f"/messages/{bad}", expect=400)
    await admin(chat, "DELETE", f"/messages/{ids[0]}", {"reason": ""}, expect=400)
    await admin(chat, "DELETE", f"/messages/{ids[0]}", {"text": "x"}, expect=400)
    await admin(chat, "DELETE", f"/messages/{ids[0]}", headers={}, expect=401)
    for query in ("limit=0", "limit=201", "limit=x", "before=0", "before=-5", "before=" + "9" * 5000):
        await admin(chat, "GET", f"/rooms/general/messages?{query}", expect=400)


# --- the audit log ---


@pytest.mark.gen_test(timeout=30)
async def test_every_operator_action_is_audited_with_who_what_and_why_newest_first(chat):
    alice1, _alice2 = await chat.connect("alice"), await chat.connect("alice")
    bob = await chat.connect("bob")
    await bob.join("general")
    said = await say(bob, "general", "spam spam")
    started = time.time()
    push = await websocket_connect(HTTPRequest(f"ws://{chat.host}/admin/ws", headers=BEARER))
    assert json.loads(await push.read_message())["type"] == "snapshot"

    alice_ops = {"Authorization": f"Bearer {ALICE_OPS}"}
    await admin(chat, "POST", f"/clients/{alice1.welcome['conn']}/disconnect", {"reason": "one"})
    await admin(chat, "POST", "/users/alice/disconnect", {"reason": "all"}, headers=alice_ops)
    await admin(chat, "POST", "/users/bob/ban", {"reason": "raid", "seconds": 600})
    await admin(chat, "DELETE", "/users/bob/ban", {"reason": "appeal"}, headers=alice_ops)
    await admin(chat, "POST", "/rooms/general/mutes/bob", {"reason": "shouting"})
    await admin(chat, "DELETE", "/rooms/general/mutes/bob")
    await admin(chat, "DELETE", f"/messages/{said['id']}", {"reason": "spam"}, headers=alice_ops)
    await admin(chat, "DELETE", "/users/bob/ban", expect=404)  # refused: not audited

    bob_id, alice_id = chat.id("bob"), chat.id("alice")
    for host in chat.hosts:  # the same log, read through either node
        entries = await audit(chat, host)
        assert [(e["operator"], e["action"], e["target"], e["reason"]) for e in entries] == [
            ("alice.ops", "delete_message", str(said["id"]), "spam"),
            ("admin", "unmute", f"general/{bob_id}", ""),
            ("admin", "mute", f"general/{bob_id}", "shouting"),
            ("alice.ops", "unban", bob_id, "appeal"),
            ("admin", "ban", bob_id, "raid"),
            ("alice.ops", "disconnect_user", alice_id, "all"),
            ("admin", "disconnect", alice1.welcome["conn"], "one")]
    by_action = {e["action"]: e for e in entries}
    assert all(started <= e["ts"] <= time.time() for e in entries)
    assert [e["id"] for e in entries] == sorted((e["id"] for e in entries), reverse=True)
    assert by_action["disconnect"]["detail"] == f"api from 127.0.0.1; user {alice_id}"
    assert by_action["ban"]["detail"] == "api from 127.0.0.1; for 600 s; connections closed here: 1"
    assert by_action["mute"]["detail"] == "api from 127.0.0.1; until lifted"
    assert by_action["delete_message"]["detail"] == f"api from 127.0.0.1; room general, by {bob_id}"
    assert by_action["disconnect_user"]["detail"].startswith("api from 127.0.0.1; connections: ")

    # Pages: newest first, `before` the last id seen.
    first = await admin(chat, "GET", "/audit?limit=3")
    assert [e["action"] for e in first["entries"]] == ["delete_message", "unmute", "mute"]
    assert first["more"] is True
    rest = await admin(chat, "GET", f"/audit?limit=10&before={first['entries'][-1]['id']}")
    assert len(rest["entries"]) == 4 and rest["more"] is False
    for query in ("limit=0", "limit=201", "before=x"):
        await admin(chat, "GET", f"/audit?{query}", expect=400)
    await admin(chat, "GET", "/audit", headers={}, expect=401)

    # This node's dashboards are told of each entry its operators made.
    told = []
    while len(told) < 7:
        event = json.loads(await push.read_message())
        if event["type"] == "audit":
            told.append(event["entry"])
    assert [e["action"] for e in told][:3] == ["disconnect", "disconnect_user", "ban"]
    push.close()


@pytest.mark.gen_test(timeout=30)
async def test_an_action_whose_audit_entry_cannot_be_kept_stands_and_says_so(chat, app):
    victim = await chat.connect("victim")

    def broken(entry):
        raise StoreError("the audit table is away")

    app.runtime.store.record_audit = broken
    answer = await admin(chat, "POST", "/users/victim/disconnect", {"reason": "bye"}, host=chat.host)
    assert answer["audited"] is False and answer["disconnected"] == [victim.welcome["conn"]]
    assert await victim.closed() == 4003


@pytest.mark.gen_test(timeout=30)
async def test_the_operator_is_named_by_its_token_and_its_session(chat):
    login = await admin(chat, "POST", "/login", {"token": ALICE_OPS}, headers={})
    assert login["operator"] == "alice.ops"
    response = await chat.http.fetch(f"{chat.url}/admin/api/login", method="POST",
                                     body=json.dumps({"token": ALICE_OPS}),
                                     headers={"Content-Type": "application/json"})
    cookie = {"Cookie": response.headers["Set-Cookie"].split(";")[0]}
    session = await admin(chat, "GET", "/session", headers=cookie)
    assert (session["operator"], session["via"]) == ("alice.ops", "cookie")
    assert (await admin(chat, "GET", "/session"))["operator"] == "admin"
    csrf = {**cookie, "X-CSRF-Token": session["csrf"]}
    await chat.connect("dave")
    await admin(chat, "POST", "/users/dave/ban", {"reason": "x"}, headers=csrf)
    (entry,) = await audit(chat)
    assert (entry["operator"], entry["detail"].split(";")[0]) == ("alice.ops", "dashboard from 127.0.0.1")
    await admin(chat, "POST", "/login", {"token": ALICE_OPS + "x"}, headers={}, expect=401)


# --- the closed-connection log ---


@pytest.mark.gen_test(timeout=30)
async def test_the_closed_log_keeps_the_operators_reason_for_disconnects_and_bans(chat):
    # In a cluster erin and grace are on this node, frank and henry on the other.
    erin, frank, grace, henry = (await chat.connect("erin"), await chat.connect("frank"),
                                 await chat.connect("grace"), await chat.connect("henry"))
    await admin(chat, "POST", f"/clients/{erin.welcome['conn']}/disconnect", {"reason": "flooding"})
    await admin(chat, "POST", "/users/frank/ban", {"reason": "raiding"})
    await admin(chat, "POST", f"/clients/{henry.welcome['conn']}/disconnect", {"reason": "trolling"})
    for client in (erin, frank, henry):
        assert await client.closed() == 4003
    grace.close()
    await grace.closed()
    clients = (erin, frank, grace, henry)

    async def all_logged() -> dict[str, dict[str, Any]] | None:
        # Each node logs the connections it held.
        rows = [row for host in chat.hosts for row in await admin(chat, "GET", "/closed", host=host)]
        by_conn = {row["id"]: row for row in rows}
        return by_conn if all(c.welcome["conn"] in by_conn for c in clients) else None

    logged = await until(all_logged, "the closes are logged")
    erin_row, frank_row, grace_row, henry_row = (logged[c.welcome["conn"]] for c in clients)
    assert (erin_row["reason"], erin_row["operator_reason"]) == ("kicked", "flooding")
    assert (frank_row["reason"], frank_row["operator_reason"]) == ("kicked", "raiding")
    assert (henry_row["reason"], henry_row["operator_reason"]) == ("kicked", "trolling")
    assert grace_row["operator_reason"] == ""


@pytest.mark.gen_test(timeout=30)
async def test_a_store_that_cannot_answer_gives_503_and_a_bad_room_400(chat, app):
    store = app.runtime.store

    def away(*args: Any, **kwargs: Any) -> Any:
        raise StoreError("the database is away")

    for name in ("mute", "lift_mute", "read_mutes", "room_before", "read_audit", "append_event"):
        setattr(store, name, away)
    host = chat.host  # the node whose store is away
    for method, path, body in (("POST", "/rooms/general/mutes/bob", {"reason": "x"}),
                               ("DELETE", "/rooms/general/mutes/bob", None),
                               ("GET", "/mutes", None), ("GET", "/rooms/general/messages", None),
                               ("GET", "/audit", None), ("DELETE", "/messages/5", {"reason": "x"})):
        answer = await admin(chat, method, path, body, expect=503, host=host)
        assert answer["error"] == "unavailable", path
    for path in ("/rooms/a%20b/messages", "/rooms/" + "x" * 65 + "/messages"):
        await admin(chat, "GET", path, expect=400)
