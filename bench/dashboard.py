"""The admin dashboard at scale: a two-node cluster (PostgreSQL, Redis) holding
`--per-node` idle connections each (19,000 by default: a process here may open
20,000 files, so the load generator spreads its sockets over several Node
processes, bench/loadgen/idle.mjs), with one dashboard open in Chromium on node A.

It reports:

1. the time from the login to the first rows on the page;
2. the page's main-thread responsiveness: a trivial script call from the driver
   every 0.1 s, its wait at p50/p99/max, while the connections idle, and while
   `--churn` of them a second are closed and opened again as reconnects (a
   reconnect storm in miniature), with the bytes the push channel brought;
3. the API's response size and time per page (node A, Bearer token): the
   default page, 1,000 rows, a user and a search, pages deep in the list by
   cursor, a sort asked for the first time (its index built) and again, the
   small tables;
4. what the admin channel costs the servers: both nodes' CPU and Redis's over
   windows of `--window` seconds with and without the dashboard open, idle and
   in the storm; and chat delivery on node A meanwhile (two probe clients in a
   room of their own, one message every 0.1 s: p50/p99 from say to delivery).

    python -m bench dashboard [--per-node 19000] [--window 20] [--churn 200]
                              [--server-path DIR]   # servers (and page) of another checkout

`--server-path /path/to/an/older/checkout` measures the same with that code's
servers and page (a "before"); its API returns every row at once.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from imserver.testing import ServerProcess

from .cluster import CLUSTER, DEFAULT_DSN, DEFAULT_REDIS, Run, redis_pid, services_problem, started
from .node import NodeLoadgen
from .probe import Probe
from .report import busiest, percentile, print_table, processes_cpu_seconds
from .servers import CpuWindow, server_pid

TOKEN = "bench-dashboard-admin-token"
PER_USER = 20
PER_PROCESS = 9_500  # sockets a load generator process holds (its file limit is 20,000)
SAMPLE_EVERY = 0.1  # s between two script calls into the page


def node_settings(run: Run, node: str) -> dict[str, Any]:
    settings = run.settings(CLUSTER, node)
    settings["admin"] = {"token": TOKEN}
    # 19,000 sockets and the pending ones must fit the 20,000 files of a process.
    settings["limits"].update(max_pending_connections=500, max_pending_per_address=500)
    return settings


def nodes(run: Run, workdir: Path, server_path: str | None) -> list[ServerProcess]:
    env = None
    if server_path:  # that checkout first; no bytecode written into it
        env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": os.pathsep.join(
            filter(None, [server_path, os.environ.get("PYTHONPATH", "")]))}
    found = []
    for node in ("a", "b"):
        path = workdir / f"node-{node}"
        path.mkdir(parents=True)
        found.append(ServerProcess(path, node_settings(run, node), env=env))
    return found


def admin_get(host: str, path: str, query: dict[str, str] | None = None) -> tuple[Any, int, float]:
    """An admin API answer: its JSON, its size in bytes, and the seconds it took."""
    url = f"http://{host}/admin/api{path}" + (f"?{urlencode(query)}" if query else "")
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {TOKEN}"})
    began = time.perf_counter()
    with urllib.request.urlopen(request, timeout=60) as response:
        body = response.read()
    return json.loads(body), len(body), time.perf_counter() - began


def connections(host: str) -> int:
    return int(admin_get(host, "/stats")[0]["connections"])


@contextmanager
def loadgens(run: Run, servers: list[ServerProcess], total: int) -> Iterator[list[NodeLoadgen]]:
    """The load generator processes holding `total` connections over the servers."""
    processes = math.ceil(total / PER_PROCESS)
    tokens = [run.token(f"dash{u}") for u in range(math.ceil(total / PER_USER))]
    gens: list[NodeLoadgen] = []
    try:
        for k in range(processes):
            first = k * PER_PROCESS
            gens.append(NodeLoadgen("idle.mjs", {
                "base": f"http://{servers[0].host}", "ws": [f"ws://{s.host}" for s in servers],
                "connections": min(PER_PROCESS, total - first), "first": first, "per_user": PER_USER,
                "concurrency": 64, "lean": True, "user_tokens": tokens}))
        for gen in gens:
            gen.expect("logged_in", timeout=120)
        yield gens
    finally:
        for gen in gens:
            gen.close()


class Page:
    """The dashboard in Chromium, with the bytes its push channel brings."""

    def __init__(self, browser: Any) -> None:
        self.context = browser.new_context(viewport={"width": 1280, "height": 800})
        self.page = self.context.new_page()
        self.page.set_default_timeout(120_000)
        self.bytes = 0
        self.page.on("websocket", lambda ws: ws.on("framereceived", self._frame))

    def _frame(self, payload: str | bytes) -> None:
        self.bytes += len(payload.encode() if isinstance(payload, str) else payload)

    def open(self, host: str) -> float:
        """Logs in; the seconds from the click to the first row shown."""
        self.page.goto(f"http://{host}/admin")
        self.page.get_by_test_id("admin-token").fill(TOKEN)
        began = time.perf_counter()
        self.page.get_by_test_id("admin-login").click()
        self.page.wait_for_selector('[data-testid="client-row"]', state="visible")
        return time.perf_counter() - began

    def sample(self, seconds: float) -> list[float]:
        """The waits of a trivial script call every SAMPLE_EVERY for `seconds`."""
        waits = []
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            asked = time.perf_counter()
            self.page.evaluate("() => 1")
            waits.append(time.perf_counter() - asked)
            time.sleep(max(0.0, SAMPLE_EVERY - (time.perf_counter() - asked)))
        return waits

    def close_dashboard(self) -> None:
        self.page.goto("about:blank")

    def close(self) -> None:
        self.context.close()


def measure(label: str, seconds: float, pids: dict[str, int], probe: Probe, page: Page | None,
            gens: list[NodeLoadgen], churn: int) -> dict[str, Any]:
    """One window: the CPU of every bench process, chat delivery, and the page's waits."""
    if churn:
        for gen in gens:
            gen.send("churn", per_second=max(1, churn // len(gens)), seconds=int(seconds))
    probe.take()
    everyone = processes_cpu_seconds()
    window = CpuWindow(**pids).start()
    pushed = page.bytes if page else 0
    waits = page.sample(seconds) if page else []
    if not page:
        time.sleep(seconds)
    window.stop()
    others = busiest(everyone, processes_cpu_seconds(), window.wall, {*pids.values(), os.getpid()})
    if churn:
        for gen in gens:
            gen.expect("churned", timeout=120)
    return {"label": label, "window": window, "latencies": probe.take(), "waits": waits,
            "pushed": (page.bytes - pushed) if page else 0, "others": others}


def api_figures(host: str) -> list[list[str]]:
    """Time and size of the API's answers, first call and the median of four more."""
    paged = isinstance(admin_get(host, "/clients")[0], dict)  # an older server: a list of every row
    rows: list[list[str]] = []

    def row(what: str, path: str, query: dict[str, str] | None = None) -> Any:
        times = []
        answer: Any = None
        size = 0
        for _ in range(5):
            answer, size, took = admin_get(host, path, query)
            times.append(took)
        shown = answer["clients"] if isinstance(answer, dict) and "clients" in answer else answer
        count = len(shown) if isinstance(shown, list) else "-"
        rows.append([what, f"{count}", f"{size / 1024:,.1f}", f"{1000 * times[0]:.1f}",
                     f"{1000 * statistics.median(times[1:]):.1f}"])
        return answer

    row("GET /clients (no arguments)", "/clients")
    if paged:
        row("limit=1000", "/clients", {"limit": "1000"})
        row("user=dash123 (20 connections)", "/clients", {"user": "dash123"})
        row("q=dash12 (a search)", "/clients", {"q": "dash12"})
        row("sort=user (first: its index built)", "/clients", {"sort": "user"})
        page = admin_get(host, "/clients", {"limit": "100"})[0]
        for _ in range(50):  # 5,000 rows in, or the last page
            later = admin_get(host, "/clients", {"limit": "100", "cursor": page["next"]})[0]
            if later["next"] is None:
                break
            page = later
        deep = {"limit": "100", "cursor": page["next"]}
        row(f"a page {page['position'] + 100:,} rows in (cursor)", "/clients", deep)
        row("GET /summary", "/summary")
    row("GET /stats", "/stats")
    return rows


def run(args: argparse.Namespace) -> None:
    problem = services_problem(args.dsn, args.redis)
    if problem:
        print(f"dashboard: skipped: {problem}")
        return
    from playwright.sync_api import sync_playwright

    from tests.browser import CHROMIUM, CHROMIUM_ARGS

    total = 2 * args.per_node
    run_ = Run(args.dsn, args.redis)
    load = os.getloadavg()
    print(f"dashboard: {total:,} connections over two nodes; schema {run_.schema(CLUSTER)}, Redis prefix "
          f"{run_.prefix}; load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on "
          f"{os.cpu_count()} cores; servers from {args.server_path or 'this checkout'}")
    results: list[dict[str, Any]] = []
    try:
        with tempfile.TemporaryDirectory(prefix="bench-dashboard-") as tmp, \
                started(nodes(run_, Path(tmp), args.server_path)) as servers, \
                loadgens(run_, servers, total) as gens, sync_playwright() as playwright:
            node_a = servers[0]
            began = time.monotonic()
            for gen in gens:
                gen.send("open")
            opened = [gen.expect("opened", timeout=1200) for gen in gens]
            connected = sum(o["connected"] for o in opened)
            print(f"opened {connected:,} of {total:,} in {time.monotonic() - began:.0f} s")
            probe = Probe(run_.token, node_a.host)
            deadline = time.monotonic() + 120
            while connections(node_a.host) < connected + 2 and time.monotonic() < deadline:
                time.sleep(0.5)
            pids = {"a": server_pid(servers[0]), "b": server_pid(servers[1]), "redis": redis_pid(run_.redis)}
            for k, gen in enumerate(gens):
                pids[f"loadgen{k}"] = gen.pid
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=list(CHROMIUM_ARGS))
            page = Page(browser)
            try:
                time.sleep(2)
                results.append(measure("idle, no dashboard", args.window, pids, probe, None, gens, 0))
                first_rows = page.open(node_a.host)
                time.sleep(2)
                results.append(measure("idle, dashboard open", args.window, pids, probe, page, gens, 0))
                storm = f"storm {args.churn}/s"
                results.append(measure(f"{storm}, dashboard open", args.window, pids, probe, page, gens,
                                       args.churn))
                page.close_dashboard()
                time.sleep(2)
                results.append(measure(f"{storm}, no dashboard", args.window, pids, probe, None, gens,
                                       args.churn))
                time.sleep(3)
                api = api_figures(node_a.host)
            finally:
                page.close()
                browser.close()
                probe.stop()
    finally:
        run_.remove()
    report(args, total, first_rows, results, api)


def report(args: argparse.Namespace, total: int, first_rows: float, results: list[dict[str, Any]],
           api: list[list[str]]) -> None:
    print(f"\nfirst rows: {1000 * first_rows:.0f} ms from the login click to the first row shown")
    header = ["window", "node A CPU", "node B CPU", "Redis CPU", "loadgen CPU", "other load",
              "delivery p50/p99 ms", "page waits p50/p99/max ms", "pushed KB/s"]
    rows = []
    for r in results:
        w = r["window"]
        loadgen = sum(v for k, v in w.cpu.items() if k.startswith("loadgen")) / w.wall
        lat = [1000 * x for x in r["latencies"]]
        waits = [1000 * x for x in r["waits"]]
        rows.append([
            r["label"], f"{100 * w.share('a'):.1f}%", f"{100 * w.share('b'):.1f}%",
            f"{100 * w.share('redis'):.1f}%", f"{100 * loadgen:.0f}%", f"{100 * w.other / w.wall:.0f}%",
            f"{percentile(lat, 50):.1f}/{percentile(lat, 99):.1f}",
            f"{percentile(waits, 50):.1f}/{percentile(waits, 99):.1f}/{max(waits):.1f}" if waits else "-",
            f"{r['pushed'] / 1024 / w.wall:.1f}" if r["pushed"] else "-"])
    print_table(f"dashboard: {total:,} connections on two nodes, windows of {args.window:g} s", header, rows)
    idle_off, idle_on, storm_on, storm_off = (r["window"] for r in results)
    for what, on, off in (("idle", idle_on, idle_off), ("storm", storm_on, storm_off)):
        cost = on.share("a") + on.share("b") - off.share("a") - off.share("b")
        print(f"the admin channel's cost, {what}: {100 * cost:+.1f}% of one core over both nodes "
              f"(node A {100 * (on.share('a') - off.share('a')):+.1f}%, node B "
              f"{100 * (on.share('b') - off.share('b')):+.1f}%, Redis "
              f"{100 * (on.share('redis') - off.share('redis')):+.1f}%)")
    for r in results:
        print(f"other load, {r['label']}: {r['others']}")
    print("CPU: % of one core over the window (2 cores = 200%); other load: the rest of the machine, the "
          "browser included. delivery: say to delivery in a room of two on node A. page waits: a trivial "
          "script call into the page every 0.1 s.")
    print_table("the admin API on node A (idle; 5 calls each: the first, and the median of the others)",
                ["request", "rows", "KB", "first ms", "then ms"], api)


def cli(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench dashboard", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-node", type=int, default=19_000, help="connections held on each node")
    parser.add_argument("--window", type=float, default=20.0, help="seconds of each measured window")
    parser.add_argument("--churn", type=int, default=200,
                        help="connections closed and opened again each second in the storm windows")
    parser.add_argument("--server-path", default=None,
                        help="run the servers (and so the page) from another checkout, e.g. a 'before'")
    parser.add_argument("--dsn", default=os.environ.get("IMSERVER_TEST_DSN", DEFAULT_DSN))
    parser.add_argument("--redis", default=os.environ.get("IMSERVER_TEST_REDIS", DEFAULT_REDIS))
    parser.add_argument("--quick", action="store_true", help="1,000 per node, windows of 5 s")
    args = parser.parse_args(argv)
    if args.quick:
        args.per_node, args.window = min(args.per_node, 1000), min(args.window, 5.0)
    run(args)
