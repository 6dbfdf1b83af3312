"""CPU time and peak memory of a peer's process tree, by component, read from ``/proc``.

CPU is user + system time of every process of the tree (threads and reaped children
included): unlike a rate, it hardly changes with other load on the machine."""

import os
from pathlib import Path

_TICK_MS = 1000 / os.sysconf("SC_CLK_TCK")
# Edge's processes by what their command line contains (first match wins); any other
# process of a tree counts under the peer's own name.
COMPONENTS = [
    ("receiver", "edge-receiver"),
    ("uploader", "edge-uploader"),
    ("monitor", "edge-monitor"),
    ("registry", "edge-registry"),
    ("nats", "nats-server"),
    ("weed", "weed"),
    ("launcher", "edge-run"),
]


def _tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rpartition(")")[2].split()[1])
            children.setdefault(ppid, []).append(int(entry))
    pids, todo = [], [root]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        todo.extend(children.get(pid, []))
    return pids


def _component(pid: int, default: str) -> str:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return default
    return next((name for name, marker in COMPONENTS if marker in cmdline), default)


def cpu_by_component(root: int | None, default: str) -> dict[str, float]:
    """CPU milliseconds (user + system, threads included) of each component of the tree."""
    totals: dict[str, float] = {}
    if root is None:
        return totals
    for pid in _tree(root):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        name = _component(pid, default)
        # utime + stime, and cutime + cstime (children that exited, e.g. storescp --fork's)
        ticks = sum(int(f) for f in fields[11:15])
        totals[name] = totals.get(name, 0.0) + ticks * _TICK_MS
    return totals


def rss_by_component(root: int | None, default: str) -> dict[str, float]:
    """Peak RSS (VmHWM, MB) of each component: the largest of its processes."""
    peaks: dict[str, float] = {}
    if root is None:
        return peaks
    for pid in _tree(root):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        hwm = next((ln.split()[1] for ln in status.splitlines() if ln.startswith("VmHWM")), "0")
        name = _component(pid, default)
        peaks[name] = max(peaks.get(name, 0.0), int(hwm) / 1024)
    return peaks
