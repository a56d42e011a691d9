"""RFC 6455 conformance: Autobahn|Testsuite's fuzzing client against the server's echo
endpoint, which reads, writes and closes through the chat socket's own code.

The suite is Python 2 code: .ci/autobahn-env installs it (once, outside the repository)
and prints the path of its `wstest`. Where it cannot be installed the test is skipped,
and on CI (CI=true) it fails instead.
"""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from imserver.testing import ServerProcess
from tests.system import on_ci

ROOT = Path(__file__).resolve().parent.parent
# Framing, pings and pongs, reserved bits and opcodes, fragmentation, UTF-8, the close
# handshake, and text and binary messages up to 16 MiB.
CASES = ["1.*", "2.*", "3.*", "4.*", "5.*", "6.*", "7.*", "9.1.*", "9.2.1", "9.2.2", "9.2.3"]
# What the suite accepts as a pass; INFORMATIONAL marks cases whose outcome it leaves open.
PASSING = {"OK", "INFORMATIONAL"}
SERVER_SETTINGS = {
    "server": {"echo_endpoint": True},
    "limits": {"max_frame_bytes": 32 * 1024 * 1024, "max_outbound_buffer_bytes": 64 * 1024 * 1024,
               "messages_per_second": 100_000, "burst": 100_000},
    "heartbeat": {"ping_interval": 600, "ping_timeout": 1200},
    "storage": {"path": ":memory:"},
}


def find_wstest() -> str:
    """The installed wstest; skips (or, on CI, fails) when the suite cannot be had."""
    try:
        done = subprocess.run(["bash", str(ROOT / ".ci" / "autobahn-env")], capture_output=True,
                              text=True, timeout=600, check=False)
    except subprocess.TimeoutExpired:
        path, problem = "", "installing the suite took more than 10 minutes"
    else:
        lines = done.stdout.split()
        path = lines[-1] if done.returncode == 0 and lines else ""
        problem = done.stderr.strip()[-2000:]
    if path and Path(path).is_file():
        return path
    message = f"Autobahn|Testsuite is not available: {problem or 'no wstest'}"
    if on_ci():
        pytest.fail(f"{message} (CI=true: it may not be skipped)", pytrace=False)
    pytest.skip(message)


def summary(results: dict[str, dict[str, str]]) -> str:
    """Per group: how many cases came out how."""
    groups: dict[str, Counter[str]] = {}
    for case, result in results.items():
        groups.setdefault(case.split(".")[0], Counter())[result["behavior"]] += 1
    return "; ".join(f"{group}: " + ", ".join(f"{n} {b}" for b, n in sorted(counts.items()))
                     for group, counts in sorted(groups.items(), key=lambda g: int(g[0])))


def problems(log: str) -> str:
    """The server log's lines above INFO, and tracebacks (the last 3000 characters)."""
    return "".join(line for line in log.splitlines(keepends=True)
                   if " INFO " not in line)[-3000:]


def test_autobahn_fuzzingclient_passes_every_case(tmp_path):
    wstest = find_wstest()
    server = ServerProcess(tmp_path, SERVER_SETTINGS).start()
    try:
        spec = {
            "outdir": str(tmp_path / "reports"),
            "servers": [{"agent": "imserver", "url": f"ws://{server.host}/echo"}],
            "cases": CASES,
            "exclude-cases": [],
            "exclude-agent-cases": {},
        }
        (tmp_path / "spec.json").write_text(json.dumps(spec))
        run = subprocess.run([wstest, "-m", "fuzzingclient", "-s", "spec.json"], cwd=tmp_path,
                             capture_output=True, text=True, timeout=240, check=False)
    finally:
        server.stop()
    index = tmp_path / "reports" / "index.json"
    assert index.exists(), (f"wstest wrote no report (exit {run.returncode}):\n"
                            f"{run.stdout[-3000:]}{run.stderr[-3000:]}")
    results: dict[str, dict[str, str]] = json.loads(index.read_text())["imserver"]
    assert len(results) > 250, f"only {len(results)} cases ran"
    print(f"Autobahn|Testsuite, {len(results)} cases: {summary(results)}")
    failing = {case: f"{r['behavior']}/{r['behaviorClose']}" for case, r in results.items()
               if r["behavior"] not in PASSING or r["behaviorClose"] not in PASSING}
    order = sorted(failing, key=lambda c: [int(x) for x in c.split(".")])
    assert not failing, (f"{len(failing)} of {len(results)} cases do not pass "
                         f"({summary(results)}): " + ", ".join(f"{c} {failing[c]}" for c in order)
                         + "\nserver log (warnings and errors):\n" + problems(server.output()))
