import json
from datetime import UTC, datetime

import pytest
from pydantic import SecretStr, ValidationError

from edge_core import events as ev
from edge_core.datashares import Datashare

REF = dict(
    study_uid="1.2.3",
    series_uid="1.2.3.4",
    sop_instance_uid="1.2.3.4.5",
    sop_class_uid="1.2.840.10008.5.1.4.1.1.2",
    key="DS1/1.2.3/1.2.3.4/1.2.3.4.5.0123456789abcdef.dcm",
    size=1234,
    sha256="0" * 64,
)
ASSOC = dict(
    association_id="a1", calling_ae="PACS", called_ae="DS1", peer_host="10.0.0.1", peer_port=104
)
DS = Datashare(id="DS1", ae_title="DS1", destination_credentials={"token": SecretStr("s3cr3t")})

SAMPLES = [
    ev.AssociationOpenedEvent(datashare="DS1", data=ev.AssociationOpened(**ASSOC, contexts=["x"])),
    ev.AssociationClosedEvent(datashare="DS1", data=ev.AssociationClosed(**ASSOC, instances=3)),
    ev.AssociationAbortedEvent(datashare="DS1", data=ev.AssociationAborted(**ASSOC, reason="peer")),
    ev.AssociationRejectedEvent(
        data=ev.AssociationRejected(
            calling_ae="PACS",
            called_ae="NOPE",
            peer_host="10.0.0.1",
            peer_port=104,
            reason=7,
            reason_text="called AE title not recognised",
        )
    ),
    ev.InstanceStoredEvent(datashare="DS1", data=ev.InstanceStored(**REF, association_id="a1")),
    ev.InstanceRefusedEvent(
        datashare="DS1",
        data=ev.InstanceRefused(association_id="a1", status=0xA700, reason="buffer_full"),
    ),
    ev.InstanceUploadedEvent(
        datashare="DS1", data=ev.InstanceUploaded(**REF, destination="s3://b/")
    ),
    ev.InstanceFailedEvent(
        datashare="DS1",
        data=ev.InstanceFailed(
            **REF,
            destination="s3://b/",
            attempt=2,
            error="503",
            next_attempt_at=datetime(2026, 1, 1, tzinfo=UTC),
        ),
    ),
    ev.InstanceDeadLetteredEvent(
        datashare="DS1",
        data=ev.InstanceDeadLettered(
            **REF, destination="s3://b/", attempts=5, error="400", quarantine_key="quarantine/x"
        ),
    ),
    ev.InstanceRetryRequestedEvent(
        datashare="DS1", data=ev.InstanceRetryRequested(quarantine_key="quarantine/x")
    ),
    ev.BufferUsageEvent(
        data=ev.BufferUsage(used_bytes=1, objects=1, quota_bytes=10, refusing=False)
    ),
    ev.DatashareCreatedEvent(datashare="DS1", data=ev.DatashareChanged(datashare=DS, actor="ann")),
    ev.DatashareUpdatedEvent(datashare="DS1", data=ev.DatashareChanged(datashare=DS)),
    ev.DatashareDeletedEvent(datashare="DS1", data=ev.DatashareDeleted(id="DS1")),
    ev.InstanceSupersededEvent(
        datashare="DS1", data=ev.InstanceSuperseded(**REF, stream_seq=3, newer_stream_seq=7)
    ),
    ev.BufferOrphanRemovedEvent(
        datashare="DS1",
        data=ev.BufferOrphanRemoved(
            key=REF["key"], size=1234, last_modified=datetime(2026, 1, 1, tzinfo=UTC)
        ),
    ),
    ev.ReceiverHeartbeatEvent(
        data=ev.ReceiverHeartbeat(
            receiver="receiver-h-1-ab", started_at=datetime(2026, 1, 1, tzinfo=UTC), lease_s=15
        )
    ),
]


def test_every_type_has_a_sample():
    assert sorted(e.type for e in SAMPLES) == sorted(ev.EVENT_TYPES)
    for name in (
        "association.opened",
        "association.closed",
        "association.aborted",
        "association.rejected",
        "instance.stored",
        "instance.uploaded",
        "instance.failed",
        "instance.dead_lettered",
        "datashare.created",
        "datashare.updated",
        "datashare.deleted",
    ):
        assert name in ev.EVENT_TYPES


@pytest.mark.parametrize("event", SAMPLES, ids=lambda e: e.type)
def test_json_round_trip(event):
    raw = event.to_bytes()
    parsed = ev.parse_event(raw)
    assert type(parsed) is type(event)
    assert parsed == event
    body = json.loads(raw)
    assert set(body) == {"id", "type", "version", "time", "datashare", "data"}
    assert body["version"] == ev.SCHEMA_VERSION
    assert body["time"].endswith("Z") or body["time"].endswith("+00:00")


def test_subject_carries_the_datashare():
    assert SAMPLES[4].subject == "edge.events.DS1.instance.stored"
    assert SAMPLES[3].subject == "edge.events._.association.rejected"


def test_ids_are_unique():
    assert len({ev.InstanceRetryRequestedEvent(data=SAMPLES[9].data).id for _ in range(100)}) == 100


def test_credentials_hidden_in_repr_but_carried_on_the_bus():
    event = SAMPLES[11]
    assert "s3cr3t" not in repr(event)
    assert "s3cr3t" not in str(event.data.datashare)
    parsed = ev.parse_event(event.to_bytes())
    assert parsed.data.datashare.destination_credentials["token"].get_secret_value() == "s3cr3t"


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b'{"type": "instance.exploded", "data": {}}',
        b'{"type": "instance.stored", "data": {"key": "x"}}',
        b'{"type": "instance.stored", "time": "2026-01-01T00:00:00", "data": {}}',
    ],
)
def test_invalid_events_are_refused(raw):
    with pytest.raises(ValidationError):
        ev.parse_event(raw)


def test_naive_time_is_refused():
    body = json.loads(SAMPLES[0].to_bytes())
    body["time"] = "2026-01-01T00:00:00"
    with pytest.raises(ValidationError):
        ev.parse_event(json.dumps(body))


@pytest.mark.parametrize("bad", ["", "a.b", "a b", "x" * 65, "*", ">", "-lead", "ä"])
def test_datashare_id_is_subject_safe(bad):
    with pytest.raises(ValidationError):
        Datashare(id=bad, ae_title="X")
