"""Memory and CPU of a process group (a service and its children), read from /proc."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path


def _proc_stats() -> Iterator[tuple[Path, list[str]]]:
    """(``/proc/<pid>``, the fields of its ``stat`` after the command name) of every live process."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
        except (OSError, ValueError):  # gone meanwhile, or an empty read
            continue
        yield entry, fields


def group_stats(pgid: int) -> dict[int, dict[str, float]]:
    """pid -> {rss (bytes), cpu (s), ppid} of the processes in a process group."""
    page, tick = os.sysconf("SC_PAGE_SIZE"), os.sysconf("SC_CLK_TCK")
    out: dict[int, dict[str, float]] = {}
    for entry, fields in _proc_stats():
        try:
            if int(fields[2]) != pgid:
                continue
            rss = int((entry / "statm").read_text().split()[1]) * page
        except (OSError, ValueError, IndexError):
            continue
        out[int(entry.name)] = {"rss": rss, "cpu": (int(fields[11]) + int(fields[12])) / tick, "ppid": int(fields[1])}
    return out


def group_rss(pgid: int) -> int:
    return int(sum(p["rss"] for p in group_stats(pgid).values()))


def runner_cpu(pgid: int) -> float:
    """CPU seconds of the trigger runner (the triggerer's child process running the event loop)."""
    stats = group_stats(pgid)
    children = [s for pid, s in stats.items() if pid != pgid and s["ppid"] == pgid]
    return max((s["cpu"] for s in children), default=stats.get(pgid, {}).get("cpu", 0.0))


def settled_rss(pgid: int, timeout: float = 90.0) -> int:
    """The group's RSS once it stops growing (three readings 2 s apart within 1%)."""
    readings: list[int] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        readings.append(group_rss(pgid))
        last = readings[-3:]
        if len(last) == 3 and max(last) - min(last) <= 0.01 * max(last):
            break
        time.sleep(2)
    return readings[-1]


def tree_cpu(pid: int) -> float:
    """CPU seconds of a process and its live descendants, with the children they reaped (``cutime``/``cstime``):
    a service's whole cost, its exited task processes included."""
    tick = os.sysconf("SC_CLK_TCK")
    rows: dict[int, tuple[int, float]] = {}  # pid -> (ppid, cpu)
    for entry, fields in _proc_stats():
        try:
            rows[int(entry.name)] = (int(fields[1]), sum(int(f) for f in fields[11:15]) / tick)
        except (ValueError, IndexError):
            continue
    tree, frontier = {pid}, [pid]
    while frontier:
        parent = frontier.pop()
        children = [p for p, (ppid, _) in rows.items() if ppid == parent and p not in tree]
        tree.update(children)
        frontier.extend(children)
    return sum(rows[p][1] for p in tree if p in rows)
