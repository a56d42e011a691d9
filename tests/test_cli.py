"""The command line: options, a bad database, and running on uvloop."""

from __future__ import annotations

import subprocess
import sys

import pytest

from imserver.testing import ServerProcess, SyncClient, login


def run_cli(*args: str, cwd=None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "imserver", *args], capture_output=True, text=True,
                          timeout=30, cwd=cwd)


def test_version_and_help():
    assert run_cli("--version").stdout.startswith("imserver ")
    assert "--config" in run_cli("--help").stdout


def test_corrupt_database_stops_the_server_with_the_file_named(tmp_path):
    (tmp_path / "data").mkdir()
    db = tmp_path / "data" / "imserver.db"
    db.write_bytes(b"garbage" * 1000)
    (tmp_path / "config.yaml").write_text("server:\n  data_dir: data\n  port: 0\n")
    result = run_cli("--config", str(tmp_path / "config.yaml"))
    assert result.returncode == 2
    assert f"cannot open message database {db}" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert db.read_bytes() == b"garbage" * 1000


@pytest.mark.parametrize("use_uvloop", [True, False])
def test_serves_chat_on_either_loop(tmp_path, use_uvloop):
    server = ServerProcess(tmp_path, {"server": {"uvloop": use_uvloop}}).start()
    try:
        client = SyncClient(server.host, f"/ws?token={login(server.host, 'looper')}")
        assert client.recv_json()["type"] == "welcome"
        client.send_json({"type": "join", "room": "loop"})
        assert client.recv_json()["type"] == "joined"
        client.send_json({"type": "say", "room": "loop", "text": "hi", "cid": "1"})
        assert client.recv_json()["type"] == "ack"
        client.close()
    finally:
        server.stop()
    assert server.wait() == 0
    assert ("uvloop" in server.output()) == use_uvloop
