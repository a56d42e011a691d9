"""PostgreSQL for the tests: the shared server (127.0.0.1:5432, database `test`, or
$IMSERVER_TEST_DSN), a fresh schema per test, and a private cluster a test may stop
and start (PrivatePostgres).

Without PostgreSQL (or asyncpg) the tests that need it skip, saying why; on CI
(CI set) they fail instead. `.ci/services` starts the shared server.
"""

from __future__ import annotations

import asyncio
import functools
import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import threading
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import pytest

from imserver.config import hide_password

CANDIDATES = ("postgresql://postgres@127.0.0.1:5432/test", "postgresql://root@127.0.0.1:5432/test")

T = TypeVar("T")


def need(reason: str) -> NoReturn:
    """Skip for a missing service, or fail on CI, where every test must run."""
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def in_thread(make: Callable[[], Coroutine[Any, Any, T]], timeout: float = 30.0) -> T:
    """Run a coroutine to the end on a loop of its own in another thread, from code
    that may have a loop of its own (fixtures, tests on pytest-tornado's loop)."""
    box: dict[str, Any] = {}

    def main() -> None:
        try:
            box["value"] = asyncio.run(asyncio.wait_for(make(), timeout))
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=main)
    thread.start()
    thread.join(timeout + 5)
    if thread.is_alive():
        raise TimeoutError(f"{make} did not finish in {timeout + 5} s")
    if "error" in box:
        raise box["error"]
    return box["value"]  # type: ignore[no-any-return]


async def connect(dsn: str, schema: str | None = None, timeout: float = 5.0) -> Any:
    import asyncpg
    settings = {"search_path": f'"{schema}"'} if schema else {}
    return await asyncpg.connect(dsn, timeout=timeout, server_settings=settings)


async def _probe(dsn: str) -> None:
    conn = await connect(dsn, timeout=3)
    await conn.fetchval("SELECT 1")
    await conn.close()


@functools.cache
def find_postgres() -> tuple[str | None, str]:
    """The DSN of a reachable server, or None and why none is."""
    env = os.environ.get("IMSERVER_TEST_DSN")
    problems = []
    for dsn in [env] if env else CANDIDATES:
        try:
            in_thread(lambda dsn=dsn: _probe(dsn), timeout=10)
        except Exception as exc:
            problems.append(f"{hide_password(dsn)}: {type(exc).__name__}: {exc}")
            continue
        return dsn, ""
    return None, "; ".join(problems)


def require_asyncpg() -> None:
    """For a test module that imports the PostgreSQL store: at its top."""
    try:
        import asyncpg  # noqa: F401
    except ImportError:
        reason = "asyncpg is not installed (pip install -e '.[test]')"
        if os.environ.get("CI"):
            raise
        pytest.skip(reason, allow_module_level=True)


def require_postgres() -> str:
    try:
        import asyncpg  # noqa: F401
    except ImportError:
        need("asyncpg is not installed (pip install -e '.[test]')")
    dsn, why = find_postgres()
    if dsn is None:
        need(f"PostgreSQL is not reachable ({why}); bash .ci/services starts it")
    return dsn


async def execute(dsn: str, schema: str | None, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    """Run one statement on its own connection; its rows, if any."""
    conn = await connect(dsn, schema)
    try:
        return [tuple(r) for r in await conn.fetch(sql, *args)]
    finally:
        await conn.close()


@contextmanager
def fresh_schema(dsn: str) -> Iterator[str]:
    """A schema name nobody uses (the store creates it); dropped afterwards."""
    schema = f"test_{secrets.token_hex(6)}"
    try:
        yield schema
    finally:
        in_thread(lambda: execute(dsn, None, f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class PrivatePostgres:
    """A PostgreSQL cluster of a test's own, in a temporary directory, on an OS-chosen
    port: to stop (as a crash would) and start again without touching the shared one.
    initdb refuses to run as root, so the cluster belongs to the `postgres` user."""

    def __init__(self) -> None:
        initdbs = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                         key=lambda p: int(Path(p).parts[-3]))
        if not initdbs:
            need("no PostgreSQL server binaries (/usr/lib/postgresql/*/bin): apt-get install postgresql")
        if os.geteuid() != 0 or shutil.which("runuser") is None:
            need("a private PostgreSQL cluster needs root (to run initdb as the postgres user)")
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            need("there is no postgres user to own a private cluster")
        self.bin = Path(initdbs[-1]).parent
        self.dir = Path(tempfile.mkdtemp(prefix="imserver-pg-"))
        os.chown(self.dir, owner.pw_uid, owner.pw_gid)
        self.data = self.dir / "data"
        self.port = free_port()
        self.dsn = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self.running = False
        self._as_postgres(str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres",
                          "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions")

    def _as_postgres(self, *args: str) -> None:
        result = subprocess.run(["runuser", "-u", "postgres", "--", *args], capture_output=True,
                                text=True, timeout=60, cwd=self.dir)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed:\n{result.stdout}{result.stderr}")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1"
        self._as_postgres(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.dir / "log"),
                          "-o", options, "-w", "-t", "30", "start")
        self.running = True

    def stop(self, mode: str = "immediate") -> None:
        """Stop; `immediate` is a crash: no checkpoint, every connection cut."""
        self._as_postgres(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")
        self.running = False

    def remove(self) -> None:
        if self.running:
            with suppress(Exception):
                self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
