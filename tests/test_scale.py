"""Edge spread over a three-node NATS cluster, PostgreSQL, two receivers on one DICOM port,
two uploaders, two registries and the monitor; several PACS send over many associations,
and mid-transfer the stream's leader NATS node, one receiver and one uploader are killed.
Every instance answered Success reaches the destination once, none is lost, and the
monitor's counts equal the destination's. ``make scale`` runs the same longer, with figures."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_testing.fleet import Fleet
from edge_testing.scale import (
    create_datashares,
    destination_counts,
    duplicates,
    kill_mid_transfer,
    monitor_counts,
    send,
    studies,
)
from edge_testing.servers import start_nats_cluster, wait_until

PACS = 3
PER_PACS = 40


@pytest.fixture
def fleet(tmp_path: Path, s3, postgres_database: str) -> Iterator[Fleet]:
    cluster = start_nats_cluster(tmp_path / "nats")
    fleet = Fleet(tmp_path / "fleet", cluster, s3, postgres_database)
    try:
        yield fleet.start()
    finally:
        fleet.stop()
        cluster.stop()
        print(fleet.logs())


def test_scale_out_survives_kills(fleet: Fleet, tmp_path: Path):
    ids = [f"SCALE{i}" for i in range(PACS)]
    create_datashares(fleet, ids)
    files = studies(tmp_path / "data", PACS, PER_PACS, rows=128)

    # Normal operation first: the two uploaders share the work, none delivers twice.
    warmup = send(fleet, ids, [f[:10] for f in files], per_association=5)
    for thread in [p.start() for p in warmup]:
        thread.join()
    wait_until(lambda: destination_counts(fleet, ids) == dict.fromkeys(ids, 10), timeout_s=120,
               what="the first instances delivered")  # fmt: skip
    assert not duplicates(fleet)

    # The rest, with kills in the middle.
    senders = send(fleet, ids, [f[10:] for f in files], per_association=4)
    threads = [p.start() for p in senders]
    wait_until(lambda: sum(destination_counts(fleet, ids).values()) >= PACS * 10 + 15,
               timeout_s=120, interval_s=0.2, what="the transfer under way")  # fmt: skip
    recovery = kill_mid_transfer(fleet, ids)
    for thread in threads:
        thread.join(300)
    for pacs, sent in zip(senders, files, strict=True):
        assert pacs.answered == {str(f) for f in sent[10:]}, pacs.errors

    expected = dict.fromkeys(ids, PER_PACS)
    wait_until(lambda: destination_counts(fleet, ids) == expected, timeout_s=180,
               what="every instance answered Success at the destination")  # fmt: skip
    wait_until(lambda: not list(fleet.buffer().list("")), timeout_s=60, what="buffer drained")
    wait_until(lambda: monitor_counts(fleet) == {ds: (PER_PACS, PER_PACS, 0) for ds in ids},
               timeout_s=60, what="the monitor's counts to equal the destination's")  # fmt: skip
    resent = sum(p.resends for p in senders)
    print("recovery (s):", recovery.seconds, "associations:", sum(p.associations for p in senders),
          "resent:", resent)  # fmt: skip
