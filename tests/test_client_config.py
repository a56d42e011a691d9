"""The chat page's reconnect settings come from the server, and only from it.

imserver/config.py holds the defaults of the `client` section; the page
fetches them from GET /api/client-config and passes them to ChatConnection,
which has no copy of its own. Here a real server answers, and the page's own
modules (run by Node, tests/js/client-config-check.mjs) take the answer: the
policy they use, and the delays they wait, follow what was served, for the
defaults and for a config that changes every key.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from imserver.testing import ServerProcess

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "tests" / "js" / "client-config-check.mjs"

CUSTOM = {
    "reconnect_base_seconds": 0.25, "reconnect_factor": 3, "reconnect_cap_seconds": 5,
    "reconnect_attempts": 6, "stable_after_seconds": 7, "connect_timeout_seconds": 4,
    "outbox_limit": 17,
}


def node() -> str:
    path = shutil.which("node")
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail("node is not installed (CI=true: this test may not be skipped)", pytrace=False)
        pytest.skip("node is not installed")
    return path


def run_check(tmp_path: Path, client: dict[str, Any]) -> dict[str, Any]:
    server = ServerProcess(tmp_path, {"client": client} if client else {}).start()
    try:
        result = subprocess.run([node(), str(SCRIPT), f"http://{server.host}"],
                                capture_output=True, text=True, timeout=60, cwd=ROOT, check=False)
    finally:
        server.stop()
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize("client", [{}, CUSTOM], ids=["defaults", "custom"])
def test_the_page_takes_its_reconnect_settings_from_the_server(
        tmp_path: Path, client: dict[str, Any]) -> None:
    report = run_check(tmp_path, client)
    served = report["served"]
    r = served["reconnect"]
    if client:  # the config file's values are served
        assert r == {
            "base": CUSTOM["reconnect_base_seconds"], "factor": CUSTOM["reconnect_factor"],
            "cap": CUSTOM["reconnect_cap_seconds"], "attempts": CUSTOM["reconnect_attempts"],
            "stable_after": CUSTOM["stable_after_seconds"],
            "connect_timeout": CUSTOM["connect_timeout_seconds"],
        }
        assert served["outbox_limit"] == CUSTOM["outbox_limit"]
    # ... and are what the client uses: no default of its own wins.
    assert report["policy"] == {
        "base": r["base"], "factor": r["factor"], "cap": r["cap"], "attempts": r["attempts"],
        "stableAfter": r["stable_after"], "connectTimeout": r["connect_timeout"],
    }
    assert report["outbox_limit"] == served["outbox_limit"]
    # The first attempt hung until connect_timeout; then `attempts` reconnects,
    # each after at most min(cap, base * factor^(n-1)) (random() just under 1).
    assert report["timeouts"] == 1
    assert report["stop_reason"] == "gave_up"
    assert report["sockets"] == 1 + r["attempts"]
    ceilings = [min(r["cap"], r["base"] * r["factor"] ** n) * 1000 for n in range(r["attempts"])]
    assert len(report["delays"]) == r["attempts"]
    for delay, ceiling in zip(report["delays"], ceilings, strict=True):
        assert ceiling * 0.999 <= delay < ceiling, (delay, ceiling)


@pytest.mark.parametrize("limits", [{}, {"max_text_chars": 77}], ids=["defaults", "custom"])
def test_the_page_is_told_the_text_limit(tmp_path: Path, limits: dict[str, Any]) -> None:
    """The page counts toward `limits.max_text_chars` and refuses a longer text itself."""
    server = ServerProcess(tmp_path, {"limits": limits} if limits else {}).start()
    try:
        with urllib.request.urlopen(f"http://{server.host}/api/client-config", timeout=5) as response:
            served = json.load(response)
    finally:
        server.stop()
    assert served["limits"] == {"max_text_chars": limits.get("max_text_chars", 4000)}
