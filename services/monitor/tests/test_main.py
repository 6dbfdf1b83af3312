"""``edge-monitor`` as a process, and ``edge-monitor rebuild``."""

import asyncio
import signal
import subprocess
import sys

import pytest

from edge_monitor import db
from edge_monitor.rebuild import replay
from edge_testing.servers import wait_until

pytestmark = pytest.mark.both_databases


async def test_process_serves_status_and_stops_cleanly(feed, monitor_process):
    assert monitor_process.get("/healthz").json() == {"status": "ok"}
    assert monitor_process.get("/api/v1/status").json()["datashares"] == []

    await feed.datashare("CT")
    await feed.opened("CT", "a1")
    await feed.stored("CT", "a1", "1.2", "1.2.1")
    await feed.stored("CT", "a1", "1.2", "1.2.1")  # the same instance, re-sent

    def received():
        doc = monitor_process.get("/api/v1/datashares/CT/status").json()
        return doc if doc.get("instances_received") == 1 and doc["associations_active"] else None

    ds = wait_until(received, what="the instance in the status")
    assert ds["studies"][0]["study_uid"] == "1.2"
    wait_until(lambda: monitor_process.get("/api/v1/status").json()["uploader"]["backlog"] == 2)

    monitor_process.process.send_signal(signal.SIGTERM)
    assert monitor_process.process.wait(timeout=15) == 0


async def _story(feed) -> None:
    """Every kind of event, for the rebuild comparisons."""
    await feed.datashare("A")
    await feed.datashare("B", description="second")
    await feed.opened("A", "a1", feed.at(1))
    refs = [await feed.stored("A", "a1", f"1.{i % 3}", f"1.{i}", feed.at(i)) for i in range(12)]
    await feed.stored("A", "a1", "1.0", "1.0", feed.at(13))  # re-sent
    for ref in refs[:8]:
        await feed.uploaded("A", ref, feed.at(20))
    await feed.failed("A", refs[8], feed.at(21))
    await feed.dead("A", refs[9], feed.at(22))
    await feed.closed("A", "a1", 13, feed.at(23))
    await feed.opened("B", "b1", feed.at(30))
    await feed.stored("B", "b1", "2.1", "2.1.1", feed.at(31), size=4096)
    await feed.closed("B", "b1", 1, feed.at(32), abort="peer aborted")
    await feed.rejected("XYZ", "FOO", "10.0.0.5", feed.at(33))
    await feed.refused("A", "a2", "buffer_full", feed.at(34))
    await feed.buffer(5000, 10000, refusing=False, at=feed.at(35))


async def test_rebuild_gives_the_same_status(feed, folding, js, settings, tmp_path, monitor_env):
    await _story(feed)
    await folding.reach(feed.last_seq)
    now = feed.at(40)
    live = folding.status(now)
    assert live["datashares"][0]["instances_received"] == 12

    # Into fresh tables of another database...
    fresh = db.make_engine(f"sqlite:///{tmp_path / 'fresh.db'}")
    db.migrate(fresh)
    assert await replay(js, settings, db.writer(fresh)) == feed.last_seq
    from edge_monitor.status import status

    with db.reader(fresh)() as session:
        assert status(session, settings, now) == live
    fresh.dispose()

    # ...and, by the command, over the monitor's own tables while its consumer runs.
    await feed.stored("B", "b1", "2.1", "2.1.2", feed.at(39))  # the rebuild sees this too
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "edge_monitor", "rebuild"],
        env=monitor_env,
        timeout=120,
    )
    assert done.returncode == 0
    await folding.reach(feed.last_seq)
    rebuilt = folding.status(now)
    assert rebuilt["datashares"][1]["instances_received"] == 2
    rebuilt["datashares"][1] = live["datashares"][1] = None
    rebuilt["monitor"] = live["monitor"] = None
    assert rebuilt == live


async def test_keeps_folding_across_a_nats_restart(feed, monitor_process, nats):
    await feed.datashare("DS")
    await feed.stored("DS", "a1", "5.1", "5.1.1")
    wait_until(lambda: monitor_process.get("/api/v1/status").json()["datashares"])

    await asyncio.to_thread(nats.restart)
    await asyncio.sleep(0)  # the feed's client reconnects by itself
    await feed.stored("DS", "a1", "5.1", "5.1.2")

    def counted():
        return monitor_process.get("/api/v1/datashares/DS/status").json()["instances_received"]

    assert wait_until(lambda: counted() == 2, what="the event after the restart")


async def test_a_stream_created_anew_is_counted_from_its_first_event(
    feed, js, settings, monitor_process
):
    """NATS lost its JetStream state: the stream and consumers are declared again and their
    sequences restart at 1. The monitor must not take them for events it already folded."""
    from edge_core.topology import ensure_topology

    await feed.datashare("DS")
    for i in range(3):
        await feed.stored("DS", "a1", "6.1", f"6.1.{i}")

    def received():
        body = monitor_process.get("/api/v1/datashares/DS/status").json()
        return body.get("instances_received")

    wait_until(lambda: received() == 3)

    await js.delete_stream(settings.events_stream)
    await ensure_topology(js, settings)
    await feed.stored("DS", "a1", "6.1", "6.1.3")
    await feed.stored("DS", "a1", "6.1", "6.1.4")
    assert wait_until(lambda: received() == 5, what="the new stream's events")
