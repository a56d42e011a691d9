"""The HTTP edge under abuse, over real sockets against a real server process:
half-sent requests, slow and huge bodies, hostile paths and bodies, running out
of file descriptors, and a connection limit the file limit cannot hold."""

from __future__ import annotations

import contextlib
import json
import os
import resource
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from imserver.config import config_from_dict
from imserver.core.errors import ConfigError
from imserver.http.edge import check_fd_budget, connection_limit
from imserver.testing import ServerProcess, SyncClient, login

ADMIN = "admin-token-for-edge-tests"
# Attackers come from another loopback address than the test's own requests.
ATTACKER = "127.0.0.2"


@contextlib.contextmanager
def running(tmp_path: Path, **settings: dict[str, object]) -> Iterator[ServerProcess]:
    server = ServerProcess(tmp_path, {"admin": {"token": ADMIN}, **settings}).start()
    try:
        yield server
    finally:
        server.stop()


def half_sent(server: ServerProcess, source: str = ATTACKER) -> socket.socket:
    """A connection that has sent part of an upgrade request's headers, and stops."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((source, 0))
    sock.connect(("127.0.0.1", server.port))
    sock.sendall(f"GET /ws HTTP/1.1\r\nHost: {server.host}\r\nUpgrade: websocket\r\n".encode())
    return sock


def closed_by_server(sock: socket.socket) -> bool:
    """True once the server has closed `sock` (EOF or reset), without blocking."""
    sock.setblocking(False)
    try:
        return sock.recv(1) == b""
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True
    finally:
        sock.setblocking(True)


def wait_until(check, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def request(server: ServerProcess, method: str, path: str, body: bytes | None = None,
            headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(f"http://{server.host}{path}", data=body, method=method,
                                 headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_half_sent_requests_past_the_per_address_cap_are_closed_and_others_still_log_in(tmp_path):
    cap = 20
    with running(tmp_path, limits={"max_pending_per_address": cap}) as server:
        socks = [half_sent(server) for _ in range(cap + 30)]
        try:
            # The first `cap` are held (they may still finish their request); every one
            # past the cap is closed as soon as it is accepted.
            wait_until(lambda: sum(closed_by_server(s) for s in socks) >= 30, 10, "30 closed")
            assert not any(closed_by_server(s) for s in socks[:cap])
            assert all(closed_by_server(s) for s in socks[cap:])
            # Another address logs in and connects meanwhile.
            client = SyncClient(server.host, f"/ws?token={login(server.host, 'bystander')}")
            assert client.recv_json()["type"] == "welcome"
            client.close()
            # One of the held ones finishes its request: it is an ordinary client.
            socks[0].sendall(b"\r\n")
            assert socks[0].recv(64).startswith(b"HTTP/1.1 ")
        finally:
            for s in socks:
                s.close()
        # Closed connections give their place back: the address may connect again.
        wait_until(lambda: request(server, "GET", "/healthz")[0] == 200, 10, "healthz")
        again = half_sent(server)
        again.sendall(b"\r\n")
        assert again.recv(64).startswith(b"HTTP/1.1 ")
        again.close()
    assert "Traceback" not in server.output()


def test_half_sent_request_is_closed_after_the_header_timeout_and_idle_keepalive_too(tmp_path):
    with running(tmp_path, limits={"header_timeout_seconds": 0.5, "idle_timeout_seconds": 1.0}) as server:
        sock = half_sent(server, "127.0.0.1")
        started = time.monotonic()
        wait_until(lambda: closed_by_server(sock), 10, "the half-sent request to be closed")
        assert 0.4 <= time.monotonic() - started < 5
        sock.close()

        # A kept-alive connection that sends nothing after its request is closed too.
        keep = socket.create_connection(("127.0.0.1", server.port))
        keep.sendall(f"GET /healthz HTTP/1.1\r\nHost: {server.host}\r\n\r\n".encode())
        assert keep.recv(4096).startswith(b"HTTP/1.1 200")
        answered = time.monotonic()
        wait_until(lambda: closed_by_server(keep), 10, "the idle connection to be closed")
        assert 0.8 <= time.monotonic() - answered < 6
        keep.close()


def test_body_over_the_limit_is_refused_413_before_it_is_read(tmp_path):
    with running(tmp_path) as server:
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        sock.sendall((f"POST /api/login HTTP/1.1\r\nHost: {server.host}\r\n"
                      f"Content-Type: application/json\r\nContent-Length: {50 * 1024 * 1024}\r\n\r\n"
                      ).encode() + b"{" * 1024)
        # Answered with the body barely begun; not after 50 MB.
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(4096)
            assert chunk, answer
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 413 ")
        wait_until(lambda: closed_by_server(sock), 10, "the connection to be closed")
        sock.close()
        # Just under the limit is read and judged as usual.
        status, body = request(server, "POST", "/api/login", json.dumps({"name": "x" * 60000}).encode())
        assert status == 400 and json.loads(body)["error"] == "bad_name"
        # A slow body is dropped after body_timeout_seconds (10 s by default: not waited for here).


def test_hostile_paths_and_bodies_get_4xx_and_no_traceback(tmp_path):
    with running(tmp_path) as server:
        assert request(server, "GET", "/static/%00")[0] == 400
        assert request(server, "GET", "/dashboard/%00.js")[0] == 400
        # Deeper than any body needs, and deeper than json's recursion limit.
        for deep in (b"[" * 60000, b'{"name":' * 5000, b"[" * 20 + b"]" * 20):
            status, body = request(server, "POST", "/api/login", deep)
            assert status == 400 and json.loads(body)["error"] == "bad_request"
        assert request(server, "POST", "/api/login", b'{"name": "\xff\xfe"}')[0] == 400
        # A lone surrogate as the admin token, in the body and as a header.
        status, body = request(server, "POST", "/admin/api/login", b'{"token": "\\ud800"}')
        assert status == 401 and json.loads(body)["error"] == "unauthorized"
        odd = {"Authorization": "Bearer \xff\xe9"}
        assert request(server, "GET", "/admin/api/stats", headers=odd)[0] == 401
        assert request(server, "GET", "/admin/api/stats",
                       headers={"Authorization": f"Bearer {ADMIN}"})[0] == 200
        # An operator's reason holding a lone surrogate: the connection is not found, no 500.
        status, body = request(server, "POST", "/admin/api/users/nobody/disconnect",
                               b'{"reason": "\\ud800 bye"}', headers={"Authorization": f"Bearer {ADMIN}"})
        assert status == 404, body
    log = server.output()
    assert "Traceback" not in log and " 500 " not in log


def test_accept_backs_off_when_out_of_file_descriptors_and_recovers(tmp_path):
    with running(tmp_path, logging={"level": "info"}) as server:
        assert server.proc is not None
        pid = server.proc.pid
        in_use = len(os.listdir(f"/proc/{pid}/fd"))
        # As if the descriptors went elsewhere: 8 more may open, then accept() fails with EMFILE.
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (in_use + 8, in_use + 8))
        socks = []
        try:
            for _ in range(40):
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sock.bind((ATTACKER, 0))
                sock.connect(("127.0.0.1", server.port))  # the kernel completes it; it waits in the backlog
                socks.append(sock)
            wait_until(lambda: "cannot accept connections" in server.output(), 10, "the log line")
            before, started = cpu_seconds(pid), time.monotonic()
            time.sleep(2.0)  # a window to measure the CPU over, not a wait for a state
            used = (cpu_seconds(pid) - before) / (time.monotonic() - started)
            assert used < 0.25, f"server used {used:.0%} of a core while out of descriptors"
            log = server.output()
            assert log.count("cannot accept connections") == 1
            assert "Traceback" not in log and len(log.splitlines()) < 40
        finally:
            for sock in socks:
                sock.close()
        # The closed connections give their descriptors back; the server accepts again.
        token = login(server.host, "after")
        client = SyncClient(server.host, f"/ws?token={token}")
        assert client.recv_json()["type"] == "welcome"
        client.close()
        wait_until(lambda: "accepting connections again" in server.output(), 10, "recovery line")
        assert server.output().count("cannot accept connections") == 1


def _limit_files(n: int):  # type: ignore[no-untyped-def]
    return lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))


@pytest.mark.parametrize(("max_connections", "starts"), [(1000, False), (100, True), (0, True)])
def test_max_connections_is_checked_against_the_file_limit(tmp_path, max_connections, starts):
    (tmp_path / "config.yaml").write_text(
        f"server: {{data_dir: data, port: 0}}\nlimits: {{max_connections: {max_connections}, "
        f"max_pending_connections: 100}}\n")
    proc = subprocess.Popen([sys.executable, "-m", "imserver", "--config", str(tmp_path / "config.yaml")],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=_limit_files(512))
    try:
        assert proc.stdout is not None
        if starts:
            for line in proc.stdout:
                if "listening on" in line:
                    break
            assert proc.poll() is None
            assert f"at most {max_connections or 348} connections" in line
        else:
            out = proc.communicate(timeout=30)[0]
            assert proc.returncode == 2
            assert "config error: limits.max_connections (1000)" in out and "is 512" in out
            assert "at most 348" in out and "Traceback" not in out
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.communicate(timeout=30)


def test_fd_budget_counts_connections_pending_connections_and_headroom():
    limits = config_from_dict({"limits": {"max_connections": 900, "max_pending_connections": 60}}).limits
    check_fd_budget(limits, 1024)
    with pytest.raises(ConfigError, match="needs 1024 file descriptors"):
        check_fd_budget(limits, 1023)
    check_fd_budget(limits, resource.RLIM_INFINITY)
    # The default (0) takes what the limit leaves room for, and fits any limit that
    # holds the pending connections.
    defaults = config_from_dict({}).limits
    check_fd_budget(defaults, 1100)
    assert connection_limit(defaults, 20_000) == 20_000 - 1000 - 64
    assert connection_limit(defaults, 1100) == 36
    assert connection_limit(limits, 20_000) == 900
    with pytest.raises(ConfigError, match="too low"):
        check_fd_budget(defaults, 1000)
