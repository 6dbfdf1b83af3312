"""The scale scenario, shared by the scale test (short) and ``make scale`` (longer, with
figures): several PACS send to a fleet (see ``fleet``) over many associations; mid-transfer
the stream's leader NATS node, one receiver and one uploader are killed; every instance
answered Success must reach the destination, and the monitor must count what it holds."""

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from edge_testing.dcmtk import echoscu
from edge_testing.dicom_data import write_series
from edge_testing.fleet import Fleet, stream_leader, uploaded_events
from edge_testing.pacs import Pacs
from edge_testing.servers import wait_until

STREAM = "EDGE_EVENTS"


def create_datashares(fleet: Fleet, ids: list[str]) -> None:
    """Each through another registry; live once every receiver process accepts it (each
    process follows the bucket by itself, so echo until several associations agree)."""
    registries = [s.name for s in fleet.of("registry")]
    for i, ds in enumerate(ids):
        code, body = fleet.api(registries[i % len(registries)], "POST", "/api/v1/datashares",
                               {"id": ds})  # fmt: skip
        assert code == 201, body
    for ds in ids:
        wait_until(partial(_live_everywhere, fleet, ds),
                   timeout_s=60, what=f"datashare {ds} live on every receiver")  # fmt: skip


def _live_everywhere(fleet: Fleet, ds: str) -> bool:
    return all(echoscu(fleet.receiver_port, ds) for _ in range(6))


def studies(directory: Path, pacs: int, per_pacs: int, rows: int) -> list[list[Path]]:
    return [write_series(directory / f"pacs{i}", per_pacs, rows=rows, columns=rows)
            for i in range(pacs)]  # fmt: skip


def destination_counts(fleet: Fleet, ids: list[str]) -> dict[str, int]:
    return {ds: sum(1 for _ in fleet.destination().list(f"{ds}/")) for ds in ids}


def monitor_counts(fleet: Fleet) -> dict[str, tuple[int, int, int]]:
    code, body = fleet.api("monitor", "GET", "/api/v1/status")
    assert code == 200, body
    return {
        d["id"]: (d["instances_received"], d["instances_uploaded"], d["instances_pending"])
        for d in body["datashares"]
    }


def send(fleet: Fleet, ids: list[str], files: list[list[Path]], per_association: int) -> list[Pacs]:
    senders = [Pacs(fleet.receiver_port, ds, f, per_association, calling=f"PACS{i}")
               for i, (ds, f) in enumerate(zip(ids, files, strict=True))]  # fmt: skip
    return senders


def all_delivered(fleet: Fleet, ids: list[str], expected: dict[str, int]) -> bool:
    return destination_counts(fleet, ids) == expected


@dataclass
class Recovery:
    """Seconds from each kill until the fleet had recovered from it."""

    seconds: dict[str, float] = field(default_factory=dict)


def kill_mid_transfer(fleet: Fleet, ids: list[str]) -> Recovery:
    """SIGKILL the stream's leader NATS node, one receiver and one uploader, at once, and
    time each recovery: a new stream leader elected; the DICOM port answering C-ECHO on
    every association tried; every instance already in the buffer at the kill delivered
    (the killed uploader's messages redelivered to the other one after the ack wait)."""
    leader = asyncio.run(stream_leader(fleet.nats.url, STREAM))
    node = fleet.nats.member(leader)
    in_buffer = {o.key for o in fleet.buffer().list("")}
    killed_at = time.monotonic()
    node.process.kill()
    fleet.services["receiver-1"].process.kill()
    fleet.services["uploader-1"].process.kill()
    survivors = ",".join(m.url for m in fleet.nats.members if m is not node)

    def new_leader() -> bool:
        try:
            now = asyncio.run(stream_leader(survivors, STREAM))
        except Exception:
            return False
        return bool(now) and now != leader

    def answering() -> bool:
        return all(echoscu(fleet.receiver_port, ids[0]) for _ in range(4))

    def delivered() -> bool:
        return not in_buffer & {o.key for o in fleet.buffer().list("")}

    # Each checked side by side, so that one slow recovery does not hide a quick one.
    checks = {"NATS stream leader": new_leader, "receiver": answering, "uploader": delivered}
    recovery = Recovery()
    deadline = killed_at + 180
    while len(recovery.seconds) < len(checks):
        if time.monotonic() > deadline:
            raise TimeoutError(f"not recovered from every kill: {recovery.seconds}")
        for name, check in checks.items():
            if name not in recovery.seconds and check():
                recovery.seconds[name] = time.monotonic() - killed_at
        time.sleep(0.2)
    return recovery


def duplicates(fleet: Fleet) -> dict[tuple[str, str], int]:
    counts: Counter[tuple[str, str]] = asyncio.run(uploaded_events(fleet.nats.url, STREAM))
    return {k: n for k, n in counts.items() if n > 1}
