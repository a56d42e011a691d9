"""Command line: `imserver --config PATH [--host H] [--port P]`."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import resource
import signal
import sys
from collections.abc import Coroutine
from typing import Any

from tornado.netutil import bind_sockets

from . import __version__
from .app import make_app
from .config import Config, load_config, replace
from .core.errors import ConfigError, StoreError
from .http.edge import check_fd_budget, make_server
from .ops.shutdown import graceful_shutdown

log = logging.getLogger("imserver")

LISTEN_BACKLOG = 4096  # the kernel caps it at net.core.somaxconn
# Generation 0 collects after this many net allocations (Python's default: 700).
GC_THRESHOLDS = (50_000, 20, 100)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="imserver", description="Real-time chat server.")
    parser.add_argument("--config", default=None, help="path of config.yaml (default: built-in defaults)")
    parser.add_argument("--host", default=None, help="address to listen on (overrides server.host)")
    parser.add_argument("--port", type=int, default=None, help="port (overrides server.port; 0 picks one)")
    parser.add_argument("--version", action="version", version=f"imserver {__version__}")
    return parser.parse_args(argv)


async def serve(config: Config) -> None:
    app = make_app(config)
    runtime = app.runtime
    server = make_server(app, config.limits, runtime.metrics, xheaders=config.server.xheaders)
    # A deep accept queue: after a restart thousands of clients come back within seconds.
    sockets = bind_sockets(config.server.port, config.server.host, backlog=LISTEN_BACKLOG)
    server.add_sockets(sockets)
    runtime.start()
    tune_gc()
    port = sockets[0].getsockname()[1]
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


def main(argv: list[str] | None = None) -> int:
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
    try:
        run_loop(serve(config), use_uvloop=config.server.uvloop)
    except (ConfigError, StoreError) as exc:
        print(f"imserver: {exc}", file=sys.stderr)
        return 2
    return 0
