"""Smaller holes: guessing admin and metrics tokens, who may read the data files,
the scheme of an Origin, and the security headers of pages and the API."""

from __future__ import annotations

import json
import logging
import os
import stat

import pytest
from prometheus_client import CollectorRegistry
from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.websocket import websocket_connect

from imserver.app import make_app
from imserver.http.security import CONTENT_SECURITY_POLICY
from imserver.testing import ServerProcess, SyncClient, login
from tests.conftest import make_config

# The chat tests run against one server and against two nodes of a cluster.
CLUSTER_TOO = True

TOKEN = "admin-token-for-tests"
METRICS = "metrics-token-for-tests"
ATTEMPTS = 3


@pytest.fixture
def config(tmp_path):
    return make_config(tmp_path, admin={"token": TOKEN}, metrics={"token": METRICS},
                       limits={"login_attempts_per_minute": ATTEMPTS})


async def status(chat, method, path, *, headers=None, body=None):
    kwargs = {"method": method, "headers": {**(headers or {})}}
    if body is not None:
        kwargs["body"] = json.dumps(body)
        kwargs["headers"]["Content-Type"] = "application/json"
    try:
        response = await chat.http.fetch(f"{chat.url}{path}", **kwargs)
    except HTTPClientError as exc:
        return exc.code
    return response.code


# --- throttled guessing ---

@pytest.mark.gen_test
async def test_admin_login_failures_are_throttled_per_address(chat):
    for _ in range(ATTEMPTS):
        assert await status(chat, "POST", "/admin/api/login", body={"token": "guess"}) == 401
    assert await status(chat, "POST", "/admin/api/login", body={"token": "guess"}) == 429
    # Once over the limit even the right token waits: a guess that worked would show.
    assert await status(chat, "POST", "/admin/api/login", body={"token": TOKEN}) == 429


@pytest.mark.gen_test
async def test_admin_bearer_failures_are_throttled_and_right_tokens_are_not_counted(chat):
    right = {"Authorization": f"Bearer {TOKEN}"}
    for _ in range(ATTEMPTS * 3):  # a script with the right token is never throttled
        assert await status(chat, "GET", "/admin/api/stats", headers=right) == 200
    for _ in range(ATTEMPTS):
        assert await status(chat, "GET", "/admin/api/clients",
                            headers={"Authorization": "Bearer guess"}) == 401
    assert await status(chat, "GET", "/admin/api/clients", headers={"Authorization": "Bearer guess"}) == 429
    assert await status(chat, "GET", "/admin/api/stats", headers=right) == 429
    with pytest.raises(HTTPClientError) as info:
        await websocket_connect(HTTPRequest(f"ws://{chat.host}/admin/ws", headers=right))
    assert info.value.code == 429


@pytest.mark.gen_test
async def test_wrong_metrics_bearer_is_throttled(chat):
    for _ in range(ATTEMPTS):
        assert await status(chat, "GET", "/metrics", headers={"Authorization": "Bearer guess"}) == 401
    assert await status(chat, "GET", "/metrics", headers={"Authorization": "Bearer guess"}) == 429
    assert await status(chat, "GET", "/metrics", headers={"Authorization": f"Bearer {METRICS}"}) == 429


# --- the data files ---

def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_data_directory_and_database_are_private(tmp_path, io_loop):
    config = make_config(tmp_path / "data")
    app = make_app(config, registry=CollectorRegistry())
    try:
        # A write, so that SQLite has its -wal and -shm files open.
        io_loop.run_sync(lambda: app.runtime.store.touch_user("u", "u"))
        db = tmp_path / "data" / "imserver.db"
        assert mode(tmp_path / "data") == 0o700
        assert mode(db) == 0o600
        assert mode(tmp_path / "data" / "secret.key") == 0o600
        for suffix in ("-wal", "-shm"):
            assert mode(f"{db}{suffix}") == 0o600, suffix
    finally:
        io_loop.run_sync(app.runtime.close, timeout=10)


def test_loose_data_directory_and_database_are_tightened_at_start(tmp_path, io_loop, caplog):
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    os.chmod(data, 0o755)
    db = data / "imserver.db"
    db.touch()
    os.chmod(db, 0o644)
    (data / "imserver.db-wal").touch()
    os.chmod(data / "imserver.db-wal", 0o664)
    caplog.set_level(logging.WARNING, logger="imserver")
    app = make_app(make_config(data), registry=CollectorRegistry())
    try:
        assert mode(data) == 0o700
        assert mode(db) == 0o600
        assert mode(data / "imserver.db-wal") == 0o600
        tightened = [r.getMessage() for r in caplog.records if "tightened" in r.getMessage()]
        assert len(tightened) == 3, tightened
        assert any(f"{data} from 755 to 700" in m for m in tightened)
    finally:
        io_loop.run_sync(app.runtime.close, timeout=10)


# --- the Origin's scheme ---

@pytest.mark.gen_test
async def test_https_origin_is_refused_by_a_plain_http_server(chat):
    token = await chat.login("origin")
    assert await chat.refused(f"?token={token}", headers={"Origin": f"https://{chat.host}"}) == 403
    same = await chat.connect(token=token, headers={"Origin": f"http://{chat.host}"})
    assert same.welcome["type"] == "welcome"
    admin = {"Authorization": f"Bearer {TOKEN}"}
    with pytest.raises(HTTPClientError) as info:
        await websocket_connect(HTTPRequest(f"ws://{chat.host}/admin/ws",
                                            headers={**admin, "Origin": f"https://{chat.host}"}))
    assert info.value.code == 403
    push = await websocket_connect(HTTPRequest(f"ws://{chat.host}/admin/ws",
                                               headers={**admin, "Origin": f"http://{chat.host}"}))
    push.close()


def test_behind_a_proxy_the_scheme_comes_from_x_forwarded_proto(tmp_path):
    server = ServerProcess(tmp_path, {"server": {"xheaders": True}}).start()
    try:
        path = f"/ws?token={login(server.host, 'proxied')}"
        https = {"X-Forwarded-Proto": "https"}
        client = SyncClient(server.host, path, headers={**https, "Origin": f"https://{server.host}"})
        assert client.recv_json()["type"] == "welcome"
        client.close()
        with pytest.raises(ConnectionRefusedError, match="403"):
            SyncClient(server.host, path, headers={**https, "Origin": f"http://{server.host}"})
    finally:
        server.stop()


# --- security headers ---

@pytest.mark.gen_test
async def test_pages_static_files_and_api_carry_security_headers(chat):
    assert "script-src 'self'" in CONTENT_SECURITY_POLICY
    assert "frame-ancestors 'none'" in CONTENT_SECURITY_POLICY
    for path in ("/", "/static/js/app.js", "/static/css/chat.css", "/admin", "/admin/",
                 "/dashboard/js/app.js", "/api/client-config", "/healthz", "/no/such/page"):
        try:
            response = await chat.http.fetch(f"{chat.url}{path}")
        except HTTPClientError as exc:
            assert exc.code == 404, path
            assert exc.response is not None
            response = exc.response
        headers = response.headers
        assert headers.get("X-Content-Type-Options") == "nosniff", path
        assert headers.get("Referrer-Policy") == "no-referrer", path
        assert headers.get("Content-Security-Policy") == CONTENT_SECURITY_POLICY, path
    # The API's errors too.
    with pytest.raises(HTTPClientError) as info:
        await chat.http.fetch(f"{chat.url}/api/me")
    assert info.value.response is not None
    assert info.value.response.headers.get("X-Content-Type-Options") == "nosniff"
