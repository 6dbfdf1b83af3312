"""Profile Edge's components while small images stream through the whole stack.

Starts the stack (``edge-run``), sends ``--count`` small (~40 kB) images with DCMTK
``storescu`` over ``--parallel`` associations, and meanwhile samples every Python component
with py-spy (``--gil``: the thread holding the GIL, a proxy for Python CPU; ``--wall`` for
every non-idle thread). Writes one summary per
component (see ``profiles/summarize.py``) into ``--out`` and prints the CPU per instance of
each component. Usage:
``uv run python bench/profile_stack.py --out bench/profiles/<name> [--count 600] [--wall]``
(needs ``uvx py-spy``).
"""

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from measure import _component, _tree, cpu_by_component
from peers import EDGE_ENV, edge
from run import dataset, send

HERE = Path(__file__).resolve().parent
PYTHON_COMPONENTS = ("receiver", "uploader", "monitor")


def _pids(root: int) -> dict[str, int]:
    """The first (main) process of each Python component."""
    found: dict[str, int] = {}
    for pid in sorted(_tree(root)):
        name = _component(pid, "")
        if name in PYTHON_COMPONENTS and name not in found:
            # the console script, not uv's wrapper
            exe = Path(f"/proc/{pid}/exe").resolve().name
            if exe.startswith("python"):
                found[name] = pid
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--count", type=int, default=600)
    parser.add_argument("--parallel", type=int, default=1)
    parser.add_argument("--wall", action="store_true", help="sample idle-free wall, not GIL")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE")
    args = parser.parse_args()
    EDGE_ENV.update(item.split("=", 1) for item in args.env)
    args.out.mkdir(parents=True, exist_ok=True)
    uvx = shutil.which("uvx") or str(Path.home() / ".local/bin/uvx")
    with tempfile.TemporaryDirectory(prefix="edge-profile-") as tmp:
        work = Path(tmp)
        files = dataset(work / "data", "small", args.count)
        warm = dataset(work / "warm", "small", 20)
        with edge(work / "edge") as target:
            assert target.root_pid is not None
            assert target.drain is not None
            send(target, warm, 1)
            target.drain()
            pids = _pids(target.root_pid)
            mode = [] if args.wall else ["--gil"]
            spies = {}
            for name, pid in pids.items():
                argv = [uvx, "py-spy", "record", "--rate", "250", "--format", "raw",
                        "--nonblocking", "--threads", *mode, "-o", str(args.out / f"{name}.raw"),
                        "--pid", str(pid)]  # fmt: skip
                spies[name] = subprocess.Popen(
                    argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
                )
            time.sleep(2)  # py-spy attaches
            before = cpu_by_component(target.root_pid, "edge")
            seconds = send(target, files, args.parallel)
            started = time.perf_counter()
            target.drain()
            drain = time.perf_counter() - started
            after = cpu_by_component(target.root_pid, "edge")
            for spy in spies.values():
                spy.send_signal(signal.SIGINT)
            for spy in spies.values():
                spy.wait(60)
        cpu = {k: (v - before.get(k, 0.0)) / args.count for k, v in after.items()}
    by_cost = "  ".join(f"{k} {v:.1f}" for k, v in sorted(cpu.items(), key=lambda kv: -kv[1]))
    lines = [
        f"{args.count} small images, {args.parallel} association(s): "
        f"{args.count / seconds:.1f} inst/s to the last Success, "
        f"buffer drained {drain:.1f} s later",
        f"CPU ms/inst: total {sum(cpu.values()):.1f} = {by_cost}",
    ]
    (args.out / "cpu.txt").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    for name in spies:
        raw = args.out / f"{name}.raw"
        if raw.exists():
            summary = subprocess.run(
                [sys.executable, str(HERE / "profiles" / "summarize.py"), str(raw), "30", "45"],
                capture_output=True, text=True, check=True,
            ).stdout  # fmt: skip
            (args.out / f"{name}.txt").write_text(summary)
            raw.unlink()
    os.sync()


if __name__ == "__main__":
    main()
