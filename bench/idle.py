"""Idle connections at scale: server memory per connection and heartbeat CPU, imserver beside node-ws.

For each count of connections, imserver and then the Node `ws` comparison
server (bench/loadgen/wsserver.mjs), each a fresh process, hold that many
connections (from Node processes of at most 9,500 sockets each) that join no
room and only keep the two heartbeats going: the server's ping frames
(answered by the client library, as a browser does; imserver every 10 s,
node-ws every 30 s) and the client's text `ping` every `--client-interval`,
from a random phase per client.

    python -m bench idle [--connections 5000 10000 19000] [--hold 60] [--runs 3] [--dead-peers 50]
                         [--servers imserver node-ws] [--loop uvloop|asyncio]

Memory is VmRSS growth from before the first connection to after the last
welcome, over the number of connections; CPU is the server's over the hold.
At the largest count imserver also gets `--dead-peers` raw clients during the
hold that complete the upgrade and never answer (bench/deadpeer.py): the time
until the server drops each. Last, a projection to 100,000 connections on one
process: a least squares line through the counts.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from imserver.config import HeartbeatConfig
from imserver.ops.heartbeat import sweep_period, wheel_slots
from imserver.testing import ServerProcess, login

from .deadpeer import dead_peer
from .node import NodeLoadgen
from .probe import Probe
from .report import median, percentile, print_table, process_rss_bytes, ratio, target
from .servers import NODE_WS, CpuWindow, scrape, server_pid, start_server

SERVERS = {"imserver": "prebuilt", NODE_WS: NODE_WS}  # name: start_server's mode
SOCKETS_PER_PROCESS = 9_500  # a load generator's sockets (a process here may open 20,000 files)
# 19,000 sockets and the pending ones must fit the 20,000 files of a server process.
SCALE_LIMITS = {"max_pending_connections": 500, "max_pending_per_address": 500}
TARGET_AT = 19_000
MEMORY_TARGET = 8 * 1024  # bytes per idle connection at TARGET_AT
CPU_TARGET = 0.08  # of one core at TARGET_AT
EARLIER_CPU_TARGET = (10_000, 0.05)  # the earlier goal: 5% of a core at 10k
PROJECT_TO = 100_000
SWEEP = "imserver_heartbeat_sweep_seconds"  # a histogram of each sweep tick's duration, if the server has it
DEAD_PEER_WAIT = 35.0  # s the hold goes on after the last dead peer connects
MB = 1024 * 1024
SWEEP_TICKS = wheel_slots(HeartbeatConfig().ping_interval, HeartbeatConfig().ping_timeout)


def _healthz(host: str) -> int:
    with urllib.request.urlopen(f"http://{host}/healthz", timeout=10) as response:
        connections: int = json.loads(response.read())["connections"]
    return connections


def sweep_totals(host: str) -> tuple[float, float] | None:
    """Seconds spent in heartbeat sweeps so far and their number, or None without the metric."""
    samples = scrape(host, SWEEP)
    if not any(k.startswith(f"{SWEEP}_count") for k in samples):
        return None
    seconds, sweeps = (sum(v for k, v in samples.items() if k.startswith(f"{SWEEP}_{part}"))
                       for part in ("sum", "count"))
    return seconds, sweeps


def heartbeat_bound() -> tuple[float, float]:
    """imserver's default heartbeat: the promised bound on dropping a dead peer, and the sweep period."""
    beat = HeartbeatConfig()
    return beat.ping_timeout + beat.ping_interval, sweep_period(beat.ping_interval, beat.ping_timeout)


class DeadPeers:
    """`count` silent peers connecting over one sweep period, each timing its drop (bench/deadpeer.py)."""

    def __init__(self, server: ServerProcess, count: int) -> None:
        bound, spread = heartbeat_bound()
        token = login(server.host, "deadpeer")
        self.dropped_after: list[float] = []
        self.threads = [threading.Thread(target=dead_peer, args=(
            server, token, i * spread / count, 2 * bound, self.dropped_after)) for i in range(count)]
        for thread in self.threads:
            thread.start()

    def join(self) -> list[float]:
        for thread in self.threads:
            thread.join()
        return self.dropped_after


def measure(workdir: Path, name: str, count: int, args: argparse.Namespace,
            dead_peers: int) -> dict[str, Any]:
    """One fresh server holding `count` connections: memory, CPU over the hold, dead peers."""
    imserver = name == "imserver"
    server = start_server(workdir / f"{name}-{count}", SERVERS[name],
                          server={"uvloop": args.loop == "uvloop"}, limits=SCALE_LIMITS)
    pid = server_pid(server)
    gens: list[NodeLoadgen] = []
    try:
        for k, first in enumerate(range(0, count, SOCKETS_PER_PROCESS)):
            gens.append(NodeLoadgen("idle.mjs", {
                "base": f"http://{server.host}", "ws": f"ws://{server.host}", "prefix": f"idle{k}-",
                "connections": min(SOCKETS_PER_PROCESS, count - first), "per_user": args.per_user,
                "concurrency": args.concurrency}))
        for gen in gens:
            gen.expect("logged_in", timeout=600)
        time.sleep(1.0)
        rss_before = process_rss_bytes(pid)
        for gen in gens:
            gen.send("open")
        opened = [gen.expect("opened", timeout=900) for gen in gens]
        time.sleep(2.0)  # let the last welcomes and log lines settle
        rss_open = process_rss_bytes(pid)
        seen = _healthz(server.host)
        sweeps_before = sweep_totals(server.host) if imserver else None
        probe = Probe(lambda user: login(server.host, user), server.host)
        time.sleep(1.0)  # its two clients connected and joined
        probe.take()
        hold = max(args.hold, heartbeat_bound()[1] + DEAD_PEER_WAIT) if dead_peers else args.hold
        window = CpuWindow(server=pid, **{f"loadgen{k}": gen.pid for k, gen in enumerate(gens)}).start()
        for gen in gens:
            gen.send("hold", seconds=hold, interval_s=args.client_interval)
        dropped = DeadPeers(server, dead_peers).join() if dead_peers else []
        held = [gen.expect("held", timeout=hold + 120) for gen in gens]
        window.stop()
        delivery = sorted(probe.take())
        probe.stop()
        rss_held = process_rss_bytes(pid)
        sweeps_after = sweep_totals(server.host) if sweeps_before else None
    finally:
        for gen in gens:
            gen.close()
        server.stop()
    connected = sum(o["connected"] for o in opened)
    sweep = None
    if sweeps_before and sweeps_after and sweeps_after[1] > sweeps_before[1]:
        sweep = (sweeps_after[0] - sweeps_before[0]) / (sweeps_after[1] - sweeps_before[1])
    cpu = window.share("server")
    return {
        "name": name, "count": count, "connected": connected, "seen": seen,
        "failed": sum(o["failed"] for o in opened),
        "failures": [f for o in opened for f in o["failures"]][:5],
        "open_s": max(o["seconds"] for o in opened), "rss_before": rss_before, "rss_open": rss_open,
        "growth": rss_open - rss_before, "per_conn": (rss_open - rss_before) / max(1, connected),
        "rss_held": rss_held, "hold_s": window.wall, "cpu": cpu, "us_per_conn": 1e6 * cpu / max(1, connected),
        "loadgen": sum(window.share(f"loadgen{k}") for k in range(len(gens))),
        "other": window.other / window.wall, "sweep": sweep, "dropped": dropped,
        "probe_p50": percentile(delivery, 50), "probe_p99": percentile(delivery, 99),
        "probe_max": delivery[-1] if delivery else None,
        **{key: sum(h[key] for h in held) for key in ("pings", "pongs", "server_pings", "closed")},
    }


def _cell(value: float | None, scale: float = 1.0, digits: int = 1) -> str:
    return "-" if value is None else f"{value * scale:.{digits}f}"


def report(args: argparse.Namespace, results: list[dict[str, Any]]) -> None:
    header = ["server", "connections", "open s", "opens/s", "RSS before MB", "RSS open MB", "KB/conn",
              "hold s", "server CPU", "us/conn/s", "tick ms", "delivery p50/p99/max ms", "loadgen CPU",
              "pings/pongs", "server pings", "RSS after hold MB", "other load"]
    rows = []
    for count in args.connections:
        ran = {r["name"]: r for r in results if r["count"] == count}
        for r in ran.values():
            rows.append([r["name"], f"{r['connected']}/{count}", f"{r['open_s']:.1f}",
                         f"{r['connected'] / r['open_s']:,.0f}", f"{r['rss_before'] / MB:.1f}",
                         f"{r['rss_open'] / MB:.1f}", f"{r['per_conn'] / 1024:.1f}", f"{r['hold_s']:.0f}",
                         f"{100 * r['cpu']:.1f}%", f"{r['us_per_conn']:.2f}", _cell(r["sweep"], 1000, 2),
                         "/".join(_cell(r[f"probe_{q}"], 1000) for q in ("p50", "p99", "max")),
                         f"{100 * r['loadgen']:.1f}%", f"{r['pings']}/{r['pongs']}", f"{r['server_pings']}",
                         f"{r['rss_held'] / MB:.1f}", f"{100 * r['other']:.0f}%"])
        if len(ran) == len(SERVERS):
            a, b = ran["imserver"], ran[NODE_WS]
            rows.append([f"imserver / {NODE_WS}", f"{count}", ratio(a["open_s"], b["open_s"]), "", "", "",
                         ratio(a["per_conn"], b["per_conn"]), "", ratio(a["cpu"], b["cpu"]),
                         ratio(a["us_per_conn"], b["us_per_conn"]), "",
                         "/".join(ratio(a[f"probe_{q}"], b[f"probe_{q}"]) for q in ("p50", "p99", "max")),
                         "", "", "", ratio(a["rss_held"], b["rss_held"]), ""])
    runs = f"{args.runs} run{'s' if args.runs > 1 else ''}"
    print_table(f"idle: connections held {args.hold:g} s, median of {runs} "
                f"(text ping every {args.client_interval:g} s; "
                f"server pings: imserver every 10 s, node-ws every 30 s; imserver on {args.loop})",
                header, rows)
    print("KB/conn: server RSS growth / connections. CPU is % of one core over the hold; us/conn/s: the "
          "same per connection and second; tick ms: imserver's mean heartbeat sweep tick over the hold "
          f"({SWEEP}; '-' where the server has no such metric); delivery: a chat message every 0.1 s "
          "between two more clients of the server meanwhile, send to receipt. Other load: the rest of the "
          "machine meanwhile (2 cores = 200%).")
    for r in results:
        if r["seen"] != r["connected"] or r["closed"] or r["failed"]:
            print(f"WARNING {r['name']} at {r['count']}: the server saw {r['seen']} connections; "
                  f"{r['failed']} failed to open, {r['closed']} closed during the hold {r['failures']}")
    mine = {r["count"]: r for r in results if r["name"] == "imserver"}
    judge(mine.get(TARGET_AT), f"<= {MEMORY_TARGET // 1024} KB server memory per idle connection at 19k",
          "per_conn", MEMORY_TARGET, lambda v: f"{v / 1024:.1f} KB")
    for at, bound in ((TARGET_AT, CPU_TARGET), EARLIER_CPU_TARGET):
        judge(mine.get(at), f"heartbeat <= {100 * bound:g}% of one core at {at // 1000}k", "cpu", bound,
              lambda v: f"{100 * v:.1f}%")
    dead = next((r for r in results if r["dropped"]), None)
    if dead:
        report_dead_peers(dead)
    project(results)


def judge(run: dict[str, Any] | None, goal: str, key: str, bound: float,
          shown: Callable[[float], str]) -> None:
    """The target line of imserver's `run` at the count the goal names (not judged without one)."""
    if run is None:
        print(f"target: {goal}: not judged (no imserver run at that count)")
    else:
        target(goal, run[key], bound, shown(run[key]))


def report_dead_peers(r: dict[str, Any]) -> None:
    bound = heartbeat_bound()[0]
    times = [t for t in r["dropped"] if t != float("inf")]
    nan = float("nan")
    shown = (f"{len(times)}/{len(r['dropped'])} dropped, min/p50/max "
             f"{min(times, default=nan):.1f}/{median(times):.1f}/{max(times, default=nan):.1f} s")
    worst = max(times) if len(times) == len(r["dropped"]) else float("inf")
    target(f"dead peers among {r['connected']} idle connections dropped within ping_timeout + ping_interval "
           f"= {bound:g} s", worst, bound, shown)


def fit(xs: list[float], ys: list[float], at: float) -> float:
    """The least squares line through (xs, ys) at `at`; one point: the line through it and the origin."""
    if len(set(xs)) < 2:
        return ys[0] / xs[0] * at
    slope, intercept = statistics.linear_regression(xs, ys)
    return slope * at + intercept


def project(results: list[dict[str, Any]]) -> None:
    rows = []
    for name in SERVERS:
        runs = [r for r in results if r["name"] == name]
        if not runs:
            continue
        counts = [float(r["connected"]) for r in runs]
        memory = fit(counts, [r["growth"] for r in runs], PROJECT_TO)
        cpu = fit(counts, [r["cpu"] for r in runs], PROJECT_TO)
        ticks = [r["sweep"] for r in runs]
        tick = fit(counts, ticks, PROJECT_TO) if None not in ticks else None
        rows.append([name, f"{memory / MB:,.0f}", f"{memory / PROJECT_TO / 1024:.1f}", f"{100 * cpu:.1f}%",
                     _cell(tick, 1000, 2), _cell(None if tick is None else tick * SWEEP_TICKS, 1000)])
    line = ("a least squares line through the counts above" if len(set(r["count"] for r in results)) > 1
            else "one count: the line through it and the origin")
    print_table(f"projection to {PROJECT_TO:,} connections on one process (PROJECTED, not measured: {line})",
                ["server", "memory MB", "KB/conn", "heartbeat CPU", "tick ms", "sweep ms"], rows)
    _, period = heartbeat_bound()
    print(f"tick ms: one tick of imserver's heartbeat sweep, the longest it holds its event loop (every "
          f"{period / SWEEP_TICKS:g} s, a {SWEEP_TICKS}th of the connections); sweep ms: the {SWEEP_TICKS} "
          f"ticks that visit every connection once (every {period:g} s); '-' where the server has no "
          "sweep metric.")


def combine(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One server's runs at one count as one result: the median of each figure, every
    dead peer's time, the first failures."""
    first = runs[0]
    combined: dict[str, Any] = {}
    for key, value in first.items():
        values = [r[key] for r in runs]
        if key == "dropped":
            combined[key] = [t for r in runs for t in r[key]]
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and None not in values:
            combined[key] = median(values)
        else:
            combined[key] = value
    combined["runs"] = len(runs)
    return combined


def run(args: argparse.Namespace) -> None:
    largest = max(args.connections)
    runs: dict[tuple[str, int], list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-idle-") as tmp:
        for k in range(args.runs):  # in turn, so that every server and count sees the same machine
            for count in args.connections:
                for name in args.servers:
                    dead = args.dead_peers if name == "imserver" and count == largest else 0
                    runs.setdefault((name, count), []).append(
                        measure(Path(tmp) / f"run{k}", name, count, args, dead))
    report(args, [combine(r) for r in runs.values()])


def cli(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench idle", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", type=int, nargs="+", default=[5_000, 10_000, TARGET_AT],
                        help="counts of connections, one fresh server per count and server "
                             "(at most 19,000: a process here may open 20,000 files)")
    parser.add_argument("--hold", type=float, default=60.0, help="seconds to hold them")
    parser.add_argument("--runs", type=int, default=3,
                        help="median of this many runs of each server and count")
    parser.add_argument("--servers", nargs="+", choices=list(SERVERS), default=list(SERVERS))
    parser.add_argument("--dead-peers", type=int, default=50,
                        help="silent peers connected to imserver during the hold at the largest count (0: "
                             f"none; the hold then lasts at least {DEAD_PEER_WAIT:g} s after they connect)")
    parser.add_argument("--client-interval", type=float, default=10.0,
                        help="seconds between a client's text pings (the server's heartbeat.client_interval)")
    parser.add_argument("--per-user", type=int, default=20, help="connections per user (tabs)")
    parser.add_argument("--concurrency", type=int, default=64,
                        help="connections opening at once, per load generator process")
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop",
                        help="imserver's event loop (server.uvloop; default: uvloop, as in config.yaml)")
    parser.add_argument("--quick", action="store_true", help="2000 connections held 10 s, no dead peers")
    args = parser.parse_args(argv)
    if args.quick:
        args.connections = [min(min(args.connections), 2000)]
        args.hold, args.dead_peers, args.runs = min(args.hold, 10.0), 0, 1
    args.connections = sorted(set(args.connections))
    run(args)
