"""Run imserver as a real child process (for tests and benchmarks): start, signal, kill, restart."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml

LISTENING = re.compile(r"listening on http://[\d.]+:(\d+)")


class ServerProcess:
    """An imserver child process on an OS-chosen port, writing its log to a file."""

    def __init__(self, workdir: Path, settings: dict[str, Any] | None = None, *,
                 python: str = sys.executable, env: dict[str, str] | None = None,
                 module: str = "imserver", args: tuple[str, ...] = ()) -> None:
        """`python` and `env` run another installation (the default: this one, in
        this process's environment); `module` is what `python -m` runs, with `args`."""
        self.workdir = workdir
        self.args = args
        self.python = python
        self.module = module
        self.env = dict(os.environ) if env is None else env
        self.config_path = workdir / "config.yaml"
        data: dict[str, Any] = {"server": {"host": "127.0.0.1", "port": 0, "data_dir": "data"}}
        for section, values in (settings or {}).items():
            data.setdefault(section, {}).update(values)
        self.config_path.write_text(yaml.safe_dump(data))
        self.log_path = workdir / "server.log"
        self.proc: subprocess.Popen[str] | None = None
        self.port = 0
        self.lines: list[str] = []
        self._pump: threading.Thread | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def command(self, port: int | None) -> list[str]:
        """The command line that starts the server; `port` None: the config's."""
        args = [self.python, "-m", self.module, "--config", str(self.config_path), *self.args]
        return args if port is None else [*args, "--port", str(port)]

    def start(self, *, port: int | None = None, timeout: float = 20.0) -> ServerProcess:
        """Start (again) and wait until it listens; reuses the last port on a restart."""
        args = self.command(port if port is not None else self.port or None)
        self._join_pump()
        lines: list[str] = []
        self.lines = lines
        proc = self.proc = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            cwd=self.workdir, env={**self.env, "PYTHONUNBUFFERED": "1"})
        listening = threading.Event()

        def pump() -> None:  # this process's output only, even after a restart
            assert proc.stdout is not None
            with open(self.log_path, "a", encoding="utf-8") as log:
                for line in proc.stdout:
                    log.write(line)
                    log.flush()
                    lines.append(line)
                    found = LISTENING.search(line)
                    if found:
                        self.port = int(found.group(1))
                        listening.set()
            proc.stdout.close()

        self._pump = threading.Thread(target=pump, daemon=True)
        self._pump.start()
        deadline = time.monotonic() + timeout
        while not listening.wait(0.05):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"{' '.join(args)} did not start:\n{''.join(self.lines)}")
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
        self._join_pump()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
        self._join_pump()

    def _join_pump(self) -> None:
        """Wait for the output reader of an ended process to read its last line."""
        if self._pump is not None and self.proc is not None and self.proc.poll() is not None:
            self._pump.join(5)

    def output(self) -> str:
        return "".join(self.lines)


class SyncClient:
    """A small blocking WebSocket client speaking raw RFC 6455, for tests and tools.

    It can send anything, including frames a browser never would (bad UTF-8),
    and answers the server's ping frames by itself unless `answer_pings` is off.
    """

    def __init__(self, host: str, path: str, *, timeout: float = 5.0, answer_pings: bool = True,
                 headers: dict[str, str] | None = None, receive_buffer: int | None = None) -> None:
        hostname, port = host.rsplit(":", 1)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if receive_buffer is not None:  # set before connecting, so the window stays small
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        self.sock.settimeout(timeout)
        self.sock.connect((hostname, int(port)))
        self.answer_pings = answer_pings
        self.close_code: int | None = None
        key = base64.b64encode(os.urandom(16)).decode()
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        self.sock.sendall((f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                           f"Sec-WebSocket-Version: 13\r\n{extra}\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("closed during the upgrade")
            head += chunk
        head, self._buffer = head.split(b"\r\n\r\n", 1)
        self.status = int(head.split(b" ", 2)[1])
        if self.status != 101:
            self.sock.close()
            raise ConnectionRefusedError(f"upgrade refused with HTTP {self.status}")

    def send_frame(self, opcode: int, payload: bytes) -> None:
        mask = os.urandom(4)
        size = len(payload)
        if size < 126:
            header = struct.pack("!BB", 0x80 | opcode, 0x80 | size)
        elif size <= 0xFFFF:
            header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, size)
        else:
            header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, size)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(header + mask + masked)

    def send_text(self, text: str | bytes) -> None:
        self.send_frame(0x1, text.encode() if isinstance(text, str) else text)

    def send_json(self, frame: dict[str, Any]) -> None:
        self.send_text(json.dumps(frame))

    def _read(self, n: int) -> bytes:
        while len(self._buffer) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed")
            self._buffer += chunk
        data, self._buffer = self._buffer[:n], self._buffer[n:]
        return data

    def recv(self) -> str | None:
        """The next text frame, or None once the server has closed (see close_code)."""
        while True:
            first, second = self._read(2)
            size = second & 0x7F
            if size == 126:
                (size,) = struct.unpack("!H", self._read(2))
            elif size == 127:
                (size,) = struct.unpack("!Q", self._read(8))
            payload = self._read(size)
            opcode = first & 0x0F
            if opcode == 0x1:
                return payload.decode("utf-8")
            if opcode == 0x8:
                self.close_code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                return None
            if opcode == 0x9 and self.answer_pings:
                self.send_frame(0xA, payload)

    def recv_json(self) -> dict[str, Any]:
        text = self.recv()
        if text is None:
            raise ConnectionError(f"closed with {self.close_code}")
        frame: dict[str, Any] = json.loads(text)
        return frame

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.send_frame(0x8, struct.pack("!H", 1000))
        self.sock.close()


def login(host: str, name: str, *, token: str | None = None) -> str:
    """A guest token from POST /api/login (`token`: one of the same user's, which a
    login for a name held by that user needs)."""
    return login_user(host, name, token=token)[0]


def login_user(host: str, name: str, *, token: str | None = None) -> tuple[str, dict[str, str]]:
    """A guest token and its user ({"id", "name"}: the id is opaque, not the name)."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(
        f"http://{host}/api/login", data=json.dumps({"name": name}).encode(),
        headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        body = json.loads(response.read())
    new_token: str = body["token"]
    user: dict[str, str] = body["user"]
    return new_token, user
