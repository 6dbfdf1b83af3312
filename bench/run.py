"""Throughput of Edge beside DCMTK storescp (writing to disk) and Orthanc, in the same run.

Sends the same kind of data with DCMTK storescu to each peer: a series of 512x512 16-bit CT
images (~0.5 MB) and a series of small (~40 kB) images, over one association and over four
in parallel, and prints instances/s, MB/s and Edge's ratio to each peer. For Edge it also
reports how long the uploader took to drain the buffer after the last Success (whether the
uploader keeps up). Usage: ``make bench`` or ``uv run python bench/run.py [--ct N] [--small N]``.
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
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
        yield Target("storescp", scp.port, scp.aet)
    finally:
        scp.process.stop()


@contextmanager
def orthanc(work: Path) -> Iterator[Target]:
    server = start_orthanc(work / "orthanc")
    try:
        yield Target("orthanc", server.dicom_port, server.aet)
    finally:
        server.process.stop()


@contextmanager
def edge(work: Path) -> Iterator[Target]:
    stack = start_stack(work / "edge")
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

        yield Target("edge", stack.receiver_port, "BENCH", drain)
    finally:
        stack.stop()


PEERS = {"storescp": storescp, "orthanc": orthanc, "edge": edge}


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
                        seconds = send(target, files, associations)
                        drain = target.after_send(count)
                        result = Result(peer, kind, associations, count, megabytes, seconds, drain)
                        results.append(result)
                        print(_row(result), flush=True)
    return results


def _row(r: Result) -> str:
    drain = f"  buffer drained {r.drain_seconds:.1f}s later" if r.drain_seconds is not None else ""
    return (
        f"{r.peer:9} {r.data:6} x{r.associations}  {r.instances:5} inst  "
        f"{r.per_second:8.1f} inst/s  {r.mb_per_second:7.1f} MB/s{drain}"
    )


def report(results: list[Result]) -> str:
    lines = [
        "",
        "| data | assoc | peer | inst/s | MB/s | Edge / peer (inst/s) |",
        "|---|---|---|---|---|---|",
    ]
    by_key = {(r.peer, r.data, r.associations): r for r in results}
    for r in results:
        ours = by_key.get(("edge", r.data, r.associations))
        ratio = f"{ours.per_second / r.per_second:.2f}x" if ours and r.peer != "edge" else ""
        lines.append(
            f"| {r.data} | {r.associations} | {r.peer} | {r.per_second:.1f} | "
            f"{r.mb_per_second:.1f} | {ratio} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ct", type=int, default=100, help="CT instances per scenario")
    parser.add_argument("--small", type=int, default=400, help="small instances per scenario")
    parser.add_argument("--parallel", type=int, default=4, help="parallel associations")
    parser.add_argument("--peers", nargs="+", default=list(PEERS), choices=list(PEERS))
    args = parser.parse_args()
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
