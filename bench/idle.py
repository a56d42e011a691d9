"""Idle connections: server memory per connection, and server CPU while holding them.

10,000 connections (from Node, in batches) that join no room and only keep
the two heartbeats going: the server's ping frames (answered by the client
library, as a browser does) and the client's text `ping` every
`heartbeat.client_interval`, from a random phase per client.

    python -m bench idle [--connections 10000] [--hold 60] [--loop uvloop|asyncio]

Memory is VmRSS growth from before the first connection to after the last
welcome, over the number of connections; CPU is the server's over the hold.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import urllib.request
from pathlib import Path

from .node import NodeLoadgen
from .report import print_table, process_rss_bytes
from .servers import CpuWindow, server_pid, start_server

MEMORY_TARGET = 16 * 1024  # bytes per idle connection
CPU_TARGET = 0.05  # of one core at 10k connections


def _healthz(host: str) -> int:
    with urllib.request.urlopen(f"http://{host}/healthz", timeout=10) as response:
        connections: int = json.loads(response.read())["connections"]
    return connections


def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-idle-") as tmp:
        server = start_server(Path(tmp) / "server", args.fanout, server={"uvloop": args.loop == "uvloop"})
        pid = server_pid(server)
        try:
            with NodeLoadgen("idle.mjs", {
                    "base": f"http://{server.host}", "ws": f"ws://{server.host}",
                    "connections": args.connections, "per_user": args.per_user,
                    "concurrency": args.concurrency}) as loadgen:
                loadgen.expect("logged_in", timeout=600)
                time.sleep(1.0)
                rss_before = process_rss_bytes(pid)
                loadgen.send("open")
                opened = loadgen.expect("opened", timeout=900)
                time.sleep(2.0)  # let the last welcomes and log lines settle
                rss_open = process_rss_bytes(pid)
                seen = _healthz(server.host)
                window = CpuWindow(server=pid, loadgen=loadgen.pid).start()
                loadgen.send("hold", seconds=args.hold, interval_s=args.client_interval)
                held = loadgen.expect("held", timeout=args.hold + 120)
                window.stop()
                rss_held = process_rss_bytes(pid)
        finally:
            server.stop()
    connected = opened["connected"]
    per_conn = (rss_open - rss_before) / max(1, connected)
    cpu = window.share("server")
    mb = 1024 * 1024
    header = ["connections", "open s", "opens/s", "RSS before MB", "RSS open MB", "KB/conn",
              "hold s", "server CPU", "loadgen CPU", "pings/pongs", "server pings", "RSS after hold MB",
              "other load"]
    rows = [[f"{connected}/{args.connections}", f"{opened['seconds']:.1f}",
             f"{connected / opened['seconds']:,.0f}", f"{rss_before / mb:.1f}", f"{rss_open / mb:.1f}",
             f"{per_conn / 1024:.1f}", f"{window.wall:.0f}", f"{100 * cpu:.1f}%",
             f"{100 * window.share('loadgen'):.1f}%", f"{held['pings']}/{held['pongs']}",
             f"{held['server_pings']}", f"{rss_held / mb:.1f}", f"{100 * window.other / window.wall:.0f}%"]]
    print_table(f"idle: {args.connections} connections held {args.hold:g} s "
                f"(text ping every {args.client_interval:g} s; server pings every 10 s; "
                f"server on {args.loop})", header, rows)
    print("KB/conn: server RSS growth / connections. CPU is % of one core over the hold; other load: "
          "the rest of the machine meanwhile (2 cores = 200%).")
    if seen != connected or held["closed"] or opened["failed"]:
        print(f"WARNING: the server saw {seen} connections; {opened['failed']} failed to open, "
              f"{held['closed']} closed during the hold {opened['failures']}")
    verdict = "met" if per_conn <= MEMORY_TARGET else "NOT met"
    print(f"target: <= 16 KB server memory per idle connection: {per_conn / 1024:.1f} KB, {verdict}")
    if connected >= 10_000:
        verdict = "met" if cpu < CPU_TARGET else "NOT met"
    else:
        verdict = f"not judged at {connected} connections"
    print(f"target: heartbeat < 5% of one core at 10k connections: {100 * cpu:.1f}%, {verdict}")


def cli(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench idle", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--hold", type=float, default=60.0, help="seconds to hold them")
    parser.add_argument("--client-interval", type=float, default=10.0,
                        help="seconds between a client's text pings (the server's heartbeat.client_interval)")
    parser.add_argument("--per-user", type=int, default=20, help="connections per user (tabs)")
    parser.add_argument("--concurrency", type=int, default=64, help="connections opening at once")
    parser.add_argument("--fanout", choices=("prebuilt", "write_message"), default="prebuilt")
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop",
                        help="the server's event loop (server.uvloop; default: uvloop, as in config.yaml)")
    parser.add_argument("--quick", action="store_true", help="2000 connections held 10 s")
    args = parser.parse_args(argv)
    if args.quick:
        args.connections, args.hold = min(args.connections, 2000), min(args.hold, 10.0)
    run(args)
