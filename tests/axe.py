"""axe-core, the accessibility checker, injected into a page of a browser test.

The `axe-core` npm package is installed once under the virtualenv (npm's registry
is reachable; nothing else is downloaded). Without npm the check fails on CI
(CI=true) and is skipped elsewhere, like the other browser tests.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page

AXE_VERSION = "4.10.3"
AXE_DIR = Path(sys.prefix) / "axe"
AXE_JS = AXE_DIR / "node_modules" / "axe-core" / "axe.min.js"
SEVERE = ("serious", "critical")


def axe_script() -> Path:
    """The path of axe.min.js, installing the package when it is missing."""
    if AXE_JS.is_file():
        return AXE_JS
    npm = shutil.which("npm")
    if npm is None:
        message = "npm is not installed: axe-core cannot be fetched"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message} (CI=true: the accessibility check may not be skipped)",
                        pytrace=False)
        pytest.skip(message)
    AXE_DIR.mkdir(parents=True, exist_ok=True)
    subprocess.run([npm, "install", "--no-audit", "--no-fund", "--prefix", str(AXE_DIR),
                    f"axe-core@{AXE_VERSION}"], check=True, capture_output=True, timeout=300)
    return AXE_JS


def severe_violations(page: Page) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations on the page as it is now: each rule's
    id, impact, help text and the selectors of the nodes that break it."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        # Evaluated by the test, not added as a <script>: the pages' Content-Security-Policy
        # (script-src 'self') refuses an inline script tag.
        page.evaluate(axe_script().read_text())
    found: list[dict[str, Any]] = page.evaluate(
        "async () => (await axe.run(document)).violations.map(v => ({id: v.id, impact: v.impact,"
        " help: v.help, nodes: v.nodes.map(n => n.target.join(' '))}))")
    return [v for v in found if v["impact"] in SEVERE]
