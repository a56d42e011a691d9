"""Configuration: frozen dataclasses loaded from one YAML file.

Every setting has a default, so an empty file (or none) runs the server on
embedded defaults. Unknown keys are refused, and every error names the dotted
key and the bad value, e.g. ``heartbeat.ping_timeout must be > 0, got -1``.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

import yaml

from .core.errors import ConfigError


def _setting(default: Any, *, gt: float | None = None, ge: float | None = None,
             le: float | None = None, choices: tuple[str, ...] | None = None) -> Any:
    """A config field with its default and range checks."""
    meta = {"gt": gt, "ge": ge, "le": le, "choices": choices}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class ServerConfig:
    host: str = _setting("127.0.0.1")
    port: int = _setting(8080, ge=0, le=65535)
    allowed_origins: tuple[str, ...] = _setting(())
    data_dir: str = _setting("data")
    xheaders: bool = _setting(False)
    compression: bool = _setting(False)
    uvloop: bool = _setting(True)
    send_threads: int = _setting(0, ge=0, le=64)
    echo_endpoint: bool = _setting(False)


@dataclass(frozen=True)
class JwtConfig:
    algorithm: str = _setting("HS256", choices=("HS256", "RS256"))
    secret: str = _setting("")
    public_key_file: str = _setting("")
    issuer: str = _setting("")
    audience: str = _setting("")
    leeway_seconds: float = _setting(30.0, ge=0)
    rooms_claim: str = _setting("")


@dataclass(frozen=True)
class JoinHookConfig:
    url: str = _setting("")
    token: str = _setting("")
    timeout_seconds: float = _setting(2.0, gt=0, le=30)
    cache_seconds: float = _setting(30.0, ge=0)
    cache_size: int = _setting(10_000, ge=0)


@dataclass(frozen=True)
class AuthConfig:
    mode: str = _setting("guest", choices=("guest", "jwt"))
    secret: str = _setting("")
    token_ttl_seconds: float = _setting(7 * 24 * 3600.0, gt=0)
    cookie_secure: bool = _setting(False)
    jwt: JwtConfig = field(default_factory=JwtConfig)
    join_hook: JoinHookConfig = field(default_factory=JoinHookConfig)


@dataclass(frozen=True)
class HeartbeatConfig:
    ping_interval: float = _setting(10.0, gt=0)
    ping_timeout: float = _setting(20.0, gt=0)
    client_interval: float = _setting(10.0, gt=0)
    client_timeout: float = _setting(20.0, gt=0)


@dataclass(frozen=True)
class ShutdownConfig:
    spread_seconds: float = _setting(10.0, ge=0)
    retry_min_seconds: float = _setting(1.0, ge=0)
    grace_seconds: float = _setting(2.0, ge=0)


@dataclass(frozen=True)
class LimitsConfig:
    max_frame_bytes: int = _setting(65536, ge=256)
    max_text_chars: int = _setting(4000, ge=1)
    max_json_depth: int = _setting(8, ge=2, le=64)
    presence_interval: float = _setting(0.2, ge=0, le=10)
    typing_seconds: float = _setting(6.0, gt=0, le=60)
    history_page: int = _setting(50, ge=1, le=1000)
    recovery_limit: int = _setting(500, ge=1, le=100_000)
    max_connections: int = _setting(0, ge=0)  # 0: as many as the open file limit allows
    max_connections_per_user: int = _setting(20, ge=1)
    max_connections_per_address: int = _setting(500, ge=1)
    max_rooms_per_connection: int = _setting(100, ge=1)
    login_attempts_per_minute: float = _setting(30.0, gt=0)
    messages_per_second: float = _setting(20.0, gt=0)
    burst: int = _setting(40, ge=1)
    flood_strikes: int = _setting(50, ge=1)
    max_outbound_buffer_bytes: int = _setting(4 * 1024 * 1024, ge=65536)
    # HTTP connections that have not (yet) become WebSockets: see edge.py.
    header_timeout_seconds: float = _setting(10.0, gt=0)
    idle_timeout_seconds: float = _setting(30.0, gt=0)
    body_timeout_seconds: float = _setting(10.0, gt=0)
    max_body_bytes: int = _setting(64 * 1024, ge=1024)
    max_pending_per_address: int = _setting(100, ge=1)
    max_pending_connections: int = _setting(1000, ge=1)


@dataclass(frozen=True)
class StorageConfig:
    backend: str = _setting("sqlite", choices=("sqlite", "postgres"))
    path: str = _setting("imserver.db")  # sqlite
    dsn: str = _setting("")  # postgres: libpq connection URI or key=value string
    schema: str = _setting("public")  # postgres: the schema holding the tables
    timeout_seconds: float = _setting(10.0, gt=0)  # postgres: connect and each statement
    max_age_days: float = _setting(30.0, ge=0)
    max_messages_per_room: int = _setting(100_000, ge=0)
    retention_interval_seconds: float = _setting(600.0, gt=0)
    batch_max: int = _setting(512, ge=1)
    synchronous: str = _setting("full", choices=("full", "normal"))
    health_deadline_seconds: float = _setting(10.0, gt=0)


@dataclass(frozen=True)
class BrokerConfig:
    """How the nodes of a cluster hear each other: `local` is one process alone."""
    backend: str = _setting("local", choices=("local", "redis"))
    url: str = _setting("redis://127.0.0.1:6379/0")
    prefix: str = _setting("imserver")  # Redis keys and channels start with it: one per cluster
    node_id: str = _setting("")  # "" : made up at start (host, process, random)
    lease_seconds: float = _setting(5.0, gt=0)  # a node silent this long is gone, its members too
    liveness_interval_seconds: float = _setting(1.0, gt=0)
    outbox_limit: int = _setting(10_000, ge=1)


@dataclass(frozen=True)
class ClientConfig:
    reconnect_base_seconds: float = _setting(1.0, gt=0)
    reconnect_factor: float = _setting(2.0, ge=1)
    reconnect_cap_seconds: float = _setting(30.0, gt=0)
    reconnect_attempts: int = _setting(10, ge=1)
    stable_after_seconds: float = _setting(10.0, ge=0)
    connect_timeout_seconds: float = _setting(10.0, gt=0)
    outbox_limit: int = _setting(200, ge=1)


@dataclass(frozen=True)
class MetricsConfig:
    enabled: bool = _setting(True)
    token: str = _setting("")


@dataclass(frozen=True)
class OperatorConfig:
    """An operator of the admin side: a name for the audit log, and its own token."""
    name: str = _setting("")
    token: str = _setting("")


# The audit log's name for whoever uses admin.token.
ADMIN_OPERATOR = "admin"
OPERATOR_NAME = re.compile(r"[A-Za-z0-9_.@-]{1,64}")
MIN_OPERATOR_TOKEN = 16


@dataclass(frozen=True)
class AdminConfig:
    token: str = _setting("")
    operators: tuple[OperatorConfig, ...] = _setting(())


@dataclass(frozen=True)
class ApiConfig:
    key: str = _setting("")


@dataclass(frozen=True)
class LoggingConfig:
    level: str = _setting("info", choices=("debug", "info", "warning", "error"))


@dataclass(frozen=True)
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    heartbeat: HeartbeatConfig = field(default_factory=HeartbeatConfig)
    shutdown: ShutdownConfig = field(default_factory=ShutdownConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    broker: BrokerConfig = field(default_factory=BrokerConfig)
    client: ClientConfig = field(default_factory=ClientConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    admin: AdminConfig = field(default_factory=AdminConfig)
    api: ApiConfig = field(default_factory=ApiConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)

    @property
    def data_path(self) -> Path:
        return Path(self.server.data_dir)

    @property
    def storage_path(self) -> str:
        """The SQLite file, relative paths taken under the data directory."""
        if self.storage.path == ":memory:":
            return ":memory:"
        return str(self.data_path / self.storage.path)


def hide_password(dsn: str) -> str:
    """A connection string with its password, if it holds one, shown as (set)."""
    dsn = re.sub(r"(://[^/@:]*:)[^/@]*@", r"\1(set)@", dsn)
    return re.sub(r"(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", r"\1(set)", dsn)


def _describe(value: Any) -> str:
    return repr(value) if isinstance(value, str) else str(value)


def _convert(key: str, hint: Any, value: Any) -> Any:
    """Check `value` against a field's type hint, converting int to float."""
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, key + ".")
    origin = get_origin(hint)
    if origin is tuple:
        if not isinstance(value, list):
            raise ConfigError(f"{key} must be a list, got {_describe(value)}")
        (item_type, _) = get_args(hint)
        return tuple(_convert(f"{key}[{i}]", item_type, v) for i, v in enumerate(value))
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key} must be true or false, got {_describe(value)}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key} must be a whole number, got {_describe(value)}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ConfigError(f"{key} must be a number, got {_describe(value)}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key} must be a string, got {_describe(value)}")
        return value
    raise ConfigError(f"{key}: unsupported setting type {hint}")  # pragma: no cover


def _check_range(key: str, meta: Any, value: Any, given: Any) -> None:
    """Check `value` against the field's bounds; errors show the value as `given`."""
    shown = _describe(given)
    if meta.get("gt") is not None and not value > meta["gt"]:
        raise ConfigError(f"{key} must be > {meta['gt']}, got {shown}")
    if meta.get("ge") is not None and not value >= meta["ge"]:
        raise ConfigError(f"{key} must be >= {meta['ge']}, got {shown}")
    if meta.get("le") is not None and not value <= meta["le"]:
        raise ConfigError(f"{key} must be <= {meta['le']}, got {shown}")
    if meta.get("choices") and value not in meta["choices"]:
        allowed = ", ".join(meta["choices"])
        raise ConfigError(f"{key} must be one of {allowed}, got {shown}")


def _build(cls: Any, data: Any, prefix: str = "") -> Any:
    section = prefix.rstrip(".") or "the config file"
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{section} must be a mapping of settings, got {_describe(data)}")
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(str(k) for k in data if k not in fields)
    if unknown:
        raise ConfigError(f"{prefix}{unknown[0]} is not a known setting")
    values = {}
    for name, value in data.items():
        key = prefix + name
        converted = _convert(key, hints[name], value)
        _check_range(key, fields[name].metadata, converted, value)
        values[name] = converted
    return cls(**values)


def _check_consistency(config: Config) -> None:
    hb = config.heartbeat
    if hb.client_timeout <= hb.client_interval:
        raise ConfigError(
            f"heartbeat.client_timeout must be > heartbeat.client_interval "
            f"({hb.client_interval}), got {hb.client_timeout}")
    if config.auth.mode == "jwt":
        jwt = config.auth.jwt
        if jwt.algorithm == "HS256" and not jwt.secret:
            raise ConfigError("auth.jwt.secret must be set when auth.jwt.algorithm is HS256")
        if jwt.algorithm == "RS256" and not jwt.public_key_file:
            raise ConfigError("auth.jwt.public_key_file must be set when auth.jwt.algorithm is RS256")
    hook = config.auth.join_hook.url
    if hook and not hook.startswith(("http://", "https://")):
        raise ConfigError(f"auth.join_hook.url must be an http:// or https:// URL, got {hook!r}")
    broker = config.broker
    if broker.backend == "redis" and not broker.url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError(f"broker.url must be a redis://, rediss:// or unix:// URL, got {broker.url!r}")
    if broker.backend == "redis" and broker.lease_seconds <= 2 * broker.liveness_interval_seconds:
        raise ConfigError(
            f"broker.lease_seconds must be > 2 x broker.liveness_interval_seconds "
            f"({broker.liveness_interval_seconds}), got {broker.lease_seconds}")
    storage = config.storage
    if storage.backend == "postgres" and not storage.dsn.strip():
        raise ConfigError("storage.dsn must be set when storage.backend is postgres "
                          "(e.g. postgresql://user@host:5432/dbname)")
    if not 0 < len(storage.schema.encode("utf-8", "replace")) <= 63 or "\x00" in storage.schema:
        raise ConfigError(f"storage.schema must be a PostgreSQL schema name of 1-63 bytes, "
                          f"got {storage.schema!r}")
    _check_operators(config.admin)
    if config.client.reconnect_cap_seconds < config.client.reconnect_base_seconds:
        raise ConfigError(
            f"client.reconnect_cap_seconds must be >= client.reconnect_base_seconds "
            f"({config.client.reconnect_base_seconds}), got {config.client.reconnect_cap_seconds}")


def _check_operators(admin: AdminConfig) -> None:
    """Each operator has a name of its own (never admin.token's) and a token of its own."""
    names, tokens = {ADMIN_OPERATOR}, {admin.token}
    for i, operator in enumerate(admin.operators):
        key = f"admin.operators[{i}]"
        if not OPERATOR_NAME.fullmatch(operator.name):
            raise ConfigError(f"{key}.name must be 1-64 letters, digits, '_', '.', '@' or '-', "
                              f"got {operator.name!r}")
        if operator.name in names:
            raise ConfigError(f"{key}.name must be unique and not {ADMIN_OPERATOR!r} (the name of "
                              f"admin.token), got {operator.name!r}")
        if len(operator.token) < MIN_OPERATOR_TOKEN or operator.token in tokens:
            raise ConfigError(f"{key}.token must be a token of at least {MIN_OPERATOR_TOKEN} "
                              "characters that no other operator (nor admin.token) has")
        names.add(operator.name)
        tokens.add(operator.token)


def config_from_dict(data: Any) -> Config:
    """Build and validate a Config from parsed YAML (or a plain dict)."""
    config: Config = _build(Config, data)
    _check_consistency(config)
    return config


def load_config(path: str | os.PathLike[str] | None) -> Config:
    """Read, validate and return the config at `path` (None: all defaults).

    A relative `server.data_dir` is taken relative to the config file.
    """
    if path is None:
        return config_from_dict({})
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {file}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{file} is not valid YAML: {exc}") from None
    config = config_from_dict(data)
    data_dir = Path(config.server.data_dir)
    if not data_dir.is_absolute():
        data_dir = file.resolve().parent / data_dir
        config = replace(config, server={"data_dir": str(data_dir)})
    return config


def replace(config: Config, **sections: dict[str, Any]) -> Config:
    """A copy of `config` with some settings changed: replace(c, heartbeat={"ping_interval": 1})."""
    changes = {}
    for name, values in sections.items():
        current = getattr(config, name)
        changes[name] = dataclasses.replace(current, **values)
    return dataclasses.replace(config, **changes)
