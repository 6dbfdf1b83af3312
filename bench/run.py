"""Throughput of Edge beside DCMTK storescp (writing to disk) and Orthanc, in the same run.

Sends the same kind of data with DCMTK storescu to each peer: a series of 512x512 16-bit CT
images (~0.5 MB) and a series of small (~40 kB) images, over one association and over four
in parallel, and prints instances/s, MB/s and Edge's ratio to each peer. For Edge it also
reports how long the uploader took to drain the buffer after the last Success (whether the
uploader keeps up), and for every peer the CPU time per instance of each of its processes
(from ``/proc/<pid>/stat`` of the process tree: robust to other load on the machine) and
their peak RSS. Usage: ``make bench`` (``make bench ARGS=--quick`` for a short run) or
``uv run python bench/run.py [--quick] [--ct N] [--small N] [--peers ...]``.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from edge_testing.dcmtk import DCMTK_ENV, dcmtk, echoscu
from edge_testing.dicom_data import write_series, write_small_series
from edge_testing.orthanc import start_orthanc
from edge_testing.servers import wait_until
from edge_testing.stack import start_stack
from edge_testing.storescp import start_storescp

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Result:
    peer: str
    data: str
    associations: int
    instances: int
    megabytes: float
    seconds: float
    drain_seconds: float | None = None
    whole_job: bool = False
    # CPU milliseconds per instance and peak RSS (MB) of each component, over send + drain.
    cpu_ms: dict[str, float] = field(default_factory=dict)
    rss_mb: dict[str, float] = field(default_factory=dict)

    @property
    def per_second(self) -> float:
        return self.instances / self.seconds

    @property
    def mb_per_second(self) -> float:
        return self.megabytes / self.seconds


@dataclass
class Target:
    name: str
    port: int
    called_ae: str
    after_send: Callable[[int], float | None] = lambda expected: None
    # The process whose tree is measured (the peer's server or Edge's launcher).
    root_pid: int | None = None
    # Received and forwarded: the rate counts until the last instance reached the destination.
    whole_job: bool = False


_TICK_MS = 1000 / os.sysconf("SC_CLK_TCK")
# Edge's processes by what their command line contains (first match wins).
_COMPONENTS = [
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
    return next((name for name, marker in _COMPONENTS if marker in cmdline), default)


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


def dataset(directory: Path, kind: str, count: int) -> list[Path]:
    """Fresh UIDs for every scenario, so no peer sees a re-send of what it already has."""
    make = write_series if kind == "ct" else write_small_series
    return make(directory, count)


def send(target: Target, files: list[Path], associations: int) -> float:
    chunks = [files[i::associations] for i in range(associations)]
    start = time.perf_counter()
    procs = [
        subprocess.Popen(
            [dcmtk("storescu"), "-aet", "BENCHSCU", "-aec", target.called_ae, "127.0.0.1",
             str(target.port), *map(str, chunk)],
            env=DCMTK_ENV,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for chunk in chunks
    ]  # fmt: skip
    for proc in procs:
        _, err = proc.communicate(timeout=1800)
        if proc.returncode != 0:
            raise RuntimeError(f"storescu to {target.name} failed: {err.decode()[-2000:]}")
    return time.perf_counter() - start


@contextmanager
def storescp(work: Path) -> Iterator[Target]:
    scp = start_storescp(work, "--fork")
    try:
        yield Target("storescp", scp.port, scp.aet, root_pid=_pid(scp.process))
    finally:
        scp.process.stop()


@contextmanager
def orthanc(work: Path) -> Iterator[Target]:
    server = start_orthanc(work / "orthanc")
    try:
        yield Target("orthanc", server.dicom_port, server.aet, root_pid=_pid(server.process))
    finally:
        server.process.stop()


def _arrived(destination: Path, before: set[Path]) -> Callable[[int], float]:
    """Waits until ``expected`` new files are in ``destination``; returns how long it took."""

    def wait(expected: int) -> float:
        start = time.perf_counter()

        def done() -> bool:
            new = {p for p in destination.iterdir() if p.is_file()} - before
            if len(new) >= expected:
                before.update(new)
                return True
            return False

        wait_until(done, timeout_s=1800, what="the instances to reach the destination")
        return time.perf_counter() - start

    return wait


@contextmanager
def orthanc_router(work: Path) -> Iterator[Target]:
    """Orthanc as a router: a Lua OnStoredInstance sends each instance on with C-STORE to a
    DCMTK storescp, then deletes it."""
    dest = start_storescp(work / "dest", "--fork")
    lua = work / "route.lua"
    lua.parent.mkdir(parents=True, exist_ok=True)
    lua.write_text(
        "function OnStoredInstance(instanceId, tags, metadata, origin)\n"
        "  SendToModality(instanceId, 'dest')\n"
        "  Delete(instanceId)\n"
        "end\n"
    )
    server = start_orthanc(
        work / "orthanc",
        LuaScripts=[str(lua)],
        DicomModalities={"dest": [dest.aet, "127.0.0.1", dest.port]},
    )
    try:
        yield Target(
            "orthanc-router",
            server.dicom_port,
            server.aet,
            _arrived(dest.directory, set()),
            _pid(server.process),
            whole_job=True,
        )
    finally:
        server.process.stop()
        dest.process.stop()


@contextmanager
def edge_forward(work: Path) -> Iterator[Target]:
    """Edge with a C-STORE destination (a DCMTK storescp)."""
    dest = start_storescp(work / "dest", "--fork")
    url = f"dicom://{dest.aet}@127.0.0.1:{dest.port}"
    with edge(work, **(EDGE_ENV | {"EDGE_DEFAULT_DESTINATION": url})) as target:
        target.name, target.whole_job = "edge-forward", True
        target.after_send = _arrived(dest.directory, set())
        yield target
    dest.process.stop()


# Extra EDGE_* settings for Edge's stack (``--env NAME=VALUE``), e.g. to compare two settings.
EDGE_ENV: dict[str, str] = {}


@contextmanager
def edge(work: Path, **env: str) -> Iterator[Target]:
    stack = start_stack(work / "edge", **(EDGE_ENV | env))
    try:
        status, body = stack.api("registry", "POST", "/api/v1/datashares", {"id": "BENCH"})
        if status != 201:
            raise RuntimeError(f"could not create the datashare: {status} {body}")
        wait_until(lambda: echoscu(stack.receiver_port, "BENCH"), what="the datashare to go live")
        buffer = stack.store("edge-buffer")

        def drain(expected: int) -> float:
            start = time.perf_counter()
            wait_until(lambda: not any(True for _ in buffer.list("BENCH/")), timeout_s=1800)
            return time.perf_counter() - start

        yield Target("edge", stack.receiver_port, "BENCH", drain, _pid(stack))
    finally:
        stack.stop()


def _pid(holder: object) -> int | None:
    proc = getattr(holder, "proc", None)
    return proc.pid if proc is not None else None


PEERS = {
    "storescp": storescp,
    "orthanc": orthanc,
    "edge": edge,
    "orthanc-router": orthanc_router,
    "edge-forward": edge_forward,
}


def run(args: argparse.Namespace) -> list[Result]:
    results = []
    with tempfile.TemporaryDirectory(prefix="edge-bench-") as tmp:
        work = Path(tmp)
        for peer in args.peers:
            with PEERS[peer](work / peer) as target:
                for kind, count in (("ct", args.ct), ("small", args.small)):
                    for associations in (1, args.parallel):
                        files = dataset(
                            work / "data" / f"{peer}-{kind}-{associations}", kind, count
                        )
                        megabytes = sum(f.stat().st_size for f in files) / 1e6
                        before = cpu_by_component(target.root_pid, peer)
                        seconds = send(target, files, associations)
                        drain = target.after_send(count)
                        if target.whole_job:
                            seconds, drain = seconds + (drain or 0.0), None
                        after = cpu_by_component(target.root_pid, peer)
                        cpu = {
                            name: (ms - before.get(name, 0.0)) / count for name, ms in after.items()
                        }
                        rss = rss_by_component(target.root_pid, peer)
                        result = Result(
                            peer,
                            kind,
                            associations,
                            count,
                            megabytes,
                            seconds,
                            drain,
                            target.whole_job,
                            cpu,
                            rss,
                        )
                        results.append(result)
                        print(_row(result), flush=True)
    return results


def _row(r: Result) -> str:
    drain = f"  buffer drained {r.drain_seconds:.1f}s later" if r.drain_seconds is not None else ""
    cpu = "  ".join(f"{k} {v:.1f}" for k, v in sorted(r.cpu_ms.items(), key=lambda kv: -kv[1]))
    return (
        f"{r.peer:9} {r.data:6} x{r.associations}  {r.instances:5} inst  "
        f"{r.per_second:8.1f} inst/s  {r.mb_per_second:7.1f} MB/s{drain}\n"
        f"          CPU ms/inst: total {sum(r.cpu_ms.values()):.1f} = {cpu}"
    )


def report(results: list[Result]) -> str:
    lines = [
        "",
        "| data | assoc | peer | inst/s | MB/s | Edge / peer (inst/s) | CPU ms/inst |",
        "|---|---|---|---|---|---|---|",
    ]
    by_key = {(r.peer, r.data, r.associations): r for r in results}
    for r in results:
        mine = "edge-forward" if r.whole_job else "edge"
        ours = by_key.get((mine, r.data, r.associations))
        ratio = f"{ours.per_second / r.per_second:.2f}x" if ours and ours is not r else ""
        lines.append(
            f"| {r.data} | {r.associations} | {r.peer} | {r.per_second:.1f} | "
            f"{r.mb_per_second:.1f} | {ratio} | {sum(r.cpu_ms.values()):.1f} |"
        )
    edge = [r for r in results if r.peer.startswith("edge")]
    if edge:
        names = [name for name, _ in _COMPONENTS if any(name in r.cpu_ms for r in edge)]
        lines += [
            "",
            "Edge, CPU ms per instance by component (send and drain), and peak RSS (MB):",
            "",
            "| peer | data | assoc | " + " | ".join(names) + " | total | peak RSS |",
            "|---|---|---|" + "---|" * (len(names) + 2),
        ]
        for r in edge:
            cells = " | ".join(f"{r.cpu_ms.get(n, 0.0):.1f}" for n in names)
            rss = ", ".join(f"{n} {r.rss_mb[n]:.0f}" for n in names if n in r.rss_mb)
            lines.append(
                f"| {r.peer} | {r.data} | {r.associations} | {cells} | "
                f"{sum(r.cpu_ms.values()):.1f} | {rss} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ct", type=int, default=100, help="CT instances per scenario")
    parser.add_argument("--small", type=int, default=400, help="small instances per scenario")
    parser.add_argument("--parallel", type=int, default=4, help="parallel associations")
    parser.add_argument("--peers", nargs="+", default=list(PEERS), choices=list(PEERS))
    parser.add_argument(
        "--quick", action="store_true", help="a short run: 30 CT and 150 small per scenario"
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an EDGE_* setting for Edge's stack (repeatable)",
    )
    args = parser.parse_args()
    EDGE_ENV.update(item.split("=", 1) for item in args.env)
    if args.quick:
        args.ct, args.small = min(args.ct, 30), min(args.small, 150)
    results = run(args)
    print(report(results))
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "latest.json").write_text(
        json.dumps(
            [
                asdict(r) | {"per_second": r.per_second, "mb_per_second": r.mb_per_second}
                for r in results
            ],
            indent=2,
        )
    )


if __name__ == "__main__":
    sys.exit(main())
