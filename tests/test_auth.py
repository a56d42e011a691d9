"""Guest tokens, host-issued JWTs (HS256 and RS256), and the kept secret."""

from __future__ import annotations

import os
import stat
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from imserver.config import AuthConfig, JwtConfig
from imserver.core.errors import AuthError
from imserver.core.registry import User
from imserver.http.auth import Authenticator, guest_name, host_name, load_or_create_secret, name_key


def fullwidth(text: str) -> str:
    """The same letters in their fullwidth forms (NFKC folds them back)."""
    return "".join(chr(ord(c) + 0xFEE0) if c.isascii() and c.isalpha() else c for c in text)


def test_guest_token_round_trip_and_tampering():
    auth = Authenticator(AuthConfig(), "s" * 64)
    user = User("g:abc", "alice")
    token, cred = auth.issue(user)
    assert cred.user == user and cred.jti
    assert auth.check(token) == cred
    assert auth.verify(token) == user
    with pytest.raises(AuthError):
        auth.verify(token[:-2] + ("AA" if not token.endswith("AA") else "BB"))
    with pytest.raises(AuthError):
        Authenticator(AuthConfig(), "other" * 13).verify(token)
    with pytest.raises(AuthError):
        auth.verify("")
    # a guest token is valid only while the server knows it (a logout forgets it)
    del auth.guest_tokens[cred.jti]
    with pytest.raises(AuthError, match="revoked"):
        auth.verify(token)


def test_guest_token_expires():
    auth = Authenticator(AuthConfig(token_ttl_seconds=1), "s" * 64)
    expired = jwt.encode({"sub": "a", "iss": "imserver", "jti": "j", "exp": int(time.time()) - 5},
                         "s" * 64)
    with pytest.raises(AuthError, match="expired"):
        auth.verify(expired)


def test_guest_token_without_jti_is_refused():
    """Guest tokens from before ids were opaque named the user by its name."""
    old = jwt.encode({"sub": "alice", "name": "alice", "iss": "imserver",
                      "exp": int(time.time()) + 60}, "s" * 64)
    with pytest.raises(AuthError):
        Authenticator(AuthConfig(), "s" * 64).verify(old)


def test_a_well_signed_guest_token_the_server_does_not_know_is_refused():
    """Signed with the secret but never issued, or issued before a restart that kept
    nothing: refused, or it would hold a name that nobody has claimed."""
    forged = jwt.encode({"sub": "g:x", "name": "alice", "iss": "imserver", "jti": "j",
                         "exp": int(time.time()) + 60}, "s" * 64)
    with pytest.raises(AuthError):
        Authenticator(AuthConfig(), "s" * 64).verify(forged)


@pytest.mark.parametrize("name", ["", "a b", "x" * 33, "é", "<b>", "a:b", "\ud800", None])
def test_guest_names_are_validated(name):
    assert guest_name(name) is None


@pytest.mark.parametrize(("typed", "name"), [
    ("alice", "alice"), (" Alice ", "Alice"), (fullwidth("alice"), "alice"), ("x" * 32, "x" * 32)])
def test_guest_names_keep_what_was_typed_after_nfkc(typed, name):
    assert guest_name(typed) == name


def test_names_compare_after_nfkc_and_case_folding():
    assert name_key("alice") == name_key("Alice") == name_key(fullwidth("ALICE")) == "alice"
    assert name_key("alice") != name_key("alice2")


@pytest.mark.parametrize("name", ["\ud800", "a\x00b", "a\u202eb", "", " ", "x" * 65])
def test_host_names_must_be_printable(name):
    assert host_name(name) is None
    assert host_name("Ann Lee") == "Ann Lee"


SHARED = "a-shared-secret-of-at-least-32-bytes"


def hs_config(**jwt_settings):
    return AuthConfig(mode="jwt", jwt=JwtConfig(secret=SHARED, **jwt_settings))


def test_jwt_hs256_checks_exp_issuer_and_audience():
    auth = Authenticator(hs_config(issuer="https://app", audience="chat"), "unused")
    now = int(time.time())
    good = {"sub": "u-1", "name": "Ursula", "iss": "https://app", "aud": "chat", "exp": now + 60}
    assert auth.verify(jwt.encode(good, SHARED)) == User("u-1", "Ursula")
    for bad in ({**good, "iss": "https://evil"}, {**good, "aud": "other"},
                {**good, "exp": now - 120}, {k: v for k, v in good.items() if k != "exp"},
                {**good, "sub": "has space"}):
        with pytest.raises(AuthError):
            auth.verify(jwt.encode(bad, SHARED))
    with pytest.raises(AuthError):
        auth.verify(jwt.encode(good, "wrong-secret-" * 4))
    # a guest token of the same server is not a host token
    with pytest.raises(AuthError):
        auth.issue(User("g:x", "alice"))


def test_jwt_rs256_with_public_key_file(tmp_path):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    (tmp_path / "pub.pem").write_bytes(pem)
    auth = Authenticator(AuthConfig(mode="jwt", jwt=JwtConfig(
        algorithm="RS256", public_key_file=str(tmp_path / "pub.pem"))), "unused")
    claims = {"sub": "auth0|42", "exp": int(time.time()) + 60}
    assert auth.verify(jwt.encode(claims, key, algorithm="RS256")) == User("auth0|42", "auth0|42")
    # HS256 signed with the public key as secret (algorithm confusion) is refused
    with pytest.raises(AuthError):
        auth.verify(jwt.encode(claims, "x" * 32, algorithm="HS256"))


def test_secret_is_generated_once_and_kept(tmp_path):
    first = load_or_create_secret(tmp_path / "data")
    assert len(first) == 64
    assert load_or_create_secret(tmp_path / "data") == first
    mode = os.stat(tmp_path / "data" / "secret.key").st_mode
    assert stat.S_IMODE(mode) == 0o600
