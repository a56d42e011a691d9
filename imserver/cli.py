"""Command line: `imserver --config PATH [--host H] [--port P] [--workers N]`, and
`imserver check-config PATH`."""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import dataclasses
import errno
import gc
import logging
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Coroutine
from typing import Any

import yaml
from tornado.netutil import bind_sockets

from . import __version__
from .app import make_app
from .config import Config, hide_password, load_config, replace
from .core.errors import ConfigError, ListenError, StoreError
from .http.edge import check_fd_budget, make_server
from .ops.shutdown import graceful_shutdown

log = logging.getLogger("imserver")

LISTEN_BACKLOG = 4096  # the kernel caps it at net.core.somaxconn
# Generation 0 collects after this many net allocations (Python's default: 700).
GC_THRESHOLDS = (50_000, 20, 100)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="imserver", description="Real-time chat server.",
        epilog="imserver check-config PATH: check a config file and print the settings it gives.")
    parser.add_argument("--config", default=None, help="path of config.yaml (default: built-in defaults)")
    parser.add_argument("--host", default=None, help="address to listen on (overrides server.host)")
    parser.add_argument("--port", type=int, default=None, help="port (overrides server.port; 0 picks one)")
    parser.add_argument("--workers", type=int, default=1,
                        help="processes sharing the port (SO_REUSEPORT); more than 1 needs "
                             "broker.backend: redis")
    # A worker of --workers: it shares the port, and listens on a port of its own too.
    parser.add_argument("--worker-port", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--version", action="version", version=f"imserver {__version__}")
    return parser.parse_args(argv)


def listen(host: str, port: int, *, reuse_port: bool = False) -> list[Any]:
    """The listening sockets; ListenError, saying what to change, when the port is taken."""
    try:
        # A deep accept queue: after a restart thousands of clients come back within seconds.
        return bind_sockets(port, host, backlog=LISTEN_BACKLOG, reuse_port=reuse_port)
    except OSError as exc:
        raise ListenError(listen_problem(exc, host, port)) from None


def listen_problem(exc: OSError, host: str, port: int) -> str:
    where = f"[{host}]:{port}" if ":" in host else f"{host or '*'}:{port}"
    if exc.errno == errno.EADDRINUSE:
        return (f"cannot listen on {where}: the address is already in use (another server?); "
                "choose another port with --port or server.port in the config")
    if exc.errno == errno.EACCES:
        return (f"cannot listen on {where}: permission denied (ports below 1024 need privileges); "
                "choose another port with --port or server.port in the config")
    if exc.errno == errno.EADDRNOTAVAIL:
        return (f"cannot listen on {where}: the address is not one of this machine's; "
                "choose another with --host or server.host in the config")
    return f"cannot listen on {where}: {exc.strerror or exc}"


async def serve(config: Config, *, prebuilt: bool = True, worker_port: int | None = None) -> None:
    host = config.server.host
    # before anything is opened
    sockets = listen(host, config.server.port, reuse_port=worker_port is not None)
    if worker_port is not None:  # this worker's own port: for Prometheus, and to reach it
        sockets += listen(host, worker_port)
    app = make_app(config, prebuilt=prebuilt)
    runtime = app.runtime
    await runtime.open()
    server = make_server(app, config.limits, runtime.metrics, xheaders=config.server.xheaders)
    server.add_sockets(sockets)
    runtime.start()
    tune_gc()
    port = sockets[0].getsockname()[1]
    if worker_port is not None:
        log.info("worker %d listening on its own port %d too", os.getpid(),
                 sockets[-1].getsockname()[1])
    loop_name = type(asyncio.get_running_loop()).__module__.split(".")[0]
    log.info("imserver %s listening on http://%s:%d (data in %s, %s loop, at most %d connections)",
             __version__, config.server.host, port, config.data_path, loop_name,
             runtime.max_connections)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("signal received, shutting down")
    await graceful_shutdown(runtime, [server])


def tune_gc() -> None:
    """Fewer, cheaper garbage collections: every frame allocates a few objects, and
    with thousands of connections the default thresholds collect hundreds of times a
    second. What exists after start-up (modules, the app) is never scanned again."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def run_loop(main: Coroutine[Any, Any, None], *, use_uvloop: bool) -> None:
    """Run on uvloop when asked for and installed, else on asyncio's own loop."""
    if use_uvloop:
        try:
            import uvloop
        except ImportError:
            log.info("uvloop is not installed (pip install uvloop); running on asyncio's loop")
        else:
            uvloop.run(main)
            return
    asyncio.run(main)


def raise_file_limit() -> None:
    """Each connection is a file descriptor: take the hard limit, not the soft default."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


SECRET_KEYS = ("secret", "token")  # shown as "(set)" by check-config


def effective_settings(config: Config) -> dict[str, Any]:
    """The settings as check-config prints them: every key, defaults filled in, secrets hidden."""

    def shown(key: str, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: shown(k, v) for k, v in value.items()}
        if isinstance(value, tuple | list):
            return [shown(key, v) for v in value]
        if key in SECRET_KEYS and value:
            return "(set)"
        if key == "dsn" and value:
            return hide_password(value)
        return value

    settings: dict[str, Any] = shown("", dataclasses.asdict(config))
    return settings


def check_config(argv: list[str]) -> int:
    """`imserver check-config PATH`: 0 and the effective settings, or 2 and the error."""
    parser = argparse.ArgumentParser(
        prog="imserver check-config",
        description="Check a config file; print the settings it gives (defaults filled in, "
                    "secrets hidden), or the error, which names the key.")
    parser.add_argument("path", help="path of config.yaml")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.path)
        raise_file_limit()  # as the server does before it checks the limits against it
        check_fd_budget(config.limits)
    except ConfigError as exc:
        print(f"imserver: config error: {exc}", file=sys.stderr)
        return 2
    print(f"# {args.path}: valid. The settings it gives, defaults filled in:")
    print(yaml.safe_dump(effective_settings(config), sort_keys=False, allow_unicode=True), end="")
    return 0


class Workers:
    """`imserver --workers N`: N server processes on one port (SO_REUSEPORT: the kernel
    spreads the connections), restarted when one dies, stopped together by SIGTERM
    (each says bye to its clients with the spread retry_after)."""

    RESTART_DELAY = 1.0

    def __init__(self, argv: list[str], config: Config, count: int) -> None:
        self.argv = argv
        self.config = config
        self.count = count
        self.procs: list[subprocess.Popen[bytes] | None] = [None] * count
        self.stopping = False

    def run(self) -> int:
        host, port = self.config.server.host, self.config.server.port
        # Hold the port (bound, not listening: the kernel gives connections only to the
        # workers' listening sockets) so that port 0 means one port for all of them.
        holder = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        try:
            holder.bind((host, port))
        except OSError as exc:
            raise ListenError(listen_problem(exc, host, port)) from None
        self.port = holder.getsockname()[1]
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        log.info("imserver %s: %d workers on port %d", __version__, self.count, self.port)
        for index in range(self.count):
            self._start(index)
        try:
            while True:
                for index, proc in enumerate(self.procs):
                    if proc is None or proc.poll() is None:
                        continue
                    if self.stopping:
                        self.procs[index] = None
                        continue
                    log.error("worker %d (pid %d) ended with %s; starting it again",
                              index, proc.pid, proc.returncode)
                    time.sleep(self.RESTART_DELAY)
                    self._start(index)
                if self.stopping and all(p is None for p in self.procs):
                    return 0
                time.sleep(0.1)
        finally:
            holder.close()

    def _start(self, index: int) -> None:
        own = 0 if self.config.server.port == 0 else self.port + 1 + index
        self.procs[index] = subprocess.Popen(
            [sys.executable, "-m", "imserver", *self.argv, "--port", str(self.port),
             "--worker-port", str(own)], preexec_fn=_end_with_parent)

    def _stop(self, signum: int, frame: Any) -> None:
        self.stopping = True
        for proc in self.procs:
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)


def _end_with_parent() -> None:
    """In a worker, before it runs: SIGTERM when the supervisor dies (Linux), so that a
    killed supervisor leaves no workers holding the port."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux: the workers outlive a killed supervisor
        pass


PR_SET_PDEATHSIG = 1


def _without_workers(argv: list[str]) -> list[str]:
    """The arguments a worker gets: all but --workers (and --port, given anew)."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg in ("--workers", "--port"):
            skip = True
        elif not arg.startswith(("--workers=", "--port=")):
            out.append(arg)
    return out


def main(argv: list[str] | None = None, *, prebuilt: bool = True) -> int:
    """The command line; `prebuilt=False` runs the benchmarks' naive baseline
    (bench/baseline.py), which is not a setting of the product."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["check-config"]:
        return check_config(argv[1:])
    args = parse_args(argv)
    try:
        config = load_config(args.config)
        overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
        if overrides:
            config = replace(config, server=overrides)
    except ConfigError as exc:
        print(f"imserver: config error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=config.logging.level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    raise_file_limit()
    try:
        check_fd_budget(config.limits)
    except ConfigError as exc:
        print(f"imserver: config error: {exc}", file=sys.stderr)
        return 2
    if args.workers < 1:
        print("imserver: --workers must be at least 1", file=sys.stderr)
        return 2
    if args.workers > 1:
        if config.broker.backend == "local":
            print("imserver: config error: --workers needs broker.backend: redis (the workers "
                  "of one server are the nodes of a cluster)", file=sys.stderr)
            return 2
        try:
            return Workers(_without_workers(argv), config, args.workers).run()
        except ListenError as exc:
            print(f"imserver: {exc}", file=sys.stderr)
            return 2
    try:
        run_loop(serve(config, prebuilt=prebuilt, worker_port=args.worker_port),
                 use_uvloop=config.server.uvloop)
    except (ConfigError, ListenError, StoreError) as exc:
        print(f"imserver: {exc}", file=sys.stderr)
        return 2
    return 0
