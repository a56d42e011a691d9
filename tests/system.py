"""System binaries the tests need (prometheus, promtool, chromium): found, or skip / fail.

A test that needs a binary calls `require_binary(name)` (usually from a fixture).
On CI (CI=true) a missing binary is a failure: nothing may be skipped there.
Elsewhere the test is skipped, with a hint that `make system-deps` installs it.
"""

from __future__ import annotations

import os
import shutil

import pytest

# Where Debian puts them, in case PATH does not hold /usr/bin (e.g. a bare env).
FALLBACK_DIRS = ("/usr/bin", "/usr/local/bin")


def on_ci() -> bool:
    return os.environ.get("CI") == "true"


def find_binary(name: str) -> str | None:
    """The absolute path of an executable `name`, or None."""
    found = shutil.which(name)
    if found:
        return found
    for directory in FALLBACK_DIRS:
        candidate = os.path.join(directory, name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def require_binary(name: str, hint: str = "`make system-deps` installs it") -> str:
    """The path of `name`; when missing, fail on CI and skip elsewhere."""
    path = find_binary(name)
    if path is not None:
        return path
    message = f"{name} is not installed: {hint}"
    if on_ci():
        pytest.fail(f"{message} (CI=true: tests that need it may not be skipped)", pytrace=False)
    pytest.skip(message)
