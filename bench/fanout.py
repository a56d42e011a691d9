"""Fan-out benchmarks: one sender, 1000 receivers in one room, three servers side by side.

The server under test (`prebuilt`: frames built once), the naive baseline
(`write_message`: Tornado's write_message per connection) and a broadcast
server on Node's `ws` (`node-ws`, bench/loadgen/wsserver.mjs: each frame
serialized once and sent to every socket, nothing stored) run as processes in
the same run, each with its own Node load generator, and their runs alternate
so that all see the same machine. Every figure of the server under test is
also printed as a ratio to each of the others.

    python -m bench fanout       [--receivers 1000] [--messages 300] [--runs 3] [--window 16 1]
    python -m bench fanout-rate  [--receivers 1000] [--rate 20] [--seconds 10] [--runs 3]

`fanout` sends as fast as the server takes it, keeping `window` messages not
yet delivered to every receiver in flight: deliveries/s, server CPU per
delivery, latency. Window 16 keeps the server busy; window 1 sends one message
at a time, so that no two frames for one socket can share a write.
`fanout-rate` sends at a fixed rate: the latency distribution and the CPU per
delivery. Latency is receive time minus send time, on one clock. Each figure
is the median of the runs.
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from imserver.testing import ServerProcess

from .node import NodeLoadgen
from .report import bound_by, median, print_table, ratio, target
from .servers import FANOUT_MODES, NODE_WS, CpuWindow, server_pid, start_server

BASELINE = "write_message"
# The servers the one under test is compared with, and the name of each in its ratio row.
REFERENCES = {BASELINE: "baseline", NODE_WS: NODE_WS}
LABELS = {BASELINE: f"{BASELINE} (baseline)", NODE_WS: f"{NODE_WS} (Node ws)"}


class FanoutRig:
    """The servers, and a load generator with its receivers connected to each."""

    def __init__(self, workdir: Path, modes: tuple[str, ...], receivers: int, per_user: int,
                 store: str = "file", client: str = "ws", send_threads: int | None = None) -> None:
        self.modes = modes
        self.servers: dict[str, ServerProcess] = {}
        self.loadgens: dict[str, NodeLoadgen] = {}
        self.receivers = receivers
        try:
            for mode in modes:
                storage = {"path": ":memory:"} if store == "memory" else {}
                server = {} if send_threads is None else {"send_threads": send_threads}
                self.servers[mode] = start_server(workdir / mode, mode, storage=storage, server=server)
            for mode in modes:
                host = self.servers[mode].host
                self.loadgens[mode] = NodeLoadgen("fanout.mjs", {
                    "base": f"http://{host}", "ws": f"ws://{host}", "receivers": receivers,
                    "per_user": per_user, "prefix": "rx", "lean": client == "lean"})
            for mode in modes:
                self.loadgens[mode].expect("ready", timeout=600)
        except BaseException:
            self.close()
            raise

    def measure(self, mode: str, command: str, **fields: Any) -> dict[str, Any]:
        """One run on one server: the load generator's result plus both sides' CPU."""
        loadgen = self.loadgens[mode]
        window = CpuWindow(server=server_pid(self.servers[mode]), loadgen=loadgen.pid).start()
        loadgen.send(command, **fields)
        loadgen.expect("done", timeout=900)
        window.stop()
        result = loadgen.expect("result", timeout=60)
        result["server_cpu_s"] = window.cpu["server"]
        result["loadgen_cpu_s"] = window.cpu["loadgen"]
        result["other_cpu_s"] = window.other
        result["wall_s"] = window.wall
        return result

    def runs(self, loads: list[tuple[str, Any]], count: int, command: str,
             **fields: Any) -> dict[tuple[str, Any], list[dict[str, Any]]]:
        """`count` runs of each (mode, load), the modes in turn, so that all see the same machine;
        `load` is a field of the command (a burst's window) or None."""
        results: dict[tuple[str, Any], list[dict[str, Any]]] = {load: [] for load in loads}
        for _ in range(count):
            for mode, load in loads:
                extra = {} if load is None else {"window": load}
                results[mode, load].append(self.measure(mode, command, **fields, **extra))
        return results

    def close(self) -> None:
        for loadgen in self.loadgens.values():
            loadgen.close()
        for server in self.servers.values():
            server.stop()


def _mode_label(mode: str) -> str:
    return LABELS.get(mode, mode)


def _ms(value: float | None) -> str:
    return "-" if value is None or value != value else f"{value:.1f}"


def _nan(value: float | None) -> float:
    return float("nan") if value is None else value


def _share(seconds: float, span: float) -> float:
    return seconds / span if span > 0 else float("nan")


def under_test(modes: tuple[str, ...]) -> str | None:
    return next((m for m in modes if m not in REFERENCES), None)


def compared(modes: tuple[str, ...]) -> list[str]:
    """The references run beside a server under test."""
    return [m for m in REFERENCES if m in modes] if under_test(modes) else []


def median_figures(runs: list[dict[str, Any]], figures: Callable[[dict[str, Any]], dict[str, float]]
                   ) -> dict[str, float]:
    """`figures` of each run, then the median of each figure over the runs."""
    per_run = [figures(r) for r in runs]
    return {key: median([run[key] for run in per_run]) for key in per_run[0]}


def burst_figures(r: dict[str, Any]) -> dict[str, float]:
    elapsed = r["elapsed_s"]
    return {
        "deliveries": r["deliveries"], "expected": r["expected"], "rate": _share(r["deliveries"], elapsed),
        "us": 1e6 * r["server_cpu_s"] / max(1, r["deliveries"]),
        "p50": _nan(r["latency_ms"]["p50"]), "p99": _nan(r["latency_ms"]["p99"]),
        "server": _share(r["server_cpu_s"], elapsed), "loadgen": _share(r["loadgen_cpu_s"], elapsed),
        "other": _share(r["other_cpu_s"], r["wall_s"]),
    }


def rate_figures(r: dict[str, Any]) -> dict[str, float]:
    wall = r["wall_s"]
    parts = {f"{part}_{q}": _nan(r[f"{part}_ms"][q]) for part in ("first", "spread") for q in ("p50", "p99")}
    return {
        "sent": r["sent"], "deliveries": r["deliveries"], "expected": r["expected"],
        **{q: _nan(r["latency_ms"][q]) for q in ("p50", "p90", "p99", "max")},
        "us": 1e6 * r["server_cpu_s"] / max(1, r["deliveries"]),
        "server": _share(r["server_cpu_s"], wall), "loadgen": _share(r["loadgen_cpu_s"], wall),
        "send_lag": r["send_lag_max_ms"], "other": _share(r["other_cpu_s"], wall), **parts,
    }


def warn_bad_runs(label: str, results: list[dict[str, Any]]) -> None:
    bad = [f"{r['expected'] - r['deliveries']} missing" for r in results if r["deliveries"] != r["expected"]]
    bad += [f"{r['disorder']} out of order" for r in results if r["disorder"]]
    bad += [f"{r['closed']} sockets closed" for r in results if r["closed"]]
    if bad:
        print(f"WARNING {label}: {', '.join(bad)}")


def ratio_rows(fast: str, figures: dict[str, dict[str, float]], keys: tuple[str, ...],
               lead: list[str], tail: int) -> list[list[str]]:
    """A `fast / reference` row per reference run: `lead` cells, the ratios of `keys`, `tail` blanks."""
    return [[f"{fast} / {REFERENCES[ref]}", *lead, *(ratio(figures[fast][k], figures[ref][k]) for k in keys),
             *[""] * tail] for ref in compared(tuple(figures))]


def _plural(runs: int) -> str:
    return f"median of {runs} run{'s' if runs > 1 else ''}"


def run_burst(args: argparse.Namespace) -> None:
    modes = tuple(args.fanout)
    with tempfile.TemporaryDirectory(prefix="bench-fanout-") as tmp:
        rig = FanoutRig(Path(tmp), modes, args.receivers, args.per_user, args.store, args.client,
                        args.send_threads)
        try:
            runs = rig.runs([(mode, window) for window in args.window for mode in modes], args.runs,
                            "burst", messages=args.messages)
        finally:
            rig.close()
    figures = {load: median_figures(results, burst_figures) for load, results in runs.items()}
    header = ["server", "window", "delivered", "deliveries/s", "CPU us/delivery", "p50 ms", "p99 ms",
              "server CPU", "loadgen CPU", "bound by", "other load"]
    rows = []
    fast = under_test(modes)
    for window in args.window:
        shown = str(window) if window > 0 else "all"
        for mode in modes:
            f = figures[mode, window]
            rows.append([_mode_label(mode), shown, f"{f['deliveries']:.0f}/{f['expected']:.0f}",
                         f"{f['rate']:,.0f}", f"{f['us']:.2f}", _ms(f["p50"]), _ms(f["p99"]),
                         f"{100 * f['server']:.0f}%", f"{100 * f['loadgen']:.0f}%",
                         bound_by(f["server"], f["loadgen"]), f"{100 * f['other']:.0f}%"])
        if fast:
            rows += ratio_rows(fast, {mode: figures[mode, window] for mode in modes},
                               ("rate", "us", "p50", "p99", "server", "loadgen"), [shown, ""], 2)
    print_table(f"fanout: {args.receivers} receivers ({args.client} client) x {args.messages} messages, "
                f"as fast as possible ({_plural(args.runs)})", header, rows)
    print("window: messages in flight (sent, not yet delivered to every receiver); 1 = one at a time.")
    print("CPU is % of one core from first send to last delivery; CPU us/delivery is the server's CPU "
          "(all threads, including the kernel's work on loopback) / deliveries. Other load: the rest "
          "of the machine meanwhile (2 cores = 200%); high values make the figures noisy.")
    for (mode, window), results in runs.items():
        warn_bad_runs(f"{mode}, window {window}", results)
    if not fast:
        return
    goals = {BASELINE: (1 / 6, "1/6 of the baseline's"), NODE_WS: (0.35, "0.35x node-ws's")}
    for window in args.window:
        for ref in compared(modes):
            share = figures[fast, window]["us"] / figures[ref, window]["us"]
            if window == 1:  # not the target's load: one send() per delivery for every server
                print(f"for reference (window 1): {fast} CPU per delivery {share:.2f}x {REFERENCES[ref]}'s")
            else:
                bound, goal = goals[ref]
                target(f"(window {window}) {fast} CPU per delivery <= {goal}", share, bound, f"{share:.2f}x")


def run_rate(args: argparse.Namespace) -> None:
    modes = tuple(args.fanout)
    with tempfile.TemporaryDirectory(prefix="bench-fanout-rate-") as tmp:
        rig = FanoutRig(Path(tmp), modes, args.receivers, args.per_user, args.store, args.client,
                        args.send_threads)
        try:
            runs = rig.runs([(mode, None) for mode in modes], args.runs, "rate", rate=args.rate,
                            seconds=args.seconds)
        finally:
            rig.close()
    figures = {mode: median_figures(runs[mode, None], rate_figures) for mode in modes}
    header = ["server", "sent", "delivered", "p50 ms", "p90 ms", "p99 ms", "max ms", "CPU us/delivery",
              "server CPU", "loadgen CPU", "max send lag ms", "other load"]
    rows = []
    for mode in modes:
        f = figures[mode]
        rows.append([_mode_label(mode), f"{f['sent']:.0f}", f"{f['deliveries']:.0f}/{f['expected']:.0f}",
                     *(_ms(f[q]) for q in ("p50", "p90", "p99", "max")), f"{f['us']:.2f}",
                     f"{100 * f['server']:.0f}%", f"{100 * f['loadgen']:.0f}%", _ms(f["send_lag"]),
                     f"{100 * f['other']:.0f}%"])
    fast = under_test(modes)
    if fast:
        rows += ratio_rows(fast, figures, ("p50", "p90", "p99", "max", "us", "server", "loadgen"),
                           ["", ""], 2)
    print_table(f"fanout-rate: {args.receivers} receivers ({args.client} client), {args.rate:g} messages/s "
                f"for {args.seconds:g} s ({_plural(args.runs)})", header, rows)
    print("Latency is per delivery (receive - send, one clock). CPU is % of one core over the run; "
          "CPU us/delivery is the server's CPU / deliveries; other load: the rest of the machine "
          "meanwhile (2 cores = 200%).")
    print("The load generator alone adds a few ms: one Node thread reads the 1000 sockets in turn.")
    print_table("where the time goes, per message",
                ["server", "to 1st delivery p50 ms", "p99 ms", "1st to last delivery p50 ms", "p99 ms"],
                [[_mode_label(mode), *(_ms(figures[mode][f"{part}_{q}"]) for part in ("first", "spread")
                                       for q in ("p50", "p99"))] for mode in modes])
    print("To the 1st delivery: store (fsync), event loop and the reading of one socket; "
          "1st to last: the fan-out to all receivers and their reading.")
    for mode in modes:
        warn_bad_runs(mode, runs[mode, None])
    if not fast:
        return
    p99 = figures[fast]["p99"]
    target(f"{fast} p99 <= 20 ms", p99, 20, f"{_ms(p99)} ms")
    if NODE_WS in modes:
        for key, bound, goal in (("us", 0.9, "CPU per delivery"), ("p50", 1.0, "p50"), ("p99", 0.8, "p99")):
            share = figures[fast][key] / figures[NODE_WS][key]
            target(f"{fast} {goal} <= {bound:g}x node-ws's", share, bound, f"{share:.2f}x")


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--receivers", type=int, default=1000)
    parser.add_argument("--per-user", type=int, default=20,
                        help="receiving connections per user (tabs): receivers/per_user users log in")
    parser.add_argument("--fanout", nargs="+", choices=FANOUT_MODES, default=list(FANOUT_MODES),
                        help="the servers to run (default: all three)")
    parser.add_argument("--runs", type=int, default=3, help="median of this many runs per server")
    parser.add_argument("--store", choices=("file", "memory"), default="file",
                        help="imserver's store; file: SQLite on disk, every message fsynced before its "
                             "fan-out (default); memory: ':memory:', to see the fan-out without the disk")
    parser.add_argument("--client", choices=("lean", "ws"), default="ws",
                        help="the receivers' WebSocket client: the ws library (default) or lean "
                             "(bench/loadgen/lean.mjs), which costs the load generator less CPU per delivery")
    parser.add_argument("--send-threads", type=int, default=None,
                        help="server.send_threads for the imserver servers (default: config.yaml's, 0)")
    parser.add_argument("--quick", action="store_true", help="a short run (a smoke test, not figures)")


def cli_burst(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench fanout", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    _common(parser)
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--window", type=int, nargs="+", default=[16, 1],
                        help="messages in flight: sent and not yet delivered to every receiver "
                             "(0: send all at once); one load per value (default: 16 1)")
    args = parser.parse_args(argv)
    if args.quick:
        args.runs, args.messages = 1, min(args.messages, 100)
    run_burst(args)


def cli_rate(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench fanout-rate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    _common(parser)
    parser.add_argument("--rate", type=float, default=20.0, help="messages per second")
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args(argv)
    if args.quick:
        args.runs, args.seconds = 1, min(args.seconds, 3.0)
    run_rate(args)
