"""The Node load generator (bench/loadgen/*.mjs) as a child process speaking JSON lines.

A Python client would be the bottleneck of the heavy scenarios, so they drive
Node scripts built on the `ws` package: one JSON argument with the settings,
events on the script's stdout, commands on its stdin, its log on stderr.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from .report import process_cpu_seconds

LOADGEN_DIR = Path(__file__).resolve().parent / "loadgen"
MAX_ARGUMENT = 100_000  # bytes of settings passed as an argument (Linux takes 128 KB at most)


def ensure_installed() -> None:
    """`npm ci` in bench/loadgen the first time (node_modules is not committed)."""
    if shutil.which("node") is None:
        raise SystemExit("bench: the load generator needs Node.js (node 18 or later) on PATH")
    if (LOADGEN_DIR / "node_modules" / "ws").is_dir():
        return
    print("bench: installing the load generator (npm ci in bench/loadgen)", file=sys.stderr)
    subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--silent"], cwd=LOADGEN_DIR, check=True)


class LoadgenError(RuntimeError):
    """The load generator failed, exited, or did not answer in time."""


class NodeLoadgen:
    """One running bench/loadgen script (BENCH_NODE_ARGS: extra node options, e.g. --cpu-prof)."""

    def __init__(self, script: str, settings: dict[str, Any]) -> None:
        ensure_installed()
        self.script = script
        argument = json.dumps(settings)
        self._settings_file: str | None = None
        if len(argument) > MAX_ARGUMENT:  # thousands of signed tokens: through a file
            with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
                f.write(argument)
            self._settings_file = f.name
            argument = f"@{f.name}"
        self.proc = subprocess.Popen(
            ["node", *os.environ.get("BENCH_NODE_ARGS", "").split(), str(LOADGEN_DIR / script),
             argument],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, cwd=LOADGEN_DIR)
        self._events: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.errors: list[str] = []
        self._readers = [threading.Thread(target=self._read_events, daemon=True),
                         threading.Thread(target=self._read_errors, daemon=True)]
        for reader in self._readers:
            reader.start()

    def _read_events(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                self._events.put(json.loads(line))
            except ValueError:
                self.errors.append(line.rstrip())
        self._events.put(None)

    def _read_errors(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.errors.append(line.rstrip())

    @property
    def pid(self) -> int:
        return self.proc.pid

    def cpu_seconds(self) -> float:
        return process_cpu_seconds(self.proc.pid)

    def expect(self, event: str, timeout: float = 300.0) -> dict[str, Any]:
        """Wait for the next event, which must be `event`."""
        try:
            got = self._events.get(timeout=timeout)
        except queue.Empty:
            raise LoadgenError(f"{self.script}: no {event!r} within {timeout:g} s; "
                               f"log:\n{self.log_tail()}") from None
        if got is None:
            self.proc.wait(5)
            raise LoadgenError(f"{self.script} exited with {self.proc.returncode} waiting for "
                               f"{event!r}; log:\n{self.log_tail()}")
        if got.get("event") != event:
            raise LoadgenError(f"{self.script}: expected {event!r}, got {got}")
        return got

    def send(self, command: str, **fields: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"cmd": command, **fields}) + "\n")
        self.proc.stdin.flush()

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(self.errors[-lines:])

    def close(self) -> None:
        """Ask it to exit (it closes its sockets), kill it if it does not; then close
        its pipes (a test would otherwise find them unclosed)."""
        if self.proc.poll() is None:
            try:
                self.send("exit")
                self.proc.wait(20)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait(5)
        for reader in self._readers:
            reader.join(5)
        for pipe in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                with contextlib.suppress(OSError):  # stdin of a process that exited
                    pipe.close()
        if self._settings_file is not None:
            with contextlib.suppress(OSError):
                os.unlink(self._settings_file)

    def __enter__(self) -> NodeLoadgen:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
