"""``make scale``: Edge spread over several processes on this machine, with figures.

A three-node NATS JetStream cluster, PostgreSQL (127.0.0.1:5432, or EDGE_TEST_POSTGRES_URL),
one S3 store, two registries, the monitor, and one then two receivers (one DICOM port) and
uploaders. Several PACS send small images over many associations; it prints instances/s
taken in (as the PACS sees it) and delivered (at the destination) with 1 and with 2
receivers and uploaders, then kills the stream's leader NATS node, a receiver and an
uploader mid-transfer and prints the time to recover from each. It checks what the scale
test checks (all answered Success delivered, none twice in normal operation, the monitor's
counts equal the destination's) and writes the table into bench/RESULTS.md.

Usage: ``make scale`` or ``uv run python bench/scale.py [--per-pacs N] [--pacs N]``.
"""

import argparse
import re
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from edge_testing.fleet import Fleet
from edge_testing.plugin import POSTGRES_ADMIN_URL
from edge_testing.scale import (
    create_datashares,
    destination_counts,
    duplicates,
    kill_mid_transfer,
    monitor_counts,
    send,
    studies,
)
from edge_testing.servers import start_nats_cluster, start_s3, wait_until

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "RESULTS.md"
START, END = "<!-- make scale: start -->", "<!-- make scale: end -->"


def create_database() -> tuple[sa.Engine, str]:
    admin = sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"edge_scale_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    return admin, admin.url.set(database=name).render_as_string(hide_password=False)


def run_round(fleet: Fleet, ids: list[str], files: list[list[Path]], total: dict[str, int]):
    """Send every PACS's files at once; seconds until all answered, and until delivered."""
    before = destination_counts(fleet, ids)
    expected = {ds: before[ds] + len(f) for ds, f in zip(ids, files, strict=True)}
    senders = send(fleet, ids, files, per_association=10)
    started = time.monotonic()
    for thread in [p.start() for p in senders]:
        thread.join()
    answered = time.monotonic() - started
    for pacs, sent in zip(senders, files, strict=True):
        assert pacs.answered == {str(f) for f in sent}, pacs.errors[-3:]
    wait_until(lambda: destination_counts(fleet, ids) == expected, timeout_s=600,
               interval_s=0.2, what="every instance delivered")  # fmt: skip
    delivered = time.monotonic() - started
    total.update(expected)
    return answered, delivered, sum(p.associations for p in senders)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pacs", type=int, default=3)
    parser.add_argument("--per-pacs", type=int, default=200, help="instances per PACS per round")
    parser.add_argument("--rows", type=int, default=128, help="image size (rows = columns)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="edge-scale-"))
    admin, database = create_database()
    s3 = start_s3(work / "s3")
    cluster = start_nats_cluster(work / "nats")
    fleet = Fleet(work / "fleet", cluster, s3, database)
    rows: list[tuple[str, int, float, float, int]] = []
    try:
        fleet.start()
        ids = [f"SCALE{i}" for i in range(args.pacs)]
        create_datashares(fleet, ids)
        total = dict.fromkeys(ids, 0)
        n = args.pacs * args.per_pacs
        for receivers in (1, 2):
            for kind in ("receiver", "uploader"):  # round 1: the second of each stopped
                second = fleet.services[f"{kind}-2"]
                if receivers == 1:
                    second.process.stop()
                else:
                    second.start()
            files = studies(work / f"data{receivers}", args.pacs, args.per_pacs, args.rows)
            answered, delivered, assocs = run_round(fleet, ids, files, total)
            rows.append((f"{receivers} receiver(s), {receivers} uploader(s)", n,
                         n / answered, n / delivered, assocs))  # fmt: skip
            print(rows[-1], flush=True)
        twice = duplicates(fleet)
        assert not twice, f"delivered twice in normal operation: {list(twice)[:5]}"

        # Kills mid-transfer.
        files = studies(work / "data-kill", args.pacs, args.per_pacs, args.rows)
        senders = send(fleet, ids, files, per_association=5)
        threads = [p.start() for p in senders]
        before = sum(destination_counts(fleet, ids).values())
        wait_until(lambda: sum(destination_counts(fleet, ids).values()) >= before + n // 4,
                   timeout_s=300, interval_s=0.2, what="the transfer under way")  # fmt: skip
        recovery = kill_mid_transfer(fleet, ids)
        for thread in threads:
            thread.join()
        for pacs, sent in zip(senders, files, strict=True):
            assert pacs.answered == {str(f) for f in sent}, pacs.errors[-3:]
        expected = {ds: total[ds] + args.per_pacs for ds in ids}
        wait_until(lambda: destination_counts(fleet, ids) == expected, timeout_s=600,
                   what="every instance answered Success delivered")  # fmt: skip
        wait_until(lambda: monitor_counts(fleet) == {ds: (c, c, 0) for ds, c in expected.items()},
                   timeout_s=120, what="the monitor's counts equal the destination's")  # fmt: skip
        resent = sum(p.resends for p in senders)
    except BaseException:
        print(fleet.logs(60), file=sys.stderr)
        raise
    finally:
        fleet.stop()
        cluster.stop()
        s3.process.stop()
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE "{database.rsplit("/", 1)[1]}" WITH (FORCE)')

    table = report(args, rows, recovery.seconds, resent)
    print(table)
    write_results(table)


def report(args, rows, recovery: dict[str, float], resent: int) -> str:
    lines = [
        f"### make scale ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC)",
        "",
        f"One machine ({_cores()} cores, shared by every process below and the senders): a "
        "three-node NATS JetStream cluster (streams R3), PostgreSQL, one `weed mini` S3 store, "
        f"two registries, the monitor; {args.pacs} PACS (DCMTK `storescu`, 10 instances per "
        f"association) sending {args.per_pacs} images of {args.rows}x{args.rows} 16 bit each "
        "at once.",
        "",
        "| processes | instances | taken in (inst/s, as the PACS sees it) | delivered "
        "(inst/s, at the destination) | associations |",
        "|---|---|---|---|---|",
        *(
            f"| {name} | {n} | {intake:.1f} | {done:.1f} | {assocs} |"
            for name, n, intake, done, assocs in rows
        ),
        "",
        "Killed at once mid-transfer (SIGKILL): the stream's leader NATS node, receiver-1 and "
        "uploader-1. Seconds from the kill until:",
        "",
        "| what was killed | recovered when | seconds |",
        "|---|---|---|",
        f"| NATS stream leader | a new leader elected | {recovery['NATS stream leader']:.1f} |",
        f"| receiver | C-ECHO answered on the DICOM port again, every try | "
        f"{recovery['receiver']:.1f} |",
        f"| uploader | every instance in the buffer at the kill delivered | "
        f"{recovery['uploader']:.1f} |",
        "",
        f"Instances the PACS had to send again (answered Out of Resources or cut off during the "
        f"kills): {resent}; every one answered Success reached the destination, none twice in "
        "normal operation, and the monitor's counts equal the destination's.",
    ]
    return "\n".join(lines)


def _cores() -> int:
    import os

    return os.cpu_count() or 0


def write_results(table: str) -> None:
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    block = f"{START}\n{table}\n{END}"
    if START in text:
        text = re.sub(re.escape(START) + ".*?" + re.escape(END), lambda _: block, text, flags=re.S)
    else:
        text = text.rstrip() + "\n\n## Scale-out (`make scale`)\n\n" + block + "\n"
    RESULTS.write_text(text)


if __name__ == "__main__":
    main()
