"""Figures and tables for the benchmark output."""

from __future__ import annotations

import os
import resource


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def print_table(title: str, header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    print(f"\n{title}")
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far, from /proc."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def process_rss_bytes(pid: int) -> int:
    """A process's resident memory (VmRSS) now, from /proc."""
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def median(values: list[float]) -> float:
    """The middle value (the lower of the two middle ones for an even count)."""
    if not values:
        return float("nan")
    return sorted(values)[(len(values) - 1) // 2]


def ratio(value: float, baseline: float) -> str:
    """`value / baseline` as a table cell, e.g. "0.16x"."""
    if not baseline or value != value or baseline != baseline:
        return "-"
    return f"{value / baseline:.2f}x"


def target(goal: str, value: float, bound: float, shown: str) -> None:
    """A `target:` line: `goal` met when `value` <= `bound` (never when it is NaN)."""
    print(f"target: {goal}: {shown}, {'met' if value <= bound else 'NOT met'}")


def bound_by(server_cpu: float, loadgen_cpu: float, *, saturated: float = 0.9) -> str:
    """Which side limited a throughput figure, from the fractions of a core each used."""
    sides = [name for name, cpu in (("server", server_cpu), ("loadgen", loadgen_cpu)) if cpu >= saturated]
    return "+".join(sides) or "neither (latency)"


def machine_busy_seconds() -> float:
    """CPU seconds all cores have spent busy (not idle, not waiting on I/O) since boot, from /proc/stat."""
    with open("/proc/stat", encoding="ascii") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def listen_drops() -> int:
    """SYNs the kernel dropped because a listen queue was full (machine-wide, TcpExt ListenDrops)."""
    with open("/proc/net/netstat", encoding="ascii") as f:
        lines = [line.split() for line in f if line.startswith("TcpExt:")]
    values = dict(zip(lines[0][1:], lines[1][1:], strict=True))
    return int(values.get("ListenDrops", 0))


def processes_cpu_seconds() -> dict[int, tuple[str, float]]:
    """Every process's name and CPU seconds so far (those that vanish meanwhile are left out)."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as f:
                text = f.read()
        except OSError:
            continue
        name = text[text.index("(") + 1:text.rindex(")")]
        if name.startswith("python"):  # which python: its module or script
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    args = f.read().decode(errors="replace").split("\0")
            except OSError:
                args = []
            name = " ".join([name, *[a.rsplit("/", 1)[-1] for a in args[1:3] if a]])
        fields = text.rsplit(")", 1)[1].split()
        found[int(entry)] = (name, (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"))
    return found


def busiest(before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]], wall: float,
            skip: set[int], most: int = 4) -> str:
    """The processes that used the most CPU between two snapshots, by name, as a share of a
    core ("chromium 35%, postgres 12%"), leaving out `skip`."""
    by_name: dict[str, float] = {}
    for pid, (name, cpu) in after.items():
        if pid in skip:
            continue
        used = cpu - before.get(pid, (name, 0.0))[1]
        by_name[name] = by_name.get(name, 0.0) + used
    top = sorted(by_name.items(), key=lambda item: -item[1])[:most]
    return ", ".join(f"{name} {100 * used / wall:.0f}%" for name, used in top if used / wall >= 0.005) or "-"
