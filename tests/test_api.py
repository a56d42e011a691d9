"""The server API for the application's backend, on one server and on two nodes: a
publish reaches the room's clients on every node once (a retried publish is stored
once), a direct message reaches its user, presence and history read back, and
anyone without the key is refused."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from tornado.httpclient import HTTPClientError

from imserver.config import LimitsConfig
from imserver.http.openapi import openapi
from imserver.testing import ServerProcess
from tests.conftest import make_config

CLUSTER_TOO = True
KEY = "the-application-backends-api-key"


ADMIN = "the-operators-admin-token-0123456789"


@pytest.fixture
def config(tmp_path):
    return make_config(tmp_path, api={"key": KEY}, admin={"token": ADMIN})


async def call(chat, method: str, path: str, body: Any = None, *, key: str = KEY,
               headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    """Status and JSON answer of an API call (errors included)."""
    request_headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json",
                       **(headers or {})}
    try:
        response = await chat.http.fetch(
            f"{chat.url}{path}", method=method, headers=request_headers,
            body=None if body is None else json.dumps(body))
    except HTTPClientError as exc:
        assert exc.response is not None
        return exc.code, json.loads(exc.response.body)
    return response.code, json.loads(response.body)


@pytest.mark.gen_test(timeout=30)
async def test_a_publish_reaches_every_node_once_and_a_retry_is_stored_once(chat):
    alice, bob = await chat.connect("alice"), await chat.connect("bob")  # one on each node
    for client in (alice, bob):
        await client.join("news")
    await alice.expect("presence")
    body = {"text": "release 2.0 is out", "from": "bot:release", "name": "Release bot"}
    status, first = await call(chat, "POST", "/api/v1/rooms/news/messages", body,
                               headers={"Idempotency-Key": "rel-2.0"})
    assert status == 201 and first["duplicate"] is False
    status, again = await call(chat, "POST", "/api/v1/rooms/news/messages",
                               {**body, "idempotency_key": "rel-2.0"})
    assert (status, again["id"], again["duplicate"]) == (200, first["id"], True)
    for client in (alice, bob):
        message = await client.expect("message")
        assert (message["id"], message["from"], message["name"], message["text"]) == (
            first["id"], "bot:release", "Release bot", "release 2.0 is out")
        await client.nothing(0.3)  # once
    status, page = await call(chat, "GET", "/api/v1/rooms/news/messages?limit=10")
    assert status == 200 and [m["id"] for m in page["messages"]] == [first["id"]]
    status, presence = await call(chat, "GET", "/api/v1/rooms/news/presence")
    assert status == 200 and presence["members"] == sorted(
        [{"id": chat.id("alice"), "name": "alice"}, {"id": chat.id("bob"), "name": "bob"}],
        key=lambda m: m["id"])


@pytest.mark.gen_test(timeout=30)
async def test_a_direct_publish_reaches_its_user_and_refusals_are_clear(chat):
    bob = await chat.connect("bob")
    status, sent = await call(chat, "POST", f"/api/v1/users/{chat.id('bob')}/messages",
                              {"text": "your order shipped", "from": "shop"})
    assert status == 201
    message = await bob.expect("message")
    assert (message["id"], message["from"], message["to"]) == (sent["id"], "shop", chat.id("bob"))
    status, _ = await call(chat, "POST", "/api/v1/users/bob/messages", {"text": "by name"})
    assert status == 201 and (await bob.expect("message"))["from"] == "app"

    assert (await call(chat, "POST", "/api/v1/users/nobody/messages", {"text": "x"}))[0] == 404
    assert (await call(chat, "POST", "/api/v1/rooms/news/messages", {"text": ""}))[0] == 400
    assert (await call(chat, "POST", "/api/v1/rooms/news/messages", {"text": "x", "to": 1}))[0] == 400
    assert (await call(chat, "POST", "/api/v1/rooms/bad%20room/messages", {"text": "x"}))[0] == 400
    assert (await call(chat, "POST", "/api/v1/rooms/news/messages", {"text": "x" * 4001}))[1][
        "error"] == "too_long"
    assert (await call(chat, "GET", "/api/v1/rooms/news/messages?limit=-1"))[0] == 400
    status, refused = await call(chat, "GET", "/api/v1/rooms/news/presence", key="wrong")
    assert (status, refused["error"]) == (401, "unauthorized")
    response = await chat.http.fetch(f"{chat.url}/api/v1/openapi.json")
    assert json.loads(response.body)["info"]["title"] == "imserver server API"


@pytest.mark.gen_test(timeout=30)
async def test_the_application_disconnects_and_bans_a_user_and_the_audit_log_says_so(chat):
    bob = await chat.connect("bob")
    status, answer = await call(chat, "POST", "/api/v1/users/bob/disconnect", {"reason": "bye"})
    assert status == 200 and len(answer["disconnected"]) + sum(answer.get("elsewhere", {}).values()) == 1
    assert await bob.closed() == 4003 and bob.ws.close_reason == "bye"
    status, ban = await call(chat, "POST", f"/api/v1/users/{chat.id('bob')}/ban",
                             {"reason": "spam", "seconds": 600})
    assert (status, ban["user"], ban["reason"]) == (200, chat.id("bob"), "spam")
    token = chat.tokens["bob"]
    assert await chat.refused(f"?token={token}") == 403
    assert (await call(chat, "DELETE", f"/api/v1/users/{chat.id('bob')}/ban"))[0] == 200
    assert (await call(chat, "DELETE", f"/api/v1/users/{chat.id('bob')}/ban"))[0] == 404
    assert (await call(chat, "POST", "/api/v1/users/nobody/disconnect", {}))[0] == 404
    assert (await call(chat, "POST", "/api/v1/users/bob/ban", {"seconds": 1}))[0] == 400
    assert (await call(chat, "POST", "/api/v1/users/bob/ban", {}, key=ADMIN))[0] == 401
    await chat.connect(token=token)  # lifted
    status, audit = await call(chat, "GET", "/admin/api/audit", key=ADMIN)
    assert [(e["operator"], e["action"]) for e in audit["entries"]][:3] == [
        ("app", "unban"), ("app", "ban"), ("app", "disconnect_user")]


@pytest.fixture(scope="module")
def api_server(tmp_path_factory) -> Iterator[ServerProcess]:
    # schemathesis tries wrong keys on purpose: more than the default failures per minute.
    server = ServerProcess(tmp_path_factory.mktemp("api"), {
        "api": {"key": KEY}, "limits": {"login_attempts_per_minute": 100_000,
                                        "messages_per_second": 100_000, "burst": 100_000}})
    server.start()
    yield server
    server.kill()


DOCUMENT = openapi(LimitsConfig().max_text_chars)
SCHEMA = schemathesis.openapi.from_dict(DOCUMENT)


@pytest.fixture(scope="module")
def session() -> Iterator[requests.Session]:
    """One HTTP session for schemathesis's calls, closed with the module (its pooled
    sockets would otherwise be collected, unclosed, during some later test)."""
    with requests.Session() as opened:
        yield opened


@SCHEMA.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_answer_is_one_the_openapi_document_gives(case, api_server, session):
    """schemathesis against the served server: valid and invalid calls alike get an
    answer the document lists (status, content type, body schema), never a 500."""
    case.call_and_validate(base_url=f"http://{api_server.host}", session=session,
                           headers={"Authorization": f"Bearer {KEY}"})


def test_the_served_document_is_the_one_tested_and_the_api_is_off_without_a_key(api_server, tmp_path):
    with urllib.request.urlopen(f"http://{api_server.host}/api/v1/openapi.json", timeout=10) as r:
        assert json.loads(r.read()) == DOCUMENT
    without = ServerProcess(tmp_path, {}).start()
    try:
        request = urllib.request.Request(f"http://{without.host}/api/v1/rooms/r/presence",
                                         headers={"Authorization": "Bearer "})
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(request, timeout=10)
        caught.value.close()  # it holds the response's socket
        assert caught.value.code == 404
    finally:
        without.kill()
