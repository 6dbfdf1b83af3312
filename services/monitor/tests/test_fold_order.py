"""The fold gives the same projections whatever the order events are folded in (JetStream
redelivers a batch after newer events were folded), and never applies an event twice."""

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from edge_core import events as ev
from edge_core.datashares import Datashare, Deidentification
from edge_core.keys import buffer_key, quarantine_key
from edge_monitor import db, projections
from edge_monitor import models as m
from edge_monitor.backlog import Backlog, ConsumerLag
from edge_monitor.config import MonitorSettings
from edge_monitor.status import status

T0 = datetime(2026, 11, 28, 9, 0, 0, tzinfo=UTC)
DS = "ORDER"
SOP_X, SOP_Y = "1.2.3.1", "1.2.3.2"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def ref(sop: str, sha: str, size: int = 1000) -> dict:
    return dict(
        study_uid="1.2.3", series_uid="1.2.3.0", sop_instance_uid=sop,
        sop_class_uid="1.2.840.10008.5.1.4.1.1.2", key=buffer_key(DS, "1.2.3", "1.2.3.0", sop, sha),
        size=size, sha256=sha,
    )  # fmt: skip


def assoc(assoc_id: str) -> dict:
    return dict(association_id=assoc_id, calling_ae="PACS1", called_ae=DS, peer_host="10.0.0.5",
                peer_port=40000)  # fmt: skip


V1, V2, Y = ref(SOP_X, "aa" * 32), ref(SOP_X, "bb" * 32, size=3000), ref(SOP_Y, "cc" * 32)
DEST = {"destination": "s3://dest"}

# A transfer with every kind of event; SOP instance X is re-sent with other bytes (V2).
STORY: list[ev.Event] = [
    ev.DatashareCreatedEvent(datashare=DS, time=at(0), data=ev.DatashareChanged(
        datashare=Datashare(id=DS, ae_title=DS, description="first"))),
    ev.ReceiverHeartbeatEvent(time=at(0.5), data=ev.ReceiverHeartbeat(
        receiver="r1", started_at=at(0), lease_s=15)),
    ev.AssociationOpenedEvent(datashare=DS, time=at(1), data=ev.AssociationOpened(
        **assoc("a1"), receiver="r1")),
    ev.InstanceStoredEvent(datashare=DS, time=at(2), data=ev.InstanceStored(
        **V1, association_id="a1")),
    ev.InstanceStoredEvent(datashare=DS, time=at(3), data=ev.InstanceStored(
        **Y, association_id="a1")),
    ev.InstanceFailedEvent(datashare=DS, time=at(4), data=ev.InstanceFailed(
        **V1, **DEST, attempt=1, error="refused")),
    ev.InstanceUploadedEvent(datashare=DS, time=at(5), data=ev.InstanceUploaded(**V1, **DEST)),
    ev.AssociationClosedEvent(datashare=DS, time=at(6), data=ev.AssociationClosed(
        **assoc("a1"), instances=2, bytes=2000)),
    ev.InstanceStoredEvent(datashare=DS, time=at(7), data=ev.InstanceStored(
        **V2, association_id="a2", new_version=True)),
    ev.InstanceUploadedEvent(datashare=DS, time=at(8), data=ev.InstanceUploaded(
        **Y, **DEST, deidentified=True)),
    # a second report of the same delivery (a redelivery after a crash): counted once
    ev.InstanceUploadedEvent(datashare=DS, time=at(8.5), data=ev.InstanceUploaded(
        **Y, **DEST, deidentified=True, already_present=True, attempts=2)),
    ev.InstanceDeadLetteredEvent(datashare=DS, time=at(9), data=ev.InstanceDeadLettered(
        **V2, **DEST, attempts=1, error="held", quarantine_key=quarantine_key(V2["key"]),
        held=True)),
    ev.InstanceRetryRequestedEvent(datashare=DS, time=at(10), data=ev.InstanceRetryRequested(
        quarantine_key=quarantine_key(V2["key"]))),
    ev.InstanceUploadedEvent(datashare=DS, time=at(11), data=ev.InstanceUploaded(
        **V2, **DEST, deidentified=True)),
    # staff asked twice: the second request comes after the delivery, and changes nothing
    ev.InstanceRetryRequestedEvent(datashare=DS, time=at(11.5), data=ev.InstanceRetryRequested(
        quarantine_key=quarantine_key(V2["key"]))),
    ev.DatashareUpdatedEvent(datashare=DS, time=at(12), data=ev.DatashareChanged(
        datashare=Datashare(id=DS, ae_title=DS, description="second",
                            deidentification=Deidentification(options=["allow_burned_in"])))),
    # r1 is killed with a3 open: no heartbeat after 12.6, no end of a3
    ev.AssociationOpenedEvent(datashare=DS, time=at(12.5), data=ev.AssociationOpened(
        **assoc("a3"), receiver="r1")),
    ev.ReceiverHeartbeatEvent(time=at(12.6), data=ev.ReceiverHeartbeat(
        receiver="r1", started_at=at(0), lease_s=15)),
    ev.BufferOrphanRemovedEvent(datashare=DS, time=at(13), data=ev.BufferOrphanRemoved(
        key=V1["key"].replace("aaaa", "dddd"), size=500, last_modified=at(2))),
]  # fmt: skip


@pytest.fixture
def engine(tmp_path: Path):
    engine = db.make_engine(f"sqlite:///{tmp_path / 'monitor.db'}")
    db.migrate(engine)
    yield engine
    engine.dispose()


def fold_in_order(engine: Engine, order: list[int], events: list[ev.Event] = STORY) -> dict:
    """Fold ``events`` (stream sequence = index + 1) one batch per event, in ``order``;
    every event twice (redelivered), then the status."""
    sessions = db.writer(engine)
    with sessions.begin() as session:
        projections.reset(session)
    for i in order + order:
        with sessions.begin() as session:
            projections.lock_position(session)
            projections.prefetch(session, [events[i]])
            projections.apply(session, events[i], i + 1)
            projections.end_batch(session)
    with db.reader(engine)() as session:
        doc = status(session, MonitorSettings(), at(3600))
        doc["applied_above_position"] = session.scalars(select(m.Applied.seq)).all()
        return doc


def test_the_story_in_order(engine):
    doc = fold_in_order(engine, list(range(len(STORY))))
    [ds] = doc["datashares"]
    assert (ds["instances_received"], ds["instances_uploaded"], ds["instances_pending"]) == (
        2, 2, 0)  # fmt: skip
    assert (ds["instances_replaced"], ds["versions_received"]) == (1, 3)
    assert ds["bytes_received"] == ds["bytes_uploaded"] == 4000  # Y and X's newest version
    assert ds["description"] == "second" and ds["associations_total"] == 3
    # a2 (its instance.stored only) names no receiver: still active; r1 left a3 active
    assert [a["association_id"] for a in ds["associations"]["active"]] == ["a2"]
    ghost = ds["associations"]["recent"][0]
    assert (ghost["association_id"], ghost["state"], ghost["ended_at"]) == (
        "a3",
        "aborted",
        at(12.6),
    )
    assert ghost["reason"].startswith("receiver stopped")
    assert (ds["orphans_removed"], ds["orphan_bytes_removed"]) == (1, 500)
    assert ds["deidentification"] == {
        "profile": "basic",
        "options": ["allow_burned_in"],
        "keep": [],
        "remove": [],
    }
    assert (ds["instances_deidentified"], ds["instances_held"]) == (2, 1)
    assert doc["monitor"]["position"] == len(STORY) and doc["applied_above_position"] == []


def test_any_order_gives_the_same_projections(engine):
    in_order = fold_in_order(engine, list(range(len(STORY))))
    rng = random.Random(9)
    orders = [list(reversed(range(len(STORY))))]
    orders += [rng.sample(range(len(STORY)), len(STORY)) for _ in range(25)]
    for order in orders:
        assert differences(fold_in_order(engine, order), in_order) == [], order


def differences(a: object, b: object, path: str = "") -> list[str]:
    """Where two status documents differ (readable, unlike a diff of nested dicts)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [
            d for k in a.keys() | b.keys() for d in differences(a.get(k), b.get(k), f"{path}.{k}")
        ]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [
            d
            for i, (x, y) in enumerate(zip(a, b, strict=True))
            for d in differences(x, y, f"{path}[{i}]")
        ]
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]


PAIRS = {
    # an instance stored after its upload stays uploaded
    "stored after uploaded": [
        ev.InstanceStoredEvent(datashare=DS, time=at(2), data=ev.InstanceStored(
            **V1, association_id="a1")),
        ev.InstanceUploadedEvent(datashare=DS, time=at(5), data=ev.InstanceUploaded(
            **V1, **DEST)),
    ],
    # a failed attempt reported after the delivery does not undo it
    "failed after uploaded": [
        ev.InstanceFailedEvent(datashare=DS, time=at(4), data=ev.InstanceFailed(
            **V1, **DEST, attempt=1, error="refused")),
        ev.InstanceUploadedEvent(datashare=DS, time=at(5), data=ev.InstanceUploaded(
            **V1, **DEST)),
    ],
    # an association opened after it was closed stays closed, counted once
    "opened after closed": [
        ev.AssociationOpenedEvent(datashare=DS, time=at(1), data=ev.AssociationOpened(
            **assoc("a1"))),
        ev.AssociationClosedEvent(datashare=DS, time=at(6), data=ev.AssociationClosed(
            **assoc("a1"), instances=2, bytes=2000)),
    ],
    # the older version stored after the newer one does not become the newest
    "old version after new": [
        ev.InstanceStoredEvent(datashare=DS, time=at(2), data=ev.InstanceStored(
            **V1, association_id="a1")),
        ev.InstanceStoredEvent(datashare=DS, time=at(7), data=ev.InstanceStored(
            **V2, association_id="a1", new_version=True)),
    ],
    # the datashare's older description folded after the newer one does not win
    "created after updated": [STORY[0], STORY[-4]],
    # an older heartbeat folded after a newer one does not shorten the lease
    "heartbeats": [
        ev.ReceiverHeartbeatEvent(time=at(1), data=ev.ReceiverHeartbeat(
            receiver="r1", started_at=at(0), lease_s=15)),
        ev.ReceiverHeartbeatEvent(time=at(3590), data=ev.ReceiverHeartbeat(
            receiver="r1", started_at=at(0), lease_s=15)),
    ],
}  # fmt: skip


@pytest.mark.parametrize("pair", list(PAIRS))
def test_a_pair_folded_out_of_order(engine, pair):
    events = PAIRS[pair]
    in_order = fold_in_order(engine, [0, 1], events)
    assert differences(fold_in_order(engine, [1, 0], events), in_order) == []


def superseded_story() -> list[ev.Event]:
    """X re-sent with other bytes while V1 waited: the uploader never sends V1."""
    return [
        ev.InstanceStoredEvent(datashare=DS, time=at(1), data=ev.InstanceStored(
            **V1, association_id="a1")),
        ev.InstanceStoredEvent(datashare=DS, time=at(2), data=ev.InstanceStored(
            **V2, association_id="a1", new_version=True)),
        ev.InstanceSupersededEvent(datashare=DS, time=at(3), data=ev.InstanceSuperseded(
            **V1, stream_seq=1, newer_stream_seq=2)),
        ev.InstanceUploadedEvent(datashare=DS, time=at(4), data=ev.InstanceUploaded(
            **V2, **DEST)),
    ]  # fmt: skip


def test_a_superseded_version_is_resolved_in_any_order(engine):
    """A superseded version is final: it neither waits in the counts nor makes the datashare
    look stalled (its instance.stored is never followed by an upload)."""
    events = superseded_story()
    in_order = fold_in_order(engine, [0, 1, 2, 3], events)
    [ds] = in_order["datashares"]
    assert (ds["instances_received"], ds["instances_uploaded"], ds["instances_pending"]) == (
        1, 1, 0)  # fmt: skip
    assert ds["health"]["verdict"] != "stalled", ds["health"]
    with db.reader(engine)() as session:
        assert session.get(m.Instance, V1["key"]).state == "superseded"
    for order in ([2, 0, 1, 3], [2, 3, 1, 0], [3, 2, 1, 0], [1, 3, 2, 0]):
        assert differences(fold_in_order(engine, order, events), in_order) == [], order


def test_only_the_associations_of_a_receiver_whose_lease_expired_show_aborted(engine):
    """Two receivers: r1 stopped sending heartbeats long ago, r2's are current (at 3600)."""

    def beat(receiver: str, t: float) -> ev.Event:
        return ev.ReceiverHeartbeatEvent(time=at(t), data=ev.ReceiverHeartbeat(
            receiver=receiver, started_at=at(0), lease_s=15))  # fmt: skip

    def opened(assoc_id: str, receiver: str) -> ev.Event:
        return ev.AssociationOpenedEvent(datashare=DS, time=at(2), data=ev.AssociationOpened(
            **assoc(assoc_id), receiver=receiver))  # fmt: skip

    events = [beat("r1", 1), beat("r2", 1), opened("b1", "r1"), opened("b2", "r2"),
              beat("r2", 3590)]  # fmt: skip
    in_order = fold_in_order(engine, list(range(len(events))), events)
    [ds] = in_order["datashares"]
    assert ds["associations_active"] == 1
    assert [a["association_id"] for a in ds["associations"]["active"]] == ["b2"]
    [b1] = ds["associations"]["recent"]
    assert (b1["association_id"], b1["state"], b1["receiver"]) == ("b1", "aborted", "r1")
    assert {r["receiver"]: r["alive"] for r in in_order["receivers"]} == {"r1": False, "r2": True}
    for order in ([4, 3, 2, 1, 0], [2, 4, 0, 3, 1], [3, 2, 4, 1, 0]):
        assert differences(fold_in_order(engine, order, events), in_order) == [], order


def test_a_monitor_catching_up_judges_leases_by_the_events_it_has_folded(engine):
    """Events still to fold may hold r1's next heartbeats: while the monitor is behind, r1's
    lease is judged against the newest event folded, not the clock."""
    events = [
        ev.ReceiverHeartbeatEvent(time=at(1), data=ev.ReceiverHeartbeat(
            receiver="r1", started_at=at(0), lease_s=15)),
        ev.AssociationOpenedEvent(datashare=DS, time=at(2), data=ev.AssociationOpened(
            **assoc("c1"), receiver="r1")),
    ]  # fmt: skip
    fold_in_order(engine, [0, 1], events)
    behind = Backlog(consumers={"monitor": ConsumerLag(pending=500, ack_pending=0, redelivered=0)})
    with db.reader(engine)() as session:
        [ds] = status(session, MonitorSettings(), at(3600), behind)["datashares"]
        assert ds["associations_active"] == 1
        [ds] = status(session, MonitorSettings(), at(3600))["datashares"]  # caught up
        assert ds["associations_active"] == 0
