"""docs/examples/fastapi_app.py works as its docstring says, against a real imserver:
the token it mints connects and allows its rooms only, a publish it retries reaches
the user once, and its join hook answers as imserver expects."""

from __future__ import annotations

import importlib.util
import json
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from fastapi.testclient import TestClient

from imserver.testing import ServerProcess, SyncClient

EXAMPLE = Path(__file__).resolve().parent.parent / "docs" / "examples" / "fastapi_app.py"
SECRET = "the-applications-jwt-secret-0123456789"
API_KEY = "the-applications-api-key"
HOOK_TOKEN = "the-hook-token"


@pytest.fixture
def server(tmp_path) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path, {
        "auth": {"mode": "jwt", "jwt": {"secret": SECRET, "rooms_claim": "rooms"}},
        "api": {"key": API_KEY}})
    process.start()
    yield process
    process.kill()


@pytest.fixture
def example(server, monkeypatch) -> ModuleType:
    for name, value in (("IMSERVER_URL", f"http://{server.host}"), ("IMSERVER_JWT_SECRET", SECRET),
                        ("IMSERVER_API_KEY", API_KEY), ("IMSERVER_HOOK_TOKEN", HOOK_TOKEN)):
        monkeypatch.setenv(name, value)
    spec = importlib.util.spec_from_file_location("fastapi_app", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def frame_of(client: SyncClient, kind: str) -> dict:
    while (frame := client.recv_json())["type"] != kind:
        assert frame["type"] != "error" or kind == "error", frame
    return frame


def test_the_fastapi_example_mints_tokens_publishes_once_and_answers_the_hook(example, server):
    app = TestClient(example.app)
    assert app.get("/chat/token").status_code == 401
    minted = app.get("/chat/token", headers={"X-User": "u1"}).json()
    assert minted["expires"] > time.time()
    ann = SyncClient(server.host, f"/ws?token={minted['token']}")
    assert frame_of(ann, "welcome")["user"] == {"id": "u1", "name": "Ann"}
    ann.send_json({"type": "join", "room": "team-blue"})
    frame_of(ann, "joined")
    ann.send_json({"type": "join", "room": "team-red"})
    assert frame_of(ann, "error")["code"] == "forbidden"

    first = app.post("/orders/42/shipped", headers={"X-User": "u1"}).json()
    again = app.post("/orders/42/shipped", headers={"X-User": "u1"}).json()  # a retry
    assert again == {**first, "duplicate": True} and first["duplicate"] is False
    message = frame_of(ann, "message")
    assert (message["id"], message["from"], message["name"], message["text"]) == (
        first["id"], "shop", "Shop", "Your order 42 has shipped.")
    ann.send_json({"type": "dm_sync", "since": 0})  # nothing came twice
    assert [m["id"] for m in frame_of(ann, "dm_sync")["messages"]] == [first["id"]]
    ann.close()

    hook = {"Authorization": f"Bearer {HOOK_TOKEN}"}
    ask = {"user": "u2", "name": "Ben", "room": "team-red"}
    assert app.post("/chat/can-join", json=ask, headers=hook).json() == {"allow": True}
    refused = app.post("/chat/can-join", json={**ask, "room": "team-blue"}, headers=hook).json()
    assert refused == {"allow": False, "reason": "team red only"}
    assert app.post("/chat/can-join", content=json.dumps(ask)).status_code in (401, 422)
