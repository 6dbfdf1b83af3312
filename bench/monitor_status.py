"""How fast the monitor folds events, and how fast the status API answers, with 100,000
instances in the projections. Measured, not asserted:

    .venv/bin/python bench/monitor_status.py [--instances N] [--database-url URL]

Events are folded through the same code as the consumer (``consumer.fold``), without NATS.
"""

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fastapi.testclient import TestClient

from edge_core import events as ev
from edge_core.keys import buffer_key
from edge_monitor import db
from edge_monitor.api import Monitor, create_app
from edge_monitor.config import MonitorSettings
from edge_monitor.consumer import fold


def story(instances: int, datashares: int, per_study: int):
    """stored, then uploaded (all but 1 %), for ``instances`` instances."""
    t0 = datetime.now(UTC) - timedelta(seconds=instances / 200)
    for d in range(datashares):
        ds = f"DS{d}"
        info = ev.DatashareChanged(datashare={"id": ds, "ae_title": ds})
        yield ev.DatashareCreatedEvent(datashare=ds, time=t0, data=info)
        yield ev.AssociationOpenedEvent(
            datashare=ds,
            time=t0,
            data=ev.AssociationOpened(
                association_id=f"a{d}", calling_ae="PACS", called_ae=ds, peer_host="10.0.0.5",
                peer_port=1000,
            ),
        )  # fmt: skip
    for i in range(instances):
        ds = f"DS{i % datashares}"
        study, sop, sha = f"1.2.{i // per_study}", f"1.2.{i // per_study}.{i}", f"{i:064x}"
        ref = dict(
            study_uid=study, series_uid=study + ".1", sop_instance_uid=sop, sop_class_uid="1.2",
            key=buffer_key(ds, study, study + ".1", sop, sha), size=525_000, sha256=sha,
        )  # fmt: skip
        at = t0 + timedelta(seconds=i / 200)
        yield ev.InstanceStoredEvent(
            datashare=ds,
            time=at,
            data=ev.InstanceStored(**ref, association_id=f"a{i % datashares}"),
        )
        if i % 100:
            yield ev.InstanceUploadedEvent(
                datashare=ds, time=at, data=ev.InstanceUploaded(**ref, destination="s3://d")
            )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--instances", type=int, default=100_000)
    parser.add_argument("--datashares", type=int, default=4)
    parser.add_argument("--per-study", type=int, default=500)
    parser.add_argument("--database-url")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="monitor-bench-"))
    settings = MonitorSettings(
        data_dir=tmp,
        database_url=args.database_url,
        api_token="bench",
    )
    engine = db.make_engine(settings.sqlalchemy_url())
    db.migrate(engine)
    writer = db.writer(engine)

    started = time.perf_counter()
    batch: list[tuple[int, bytes]] = []
    seq = 0
    for seq, event in enumerate(story(args.instances, args.datashares, args.per_study), 1):
        batch.append((seq, event.to_bytes()))
        if len(batch) == 500:
            fold(writer, batch)
            batch = []
    fold(writer, batch)
    elapsed = time.perf_counter() - started
    print(f"folded {seq} events in {elapsed:.1f} s: {seq / elapsed:.0f} events/s")

    client = TestClient(create_app(Monitor(settings, db.reader(engine))))
    headers = {"Authorization": "Bearer bench"}
    for path in ("/api/v1/status", "/api/v1/datashares/DS0/status", "/metrics"):
        times = []
        for _ in range(20):
            t = time.perf_counter()
            response = client.get(path, headers=headers)
            times.append(time.perf_counter() - t)
            response.raise_for_status()
        print(
            f"GET {path}: median {statistics.median(times) * 1000:.1f} ms, "
            f"max {max(times) * 1000:.1f} ms ({len(response.content)} bytes)"
        )
    received = sum(
        d["instances_received"]
        for d in client.get("/api/v1/status", headers=headers).json()["datashares"]
    )
    print(f"instances in the projections: {received}")
    engine.dispose()


if __name__ == "__main__":
    main()
