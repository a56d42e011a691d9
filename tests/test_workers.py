"""`imserver --workers N`: N processes on one port, one cluster over Redis."""

from __future__ import annotations

import json
import re
import signal
import time

import pytest

from imserver.testing import ServerProcess, SyncClient
from tests.chatters import JWT_SETTINGS, app_token

pytestmark = pytest.mark.timeout(120)

OWN_PORT = re.compile(r"listening on its own port (\d+)")


def test_workers_share_the_port_form_one_cluster_and_stop_together(
        tmp_path, redis_url, redis_prefix):
    server = ServerProcess(tmp_path, {
        "auth": JWT_SETTINGS,
        "broker": {"backend": "redis", "url": redis_url, "prefix": redis_prefix,
                   "lease_seconds": 3, "liveness_interval_seconds": 0.5},
        "shutdown": {"spread_seconds": 1.0, "grace_seconds": 1.0},
    }, args=("--workers", "2"))
    server.start()
    clients: list[SyncClient] = []
    try:
        deadline = time.monotonic() + 30
        while len(OWN_PORT.findall(server.output())) < 2:
            assert time.monotonic() < deadline, server.output()
            time.sleep(0.05)
        own = [int(p) for p in OWN_PORT.findall(server.output())]
        # One client on each worker's own port, and some on the shared one.
        hosts = [f"127.0.0.1:{own[0]}", f"127.0.0.1:{own[1]}", server.host, server.host]
        for number, host in enumerate(hosts):
            client = SyncClient(host, f"/ws?token={app_token(f'u{number}', f'U{number}')}")
            assert client.recv_json()["type"] == "welcome"
            client.send_json({"type": "join", "room": "w"})
            while client.recv_json()["type"] != "joined":
                pass
            clients.append(client)
        clients[0].send_json({"type": "say", "room": "w", "text": "from worker one", "cid": "1"})
        clients[1].send_json({"type": "say", "room": "w", "text": "from worker two", "cid": "2"})
        for number, client in enumerate(clients):
            texts = set()
            while len(texts) < (1 if number < 2 else 2):
                frame = client.recv_json()
                if frame["type"] == "message":
                    texts.add(frame["text"])
            assert texts <= {"from worker one", "from worker two"}
        server.signal(signal.SIGTERM)
        for client in clients:
            frames = []
            while (raw := client.recv()) is not None:
                frames.append(json.loads(raw))
            client.close()
            assert any(f["type"] == "bye" and f.get("retry_after", 0) >= 0 for f in frames), frames
        assert server.wait(20) == 0
        assert server.output().count("shutdown complete") == 2
    finally:
        for client in clients:
            client.close()
        server.stop()
