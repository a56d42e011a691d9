"""/metrics behind a bearer token (`metrics.token`), and /metrics turned off."""

from __future__ import annotations

import pytest
from prometheus_client import CONTENT_TYPE_LATEST
from tornado.httpclient import HTTPClientError

from tests.conftest import make_config

TOKEN = "s3cret"


@pytest.fixture
def metrics_settings():
    """The `metrics` section of the config; a test overrides it with parametrize."""
    return {"token": TOKEN}


@pytest.fixture
def config(tmp_path, metrics_settings):
    """Replaces conftest's `config`: the `app` fixture builds the app from this one."""
    return make_config(tmp_path, metrics=metrics_settings)


async def fetch(chat, path="/metrics", **headers):
    """(status, headers, body) of a GET, whatever the status."""
    try:
        response = await chat.http.fetch(f"{chat.url}{path}", headers=headers)
    except HTTPClientError as exc:
        assert exc.response is not None
        response = exc.response
    return response.code, response.headers, response.body.decode()


@pytest.mark.gen_test
@pytest.mark.parametrize("authorization", [
    None,                       # no header at all
    f"Bearer {TOKEN}x",         # wrong token
    "Bearer ",                  # empty token
    f"Basic {TOKEN}",           # wrong scheme
    TOKEN,                      # no scheme
    f"Bearer {TOKEN[:-1]}",     # a prefix of the token
])
async def test_metrics_refuse_without_the_right_token(chat, app, authorization):
    headers = {} if authorization is None else {"Authorization": authorization}
    status, response_headers, body = await fetch(chat, **headers)
    assert status == 401
    assert response_headers["WWW-Authenticate"] == 'Bearer realm="metrics"'
    assert "imserver_" not in body and "process_" not in body


@pytest.mark.gen_test
async def test_metrics_served_with_the_right_token(chat, app):
    await chat.connect("alice")
    status, headers, body = await fetch(chat, Authorization=f"Bearer {TOKEN}")
    assert status == 200
    assert headers["Content-Type"] == CONTENT_TYPE_LATEST
    lines = body.splitlines()
    assert "imserver_connections 1.0" in lines
    assert "imserver_connections_opened_total 1.0" in lines


@pytest.mark.gen_test
async def test_the_token_guards_only_metrics(chat, app):
    status, _, _ = await fetch(chat, "/healthz")
    assert status == 200
    client = await chat.connect("bob")  # chat needs no metrics token
    client.send("ping")
    assert await client.recv_raw() == "pong"


@pytest.mark.gen_test
@pytest.mark.parametrize("metrics_settings", [{"token": ""}])
async def test_no_token_configured_means_open_metrics(chat, app):
    status, _, body = await fetch(chat)
    assert status == 200 and "imserver_connections 0.0" in body.splitlines()
    status, _, _ = await fetch(chat, Authorization="Bearer anything")
    assert status == 200


@pytest.mark.gen_test
@pytest.mark.parametrize("metrics_settings", [{"enabled": False, "token": TOKEN}])
async def test_metrics_disabled_means_no_endpoint(chat, app):
    status, _, _ = await fetch(chat, Authorization=f"Bearer {TOKEN}")
    assert status == 404
