"""Real events through NATS, folded by the monitor's consumer, checked in the status."""

import pytest

from edge_core.topology import MONITOR_CONSUMER
from edge_monitor import db
from edge_monitor.consumer import fold

pytestmark = pytest.mark.both_databases


async def test_a_datashare_appears_when_created(feed, folding):
    await folding.reach(await feed.datashare("CT_TRIAL", description="CT trial"))
    ds = folding.datashare("CT_TRIAL", feed.at(5))
    assert ds["description"] == "CT trial"
    assert ds["instances_received"] == ds["instances_uploaded"] == ds["instances_pending"] == 0
    assert ds["studies"] == [] and ds["associations_active"] == 0
    assert ds["health"] == {"verdict": "idle", "reason": "Nothing received yet."}


async def test_counts_studies_associations_and_rates(feed, folding):
    ds = "DS1"
    await feed.datashare(ds)
    await feed.opened(ds, "a1", feed.at(1))
    refs = [
        await feed.stored(ds, "a1", "1.2.3", "1.2.3.1.1", feed.at(2), size=1_000_000),
        await feed.stored(ds, "a1", "1.2.3", "1.2.3.1.2", feed.at(3), size=2_000_000),
        await feed.stored(ds, "a1", "1.2.4", "1.2.4.1.1", feed.at(4), size=3_000_000),
    ]
    # The PACS re-sends the first instance (same bytes, same key): still one instance.
    await feed.stored(ds, "a1", "1.2.3", "1.2.3.1.1", feed.at(5), size=1_000_000)
    await feed.uploaded(ds, refs[0], feed.at(6))
    await folding.reach(feed.last_seq)

    live = folding.datashare(ds, feed.at(10))
    assert live["instances_received"] == 3
    assert live["instances_uploaded"] == 1
    assert live["instances_pending"] == 2
    assert live["bytes_received"] == 6_000_000
    assert live["bytes_uploaded"] == 1_000_000 and live["bytes_pending"] == 5_000_000
    assert live["associations_active"] == 1 and live["associations_total"] == 1
    [active] = live["associations"]["active"]
    assert (active["calling_ae"], active["peer"], active["instances"]) == (
        "PACS1",
        "10.0.0.5:40000",
        4,
    )
    assert active["started_at"] == feed.at(1) and active["last_instance_at"] == feed.at(5)
    assert {s["study_uid"]: s["instances_received"] for s in live["studies"]} == {
        "1.2.3": 2,
        "1.2.4": 1,
    }
    # 3 instances and 6 MB received in the 8 s since the first; 1 MB uploaded in 4 s
    assert live["rate"]["received_instances_per_s"] == pytest.approx(3 / 8, abs=1e-3)
    assert live["rate"]["received_mb_per_s"] == pytest.approx(6 / 8, abs=1e-3)
    assert live["rate"]["uploaded_mb_per_s"] == pytest.approx(1 / 4, abs=1e-3)
    # a minute later, over the whole minute
    minute = folding.datashare(ds, feed.at(62))["rate"]
    assert minute["received_instances_per_s"] == pytest.approx(2 / 60, abs=1e-3)
    assert live["health"]["verdict"] == "receiving"
    assert live["last_activity"] == feed.at(6)

    for ref in refs[1:]:
        await feed.uploaded(ds, ref, feed.at(20))
    await feed.closed(ds, "a1", 4, feed.at(21))
    await folding.reach(feed.last_seq)

    later = folding.datashare(ds, feed.at(20 + 3600))
    assert later["instances_uploaded"] == 3 and later["instances_pending"] == 0
    assert later["associations_active"] == 0
    [recent] = later["associations"]["recent"]
    assert (recent["state"], recent["instances"], recent["ended_at"]) == ("closed", 4, feed.at(21))
    assert later["rate"]["received_instances_per_s"] == 0
    assert all(s["quiet"] for s in later["studies"])
    assert later["health"]["verdict"] == "idle"
    assert "everything received was uploaded" in later["health"]["reason"]


async def test_failures_dead_letters_and_retry(feed, folding):
    ds = "DS2"
    await feed.datashare(ds)
    ok = await feed.stored(ds, "a1", "1.9", "1.9.1", feed.at(1))
    bad = await feed.stored(ds, "a1", "1.9", "1.9.2", feed.at(1))
    await feed.uploaded(ds, ok, feed.at(2))
    await feed.failed(ds, bad, feed.at(3))
    await folding.reach(feed.last_seq)

    retrying = folding.datashare(ds, feed.at(4))
    assert retrying["instances_failed"] == 1 and retrying["instances_retrying"] == 1
    assert retrying["instances_pending"] == 1 and retrying["upload_failures"] == 1
    assert retrying["health"]["verdict"] == "failing"
    assert "connection refused" in retrying["health"]["reason"]
    assert retrying["studies"][0]["instances_failed"] == 1

    qkey = await feed.dead(ds, bad, feed.at(5))
    await folding.reach(feed.last_seq)
    dead = folding.datashare(ds, feed.at(6))
    assert dead["instances_dead_lettered"] == 1 and dead["instances_failed"] == 1
    assert dead["instances_pending"] == 0
    assert "dead-lettered" in dead["health"]["reason"] and "403" in dead["health"]["reason"]
    assert folding.status(feed.at(6))["dead_letters"] == 1

    from edge_core import events as ev

    await feed.send(
        ev.InstanceRetryRequestedEvent(
            datashare=ds, time=feed.at(7), data=ev.InstanceRetryRequested(quarantine_key=qkey)
        )
    )
    await feed.uploaded(ds, bad, feed.at(8))
    await folding.reach(feed.last_seq)
    done = folding.datashare(ds, feed.at(9))
    assert done["instances_uploaded"] == 2 and done["instances_failed"] == 0
    assert done["instances_dead_lettered"] == 0 and done["instances_received"] == 2


async def test_verdicts(feed, folding):
    await feed.datashare("QUIET")
    await feed.datashare("SLOW")
    await feed.stored("SLOW", "a1", "2.1", "2.1.1", feed.at(0))
    await feed.datashare("BROKEN")
    await feed.refused("BROKEN", "a2", "store_error", feed.at(10))
    await folding.reach(feed.last_seq)

    def verdict(ds: str, seconds: float) -> str:
        return folding.datashare(ds, feed.at(seconds))["health"]["verdict"]

    assert verdict("QUIET", 20) == "idle"
    assert verdict("SLOW", 20) == "receiving"
    assert verdict("SLOW", 121) == "stalled"  # waiting 121 s, nothing uploaded
    assert (
        "nothing has been uploaded yet"
        in folding.datashare("SLOW", feed.at(121))["health"]["reason"]
    )
    assert verdict("BROKEN", 20) == "failing"
    assert verdict("BROKEN", 200) == "idle"  # the refusal is no longer recent

    # The receiver reports a full buffer and refuses: every datashare is told.
    await feed.buffer(950, 1000, refusing=True, at=feed.at(30))
    await feed.refused("SLOW", "a3", "buffer_full", feed.at(31))
    await folding.reach(feed.last_seq)
    status = folding.status(feed.at(32))
    assert status["buffer"]["refusing"] and status["buffer"]["used_fraction"] == 0.95
    assert verdict("SLOW", 32) == "refusing"
    assert "buffer is full" in folding.datashare("SLOW", feed.at(32))["health"]["reason"]
    assert folding.datashare("SLOW", feed.at(32))["refusals"] == {"buffer_full": 1}
    assert any("refusing" in p for p in status["problems"])

    # Drained: the receiver reports it accepts again.
    await feed.buffer(100, 1000, refusing=False, at=feed.at(40))
    await folding.reach(feed.last_seq)
    assert verdict("SLOW", 41) == "receiving"


async def test_rejections_grouped_with_plain_words(feed, folding):
    for second in range(3):
        await feed.rejected("XYZ", "FOO", "10.0.0.5", feed.at(second))
    await feed.rejected("OTHER", "BAR", "10.0.0.9", feed.at(10))
    await folding.reach(feed.last_seq)

    rejections = folding.status(feed.at(20))["rejections"]
    assert [(r["calling_ae"], r["called_ae"], r["peer_host"], r["count"]) for r in rejections] == [
        ("OTHER", "BAR", "10.0.0.9", 1),
        ("XYZ", "FOO", "10.0.0.5", 3),
    ]
    assert rejections[1]["first_seen"] == feed.at(0) and rejections[1]["last_seen"] == feed.at(2)
    assert rejections[1]["explanation"] == (
        "PACS 'XYZ' at 10.0.0.5 used called AE title 'FOO', which matches no datashare."
    )
    # A known datashare that refused the caller: its reason, not "matches no datashare".
    await feed.datashare("CT", ae_title="CT_AE", allowed_calling_aets=["GOOD"])
    await feed.rejected(
        "XYZ",
        "CT_AE",
        "10.0.0.5",
        feed.at(11),
        text="calling AE title 'XYZ' may not send to datashare CT",
        reason=3,
    )
    await folding.reach(feed.last_seq)
    [refused, *_] = folding.status(feed.at(20))["rejections"]
    assert refused["explanation"] == (
        "PACS 'XYZ' at 10.0.0.5 was refused by datashare 'CT': "
        "calling AE title 'XYZ' may not send to datashare CT."
    )
    assert refused["datashare"] == "CT"
    assert folding.datashare("CT", feed.at(20))["associations_rejected"] == 1
    # Outside the window (24 h by default) they are no longer listed.
    assert folding.status(feed.at(2 * 86400))["rejections"] == []


async def test_redelivered_events_are_not_counted_twice(feed, js, settings, engine):
    """The monitor folds a batch, commits, and dies before acknowledging: JetStream
    redelivers the batch to the restarted monitor, which must skip it."""
    await feed.datashare("DS3")
    for i in range(5):
        await feed.stored("DS3", "a1", "3.1", f"3.1.{i}", feed.at(i))
    sub = await js.pull_subscribe_bind(MONITOR_CONSUMER, stream=settings.events_stream)
    msgs = await sub.fetch(100, timeout=5)
    assert len(msgs) == 6
    batch = [(msg.metadata.sequence.stream, msg.data) for msg in msgs]
    assert fold(db.writer(engine), batch) == 6
    for msg in msgs:
        await msg.nak()  # not acknowledged: redelivered

    again = []
    while len(again) < 6:  # a fetch returns what has been redelivered so far
        again += await sub.fetch(100, timeout=5)
    assert [m.metadata.num_delivered for m in again] == [2] * 6
    assert fold(db.writer(engine), [(m.metadata.sequence.stream, m.data) for m in again]) == 0
    for msg in again:
        await msg.ack()

    from edge_monitor.status import status

    with db.reader(engine)() as session:
        [ds] = status(session, settings, feed.at(10))["datashares"]
    assert ds["instances_received"] == 5 and ds["bytes_received"] == 5000
    assert ds["studies"][0]["instances_received"] == 5


async def test_a_batch_redelivered_after_newer_events_is_counted(feed, js, settings, engine):
    """The consumer fetched a batch and was interrupted before acknowledging it; bound again,
    it fetched and folded newer events (max_ack_pending allows it); then the old batch came
    back. Every event of it is counted."""
    await feed.datashare("DS4")
    refs = [await feed.stored("DS4", "a1", "4.1", f"4.1.{i}", feed.at(i)) for i in range(3)]
    sub = await js.pull_subscribe_bind(MONITOR_CONSUMER, stream=settings.events_stream)
    old = await sub.fetch(100, timeout=5)  # never acknowledged
    assert len(old) == 4
    for ref in refs[:2]:
        await feed.uploaded("DS4", ref, feed.at(10))
    await feed.stored("DS4", "a1", "4.1", "4.1.9", feed.at(11))
    newer = await sub.fetch(100, timeout=5)
    assert min(m.metadata.sequence.stream for m in newer) > 4
    assert fold(db.writer(engine), [(m.metadata.sequence.stream, m.data) for m in newer]) == 3
    for msg in newer:
        await msg.ack()
    for msg in old:
        await msg.nak()

    again = []
    while len(again) < 4:  # a fetch returns what has been redelivered so far
        again += await sub.fetch(100, timeout=5)
    assert fold(db.writer(engine), [(m.metadata.sequence.stream, m.data) for m in again]) == 4
    for msg in again:
        await msg.ack()

    from edge_monitor.status import status

    with db.reader(engine)() as session:
        doc = status(session, settings, feed.at(20))
    [ds] = doc["datashares"]
    assert (ds["instances_received"], ds["instances_uploaded"], ds["instances_pending"]) == (
        4, 2, 2)  # fmt: skip
    assert doc["monitor"]["position"] == feed.last_seq  # every sequence up to the last


async def test_datashare_changes_and_deletion(feed, folding):
    from edge_core import events as ev
    from edge_core.datashares import Datashare

    await feed.datashare("OLD")
    await feed.datashare("KEEP")
    changed = ev.DatashareChanged(
        datashare=Datashare(id="KEEP", ae_title="KEEP_AE", description="renamed", enabled=False)
    )
    await feed.send(ev.DatashareUpdatedEvent(datashare="KEEP", time=feed.at(1), data=changed))
    gone = ev.DatashareDeleted(id="OLD")
    await feed.send(ev.DatashareDeletedEvent(datashare="OLD", time=feed.at(2), data=gone))
    await folding.reach(feed.last_seq)

    [keep] = folding.status(feed.at(3))["datashares"]
    assert (keep["id"], keep["ae_title"], keep["description"]) == ("KEEP", "KEEP_AE", "renamed")
    assert keep["enabled"] is False
    assert keep["health"]["reason"].startswith("Disabled")


async def test_an_event_that_cannot_be_folded_does_not_block_the_stream(feed, folding, settings):
    """A key longer than any buffer key fits no column on PostgreSQL: that event is skipped
    (with an error in the log) and the ones after it are still counted."""
    from edge_core import events as ev

    await feed.datashare("DS")
    good = await feed.stored("DS", "a1", "4.1", "4.1.1", feed.at(1))
    odd = good.model_copy(update={"key": "DS/" + "9" * 600, "sop_instance_uid": "4.1.2"})
    await feed.send(ev.InstanceStoredEvent(datashare="DS", time=feed.at(2), data=odd))
    await feed.stored("DS", "a1", "4.1", "4.1.3", feed.at(3))
    await folding.reach(feed.last_seq)
    received = folding.datashare("DS", feed.at(4))["instances_received"]
    assert received == (2 if settings.database_url.startswith("postgresql") else 3)
