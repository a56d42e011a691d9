"""The servers under test: settings with the limits raised, and CPU measured over a window."""

from __future__ import annotations

import os
import resource
import time
import urllib.request
from pathlib import Path
from typing import Any

from imserver.testing import ServerProcess

from .node import LOADGEN_DIR, ensure_installed
from .report import machine_busy_seconds, own_cpu_seconds, process_cpu_seconds

# The fast path; the naive baseline: Tornado's write_message per connection
# (bench/baseline.py: not a setting of the product); and a broadcast server on
# Node's `ws` (bench/loadgen/wsserver.mjs), the design imserver is measured against.
NODE_WS = "node-ws"
FANOUT_MODES = ("prebuilt", "write_message", NODE_WS)
REPO = Path(__file__).resolve().parent.parent

# A reconnect storm from one address holds thousands of upgrade requests at once.
PENDING = 4000

# A load generator on one address opens thousands of connections and logs in
# hundreds of users as fast as it can: the abuse limits would refuse it.
UNLIMITED: dict[str, dict[str, Any]] = {
    "limits": {
        "messages_per_second": 1e9,
        "burst": 1_000_000_000,
        "max_connections": 0,  # as many as the open file limit holds
        "max_pending_per_address": PENDING,
        "max_pending_connections": PENDING,
        "max_connections_per_address": 100_000,
        "max_connections_per_user": 100_000,
        "login_attempts_per_minute": 1e9,
    },
    # ServerProcess waits for the INFO line "listening on ..."; at info the
    # server also logs a line per connection opened and closed, which costs
    # CPU only while connections come and go, never in a window of fan-out.
    "logging": {"level": "info"},
}


def bench_settings(**sections: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Server settings for a benchmark: limits raised, plus `sections`."""
    settings: dict[str, dict[str, Any]] = {name: dict(values) for name, values in UNLIMITED.items()}
    for name, values in sections.items():
        settings.setdefault(name, {}).update(values)
    return settings


def start_server(workdir: Path, fanout: str = "prebuilt", **sections: dict[str, Any]) -> ServerProcess:
    """A bench server in its own directory under `workdir`, started (`sections`
    are imserver settings: node-ws has none)."""
    workdir.mkdir(parents=True, exist_ok=True)
    return server_process(workdir, bench_settings(**sections), fanout).start()


class NodeWsServer(ServerProcess):
    """bench/loadgen/wsserver.mjs run as ServerProcess runs imserver: an OS-chosen
    port read from its `listening on` line, its output in server.log."""

    def command(self, port: int | None) -> list[str]:
        return ["node", str(LOADGEN_DIR / "wsserver.mjs"), str(port or 0)]

    def start(self, *, port: int | None = None, timeout: float = 20.0) -> NodeWsServer:
        ensure_installed()
        super().start(port=port, timeout=timeout)
        # Node keeps the soft open file limit it was given; imserver raises its own to the hard one.
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        resource.prlimit(server_pid(self), resource.RLIMIT_NOFILE, (hard, hard))
        return self


def server_process(workdir: Path, settings: dict[str, Any], fanout: str = "prebuilt") -> ServerProcess:
    """The server under test (`prebuilt`), the naive baseline (`write_message`), or
    the Node `ws` server (`node-ws`, which takes no settings)."""
    if fanout == "prebuilt":
        return ServerProcess(workdir, settings)
    if fanout == NODE_WS:
        return NodeWsServer(workdir)
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH", "")]))
    return ServerProcess(workdir, settings, module="bench.baseline", env={**os.environ, "PYTHONPATH": path})


def server_pid(server: ServerProcess) -> int:
    assert server.proc is not None
    return server.proc.pid


def scrape(host: str, *names: str) -> dict[str, float]:
    """The samples of some of a server's metrics (GET /metrics), by name with labels."""
    with urllib.request.urlopen(f"http://{host}/metrics", timeout=10) as response:
        text = response.read().decode()
    samples = {}
    for line in text.splitlines():
        if line.startswith(names):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples


class CpuWindow:
    """CPU seconds used by some processes, and wall seconds, from start() to stop().

    `other` is what the rest of the machine used meanwhile (all cores' busy
    time less these processes and this one): other work on a 2-core machine
    shows up as noise in the figures, so the tables print it.
    """

    def __init__(self, **pids: int) -> None:
        self.pids = pids
        self.cpu: dict[str, float] = {}
        self.other = 0.0
        self.wall = 0.0

    def _sample(self) -> tuple[dict[str, float], float, float]:
        cpu = {name: process_cpu_seconds(pid) for name, pid in self.pids.items()}
        return cpu, own_cpu_seconds(), machine_busy_seconds()

    def start(self) -> CpuWindow:
        self._cpu0, self._own0, self._busy0 = self._sample()
        self._t0 = time.monotonic()
        return self

    def stop(self) -> CpuWindow:
        self.wall = time.monotonic() - self._t0
        cpu, own, busy = self._sample()
        self.cpu = {name: cpu[name] - self._cpu0[name] for name in self.pids}
        self.other = max(0.0, (busy - self._busy0) - sum(self.cpu.values()) - (own - self._own0))
        return self

    def share(self, name: str, seconds: float | None = None) -> float:
        """CPU of `name` as a fraction of one core over `seconds` (default: the wall time)."""
        span = seconds if seconds is not None else self.wall
        return self.cpu[name] / span if span > 0 else float("nan")
