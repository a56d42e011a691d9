"""The wheel serves both pages from a fresh virtualenv outside the checkout."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from imserver.testing import ServerProcess

ROOT = Path(__file__).resolve().parent.parent


def run(*args: str | Path, cwd: Path) -> None:
    # Without PYTHONPATH: pip must not take the checkout for an installed imserver.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=600,
                          env=env)
    assert done.returncode == 0, f"{args} failed:\n{done.stdout}\n{done.stderr}"


def fetch(url: str) -> tuple[int, str, str]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.headers.get("Content-Type", ""), response.read().decode()


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv outside the checkout with only the built wheel (and its dependencies)."""
    work = tmp_path_factory.mktemp("wheel")
    run(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", work / "dist", ROOT, cwd=work)
    (wheel,) = (work / "dist").glob("imserver-*.whl")
    run(sys.executable, "-m", "venv", work / "venv", cwd=work)
    run(work / "venv" / "bin" / "python", "-m", "pip", "install", "--quiet", wheel, cwd=work)
    return work / "venv" / "bin" / "python"


def test_the_installed_wheel_serves_the_chat_page_and_the_dashboard(installed, tmp_path):
    # The installed package, not this checkout: run from elsewhere, with no PYTHONPATH.
    where = subprocess.run([str(installed), "-c", "import imserver; print(imserver.__file__)"],
                           capture_output=True, text=True, cwd=tmp_path, env={}, check=True)
    assert not where.stdout.startswith(str(ROOT)), where.stdout
    server = ServerProcess(tmp_path, python=str(installed), env={})
    server.start()
    try:
        base = f"http://{server.host}"
        for page in ("/", "/admin"):
            status, kind, html = fetch(base + page)
            assert status == 200 and kind.startswith("text/html"), page
            scripts = re.findall(r'<script[^>]+src="([^"]+)"', html)
            assert scripts, f"{page} names no script"
            for src in scripts:
                status, kind, source = fetch(base + src)
                assert status == 200 and "javascript" in kind and "import" in source, src
                for module in re.findall(r"from '(\.[^']+)'", source):
                    target = urllib.parse.urljoin(base + src, module)
                    assert fetch(target)[0] == 200, target
    finally:
        server.stop()
    assert "Traceback" not in server.output()
