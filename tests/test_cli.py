"""The command line: options, a bad database, and running on uvloop."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

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


def test_a_second_server_on_a_taken_port_says_which_and_how_to_choose_another(tmp_path):
    (tmp_path / "first").mkdir()
    first = ServerProcess(tmp_path / "first").start()
    try:
        (tmp_path / "config.yaml").write_text("server:\n  data_dir: data\n  host: 127.0.0.1\n")
        result = run_cli("--config", str(tmp_path / "config.yaml"), "--port", str(first.port))
    finally:
        first.stop()
    assert result.returncode == 2
    assert f"cannot listen on 127.0.0.1:{first.port}: the address is already in use" in result.stderr
    assert "--port" in result.stderr and "server.port" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert first.wait() == 0  # the first server was not disturbed


def test_check_config_prints_the_effective_settings(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("heartbeat:\n  ping_interval: 5\nadmin:\n  token: do-not-print-me\n"
                      "server:\n  data_dir: data\n")
    result = run_cli("check-config", str(config))
    assert result.returncode == 0, result.stderr
    settings = yaml.safe_load(result.stdout)
    assert settings["heartbeat"]["ping_interval"] == 5.0
    assert settings["heartbeat"]["ping_timeout"] == 20.0  # a default, filled in
    assert settings["server"]["data_dir"] == str(tmp_path / "data")
    assert settings["admin"]["token"] == "(set)" and settings["metrics"]["token"] == ""
    assert "do-not-print-me" not in result.stdout + result.stderr
    assert not (tmp_path / "data").exists()  # checking starts nothing and writes nothing


@pytest.mark.parametrize(("text", "error"), [
    ("heartbeat:\n  ping_timeout: -1\n", "heartbeat.ping_timeout must be > 0, got -1"),
    ("limits:\n  burts: 3\n", "limits.burts is not a known setting"),
    ("server: [\n", "is not valid YAML"),
])
def test_check_config_names_the_bad_key(tmp_path, text, error):
    config = tmp_path / "config.yaml"
    config.write_text(text)
    result = run_cli("check-config", str(config))
    assert result.returncode == 2
    assert error in result.stderr and result.stderr.startswith("imserver: config error: ")
    assert result.stdout == "" and "Traceback" not in result.stderr


def test_check_config_refuses_postgres_without_a_dsn_and_hides_a_dsn_password(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("storage:\n  backend: postgres\n")
    result = run_cli("check-config", str(config))
    assert result.returncode == 2
    assert "storage.dsn must be set when storage.backend is postgres" in result.stderr
    config.write_text("storage:\n  backend: postgres\n"
                      "  dsn: postgresql://imserver:hunter2@db.internal:5432/chat\n")
    result = run_cli("check-config", str(config))
    assert result.returncode == 0, result.stderr
    storage = yaml.safe_load(result.stdout)["storage"]
    assert storage["dsn"] == "postgresql://imserver:(set)@db.internal:5432/chat"
    assert (storage["backend"], storage["schema"]) == ("postgres", "public")
    assert "hunter2" not in result.stdout


def test_check_config_of_a_missing_file(tmp_path):
    result = run_cli("check-config", str(tmp_path / "nope.yaml"))
    assert result.returncode == 2
    assert f"cannot read config file {tmp_path / 'nope.yaml'}" in result.stderr


def test_workers_need_the_redis_broker(tmp_path):
    (tmp_path / "config.yaml").write_text("server:\n  data_dir: data\n  port: 0\n")
    result = run_cli("--config", str(tmp_path / "config.yaml"), "--workers", "2")
    assert result.returncode == 2
    assert "--workers needs broker.backend: redis" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    result = run_cli("--config", str(tmp_path / "config.yaml"), "--workers", "0")
    assert result.returncode == 2 and "--workers must be at least 1" in result.stderr


def test_a_worker_gets_every_argument_but_the_workers_and_the_port():
    from imserver.cli import _without_workers

    assert _without_workers(["--config", "c.yaml", "--workers", "3", "--port=8080", "--host",
                             "0.0.0.0", "--workers=2"]) == ["--config", "c.yaml", "--host", "0.0.0.0"]
