"""Fan-out benchmarks: one sender, 1000 receivers in one room, two servers side by side.

The server under test (`server.fanout: prebuilt`) and the naive baseline
(`server.fanout: write_message`, Tornado's write_message per connection) run
as two processes in the same run, each with its own Node load generator, and
their runs alternate so that both see the same machine.

    python -m bench fanout       [--receivers 1000] [--messages 300] [--runs 3] [--window 16 1]
    python -m bench fanout-rate  [--receivers 1000] [--rate 20] [--seconds 10]

`fanout` sends as fast as the server takes it, keeping `window` messages not
yet delivered to every receiver in flight: deliveries/s, server CPU per
delivery, latency. Window 16 keeps the server busy; window 1 sends one message
at a time, so that no two frames for one socket can share a write.
`fanout-rate` sends at a fixed rate: the latency distribution. Latency is
receive time minus send time, on one clock.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

from imserver.testing import ServerProcess

from .node import NodeLoadgen
from .report import bound_by, median, print_table, ratio
from .servers import FANOUT_MODES, CpuWindow, server_pid, start_server

BASELINE = "write_message"


class FanoutRig:
    """Both servers, and a load generator with its receivers connected to each."""

    def __init__(self, workdir: Path, modes: tuple[str, ...], receivers: int, per_user: int,
                 store: str = "file", client: str = "lean", send_threads: int | None = None) -> None:
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

    def close(self) -> None:
        for loadgen in self.loadgens.values():
            loadgen.close()
        for server in self.servers.values():
            server.stop()


def _mode_label(mode: str) -> str:
    return f"{mode} (baseline)" if mode == BASELINE else mode


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def burst_figures(runs: list[dict[str, Any]]) -> dict[str, float]:
    """Per-run figures of a burst, then the median of each over the runs."""
    per_run = []
    for r in runs:
        elapsed = r["elapsed_s"]
        per_run.append({
            "deliveries": r["deliveries"], "expected": r["expected"],
            "rate": r["deliveries"] / elapsed if elapsed > 0 else float("nan"),
            "us": 1e6 * r["server_cpu_s"] / max(1, r["deliveries"]),
            "p50": r["latency_ms"]["p50"] or float("nan"), "p99": r["latency_ms"]["p99"] or float("nan"),
            "server": r["server_cpu_s"] / elapsed if elapsed > 0 else float("nan"),
            "loadgen": r["loadgen_cpu_s"] / elapsed if elapsed > 0 else float("nan"),
            "other": r["other_cpu_s"] / r["wall_s"] if r["wall_s"] > 0 else float("nan"),
            "disorder": r["disorder"], "closed": r["closed"],
        })
    return {key: median([run[key] for run in per_run]) for key in per_run[0]}


def run_burst(args: argparse.Namespace) -> None:
    modes = tuple(args.fanout)
    loads = [(mode, window) for window in args.window for mode in modes]
    with tempfile.TemporaryDirectory(prefix="bench-fanout-") as tmp:
        rig = FanoutRig(Path(tmp), modes, args.receivers, args.per_user, args.store, args.client,
                        args.send_threads)
        try:
            runs: dict[tuple[str, int], list[dict[str, Any]]] = {load: [] for load in loads}
            for _ in range(args.runs):  # alternate, so that both servers see the same machine
                for mode, window in loads:
                    runs[mode, window].append(
                        rig.measure(mode, "burst", messages=args.messages, window=window))
        finally:
            rig.close()
    figures = {load: burst_figures(runs[load]) for load in loads}
    header = ["server", "window", "delivered", "deliveries/s", "CPU us/delivery", "p50 ms", "p99 ms",
              "server CPU", "loadgen CPU", "bound by", "other load"]
    rows = []
    fast = next((m for m in modes if m != BASELINE), None)
    for window in args.window:
        shown = str(window) if window > 0 else "all"
        for mode in modes:
            f = figures[mode, window]
            rows.append([_mode_label(mode), shown, f"{f['deliveries']:.0f}/{f['expected']:.0f}",
                         f"{f['rate']:,.0f}", f"{f['us']:.2f}", _ms(f["p50"]), _ms(f["p99"]),
                         f"{100 * f['server']:.0f}%", f"{100 * f['loadgen']:.0f}%",
                         bound_by(f["server"], f["loadgen"]), f"{100 * f['other']:.0f}%"])
        if fast and BASELINE in modes:
            a, b = figures[fast, window], figures[BASELINE, window]
            rows.append([f"{fast} / baseline", shown, "", *(ratio(a[key], b[key]) for key in (
                "rate", "us", "p50", "p99", "server", "loadgen")), "", ""])
    print_table(f"fanout: {args.receivers} receivers x {args.messages} messages, as fast as possible "
                f"(median of {args.runs} run{'s' if args.runs > 1 else ''})", header, rows)
    print("window: messages in flight (sent, not yet delivered to every receiver); 1 = one at a time.")
    print("CPU is % of one core from first send to last delivery; CPU us/delivery is the server's CPU "
          "(all threads, including the kernel's work on loopback) / deliveries. Other load: the rest "
          "of the machine meanwhile (2 cores = 200%); high values make the figures noisy.")
    for (mode, window), results in runs.items():
        bad = [f"{r['expected'] - r['deliveries']} missing" for r in results
               if r["deliveries"] != r["expected"]]
        bad += [f"{r['disorder']} out of order" for r in results if r["disorder"]]
        bad += [f"{r['closed']} sockets closed" for r in results if r["closed"]]
        if bad:
            print(f"WARNING {mode}, window {window}: {', '.join(bad)}")
    if fast and BASELINE in modes:
        for window in args.window:
            share = figures[fast, window]["us"] / figures[BASELINE, window]["us"]
            if window == 1:  # not the target's load: one send() per delivery for both servers
                print(f"for reference (window 1): {fast} CPU per delivery {share:.2f}x the baseline's")
                continue
            verdict = "met" if share <= 1 / 6 else "NOT met"
            print(f"target (window {window}): {fast} CPU per delivery <= 1/6 of the baseline's: "
                  f"{share:.2f}x, {verdict}")


def run_rate(args: argparse.Namespace) -> None:
    modes = tuple(args.fanout)
    with tempfile.TemporaryDirectory(prefix="bench-fanout-rate-") as tmp:
        rig = FanoutRig(Path(tmp), modes, args.receivers, args.per_user, args.store, args.client,
                        args.send_threads)
        try:
            results = {mode: rig.measure(mode, "rate", rate=args.rate, seconds=args.seconds)
                       for mode in modes}
        finally:
            rig.close()
    header = ["server", "sent", "delivered", "p50 ms", "p90 ms", "p99 ms", "max ms", "server CPU",
              "loadgen CPU", "max send lag ms", "other load"]
    rows = []
    for mode in modes:
        r = results[mode]
        lat = r["latency_ms"]
        rows.append([_mode_label(mode), f"{r['sent']}", f"{r['deliveries']}/{r['expected']}",
                     _ms(lat["p50"]), _ms(lat["p90"]), _ms(lat["p99"]), _ms(lat["max"]),
                     f"{100 * r['server_cpu_s'] / r['wall_s']:.0f}%",
                     f"{100 * r['loadgen_cpu_s'] / r['wall_s']:.0f}%", _ms(r["send_lag_max_ms"]),
                     f"{100 * r['other_cpu_s'] / r['wall_s']:.0f}%"])
    fast = next((m for m in modes if m != BASELINE), None)
    if fast and BASELINE in modes:
        a, b = results[fast], results[BASELINE]
        la, lb = a["latency_ms"], b["latency_ms"]
        rows.append([f"{fast} / baseline", "", "", ratio(la["p50"], lb["p50"]), ratio(la["p90"], lb["p90"]),
                     ratio(la["p99"], lb["p99"]), ratio(la["max"], lb["max"]),
                     ratio(a["server_cpu_s"], b["server_cpu_s"]),
                     ratio(a["loadgen_cpu_s"], b["loadgen_cpu_s"]), "", ""])
    print_table(f"fanout-rate: {args.receivers} receivers, {args.rate:g} messages/s for {args.seconds:g} s",
                header, rows)
    print("Latency is per delivery (receive - send, one clock). CPU is % of one core over the run; "
          "other load: the rest of the machine meanwhile (2 cores = 200%).")
    print("The load generator alone adds a few ms: one Node thread reads the 1000 sockets in turn.")
    print_table("where the time goes, per message",
                ["server", "to 1st delivery p50 ms", "p99 ms", "1st to last delivery p50 ms", "p99 ms"],
                [[_mode_label(mode), *(_ms(results[mode][part][q]) for part in ("first_ms", "spread_ms")
                                       for q in ("p50", "p99"))] for mode in modes])
    print("To the 1st delivery: store (fsync), event loop and the reading of one socket; "
          "1st to last: the fan-out to all receivers and their reading.")
    for mode in modes:
        r = results[mode]
        if r["deliveries"] != r["expected"] or r["disorder"] or r["closed"]:
            print(f"WARNING {mode}: {r['expected'] - r['deliveries']} missing, "
                  f"{r['disorder']} out of order, {r['closed']} sockets closed")
    if fast:
        p99 = results[fast]["latency_ms"]["p99"]
        verdict = "met" if p99 is not None and p99 <= 20 else "NOT met"
        print(f"target: {fast} p99 <= 20 ms: {_ms(p99)} ms, {verdict}")


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--receivers", type=int, default=1000)
    parser.add_argument("--per-user", type=int, default=20,
                        help="receiving connections per user (tabs): receivers/per_user users log in")
    parser.add_argument("--fanout", nargs="+", choices=FANOUT_MODES, default=list(FANOUT_MODES),
                        help="the servers to run (default: both)")
    parser.add_argument("--store", choices=("file", "memory"), default="file",
                        help="file: SQLite on disk, every message fsynced before its fan-out (default); "
                             "memory: ':memory:', to see the fan-out without the disk")
    parser.add_argument("--client", choices=("lean", "ws"), default="lean",
                        help="the receivers' WebSocket client: lean (bench/loadgen/lean.mjs, default) or "
                             "the ws library, which costs the load generator more CPU per delivery")
    parser.add_argument("--send-threads", type=int, default=None,
                        help="server.send_threads for both servers (default: config.yaml's default, 1)")
    parser.add_argument("--quick", action="store_true", help="a short run (a smoke test, not figures)")


def cli_burst(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench fanout", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    _common(parser)
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--runs", type=int, default=3, help="median of this many runs per server")
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
        args.seconds = min(args.seconds, 3.0)
    run_rate(args)
