"""Who a client is: guest tokens issued at login, or JWTs from a host application.

Both kinds are JWTs. Guest tokens are signed (HS256) with the server secret;
in `jwt` mode tokens come from elsewhere and are checked against the
configured key, issuer and audience.
"""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path

import jwt

from .config import AuthConfig
from .errors import AuthError, ConfigError
from .protocol import valid_name, valid_user_id
from .registry import User

GUEST_ISSUER = "imserver"


def load_or_create_secret(data_dir: Path) -> str:
    """The server's signing secret, generated once and kept in the data directory."""
    path = data_dir / "secret.key"
    try:
        existing = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        existing = ""
    except OSError as exc:
        raise ConfigError(f"cannot read the secret file {path}: {exc.strerror}") from None
    if existing:
        return existing
    secret = secrets.token_hex(32)
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(secret + "\n")
    except FileExistsError:  # another process won the race: use its secret
        return path.read_text(encoding="ascii").strip()
    except OSError as exc:
        raise ConfigError(f"cannot write the secret file {path}: {exc.strerror}") from None
    return secret


class Authenticator:
    """Issues guest tokens and verifies tokens of either mode."""

    def __init__(self, config: AuthConfig, secret: str) -> None:
        self.config = config
        self.secret = secret
        self._jwt_key: str | None = None
        if config.mode == "jwt":
            jc = config.jwt
            if jc.algorithm == "HS256":
                self._jwt_key = jc.secret
            else:
                try:
                    self._jwt_key = Path(jc.public_key_file).read_text(encoding="ascii")
                except OSError as exc:
                    raise ConfigError(
                        f"auth.jwt.public_key_file: cannot read {jc.public_key_file}: "
                        f"{exc.strerror}") from None

    @property
    def guest_login(self) -> bool:
        return self.config.mode == "guest"

    def issue(self, name: str) -> tuple[str, User]:
        """A guest token for a login name."""
        if not self.guest_login:
            raise AuthError("guest login is disabled: tokens come from the host application")
        if not valid_name(name):
            raise AuthError("name must be 1-32 letters, digits, '-', '_' or '.'")
        now = int(time.time())
        claims = {"sub": name, "name": name, "iss": GUEST_ISSUER, "iat": now,
                  "exp": now + int(self.config.token_ttl_seconds)}
        return jwt.encode(claims, self.secret, algorithm="HS256"), User(name, name)

    def verify(self, token: str) -> User:
        """The user a token stands for; AuthError when it is not valid now."""
        return self.verify_until(token)[0]

    def verify_until(self, token: str) -> tuple[User, float]:
        """The user a token stands for and when the token expires (epoch seconds)."""
        if not token:
            raise AuthError("no token")
        try:
            if self.config.mode == "guest":
                claims = jwt.decode(token, self.secret, algorithms=["HS256"], issuer=GUEST_ISSUER,
                                    options={"require": ["exp", "sub"]})
            else:
                jc = self.config.jwt
                assert self._jwt_key is not None
                claims = jwt.decode(
                    token, self._jwt_key, algorithms=[jc.algorithm],
                    issuer=jc.issuer or None, audience=jc.audience or None,
                    leeway=jc.leeway_seconds,
                    options={"require": ["exp", "sub"], "verify_aud": bool(jc.audience)})
        except jwt.PyJWTError as exc:
            raise AuthError(f"invalid token: {exc}") from None
        sub = claims.get("sub")
        if not isinstance(sub, str) or not valid_user_id(sub):
            raise AuthError("invalid token: bad subject")
        name = claims.get("name")
        if not isinstance(name, str) or not name.strip() or len(name) > 64:
            name = sub
        return User(sub, name), float(claims["exp"])
