"""Config loading: defaults, the shipped config.yaml, and errors that name the key."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import get_type_hints

import pytest
import yaml

from imserver.cli import main
from imserver.config import Config, config_from_dict, load_config
from imserver.core.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent


def test_shipped_config_yaml_states_the_defaults():
    shipped = load_config(ROOT / "config.yaml")
    assert shipped.server.data_dir == str(ROOT / "data")
    defaults = Config()
    assert dataclasses.replace(shipped, server=defaults.server) == defaults
    assert dataclasses.replace(shipped.server, data_dir="data") == defaults.server


def test_no_file_means_defaults():
    assert load_config(None) == Config()


def test_data_dir_relative_to_config_file(tmp_path):
    cfg = tmp_path / "conf" / "c.yaml"
    cfg.parent.mkdir()
    cfg.write_text("server:\n  data_dir: store\nstorage:\n  path: chat.db\n")
    config = load_config(cfg)
    assert config.storage_path == str(tmp_path / "conf" / "store" / "chat.db")


@pytest.mark.parametrize(("data", "message"), [
    ({"heartbeat": {"ping_timeout": -1}}, "heartbeat.ping_timeout must be > 0, got -1"),
    ({"heartbeat": {"ping_interval": "fast"}}, "heartbeat.ping_interval must be a number, got 'fast'"),
    ({"heartbeat": {"pingtimeout": 3}}, "heartbeat.pingtimeout is not a known setting"),
    ({"colour": "blue"}, "colour is not a known setting"),
    ({"server": {"port": 70000}}, "server.port must be <= 65535, got 70000"),
    ({"server": {"port": 80.5}}, "server.port must be a whole number, got 80.5"),
    ({"server": {"port": True}}, "server.port must be a whole number, got True"),
    ({"server": {"allowed_origins": "https://a"}}, "server.allowed_origins must be a list, got 'https://a'"),
    ({"server": {"allowed_origins": [1]}}, "server.allowed_origins[0] must be a string, got 1"),
    ({"server": "everything"}, "server must be a mapping of settings, got 'everything'"),
    ({"auth": {"mode": "ldap"}}, "auth.mode must be one of guest, jwt, got 'ldap'"),
    ({"auth": {"jwt": {"algorithm": "none"}}}, "auth.jwt.algorithm must be one of HS256, RS256, got 'none'"),
    ({"auth": {"mode": "jwt"}}, "auth.jwt.secret must be set when auth.jwt.algorithm is HS256"),
    ({"metrics": {"enabled": "yes"}}, "metrics.enabled must be true or false, got 'yes'"),
    ({"limits": {"max_frame_bytes": 10}}, "limits.max_frame_bytes must be >= 256, got 10"),
    ({"heartbeat": {"client_interval": 30, "client_timeout": 20}},
     "heartbeat.client_timeout must be > heartbeat.client_interval (30.0), got 20.0"),
    ({"heartbeat": {"ping_timeout": float("nan")}}, "heartbeat.ping_timeout must be a number, got nan"),
    ([1, 2], "the config file must be a mapping of settings, got [1, 2]"),
    ({"storage": {"backend": "mysql"}}, "storage.backend must be one of sqlite, postgres, got 'mysql'"),
    ({"storage": {"backend": "postgres"}},
     "storage.dsn must be set when storage.backend is postgres (e.g. postgresql://user@host:5432/dbname)"),
    ({"storage": {"schema": ""}}, "storage.schema must be a PostgreSQL schema name of 1-63 bytes, got ''"),
    ({"storage": {"schema": "é" * 32}},  # 64 bytes: PostgreSQL would cut it short
     f"storage.schema must be a PostgreSQL schema name of 1-63 bytes, got {'é' * 32!r}"),
    ({"broker": {"backend": "redis", "url": "http://redis:6379"}},
     "broker.url must be a redis://, rediss:// or unix:// URL, got 'http://redis:6379'"),
    ({"broker": {"backend": "redis", "lease_seconds": 2, "liveness_interval_seconds": 1}},
     "broker.lease_seconds must be > 2 x broker.liveness_interval_seconds (1.0), got 2.0"),
])
def test_errors_name_the_key_and_value(data, message):
    with pytest.raises(ConfigError) as info:
        config_from_dict(data)
    assert str(info.value) == message


def test_a_schema_name_of_exactly_63_bytes_is_taken():
    assert config_from_dict({"storage": {"schema": "s" * 63}}).storage.schema == "s" * 63


def test_bad_yaml_and_missing_file_are_clear(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("server: [unclosed\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml is not valid YAML"):
        load_config(bad)
    with pytest.raises(ConfigError, match=r"cannot read config file .*missing\.yaml"):
        load_config(tmp_path / "missing.yaml")


def test_cli_reports_config_errors_without_traceback(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("heartbeat:\n  ping_timeout: -1\n")
    assert main(["--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "imserver: config error: heartbeat.ping_timeout must be > 0, got -1"


def _keys(cls, prefix=""):
    """Every setting's dotted key."""
    hints = get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            yield from _keys(hints[f.name], f"{prefix}{f.name}.")
        else:
            yield f"{prefix}{f.name}"


def test_shipped_config_yaml_lists_every_setting_with_a_comment():
    text = (ROOT / "config.yaml").read_text()
    data = yaml.safe_load(text)
    for key in _keys(Config):
        node = data
        for part in key.split("."):
            assert isinstance(node, dict) and part in node, f"config.yaml lacks {key}"
            node = node[part]
        leaf = key.split(".")[-1]
        lines = [line for line in text.splitlines() if line.strip().startswith(f"{leaf}:")]
        assert lines and all("#" in line for line in lines), f"config.yaml: {key} has no comment"


def test_operators_have_names_and_tokens_of_their_own():
    token = "t" * 16
    config = config_from_dict({"admin": {"token": "main-token", "operators": [
        {"name": "alice", "token": token}, {"name": "bob.ops@example", "token": "u" * 16}]}})
    assert [(o.name, o.token) for o in config.admin.operators] == [
        ("alice", token), ("bob.ops@example", "u" * 16)]
    for operators, message in (
            ([{"name": "", "token": token}], "admin.operators[0].name must be 1-64 letters, digits, "
                                             "'_', '.', '@' or '-', got ''"),
            ([{"name": "a b", "token": token}], "admin.operators[0].name must be"),
            ([{"name": "admin", "token": token}], "admin.operators[0].name must be unique and not "
                                                  "'admin' (the name of admin.token), got 'admin'"),
            ([{"name": "a", "token": token}, {"name": "a", "token": "u" * 16}],
             "admin.operators[1].name must be unique"),
            ([{"name": "a", "token": "short"}], "admin.operators[0].token must be a token of at "
                                                "least 16 characters that no other operator"),
            ([{"name": "a", "token": token}, {"name": "b", "token": token}],
             "admin.operators[1].token must be a token of at least 16"),
            ([{"name": "a", "token": "main-token-long-enough"}], "admin.operators[0].token must be"),
            ([{"name": "a"}], "admin.operators[0].token must be"),
            ([{"name": "a", "token": token, "role": "root"}],
             "admin.operators[0].role is not a known setting"),
            (["alice"], "admin.operators[0] must be a mapping of settings, got 'alice'")):
        with pytest.raises(ConfigError, match="^" + re.escape(message)):
            config_from_dict({"admin": {"token": "main-token-long-enough", "operators": operators}})
