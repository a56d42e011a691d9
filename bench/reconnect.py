"""Reconnects after a server restart: how long until every client is back, and how hard they come.

2,000 clients (Node) are connected; the server gets SIGTERM (it says `bye`
with a `retry_after` spread over `shutdown.spread_seconds` and closes with
1001), exits, and is started again on the same port. Each client reconnects
with `reconnect=1&cause=shutdown`. Three client behaviours, one restart each:

- retry_after: the browser client: come back after retry_after, then capped
  exponential backoff with full jitter while refused;
- backoff: ignore retry_after, backoff with full jitter from the first attempt;
- storm: ignore retry_after, reconnect at once and every 100 ms while refused.

    python -m bench reconnect [--clients 2000] [--spread 10] [--modes retry_after backoff storm]

Peak rate: welcomes per 100 ms bucket, times 10.
"""

from __future__ import annotations

import argparse
import signal
import tempfile
import time
from pathlib import Path
from typing import Any

from imserver.testing import ServerProcess

from .node import NodeLoadgen
from .report import listen_drops, percentile, print_table, ratio
from .servers import CpuWindow, server_pid, start_server

MODES = ("retry_after", "backoff", "storm")
BUCKET = 0.1  # seconds


def peak_rate(times: list[float], bucket: float = BUCKET) -> float:
    """The most events in one `bucket`-second bucket, per second."""
    if not times:
        return 0.0
    counts: dict[int, int] = {}
    for t in times:
        counts[int(t // bucket)] = counts.get(int(t // bucket), 0) + 1
    return max(counts.values()) / bucket


def restart(server: ServerProcess, loadgen: NodeLoadgen, mode: str, timeout: float) -> dict[str, Any]:
    """SIGTERM, wait for the exit, start again; returns the clients' record with the marks."""
    loadgen.send("arm", mode=mode, timeout_s=timeout)
    loadgen.expect("armed")
    drops = listen_drops()
    term = time.time()
    server.signal(signal.SIGTERM)
    server.wait(60)
    exited = time.time()
    server.start()
    listening = time.time()
    window = CpuWindow(server=server_pid(server), loadgen=loadgen.pid).start()
    result = loadgen.expect("result", timeout=timeout + 60)
    window.stop()
    result.update(listen_drops=listen_drops() - drops, term=term, exited=exited, listening=listening,
                  server_cpu_s=window.cpu["server"], loadgen_cpu_s=window.cpu["loadgen"],
                  server_wall_s=window.wall, other_cpu_s=window.other)
    return result


def row(r: dict[str, Any]) -> dict[str, Any]:
    welcomes = [t / 1000 for t in r["welcomes"]]
    last = max(welcomes) if welcomes else float("nan")
    return {
        "mode": r["mode"], "back": f"{r['back']}/{r['clients']}", "byes": r["byes"],
        "down": r["listening"] - r["term"], "all_back": last - r["term"],
        "after_restart": last - r["listening"], "peak": peak_rate(welcomes),
        "attempts": r["attempts"], "failed": r["failures"],
        "p50": percentile(r["connect_ms"], 50), "p99": percentile(r["connect_ms"], 99),
        "cpu": r["server_cpu_s"], "loadgen": r["loadgen_cpu_s"], "errors": r["errors"],
        "drops": r["listen_drops"],
        "other": r["other_cpu_s"] / r["server_wall_s"] if r["server_wall_s"] else float("nan"),
    }


def run(args: argparse.Namespace) -> None:
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-reconnect-") as tmp:
        server = start_server(Path(tmp) / "server", "prebuilt",
                              shutdown={"spread_seconds": args.spread})
        try:
            with NodeLoadgen("reconnect.mjs", {
                    "base": f"http://{server.host}", "ws": f"ws://{server.host}",
                    "clients": args.clients, "per_user": args.per_user}) as loadgen:
                loadgen.expect("ready", timeout=600)
                for mode in args.modes:
                    time.sleep(1.0)
                    results.append(row(restart(server, loadgen, mode, args.timeout)))
        finally:
            server.stop()
    header = ["clients do", "back", "byes", "down s", "all back s", "after restart s", "peak conn/s",
              "attempts", "failed", "SYNs dropped", "p50 connect ms", "p99 connect ms", "server CPU s",
              "loadgen CPU s", "other load"]
    rows = [[r["mode"], r["back"], f"{r['byes']}", f"{r['down']:.2f}", f"{r['all_back']:.2f}",
             f"{r['after_restart']:.2f}", f"{r['peak']:,.0f}", f"{r['attempts']}", f"{r['failed']}",
             f"{r['drops']}", f"{r['p50']:.1f}", f"{r['p99']:.1f}", f"{r['cpu']:.2f}",
             f"{r['loadgen']:.2f}", f"{100 * r['other']:.0f}%"]
            for r in results]
    by_mode = {r["mode"]: r for r in results}
    if "retry_after" in by_mode:
        base = by_mode["retry_after"]
        for r in results:
            if r is not base:
                rows.append([f"{r['mode']} / retry_after", "", "", "", ratio(r["all_back"], base["all_back"]),
                             ratio(r["after_restart"], base["after_restart"]), ratio(r["peak"], base["peak"]),
                             ratio(r["attempts"], base["attempts"]), "", "", ratio(r["p50"], base["p50"]),
                             ratio(r["p99"], base["p99"]), ratio(r["cpu"], base["cpu"]),
                             ratio(r["loadgen"], base["loadgen"]), ""])
    print_table(f"reconnect: {args.clients} clients, server restarted (SIGTERM, exit, start), "
                f"shutdown.spread_seconds {args.spread:g}", header, rows)
    print("down: SIGTERM to listening again; all back: SIGTERM to the last welcome; peak: welcomes in "
          "the busiest 100 ms x 10; connect ms: attempt to welcome; CPU: the new server process and "
          "the load generator, listening to all back; SYNs dropped: the kernel's ListenDrops meanwhile "
          "(listen queue full: those clients wait 1 s or more for their SYN to be retransmitted).")
    for r in results:
        if r["errors"]:
            shown = ", ".join(f"{count} x {kind}" for kind, count in sorted(r["errors"].items()))
            print(f"{r['mode']}: failed attempts: {shown}")


def cli(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench reconnect", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=2000)
    parser.add_argument("--spread", type=float, default=10.0, help="the server's shutdown.spread_seconds")
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--per-user", type=int, default=20, help="connections per user (tabs)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for every client")
    parser.add_argument("--quick", action="store_true", help="500 clients, spread 3 s, retry_after and storm")
    args = parser.parse_args(argv)
    if args.quick:
        args.clients, args.spread = min(args.clients, 500), min(args.spread, 3.0)
        args.modes = [m for m in args.modes if m != "backoff"] or args.modes
    run(args)
