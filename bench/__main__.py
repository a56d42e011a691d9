"""Run a benchmark scenario: python -m bench <scenario> [options]; `python -m bench all [--quick]`
runs the standard ones in turn with their defaults. Each prints a table; see bench/README.md."""

from __future__ import annotations

import sys

from . import cluster, dashboard, deadpeer, idle, reconnect, soak, storage
from .fanout import cli_burst, cli_rate


def bus_cli(argv: list[str]) -> None:
    """The Redis bus (needs the `cluster` extra, so imported only when asked for)."""
    from . import bus

    bus.cli(argv)


SCENARIOS = {"fanout": cli_burst, "fanout-rate": cli_rate, "idle": idle.cli, "dead-peer": deadpeer.cli,
             "reconnect": reconnect.cli, "storage": storage.cli, "soak": soak.cli, "bus": bus_cli,
             "cluster": cluster.cli, "dashboard": dashboard.cli}

# What `all` runs, in order, and the arguments of each for `all --quick`.
ALL = {"fanout": ["--quick"], "fanout-rate": ["--quick"], "idle": ["--quick"], "dead-peer": ["--quick"],
       "reconnect": ["--quick"], "storage": ["--seconds", "1"], "cluster": ["--quick"]}
# ... and for `all` (the defaults otherwise).
ALL_FULL = {"idle": ["--runs", "1"]}


def run_all(argv: list[str]) -> None:
    quick = argv == ["--quick"]
    if argv and not quick:
        print("usage: python -m bench all [--quick]", file=sys.stderr)
        raise SystemExit(2)
    for name, quick_args in ALL.items():
        args = quick_args if quick else ALL_FULL.get(name, [])
        print(f"\n=== python -m bench {' '.join([name, *args])}", flush=True)
        SCENARIOS[name](args)


def main() -> None:
    if len(sys.argv) >= 2 and sys.argv[1] == "all":
        run_all(sys.argv[2:])
        return
    if len(sys.argv) < 2 or sys.argv[1] not in SCENARIOS:
        print(f"usage: python -m bench {{{','.join([*SCENARIOS, 'all'])}}} [options]", file=sys.stderr)
        raise SystemExit(2)
    SCENARIOS[sys.argv[1]](sys.argv[2:])


main()
