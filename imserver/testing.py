"""Run imserver as a real child process (for tests and benchmarks): start, signal, kill, restart."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import yaml

LISTENING = re.compile(r"listening on http://[\d.]+:(\d+)")


class ServerProcess:
    """An imserver child process on an OS-chosen port, writing its log to a file."""

    def __init__(self, workdir: Path, settings: dict[str, Any] | None = None) -> None:
        self.workdir = workdir
        self.config_path = workdir / "config.yaml"
        data: dict[str, Any] = {"server": {"host": "127.0.0.1", "port": 0, "data_dir": "data"}}
        for section, values in (settings or {}).items():
            data.setdefault(section, {}).update(values)
        self.config_path.write_text(yaml.safe_dump(data))
        self.log_path = workdir / "server.log"
        self.proc: subprocess.Popen[str] | None = None
        self.port = 0
        self.lines: list[str] = []

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, *, port: int | None = None, timeout: float = 20.0) -> ServerProcess:
        """Start (again) and wait until it listens; reuses the last port on a restart."""
        args = [sys.executable, "-m", "imserver", "--config", str(self.config_path)]
        if port is not None or self.port:
            args += ["--port", str(port if port is not None else self.port)]
        self.lines = []
        self.proc = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            cwd=self.workdir, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        listening = threading.Event()

        def pump() -> None:
            assert self.proc is not None and self.proc.stdout is not None
            with open(self.log_path, "a", encoding="utf-8") as log:
                for line in self.proc.stdout:
                    log.write(line)
                    log.flush()
                    self.lines.append(line)
                    found = LISTENING.search(line)
                    if found:
                        self.port = int(found.group(1))
                        listening.set()
            self.proc.stdout.close()

        threading.Thread(target=pump, daemon=True).start()
        deadline = time.monotonic() + timeout
        while not listening.wait(0.05):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"imserver did not start:\n{''.join(self.lines)}")
        return self

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 10.0) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def kill(self) -> None:
        """SIGKILL: a crash, nothing flushed."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def output(self) -> str:
        return "".join(self.lines)
