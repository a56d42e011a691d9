"""Who a client is: guest tokens issued at login, or JWTs from a host application.

Both kinds are JWTs. Guest tokens are signed (HS256) with the server secret
and carry a `jti`, by which a logout revokes them; in `jwt` mode tokens come
from elsewhere and are checked against the configured key, issuer and
audience. Which guest holds which name is identity.py's business.
"""

from __future__ import annotations

import os
import secrets
import time
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import jwt

from ..config import AuthConfig
from ..core.errors import AuthError, ConfigError
from ..core.protocol import valid_name, valid_room, valid_user_id
from ..core.registry import User

GUEST_ISSUER = "imserver"
NAME_INPUT_MAX = 256  # longer input is refused before it is normalised
HOST_NAME_MAX = 64


def guest_name(raw: object) -> str | None:
    """A guest's display name: what was typed, stripped, in NFKC, if it passes the
    guest-name rules (protocol.valid_name); else None."""
    if not isinstance(raw, str) or len(raw) > NAME_INPUT_MAX:
        return None
    name = unicodedata.normalize("NFKC", raw).strip()
    return name if valid_name(name) else None


def host_name(raw: object) -> str | None:
    """A display name from a host application's token: NFKC, printable (no control or
    format characters, no lone surrogates), 1-64 characters; else None."""
    if not isinstance(raw, str) or len(raw) > NAME_INPUT_MAX:
        return None
    name = unicodedata.normalize("NFKC", raw).strip()
    if not 0 < len(name) <= HOST_NAME_MAX or not name.isprintable():
        return None
    return name


def name_key(name: str) -> str:
    """What names are compared by: `alice`, `Alice` and fullwidth `alice` are one name."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())


@dataclass(frozen=True, slots=True)
class Credential:
    """A verified token: who it stands for, until when, and its id (None when a host
    application's token has none)."""
    user: User
    expires: float
    jti: str | None
    rooms: tuple[str, ...] | None = None  # the rooms its claim allows (None: no such claim)


ROOMS_CLAIM_MAX = 1000


def rooms_claim(value: object) -> tuple[str, ...]:
    """The rooms a token's claim allows: room names, or prefixes ending in `*`; absent:
    none. AuthError when it is not a list of such, or holds more than ROOMS_CLAIM_MAX."""
    if value is None:
        return ()
    if not isinstance(value, list) or len(value) > ROOMS_CLAIM_MAX:
        raise AuthError(f"invalid token: the rooms claim must be a list of at most {ROOMS_CLAIM_MAX}")
    for pattern in value:
        if not isinstance(pattern, str) or not (
                valid_room(pattern) or pattern == "*" or (valid_room(pattern[:-1]) and pattern[-1] == "*")):
            raise AuthError("invalid token: the rooms claim holds something that is no room name")
    return tuple(value)


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
        # The guest tokens known to be valid, jti -> expiry: issue() adds, identity.Identities
        # keeps it (from the store, its logins and logouts, and the other nodes' events).
        # check() refuses a guest token not here; Identities.check asks the store first.
        self.guest_tokens: dict[str, float] = {}
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

    def issue(self, user: User) -> tuple[str, Credential]:
        """A new guest token for a user (identity.Identities decides which user)."""
        if not self.guest_login:
            raise AuthError("guest login is disabled: tokens come from the host application")
        if not valid_name(user.name) or not valid_user_id(user.id):
            raise AuthError("name must be 1-32 letters, digits, '-', '_' or '.'")
        now = int(time.time())
        jti = secrets.token_urlsafe(16)
        expires = now + max(1, int(self.config.token_ttl_seconds))
        claims = {"sub": user.id, "name": user.name, "iss": GUEST_ISSUER, "iat": now,
                  "exp": expires, "jti": jti}
        self.guest_tokens[jti] = expires
        return jwt.encode(claims, self.secret, algorithm="HS256"), Credential(user, expires, jti)

    def verify(self, token: str) -> User:
        """The user a token stands for; AuthError when it is not valid now."""
        return self.check(token).user

    def verify_until(self, token: str) -> tuple[User, float]:
        """The user a token stands for and when the token expires (epoch seconds)."""
        cred = self.check(token)
        return cred.user, cred.expires

    def check(self, token: str) -> Credential:
        """A token's user, expiry and id; AuthError when it is not valid now (bad
        signature, expired, or a guest token not among those in memory). Costs no I/O;
        identity.Identities.check also reads the store for a guest token not in memory."""
        cred = self.decode(token)
        if self.config.mode == "guest" and cred.jti not in self.guest_tokens:
            raise AuthError("token revoked")
        return cred

    def decode(self, token: str) -> Credential:
        """A token's user, expiry and id when its signature, expiry and fields are good,
        whether or not a guest token is among the valid ones in memory; else AuthError."""
        if not token:
            raise AuthError("no token")
        if len(token) > 8192:
            raise AuthError("invalid token: too long")
        try:
            if self.config.mode == "guest":
                # Guest tokens from before jtis existed named a user by its name: refused.
                claims = jwt.decode(token, self.secret, algorithms=["HS256"], issuer=GUEST_ISSUER,
                                    options={"require": ["exp", "sub", "jti"]})
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
        except (ValueError, TypeError):  # what PyJWT lets through on odd input
            raise AuthError("invalid token") from None
        sub = claims.get("sub")
        if not isinstance(sub, str) or not valid_user_id(sub):
            raise AuthError("invalid token: bad subject")
        jti = claims.get("jti")
        if jti is not None and (not isinstance(jti, str) or not 0 < len(jti) <= 256):
            raise AuthError("invalid token: bad jti")
        exp = claims["exp"]
        if isinstance(exp, bool) or not isinstance(exp, (int, float)):
            raise AuthError("invalid token: bad exp")
        name = (guest_name if self.config.mode == "guest" else host_name)(claims.get("name"))
        rooms = None
        if self.config.mode == "jwt" and self.config.jwt.rooms_claim:
            rooms = rooms_claim(claims.get(self.config.jwt.rooms_claim))
        return Credential(User(sub, name or sub), float(exp), jti, rooms)
