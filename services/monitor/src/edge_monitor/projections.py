"""The fold: every event, applied once, updates the projection tables.

``apply(session, event, seq)`` folds one event. It is a pure function of the event stream
(it reads event times, never the clock), so replaying the stream into empty tables
(``rebuild``) gives the same status. The stream sequence is stored in the same transaction:
an event redelivered by JetStream (at-least-once) is recognised and skipped.
"""

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import delete, inspect, select
from sqlalchemy.orm import Session

from edge_core import events as ev
from edge_monitor import models as m

T = TypeVar("T")

POSITION = "events"
# Throughput buckets older than this are pruned (only the last minute is read), and so are
# rejections (listed for a day by default). Pruning never changes what the status shows.
RATE_RETENTION_S = 3600
REJECTION_RETENTION_S = 7 * 24 * 3600


def lock_position(session: Session) -> int:
    """The position, locked until the transaction ends (PostgreSQL; SQLite's writer sessions
    begin IMMEDIATE), so that two folds (a running monitor and a rebuild) never interleave."""
    row = session.get(m.Position, POSITION, with_for_update=True)
    return row.seq if row else 0


def adopt_stream(session: Session, stream: str) -> bool:
    """Record which stream the position counts in. If it is another one (the stream was
    created anew, its sequences start again at 1), rewind the position so that its events
    are folded on top of what was counted before; True if so."""
    row = _position(session)
    rewound = bool(row.stream) and row.stream != stream and row.seq > 0
    if rewound:
        row.seq = 0
    row.stream = stream
    return rewound


def apply(session: Session, event: ev.Event, seq: int) -> bool:
    """Fold one event at stream sequence ``seq``; False if it was already applied."""
    row = _position(session)
    if seq <= row.seq:
        return False
    handler = _HANDLERS.get(event.type)
    if handler is not None:
        handler(session, event, seq)
    row.seq = seq
    return True


def skip(session: Session, seq: int) -> None:
    """Record ``seq`` as seen without folding it (an event that cannot be read or folded)."""
    row = _position(session)
    row.seq = max(row.seq, seq)


def end_batch(session: Session) -> None:
    """Write the batch's changes and forget its rows (a rebuild folds many batches)."""
    session.flush()
    session.info.pop("rows", None)


def prune(session: Session, now: datetime) -> None:
    session.execute(delete(m.Rate).where(m.Rate.second < int(now.timestamp()) - RATE_RETENTION_S))
    session.execute(
        delete(m.Rejection).where(m.Rejection.at < now - timedelta(seconds=REJECTION_RETENTION_S))
    )


def reset(session: Session) -> None:
    """Empty every projection table and rewind the position, for a rebuild. The position row
    is updated, not deleted, so that a monitor waiting on its lock reads the new value."""
    for table in reversed(m.Base.metadata.sorted_tables):
        if table is not m.Position.__table__:
            session.execute(table.delete())
    row = _get(session, m.Position, POSITION)
    if row is not None:
        row.seq = 0
    session.info.pop("rows", None)
    session.flush()


# --- helpers -----------------------------------------------------------------------------


def _rows(session: Session) -> dict[tuple[type, tuple[Any, ...]], Any]:
    """The rows this batch touched, held strongly: the session's identity map is weak, and
    writer sessions do not autoflush, so every read of a row goes through here."""
    return session.info.setdefault("rows", {})


def _get(session: Session, cls: type[T], pk: Any) -> T | None:
    key = (cls, pk if isinstance(pk, tuple) else (pk,))
    rows = _rows(session)
    if key not in rows:
        rows[key] = session.get(cls, pk)
    return rows[key]


def prefetch(session: Session, events: list[ev.Event]) -> None:
    """Load the instances a batch refers to in one query (most are new: known absent)."""
    keys = {e.data.key for e in events if isinstance(e.data, ev.InstanceRef)}
    rows = _rows(session)
    found = {i.key: i for i in session.scalars(select(m.Instance).where(m.Instance.key.in_(keys)))}
    for key in keys:
        rows.setdefault((m.Instance, (key,)), found.get(key))


def _add(session: Session, row: Any) -> None:
    session.add(row)
    pk = tuple(inspect(type(row)).primary_key_from_instance(row))
    _rows(session)[(type(row), pk)] = row


def _position(session: Session) -> m.Position:
    row = _get(session, m.Position, POSITION)
    if row is None:
        row = m.Position(name=POSITION, seq=0, stream="")
        _add(session, row)
    return row


def _datashare(session: Session, ds_id: str, at: datetime) -> m.Datashare:
    """The datashare's row, created on the first event that names it."""
    row = _get(session, m.Datashare, ds_id)
    if row is None:
        row = m.Datashare(id=ds_id, ae_title=ds_id, created_at=at)
        _zero(row)
        _add(session, row)
    if row.last_activity is None or at > row.last_activity:
        row.last_activity = at
    return row


def _zero(row: Any) -> None:
    """Integer columns start at 0 in Python too (column defaults apply only at INSERT)."""
    for column in row.__table__.columns:
        if column.default is not None and getattr(row, column.key) is None:
            setattr(row, column.key, column.default.arg)


def _study(session: Session, ds_id: str, study_uid: str, at: datetime) -> m.Study:
    row = _get(session, m.Study, (ds_id, study_uid))
    if row is None:
        row = m.Study(datashare=ds_id, study_uid=study_uid, first_seen=at, last_seen=at)
        _zero(row)
        _add(session, row)
        _datashare(session, ds_id, at).studies += 1
    return row


def _move(session: Session, inst: m.Instance, state: str, at: datetime) -> None:
    """Change an instance's state, keeping the datashare's and study's counters exact."""
    old = inst.state
    inst.state_at = at
    if old == state:
        return
    inst.state = state
    ds = _datashare(session, inst.datashare, at)
    study = _study(session, inst.datashare, inst.study_uid, at)
    for name, delta in ((old, -1), (state, +1)):
        setattr(ds, name, getattr(ds, name) + delta)
        setattr(ds, f"{name}_bytes", getattr(ds, f"{name}_bytes") + delta * inst.size)
        if name != "pending":
            setattr(study, name, getattr(study, name) + delta)


def _rate(session: Session, ds_id: str, kind: str, at: datetime, size: int) -> None:
    second = int(at.timestamp())
    row = _get(session, m.Rate, (ds_id, kind, second))
    if row is None:
        row = m.Rate(datashare=ds_id, kind=kind, second=second, instances=0, bytes=0)
        _add(session, row)
    row.instances += 1
    row.bytes += size


def _instance(session: Session, ds_id: str, data: ev.InstanceRef, at: datetime) -> m.Instance:
    """The instance's row; created if an upload event arrives for an instance never seen."""
    inst = _get(session, m.Instance, data.key)
    if inst is None:
        inst = _received(session, ds_id, data, at)
    return inst


def _received(session: Session, ds_id: str, data: ev.InstanceRef, at: datetime) -> m.Instance:
    inst = m.Instance(
        key=data.key,
        datashare=ds_id,
        study_uid=data.study_uid,
        sop_instance_uid=data.sop_instance_uid,
        size=data.size,
        state="pending",
        received_at=at,
        state_at=at,
        attempts=0,
        error="",
        destination="",
    )
    _add(session, inst)
    ds = _datashare(session, ds_id, at)
    ds.received += 1
    ds.received_bytes += data.size
    ds.pending += 1
    ds.pending_bytes += data.size
    if ds.first_received_at is None:
        ds.first_received_at = at
    study = _study(session, ds_id, data.study_uid, at)
    study.received += 1
    return inst


# --- handlers, one per event type --------------------------------------------------------


def _ds_id(event: ev.Event) -> str:
    return event.datashare or ev.NO_DATASHARE


def on_datashare_changed(
    session: Session, event: ev.DatashareCreatedEvent | ev.DatashareUpdatedEvent, seq: int
) -> None:
    info = event.data.datashare
    row = _datashare(session, info.id, event.time)
    row.description = info.description
    row.ae_title = info.ae_title
    row.match = info.match
    row.enabled = info.enabled
    row.deleted = False


def on_datashare_deleted(session: Session, event: ev.DatashareDeletedEvent, seq: int) -> None:
    _datashare(session, event.data.id, event.time).deleted = True


def on_association_opened(session: Session, event: ev.AssociationOpenedEvent, seq: int) -> None:
    ds = _datashare(session, _ds_id(event), event.time)
    row = _get(session, m.Association, event.data.association_id)
    if row is None:
        row = _association(session, _ds_id(event), event.data)
        ds.associations_total += 1
    row.started_at = event.time


def _association(session: Session, ds_id: str, data: ev.AssociationRef) -> m.Association:
    row = m.Association(
        association_id=data.association_id,
        datashare=ds_id,
        calling_ae=data.calling_ae,
        called_ae=data.called_ae,
        peer_host=data.peer_host,
        peer_port=data.peer_port,
        state="active",
        instances=0,
        bytes=0,
        failures=0,
        reason="",
    )
    _add(session, row)
    return row


def on_association_ended(
    session: Session, event: ev.AssociationClosedEvent | ev.AssociationAbortedEvent, seq: int
) -> None:
    ds = _datashare(session, _ds_id(event), event.time)
    data = event.data
    row = _get(session, m.Association, data.association_id)
    if row is None:  # opened before the stream's retention, or its event was lost
        row = _association(session, _ds_id(event), data)
        ds.associations_total += 1
    row.state = "aborted" if isinstance(event, ev.AssociationAbortedEvent) else "closed"
    row.ended_at = event.time
    if row.started_at is None:
        row.started_at = event.time
    row.instances = max(row.instances, data.instances)
    row.bytes = max(row.bytes, data.bytes)
    row.failures = max(row.failures, data.failures)
    row.reason = getattr(data, "reason", "")


def on_association_rejected(session: Session, event: ev.AssociationRejectedEvent, seq: int) -> None:
    data = event.data
    # The receiver names no datashare when it rejects; if the AE titles select one (which
    # then refused the caller: disabled, calling AE title or address not allowed), count it.
    ds_id = event.datashare or _selected(session, data.calling_ae, data.called_ae)
    _add(
        session,
        m.Rejection(
            seq=seq,
            at=event.time,
            datashare=ds_id,
            calling_ae=data.calling_ae,
            called_ae=data.called_ae,
            peer_host=data.peer_host,
            reason=data.reason,
            reason_text=data.reason_text,
        ),
    )
    total = _get(session, m.RejectionTotal, data.reason)
    if total is None:
        total = m.RejectionTotal(reason=data.reason, count=0)
        _add(session, total)
    total.reason_text = data.reason_text
    total.count += 1
    if ds_id:
        _datashare(session, ds_id, event.time).associations_rejected += 1


def _selected(session: Session, calling_ae: str, called_ae: str) -> str | None:
    session.flush()  # writer sessions do not autoflush
    d = m.Datashare
    return session.scalars(
        select(d.id).where(
            d.deleted.is_(False),
            ((d.match == "called") & (d.ae_title == called_ae))
            | ((d.match == "calling") & (d.ae_title == calling_ae)),
        )
    ).first()


def on_instance_stored(session: Session, event: ev.InstanceStoredEvent, seq: int) -> None:
    ds_id = _ds_id(event)
    data = event.data
    inst = _get(session, m.Instance, data.key)
    if inst is None:
        inst = _received(session, ds_id, data, event.time)
        _rate(session, ds_id, "received", event.time, data.size)
    elif inst.state in ("uploaded", "dead"):
        # Re-sent after it left the buffer: the uploader forwards it again.
        _move(session, inst, "pending", event.time)
    ds = _datashare(session, ds_id, event.time)
    ds.last_received_at = event.time
    _study(session, ds_id, data.study_uid, event.time).last_seen = event.time
    assoc = _get(session, m.Association, data.association_id)
    if assoc is not None:
        assoc.instances += 1
        assoc.bytes += data.size
        assoc.last_instance_at = event.time


def on_instance_refused(session: Session, event: ev.InstanceRefusedEvent, seq: int) -> None:
    ds = _datashare(session, _ds_id(event), event.time)
    data = event.data
    ds.refused += 1
    ds.last_refused_reason = data.reason
    ds.last_refused_at = event.time
    if data.reason == "buffer_full":
        ds.last_buffer_full_at = event.time
    row = _get(session, m.Refusal, (ds.id, data.reason))
    if row is None:
        row = m.Refusal(datashare=ds.id, reason=data.reason, count=0, last_at=event.time)
        _add(session, row)
    row.count += 1
    row.last_at = event.time
    row.last_detail = data.detail
    assoc = _get(session, m.Association, data.association_id)
    if assoc is not None:
        assoc.failures += 1


def on_instance_uploaded(session: Session, event: ev.InstanceUploadedEvent, seq: int) -> None:
    ds_id = _ds_id(event)
    inst = _instance(session, ds_id, event.data, event.time)
    if inst.state != "uploaded":
        _rate(session, ds_id, "uploaded", event.time, inst.size)
    _move(session, inst, "uploaded", event.time)
    inst.attempts = max(inst.attempts, event.data.attempts)
    inst.destination = event.data.destination
    inst.error = ""
    _datashare(session, ds_id, event.time).last_uploaded_at = event.time


def on_instance_failed(session: Session, event: ev.InstanceFailedEvent, seq: int) -> None:
    ds_id = _ds_id(event)
    inst = _instance(session, ds_id, event.data, event.time)
    if inst.state == "pending":
        _move(session, inst, "failing", event.time)
    inst.attempts = max(inst.attempts, event.data.attempt)
    inst.error = event.data.error
    inst.destination = event.data.destination
    ds = _datashare(session, ds_id, event.time)
    ds.failures += 1
    ds.last_error = event.data.error
    ds.last_failure_at = event.time


def on_instance_dead_lettered(
    session: Session, event: ev.InstanceDeadLetteredEvent, seq: int
) -> None:
    ds_id = _ds_id(event)
    inst = _instance(session, ds_id, event.data, event.time)
    if inst.state != "uploaded":  # a late dead letter never undoes a delivery
        _move(session, inst, "dead", event.time)
    inst.attempts = max(inst.attempts, event.data.attempts)
    inst.error = event.data.error
    inst.destination = event.data.destination
    inst.quarantine_key = event.data.quarantine_key
    ds = _datashare(session, ds_id, event.time)
    ds.last_error = event.data.error
    ds.last_failure_at = event.time


def on_retry_requested(session: Session, event: ev.InstanceRetryRequestedEvent, seq: int) -> None:
    session.flush()  # writer sessions do not autoflush
    keys = session.scalars(
        select(m.Instance.key).where(m.Instance.quarantine_key == event.data.quarantine_key)
    ).all()
    for key in keys:
        inst = _get(session, m.Instance, key)
        if inst is not None and inst.state == "dead":
            _move(session, inst, "pending", event.time)


def on_buffer_usage(session: Session, event: ev.BufferUsageEvent, seq: int) -> None:
    row = _get(session, m.Buffer, 1)
    if row is None:
        row = m.Buffer(id=1, at=event.time)
        _add(session, row)
    elif row.at > event.time:  # an older report from a slower receiver
        return
    data = event.data
    row.used_bytes, row.objects = data.used_bytes, data.objects
    row.quota_bytes, row.refusing, row.at = data.quota_bytes, data.refusing, event.time


_HANDLERS: dict[str, Callable[[Session, Any, int], None]] = {
    "datashare.created": on_datashare_changed,
    "datashare.updated": on_datashare_changed,
    "datashare.deleted": on_datashare_deleted,
    "association.opened": on_association_opened,
    "association.closed": on_association_ended,
    "association.aborted": on_association_ended,
    "association.rejected": on_association_rejected,
    "instance.stored": on_instance_stored,
    "instance.refused": on_instance_refused,
    "instance.uploaded": on_instance_uploaded,
    "instance.failed": on_instance_failed,
    "instance.dead_lettered": on_instance_dead_lettered,
    "instance.retry_requested": on_retry_requested,
    "buffer.usage": on_buffer_usage,
}
