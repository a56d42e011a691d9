"""Two nodes of a cluster (PostgreSQL store, Redis broker) beside one node, in one run.

Needs PostgreSQL (`--dsn`, default the machine's 127.0.0.1:5432, database
`test`), Redis (`--redis`) and the `cluster` extra (asyncpg, redis). Each run
makes fresh schemas and a fresh Redis key prefix and removes them at the end.
The servers are in `jwt` mode: this process signs the tokens, which any node
takes.

1. Latency, cross-node and same-node: one room, `--receivers` receivers (the
   Node load generator of `fanout-rate`, bench/loadgen/fanout.mjs) spread
   evenly over nodes A and B, one sender on A at `--rate` messages/s for
   `--seconds`. Beside it, the same receivers and rate against one node on the
   same PostgreSQL server with `broker.backend: local`, and against one node
   on SQLite (the defaults). The set-ups run in turn, `--runs` times.
2. Server CPU per delivery under that load: both nodes' CPU summed (from
   /proc), against the single node's; Redis's CPU and that of the nodes'
   PostgreSQL backends beside them.
3. Failover: `--clients` clients (bench/loadgen/reconnect.mjs) on node A, with
   node B as their second address; node A gets SIGKILL; the time until all
   are connected to node B, against the clients' backoff (the browser
   client's: the server's `client.reconnect_*` defaults), and the peak rate.

    python -m bench cluster [--receivers 1000] [--rate 20] [--seconds 10] [--runs 3]
                            [--clients 2000] [--parts latency failover] [--compare postgres sqlite]
                            [--send-threads N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt

from imserver.config import ClientConfig, hide_password
from imserver.testing import ServerProcess

from .node import NodeLoadgen
from .reconnect import peak_rate
from .report import listen_drops, median, percentile, print_table, ratio
from .servers import CpuWindow, bench_settings, scrape, server_pid, server_process

CLUSTER, ONE_PG, ONE_SQLITE = "cluster", "postgres", "sqlite"
LABELS = {CLUSTER: "cluster (A + B, Redis)", ONE_PG: "one node, PostgreSQL", ONE_SQLITE: "one node, SQLite"}
PER_USER = 20
DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/test"
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"
TARGET_P99_MS = 20.0  # the fanout-rate goal


# --- the services ---

def services_problem(dsn: str, redis_url: str) -> str | None:
    """Why the scenario cannot run here, or None."""
    try:
        import asyncpg
        import redis
    except ImportError as exc:
        return f"the `cluster` extra is not installed ({exc.name}): pip install -e '.[cluster]'"

    async def probe() -> None:
        conn = await asyncpg.connect(dsn, timeout=3)
        await conn.close()

    try:
        asyncio.run(probe())
    except Exception as exc:
        return (f"PostgreSQL at {hide_password(dsn)} does not answer ({type(exc).__name__}: {exc}); "
                ".ci/services starts it")
    try:
        redis.Redis.from_url(redis_url, socket_timeout=3).ping()
    except Exception as exc:
        from imserver.cluster.redisbus import redact
        return (f"Redis at {redact(redis_url)} does not answer ({type(exc).__name__}: {exc}); "
                ".ci/services starts it")
    return None


def redis_pid(redis_url: str) -> int:
    import redis
    return int(redis.Redis.from_url(redis_url).info("server")["process_id"])


def _socket_inodes(pid: int) -> set[int]:
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def local_ports_to(pid: int, remote_port: int) -> list[int]:
    """The local ports of a process's TCP connections to `remote_port`, from /proc."""
    inodes = _socket_inodes(pid)
    ports = []
    for table in ("tcp", "tcp6"):
        with open(f"/proc/{pid}/net/{table}", encoding="ascii") as f:
            next(f)
            for line in f:
                fields = line.split()
                if int(fields[9]) in inodes and int(fields[2].rsplit(":", 1)[1], 16) == remote_port:
                    ports.append(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def pg_port(dsn: str) -> int:
    host = dsn.split("@", 1)[-1].split("/", 1)[0]
    return int(host.rsplit(":", 1)[1]) if ":" in host else 5432


def postgres_backends(dsn: str, node_pids: list[int]) -> list[int]:
    """The PostgreSQL server processes serving these nodes' connections (by client port)."""
    import asyncpg
    ports = [p for pid in node_pids for p in local_ports_to(pid, pg_port(dsn))]

    async def query() -> list[int]:
        conn = await asyncpg.connect(dsn, timeout=5)
        try:
            rows = await conn.fetch("SELECT pid FROM pg_stat_activity WHERE client_port = ANY($1::int[])",
                                    ports)
            return [int(r["pid"]) for r in rows]
        finally:
            await conn.close()

    return asyncio.run(query()) if ports else []


LAG = "imserver_broker_lag_seconds"
GAPS = "imserver_gaps_filled_total"


def lag_figures(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """A node's broker lag over a window from two scrapes: the mean, and the bucket bound
    (ms) under which half and 99% of the messages came; with the gaps it filled."""
    delta = {k: after[k] - before.get(k, 0.0) for k in after}
    count = delta.get(f"{LAG}_count", 0.0)
    buckets = sorted((float(k.split('le="', 1)[1].split('"', 1)[0]), v) for k, v in delta.items()
                     if k.startswith(f"{LAG}_bucket"))

    def under(q: float) -> float:
        if not count:
            return float("nan")
        return next((1000 * le for le, n in buckets if n >= q * count), float("nan"))

    return {"count": count, "mean": 1000 * delta.get(f"{LAG}_sum", 0.0) / count if count else float("nan"),
            "p50": under(0.5), "p99": under(0.99),
            "gaps": sum(v for k, v in delta.items() if k.startswith(GAPS))}


@dataclass
class Run:
    """One run's names in the shared services, its token secret, and their removal."""
    dsn: str
    redis: str
    send_threads: int | None = None  # server.send_threads of every server (None: the default)
    tag: str = field(default_factory=lambda: secrets.token_hex(4))
    secret: str = field(default_factory=lambda: secrets.token_urlsafe(32))

    @property
    def prefix(self) -> str:
        return f"bench-{self.tag}"

    def schema(self, setup: str) -> str:
        return f"bench_{self.tag}_{setup}"

    def token(self, user: str) -> str:
        return jwt.encode({"sub": user, "name": user, "exp": int(time.time()) + 6 * 3600},
                          self.secret, algorithm="HS256")

    def tokens(self, prefix: str, connections: int, per_user: int = PER_USER) -> list[str]:
        return [self.token(f"{prefix}{u}") for u in range(-(-connections // per_user))]

    def settings(self, setup: str, node: str) -> dict[str, Any]:
        sections: dict[str, dict[str, Any]] = {
            "auth": {"mode": "jwt", "jwt": {"algorithm": "HS256", "secret": self.secret}}}
        if setup in (CLUSTER, ONE_PG):
            sections["storage"] = {"backend": "postgres", "dsn": self.dsn, "schema": self.schema(setup)}
        if setup == CLUSTER:
            sections["broker"] = {"backend": "redis", "url": self.redis, "prefix": self.prefix,
                                  "node_id": f"{self.prefix}-{node}"}
        if self.send_threads is not None:
            sections["server"] = {"send_threads": self.send_threads}
        return bench_settings(**sections)

    def remove(self) -> None:
        """Drop the schemas and delete the prefix's keys."""
        import asyncpg
        import redis

        async def drop() -> None:
            conn = await asyncpg.connect(self.dsn, timeout=10)
            try:
                for setup in (CLUSTER, ONE_PG):
                    await conn.execute(f'DROP SCHEMA IF EXISTS "{self.schema(setup)}" CASCADE')
            finally:
                await conn.close()

        asyncio.run(drop())
        client = redis.Redis.from_url(self.redis)
        keys = list(client.scan_iter(match=f"{self.prefix}:*", count=1000))
        if keys:
            client.delete(*keys)


@contextmanager
def started(processes: list[ServerProcess]) -> Iterator[list[ServerProcess]]:
    try:
        for process in processes:
            process.start()
        yield processes
    finally:
        for process in processes:
            process.stop()


# --- 1 and 2: the fan-out at a fixed rate ---

@dataclass
class Setup:
    """The servers of one set-up and a load generator with its receivers on them."""
    name: str
    servers: list[ServerProcess]
    loadgen: NodeLoadgen | None = None

    @property
    def pids(self) -> list[int]:
        return [server_pid(s) for s in self.servers]


def server_setups(run: Run, workdir: Path, names: list[str]) -> dict[str, Setup]:
    setups = {}
    for name in names:
        nodes = ("a", "b") if name == CLUSTER else ("a",)
        servers = []
        for node in nodes:
            path = workdir / f"{name}-{node}"
            path.mkdir(parents=True)
            servers.append(server_process(path, run.settings(name, node)))
        setups[name] = Setup(name, servers)
    return setups


def connect_receivers(run: Run, setups: dict[str, Setup], receivers: int) -> None:
    for setup in setups.values():
        setup.loadgen = NodeLoadgen("fanout.mjs", {
            "base": f"http://{setup.servers[0].host}", "ws": [f"ws://{s.host}" for s in setup.servers],
            "receivers": receivers, "per_user": PER_USER, "prefix": "rx", "lean": True, "by_node": True,
            "user_tokens": run.tokens("rx", receivers), "sender_token": run.token("rxsender")})
    for setup in setups.values():
        assert setup.loadgen is not None
        setup.loadgen.expect("ready", timeout=600)


def measure_rate(run: Run, setups: dict[str, Setup], name: str, rate: float, seconds: float,
                 redis: int) -> dict[str, Any]:
    """One fixed-rate run on one set-up; every other bench process is measured too, so that
    `other` is only what the rest of the machine did."""
    setup = setups[name]
    assert setup.loadgen is not None
    pids: dict[str, int] = {"redis": redis}
    for other in setups.values():
        assert other.loadgen is not None
        pids[f"{other.name}:loadgen"] = other.loadgen.pid
        for i, pid in enumerate(other.pids):
            pids[f"{other.name}:node{i}"] = pid
        if other.name != ONE_SQLITE:
            for i, pid in enumerate(postgres_backends(run.dsn, other.pids)):
                pids[f"{other.name}:pg{i}"] = pid
    receiving = setup.servers[-1].host  # the last node: the one across the bus from the sender
    scraped = scrape(receiving, LAG, GAPS)
    window = CpuWindow(**pids).start()
    setup.loadgen.send("rate", rate=rate, seconds=seconds)
    setup.loadgen.expect("done", timeout=seconds + 120)
    window.stop()
    result = setup.loadgen.expect("result", timeout=60)
    result["lag"] = lag_figures(scraped, scrape(receiving, LAG, GAPS))

    def cpu(part: str) -> float:
        return sum(v for k, v in window.cpu.items() if k.startswith(f"{name}:{part}"))

    result.update(nodes_cpu=[window.cpu[f"{name}:node{i}"] for i in range(len(setup.servers))],
                  loadgen_cpu=cpu("loadgen"), pg_cpu=cpu("pg"),
                  redis_cpu=window.cpu["redis"] if name == CLUSTER else 0.0,
                  other_cpu=window.other, wall=window.wall)
    return result


def run_rate(args: argparse.Namespace, run: Run, workdir: Path) -> dict[str, list[dict[str, Any]]]:
    names = [CLUSTER, *args.compare]
    setups = server_setups(run, workdir, names)
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    with started([s for setup in setups.values() for s in setup.servers]):
        try:
            connect_receivers(run, setups, args.receivers)
            redis = redis_pid(run.redis)
            for _ in range(args.runs):  # in turn, so that all see the same machine
                for name in names:
                    runs[name].append(measure_rate(run, setups, name, args.rate, args.seconds, redis))
        finally:
            for setup in setups.values():
                if setup.loadgen is not None:
                    setup.loadgen.close()
    return runs


def _ms(value: float | None) -> str:
    return "-" if value is None or value != value else f"{value:.1f}"


def _pct(value: float) -> str:
    return "-" if value != value else f"{100 * value:.0f}%"


def latency_figures(runs: list[dict[str, Any]], part: Callable[[dict[str, Any]], dict[str, Any]]
                    ) -> dict[str, float]:
    """Median over the runs of each figure of one group of receivers (max: the largest)."""
    parts = [part(r) for r in runs]

    def med(key: str, q: str) -> float:
        return median([p[key][q] if p[key] and p[key][q] is not None else float("nan") for p in parts])

    return {
        "receivers": parts[0]["receivers"], "delivered": sum(p["deliveries"] for p in parts),
        "expected": sum(p["expected"] for p in parts),
        "p50": med("latency_ms", "p50"), "p90": med("latency_ms", "p90"), "p99": med("latency_ms", "p99"),
        "max": max(p["latency_ms"]["max"] or float("nan") for p in parts),
        "first50": med("first_ms", "p50"), "first99": med("first_ms", "p99"),
        "after50": med("after_home_ms", "p50"), "after99": med("after_home_ms", "p99"),
        "other": median([r["other_cpu"] / r["wall"] for r in runs]),
    }


def _all_receivers(r: dict[str, Any]) -> dict[str, Any]:
    return {"receivers": sum(n["receivers"] for n in r["by_node"]), "deliveries": r["deliveries"],
            "expected": r["expected"], "latency_ms": r["latency_ms"], "first_ms": r["first_ms"],
            "after_home_ms": None}


def print_lag(runs: list[dict[str, Any]]) -> None:
    lags = [r["lag"] for r in runs]
    figures = {k: median([lag[k] for lag in lags]) for k in ("mean", "p50", "p99", "count")}
    print(f"Node B's own figure (imserver_broker_lag_seconds: from the message's insert on A to its "
          f"arrival on B, ms resolution; median of the runs): mean {figures['mean']:.1f} ms, half within "
          f"{figures['p50']:g} ms, 99% within {figures['p99']:g} ms (bucket bounds), "
          f"{figures['count']:.0f} messages a run.")


def print_latency(args: argparse.Namespace, runs: dict[str, list[dict[str, Any]]]) -> None:
    rows_by: dict[str, dict[str, float]] = {
        "node A (the sender's)": latency_figures(runs[CLUSTER], lambda r: r["by_node"][0]),
        "node B (cross-node)": latency_figures(runs[CLUSTER], lambda r: r["by_node"][1]),
        "A and B": latency_figures(runs[CLUSTER], _all_receivers),
    }
    for name in args.compare:
        rows_by[LABELS[name]] = latency_figures(runs[name], _all_receivers)
    header = ["receivers", "on", "delivered", "p50 ms", "p90 ms", "p99 ms", "max ms", "to 1st p50 ms",
              "p99 ms", "after A's 1st p50 ms", "p99 ms", "other load"]
    rows = []
    for label, f in rows_by.items():
        cluster_row = label in ("node A (the sender's)", "node B (cross-node)", "A and B")
        rows.append([f"{f['receivers']}", f"cluster: {label}" if cluster_row else label,
                     f"{f['delivered']}/{f['expected']}", _ms(f["p50"]), _ms(f["p90"]), _ms(f["p99"]),
                     _ms(f["max"]), _ms(f["first50"]), _ms(f["first99"]),
                     _ms(f["after50"]) if label.startswith("node B") else "",
                     _ms(f["after99"]) if label.startswith("node B") else "", _pct(f["other"])])
    a, b, both = (rows_by[k] for k in ("node A (the sender's)", "node B (cross-node)", "A and B"))
    keys = ("p50", "p90", "p99", "max", "first50", "first99")
    rows.append(["", "node B / node A", "", *(ratio(b[k], a[k]) for k in keys), "", "", ""])
    if ONE_PG in args.compare:
        one = rows_by[LABELS[ONE_PG]]
        rows.append(["", "cluster A and B / one node, PostgreSQL", "",
                     *(ratio(both[k], one[k]) for k in keys), "", "", ""])
    runs_shown = f"{args.runs} run{'s' if args.runs > 1 else ''}"
    print_table(f"cluster, latency: {args.receivers} receivers in one room, half on node A and half on "
                f"node B, 1 sender on A, {args.rate:g} messages/s for {args.seconds:g} s; one node with the "
                f"same receivers and rate beside it (median of {runs_shown}, in turn)", header, rows)
    print("Latency is per delivery (receive - send, one clock); max is the largest of all runs. To 1st: per "
          "message, send to its first delivery on those receivers; after A's 1st: per message, its first "
          "delivery on B less its first on A (what the way through Redis adds). Other load: the rest of "
          "the machine (2 cores = 200%), every bench process and Redis and PostgreSQL's backends left out.")
    print_lag(runs[CLUSTER])


def print_cpu(args: argparse.Namespace, runs: dict[str, list[dict[str, Any]]]) -> None:
    figures = {}
    for name, results in runs.items():
        per_run = [{
            "rate": r["deliveries"] / r["wall"], "nodes": sum(r["nodes_cpu"]) / r["wall"],
            "a": r["nodes_cpu"][0] / r["wall"],
            "b": r["nodes_cpu"][1] / r["wall"] if len(r["nodes_cpu"]) > 1 else float("nan"),
            "us": 1e6 * sum(r["nodes_cpu"]) / max(1, r["deliveries"]),
            "redis": r["redis_cpu"] / r["wall"], "pg": r["pg_cpu"] / r["wall"],
            "us_all": 1e6 * (sum(r["nodes_cpu"]) + r["redis_cpu"] + r["pg_cpu"]) / max(1, r["deliveries"]),
            "loadgen": r["loadgen_cpu"] / r["wall"], "other": r["other_cpu"] / r["wall"],
        } for r in results]
        figures[name] = {key: median([p[key] for p in per_run]) for key in per_run[0]}
    header = ["server", "deliveries/s", "nodes' CPU", "node A", "node B", "CPU us/delivery", "Redis",
              "PostgreSQL", "us/delivery with both", "loadgen CPU", "other load"]
    rows = []
    for name, f in figures.items():
        services = name != ONE_SQLITE
        rows.append([LABELS[name], f"{f['rate']:,.0f}", _pct(f["nodes"]), _pct(f["a"]), _pct(f["b"]),
                     f"{f['us']:.2f}", _pct(f["redis"]) if name == CLUSTER else "-",
                     _pct(f["pg"]) if services else "-", f"{f['us_all']:.2f}" if services else "-",
                     _pct(f["loadgen"]), _pct(f["other"])])
    for name in args.compare:
        c, o = figures[CLUSTER], figures[name]
        rows.append([f"cluster / {LABELS[name]}", "", ratio(c["nodes"], o["nodes"]), "", "",
                     ratio(c["us"], o["us"]), "", ratio(c["pg"], o["pg"]) if name == ONE_PG else "",
                     ratio(c["us_all"], o["us_all"]) if name == ONE_PG else "", "", ""])
    print_table(f"cluster, server CPU per delivery under that load (median of {args.runs} "
                f"run{'s' if args.runs > 1 else ''})", header, rows)
    print("CPU is % of one core over each run (first send to last delivery), all threads, from /proc; "
          "nodes' CPU is both nodes summed, and CPU us/delivery is it over the deliveries. Redis (the "
          "machine's, shared) and PostgreSQL (the backends serving the nodes' connections) are beside it; "
          "us/delivery with both adds them.")


def print_rate_warnings(runs: dict[str, list[dict[str, Any]]]) -> None:
    for name, results in runs.items():
        for number, r in enumerate(results, 1):
            if r["deliveries"] != r["expected"] or r["disorder"] or r["closed"]:
                print(f"WARNING {LABELS[name]}, run {number}: {r['expected'] - r['deliveries']} missing, "
                      f"{r['disorder']} out of order, {r['closed']} sockets closed")
    cluster = runs[CLUSTER]
    for number, r in enumerate(cluster, 1):
        if r["lag"]["gaps"]:
            print(f"WARNING cluster, run {number}: node B filled {r['lag']['gaps']:.0f} gaps from the store")
    for label, g in (("node A", 0), ("node B", 1)):
        p99 = median([r["by_node"][g]["latency_ms"]["p99"] or float("nan") for r in cluster])
        verdict = "met" if p99 <= TARGET_P99_MS else "NOT met"
        print(f"target (fanout-rate's): cluster p99 <= {TARGET_P99_MS:g} ms on {label}: {_ms(p99)} ms, "
              f"{verdict}")


# --- 3: failover ---

def run_failover(args: argparse.Namespace, run: Run, workdir: Path) -> dict[str, Any]:
    a, b = (server_process(_mkdir(workdir / f"failover-{node}"), run.settings(CLUSTER, f"f{node}"))
            for node in ("a", "b"))
    client = ClientConfig()
    backoff = {"base": client.reconnect_base_seconds, "factor": client.reconnect_factor,
               "cap": client.reconnect_cap_seconds}
    with started([a, b]), NodeLoadgen("reconnect.mjs", {
            "base": f"http://{a.host}", "ws": [f"ws://{a.host}", f"ws://{b.host}"],
            "clients": args.clients, "per_user": PER_USER, "prefix": "fo",
            "user_tokens": run.tokens("fo", args.clients), "backoff": backoff,
            "connect_timeout_ms": int(client.connect_timeout_seconds * 1000)}) as loadgen:
        loadgen.expect("ready", timeout=600)
        time.sleep(1.0)
        loadgen.send("arm", mode="retry_after", timeout_s=args.failover_timeout)
        loadgen.expect("armed")
        pids = {"b": server_pid(b), "loadgen": loadgen.pid, "redis": redis_pid(run.redis)}
        for i, pid in enumerate(postgres_backends(run.dsn, [server_pid(b)])):
            pids[f"pg{i}"] = pid
        window = CpuWindow(**pids).start()
        drops = listen_drops()
        killed = time.time()
        a.kill()
        result = loadgen.expect("result", timeout=args.failover_timeout + 60)
        window.stop()
    result.update(killed=killed, backoff=backoff, listen_drops=listen_drops() - drops,
                  b_cpu=window.cpu["b"], loadgen_cpu=window.cpu["loadgen"], redis_cpu=window.cpu["redis"],
                  pg_cpu=sum(v for k, v in window.cpu.items() if k.startswith("pg")),
                  other_cpu=window.other, wall=window.wall)
    return result


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True)
    return path


def print_failover(args: argparse.Namespace, r: dict[str, Any]) -> None:
    back = sorted(t / 1000 - r["killed"] for t in r["welcomes"])
    closed = sorted(t / 1000 - r["killed"] for t in r["closes"])
    last = back[-1] if back else float("nan")
    base, factor, cap = r["backoff"]["base"], r["backoff"]["factor"], r["backoff"]["cap"]
    # Every client makes its first attempt (to node B) within `base` of its close.
    bound = (closed[-1] if closed else float("nan")) + base
    connect = r["connect_ms"]
    header = ["clients", "back on B", "closed p50/max s", "back p50 s", "p99 s", "all back s", "bound s",
              "peak conn/s", "attempts", "failed", "SYNs dropped", "connect p50/max ms", "node B CPU s",
              "per client ms", "loadgen CPU s", "other load"]
    row = [f"{r['clients']}", f"{r['back_on'][1]}/{r['clients']}",
           f"{percentile(closed, 50):.2f}/{closed[-1] if closed else float('nan'):.2f}",
           f"{percentile(back, 50):.2f}", f"{percentile(back, 99):.2f}", f"{last:.2f}", f"{bound:.2f}",
           f"{peak_rate([t / 1000 for t in r['welcomes']]):,.0f}", f"{r['attempts']}", f"{r['failures']}",
           f"{r['listen_drops']}", f"{percentile(connect, 50):.0f}/{max(connect, default=float('nan')):.0f}",
           f"{r['b_cpu']:.2f}", f"{1000 * r['b_cpu'] / max(1, r['back_on'][1]):.2f}",
           f"{r['loadgen_cpu']:.2f}", _pct(r["other_cpu"] / r["wall"] if r["wall"] else float("nan"))]
    print_table(f"cluster, failover: {args.clients} clients on node A, node B their second address; "
                f"node A killed (SIGKILL)", header, [row])
    print(f"Times are from the SIGKILL. closed: the clients saw their connection end; back: welcomed by "
          f"node B; bound: the last close + {base:g} s, by when every client has made its first attempt "
          f"(to B: the browser client's backoff, a random part of {base:g} s, then x{factor:g} per failed "
          f"attempt up to {cap:g} s). connect: attempt to welcome; peak: welcomes in the busiest 100 ms "
          f"x 10; CPU: from the kill to the last welcome (per client: node B's over the clients back).")
    if r["errors"]:
        shown = ", ".join(f"{count} x {kind}" for kind, count in sorted(r["errors"].items()))
        print(f"failed attempts: {shown}")
    if r["back"] != r["clients"]:
        print(f"WARNING: {r['clients'] - r['back']} clients not back within {args.failover_timeout:g} s")
    print(f"bound: all back {last:.2f} s after the kill, {last - bound:+.2f} s from the clients' bound "
          f"({bound:.2f} s); past it is node B's accepting (slowest connect "
          f"{max(connect, default=0):.0f} ms)")


# --- the command ---

def run_scenario(args: argparse.Namespace) -> None:
    problem = services_problem(args.dsn, args.redis)
    if problem:
        print(f"cluster: skipped: {problem}")
        return
    run = Run(args.dsn, args.redis, args.send_threads)
    print(f"cluster: schemas {run.schema(CLUSTER)}, {run.schema(ONE_PG)}; Redis prefix {run.prefix}")
    try:
        with tempfile.TemporaryDirectory(prefix="bench-cluster-") as tmp:
            if "latency" in args.parts:
                runs = run_rate(args, run, Path(tmp))
                print_latency(args, runs)
                print_cpu(args, runs)
                print_rate_warnings(runs)
            if "failover" in args.parts:
                print_failover(args, run_failover(args, run, Path(tmp)))
    finally:
        run.remove()


def cli(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench cluster", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--receivers", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=20.0, help="messages per second")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--runs", type=int, default=3, help="runs of each set-up, in turn; the median")
    parser.add_argument("--compare", nargs="*", choices=(ONE_PG, ONE_SQLITE), default=[ONE_PG, ONE_SQLITE],
                        help="the single nodes beside the cluster (default: both)")
    parser.add_argument("--send-threads", type=int, default=None,
                        help="server.send_threads for every server (default: config.yaml's default, 0)")
    parser.add_argument("--clients", type=int, default=2000, help="clients of the failover")
    parser.add_argument("--failover-timeout", type=float, default=120.0,
                        help="seconds to wait for every client to be back")
    parser.add_argument("--parts", nargs="+", choices=("latency", "failover"),
                        default=["latency", "failover"], help="latency: parts 1 and 2 (default: both)")
    parser.add_argument("--dsn", default=os.environ.get("IMSERVER_TEST_DSN", DEFAULT_DSN),
                        help=f"PostgreSQL (default: $IMSERVER_TEST_DSN or {DEFAULT_DSN})")
    parser.add_argument("--redis", default=os.environ.get("IMSERVER_TEST_REDIS", DEFAULT_REDIS),
                        help=f"Redis (default: $IMSERVER_TEST_REDIS or {DEFAULT_REDIS})")
    parser.add_argument("--quick", action="store_true",
                        help="200 receivers for 3 s, one run, 300 failover clients (a smoke test, "
                             "not figures)")
    args = parser.parse_args(argv)
    if args.quick:
        args.receivers, args.seconds, args.runs = min(args.receivers, 200), min(args.seconds, 3.0), 1
        args.clients = min(args.clients, 300)
    run_scenario(args)
