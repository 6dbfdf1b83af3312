"""What the embedded S3 store (``weed mini``) costs per buffer operation, and whether its memory
stays bounded: ``--count`` rounds of PUT, GET and DELETE of one ``--size`` object through the
minio client (as the receiver and the uploader make them, in chunks of 200 of each), on a
fresh ``weed mini`` started as Edge starts it. Prints weed's CPU milliseconds per PUT, GET
and DELETE (from ``/proc/<pid>/stat``) and its RSS five times along the way.

Usage: ``uv run python bench/weed_cost.py [--count 3000] [--size 40000] [--cpuprofile F]
[-- extra weed mini flags]``; read a CPU profile with ``go tool pprof -top -cum <weed> F``.
"""

import argparse
import io
import os
import signal
import tempfile
import time
from pathlib import Path

from edge_core.objectstore import make_client
from edge_embedded.ports import free_ports
from edge_embedded.s3_server import s3_server

ACCESS, SECRET = "bench-access", "bench-secret-key"


def _cpu_ms(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def _rss_mb(pid: int) -> str:
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    kb = {line.split(":")[0]: int(line.split()[1]) for line in status if line.startswith("Vm")}
    return f"RSS {kb['VmRSS'] // 1024} MB (peak {kb['VmHWM'] // 1024} MB)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=3000)
    parser.add_argument("--size", type=int, default=40_000)
    parser.add_argument("--cpuprofile", type=Path, help="weed's Go CPU profile, written on exit")
    parser.add_argument("weed_flags", nargs="*", help="extra `weed mini` flags (after --)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="edge-weed-cost-") as tmp:
        port = free_ports(1)[0]
        server = s3_server(Path(tmp), port, ACCESS, SECRET)
        extra = [*args.weed_flags, *([f"-cpuprofile={args.cpuprofile}"] if args.cpuprofile else [])]
        at = server.argv.index("mini") + 1
        server.argv[at:at] = extra
        server.start()
        assert server.proc is not None
        pid = server.proc.pid
        client = make_client(f"127.0.0.1:{port}", ACCESS, SECRET)
        client.make_bucket("bench")
        data = os.urandom(args.size)
        spent = {"put": 0.0, "get": 0.0, "delete": 0.0}
        started = time.perf_counter()
        try:
            # In chunks, one operation at a time (all PUTs, then GETs, then DELETEs), so that
            # work weed does just after answering is counted with its own kind of operation.
            chunk = 200
            for first in range(0, args.count, chunk):
                keys = [
                    f"DS/1.2.3/1.2.3.4/{n}/0123456789abcdef"
                    for n in range(first, min(first + chunk, args.count))
                ]
                mark = _cpu_ms(pid)
                for key in keys:
                    client.put_object("bench", key, io.BytesIO(data), len(data))
                spent["put"] += _cpu_ms(pid) - mark
                mark = _cpu_ms(pid)
                for key in keys:
                    resp = client.get_object("bench", key)
                    resp.read()
                    resp.close()
                    resp.release_conn()
                spent["get"] += _cpu_ms(pid) - mark
                mark = _cpu_ms(pid)
                for key in keys:
                    client.remove_object("bench", key)
                spent["delete"] += _cpu_ms(pid) - mark
                if first % max(chunk, args.count // 5 // chunk * chunk) == 0:
                    print(f"{first:7} rounds  {_rss_mb(pid)}", flush=True)
            print(f"{args.count:7} rounds  {_rss_mb(pid)}")
            per_op = "  ".join(f"{op} {ms / args.count:.2f}" for op, ms in spent.items())
            print(
                f"weed CPU ms per {args.size}-byte op: {per_op}  "
                f"({time.perf_counter() - started:.1f} s)"
            )
        finally:
            server.proc.send_signal(signal.SIGINT)  # weed writes its profiles on a clean exit
            server.proc.wait(60)


if __name__ == "__main__":
    main()
