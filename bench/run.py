"""``make bench``: Edge beside DCMTK storescp (writing to disk) and Orthanc, in one run,
judged against the targets of issue 10 (``targets.py``).

Sends the same kind of data with DCMTK storescu to each peer (``peers.py``): a series of
512x512 16-bit CT images (~0.5 MB) and a series of small (~40 kB) images, over one
association and over four in parallel, fresh UIDs for every scenario. Prints, per scenario,
instances/s, MB/s and the CPU time per instance of each component of the peer's process
tree (``measure.py``); then the tables, Edge's ratio to each peer, each Edge stack's peak
RSS growth and the Targets table. Ingest peers are timed to the last Success (for ``edge``
also how long the buffer took to drain after it); forwarding peers and Orthanc routers until
the last instance is counted at the destination (the whole job).

Usage: ``make bench`` (``make bench ARGS=--quick`` for a short run) or
``uv run python bench/run.py [--quick] [--ct N] [--small N] [--peers ...]``. Every run writes
bench/results/latest.json; a full run (every peer, not ``--quick``) also writes its tables and
the machine into bench/RESULTS.md and the targets' summary into the README.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

from measure import cpu_by_component, rss_by_component
from peers import EDGE_ENV, PEERS, Target
from report import machine, report, scenario_line, write_full_run
from result import Result

from edge_testing.dcmtk import DCMTK_ENV, dcmtk
from edge_testing.dicom_data import write_series, write_small_series
from edge_testing.servers import wait_until

ROOT = Path(__file__).resolve().parent.parent


def dataset(directory: Path, kind: str, count: int) -> list[Path]:
    """Fresh UIDs for every scenario, so no peer sees a re-send of what it already has."""
    make = write_series if kind == "ct" else write_small_series
    return make(directory, count)


def send(target: Target, files: list[Path], associations: int) -> float:
    """Seconds until every storescu ended (each instance answered)."""
    # No association for an empty share (storescu refuses to run without files).
    chunks = [chunk for i in range(associations) if (chunk := files[i::associations])]
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


def scenario(
    target: Target, files: list[Path], kind: str, associations: int, timeout_s: float
) -> Result:
    count = len(files)
    megabytes = sum(f.stat().st_size for f in files) / 1e6
    cpu_before = cpu_by_component(target.root_pid, target.name)
    at_destination = target.delivered() if target.delivered else 0
    start = time.perf_counter()
    seconds, drain, delivered = send(target, files, associations), None, None
    if target.delivered is not None:
        counted = target.delivered
        wait_until(lambda: counted() - at_destination >= count, timeout_s=timeout_s, interval_s=0.2,
                   what=f"{count} instances at {target.name}'s destination")  # fmt: skip
        seconds = time.perf_counter() - start
        delivered = counted() - at_destination
    elif target.drain is not None:
        target.drain()
        drain = time.perf_counter() - start - seconds
    cpu_after = cpu_by_component(target.root_pid, target.name)
    cpu = {name: (ms - cpu_before.get(name, 0.0)) / count for name, ms in cpu_after.items()}
    rss = rss_by_component(target.root_pid, target.name)
    whole_job = target.delivered is not None
    return Result(target.name, kind, associations, count, megabytes, seconds, drain, whole_job,
                  delivered, cpu, rss)  # fmt: skip


def run(args: argparse.Namespace) -> list[Result]:
    results = []
    with tempfile.TemporaryDirectory(prefix="edge-bench-") as tmp:
        work = Path(tmp)
        for peer in args.peers:
            with PEERS[peer](work / peer) as target:
                for kind, count in (("ct", args.ct), ("small", args.small)):
                    for associations in (1, args.parallel):
                        name = f"{peer}-{kind}-{associations}"
                        files = dataset(work / "data" / name, kind, count)
                        result = scenario(target, files, kind, associations, args.timeout)
                        results.append(result)
                        print(scenario_line(result), flush=True)
    return results


def arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--ct", type=int, default=100, help="CT instances per scenario")
    parser.add_argument("--small", type=int, default=400, help="small instances per scenario")
    parser.add_argument("--parallel", type=int, default=4, help="parallel associations")
    parser.add_argument("--peers", nargs="+", default=list(PEERS), choices=list(PEERS))
    parser.add_argument(
        "--timeout", type=float, default=1800, help="seconds to wait for a scenario's delivery"
    )
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
    args = parser.parse_args(argv)
    if args.quick:
        args.ct, args.small = min(args.ct, 30), min(args.small, 150)
    return args


def main() -> None:
    args = arguments()
    EDGE_ENV.update(item.split("=", 1) for item in args.env)
    load_before = os.getloadavg()
    results = run(args)
    print("\n" + report(results))
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    rows = [
        asdict(r) | {"per_second": r.per_second, "mb_per_second": r.mb_per_second} for r in results
    ]
    (out / "latest.json").write_text(json.dumps(rows, indent=2))
    if not args.quick and list(args.peers) == list(PEERS) and not args.env:
        command = f"make bench (--ct {args.ct} --small {args.small} --parallel {args.parallel})"
        write_full_run(results, machine(load_before, ROOT), command, ROOT)
        print("\nWritten into bench/RESULTS.md and README.md.")


if __name__ == "__main__":
    sys.exit(main())
