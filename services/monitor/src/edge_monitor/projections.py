"""The fold: every event, applied once, updates the projection tables.

``apply(session, event, seq)`` folds one event. It is a pure function of the event stream
(it reads event times, never the clock), so replaying the stream into empty tables
(``rebuild``) gives the same status. Which stream sequences are folded is stored in the same
transaction (a low-water mark and the sequences applied above it), so an event redelivered
by JetStream (at-least-once) is recognised and skipped whatever the order of delivery.

Events may be folded out of stream order (a batch redelivered after newer ones were folded):
every handler gives the same result in any order. Instance states are a function of the
latest sequence of each kind of event (``_state``); other fields keep the latest by time or
by sequence, and counts add up.

Counters count distinct SOP instances (per datashare, by SOP Instance UID): a re-send with
other bytes is a new version (buffer key), counted in ``versions``/``replaced``, and the SOP
instance takes the state of its newest version (the latest ``instance.stored``).
"""

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import delete, func, inspect, select
from sqlalchemy.orm import Session

from edge_core import events
from edge_monitor import models

T = TypeVar("T")

POSITION = "events"
NEVER = datetime(1970, 1, 1, tzinfo=UTC)
# Throughput buckets older than this are pruned (only the last minute is read), and so are
# rejections (listed for a day by default). Pruning never changes what the status shows.
RATE_RETENTION_S = 3600
REJECTION_RETENTION_S = 7 * 24 * 3600


def lock_position(session: Session) -> int:
    """The position, locked until the transaction ends (PostgreSQL; SQLite's writer sessions
    begin IMMEDIATE), so that two folds (a running monitor and a rebuild) never interleave."""
    row = session.get(models.Position, POSITION, with_for_update=True)
    return row.seq if row else 0


def adopt_stream(session: Session, stream: str) -> bool:
    """Record which stream the position counts in. If it is another one (the stream was
    created anew, its sequences start again at 1), rewind the position so that its events
    are folded on top of what was counted before; True if so."""
    row = _position(session)
    rewound = bool(row.stream) and row.stream != stream and (row.seq > 0 or bool(_applied(session)))
    if rewound:
        row.seq = 0
        _forget_applied(session)
    row.stream = stream
    return rewound


def stream_of(session: Session) -> str:
    return _position(session).stream


def apply(session: Session, event: events.Event, seq: int) -> bool:
    """Fold one event at stream sequence ``seq``; False if it was already applied (whatever
    the order in which events and their redeliveries arrive)."""
    if _is_applied(session, seq):
        return False
    handler = _HANDLERS.get(event.type)
    if handler is not None:
        handler(session, event, seq)
    position = _position(session)
    position.latest_at = _later(position.latest_at, event.time)
    _applied(session).add(seq)
    return True


def skip(session: Session, seq: int) -> None:
    """Record ``seq`` as seen without folding it (an event that cannot be read or folded)."""
    _applied(session).add(seq)


def advance(session: Session, floor: int) -> None:
    """Every stream sequence up to ``floor`` is folded (the consumer's ack floor: we
    acknowledge only after committing; or the end of a rebuild's in-order replay), so the
    low-water mark moves there, past any sequences the stream no longer holds."""
    row = _position(session)
    row.seq = max(row.seq, floor)


def end_batch(session: Session) -> None:
    """Write the batch's changes and forget its rows (a rebuild folds many batches)."""
    _settle_applied(session)
    session.flush()
    session.info.pop("rows", None)


def prune(session: Session, now: datetime) -> None:
    session.execute(
        delete(models.Rate).where(models.Rate.second < int(now.timestamp()) - RATE_RETENTION_S)
    )
    session.execute(
        delete(models.Rejection).where(
            models.Rejection.at < now - timedelta(seconds=REJECTION_RETENTION_S)
        )
    )


def reset(session: Session) -> None:
    """Empty every projection table and rewind the position, for a rebuild. The position row
    is updated, not deleted, so that a monitor waiting on its lock reads the new value."""
    for table in reversed(models.Base.metadata.sorted_tables):
        if table is not models.Position.__table__:
            session.execute(table.delete())
    row = _get(session, models.Position, POSITION)
    if row is not None:
        row.seq, row.latest_at = 0, None
    session.info.pop("rows", None)
    session.info.pop("applied", None)
    session.flush()


# --- which events are folded: a low-water mark and the sequences applied above it -------


def _applied(session: Session) -> set[int]:
    """The sequences above the low-water mark known to be folded (stored, or in this
    transaction); read once per transaction."""
    applied = session.info.get("applied")
    if applied is None:
        stored = set(session.scalars(select(models.Applied.seq)))
        session.info["applied_stored"] = stored
        applied = session.info["applied"] = set(stored)
    return applied


def _is_applied(session: Session, seq: int) -> bool:
    return seq <= _position(session).seq or seq in _applied(session)


def _forget_applied(session: Session) -> None:
    _applied(session).clear()


def _settle_applied(session: Session) -> None:
    """Move the low-water mark over the consecutive sequences folded above it, and store
    only what remains above it (in-order delivery leaves nothing there)."""
    row = _position(session)
    applied = _applied(session)
    while row.seq + 1 in applied:
        row.seq += 1
    applied.difference_update([s for s in applied if s <= row.seq])
    stored: set[int] = session.info["applied_stored"]
    if stored - applied:
        session.execute(delete(models.Applied).where(models.Applied.seq.in_(stored - applied)))
    for seq in applied - stored:
        session.add(models.Applied(seq=seq))
    session.info["applied_stored"] = set(applied)


# --- helpers -----------------------------------------------------------------------------


def _rows(session: Session) -> dict[tuple[type, tuple[Any, ...]], Any]:
    """The rows this batch touched, held strongly: the session's identity map is weak, and
    writer sessions do not autoflush, so every read of a row goes through here."""
    rows: dict[tuple[type, tuple[Any, ...]], Any] = session.info.setdefault("rows", {})
    return rows


def _get(session: Session, cls: type[T], pk: Any) -> T | None:
    key = (cls, pk if isinstance(pk, tuple) else (pk,))
    rows = _rows(session)
    if key not in rows:
        rows[key] = session.get(cls, pk)
    row: T | None = rows[key]
    return row


def prefetch(session: Session, batch: list[events.Event]) -> None:
    """Load the versions and SOP instances a batch refers to in two queries (most are new:
    known absent)."""
    refs = [(_ds_id(e), e.data) for e in batch if isinstance(e.data, events.InstanceRef)]
    rows = _rows(session)
    keys = {data.key for _, data in refs}
    found = {
        i.key: i
        for i in session.scalars(select(models.Instance).where(models.Instance.key.in_(keys)))
    }
    for key in keys:
        rows.setdefault((models.Instance, (key,)), found.get(key))
    uids = {data.sop_instance_uid for _, data in refs}
    sops = {
        (s.datashare, s.sop_instance_uid): s
        for s in session.scalars(
            select(models.SopInstance).where(models.SopInstance.sop_instance_uid.in_(uids))
        )
    }
    for ds_id, data in refs:
        pk = (ds_id, data.sop_instance_uid)
        rows.setdefault((models.SopInstance, pk), sops.get(pk))


def _add(session: Session, row: Any) -> None:
    session.add(row)
    pk = tuple(inspect(type(row)).primary_key_from_instance(row))
    _rows(session)[(type(row), pk)] = row


def _position(session: Session) -> models.Position:
    row = _get(session, models.Position, POSITION)
    if row is None:
        row = models.Position(name=POSITION, seq=0, stream="")
        _add(session, row)
    return row


def _datashare(session: Session, ds_id: str, at: datetime) -> models.Datashare:
    """The datashare's row, created on the first event that names it."""
    row = _get(session, models.Datashare, ds_id)
    if row is None:
        row = models.Datashare(id=ds_id, ae_title=ds_id, created_at=at)
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


def _study(session: Session, ds_id: str, study_uid: str, at: datetime) -> models.Study:
    row = _get(session, models.Study, (ds_id, study_uid))
    if row is None:
        # last_seen: of its instance.stored events only (set by them, folded before or after)
        row = models.Study(datashare=ds_id, study_uid=study_uid, first_seen=at, last_seen=NEVER)
        _zero(row)
        _add(session, row)
        _datashare(session, ds_id, at).studies += 1
    row.first_seen = min(row.first_seen, at)
    return row


def _later(current: datetime | None, at: datetime) -> datetime:
    return at if current is None or at > current else current


def _rate(session: Session, ds_id: str, kind: str, at: datetime, size: int) -> None:
    second = int(at.timestamp())
    row = _get(session, models.Rate, (ds_id, kind, second))
    if row is None:
        row = models.Rate(datashare=ds_id, kind=kind, second=second, instances=0, bytes=0)
        _add(session, row)
    row.instances += 1
    row.bytes += size


# --- instances: versions (buffer keys) and the distinct SOP instances they belong to -----


def _version(
    session: Session, ds_id: str, data: events.InstanceRef, at: datetime
) -> models.Instance:
    """The version's row, created by whichever of its events is folded first."""
    inst = _get(session, models.Instance, data.key)
    if inst is not None:
        return inst
    inst = models.Instance(
        key=data.key, datashare=ds_id, study_uid=data.study_uid,
        sop_instance_uid=data.sop_instance_uid, size=data.size, state="pending",
        received_at=at, state_at=at, attempts=0, error="", destination="",
    )  # fmt: skip
    _zero(inst)
    _add(session, inst)
    ds = _datashare(session, ds_id, at)
    ds.versions += 1
    sop = _sop(session, ds_id, data, at)
    sop.versions += 1
    if sop.versions == 2:
        ds.replaced += 1
    return inst


def _sop(
    session: Session, ds_id: str, data: events.InstanceRef, at: datetime
) -> models.SopInstance:
    """The distinct SOP instance; a new one is counted as received (and pending)."""
    sop = _get(session, models.SopInstance, (ds_id, data.sop_instance_uid))
    if sop is not None:
        return sop
    sop = models.SopInstance(
        datashare=ds_id, sop_instance_uid=data.sop_instance_uid, study_uid=data.study_uid,
        newest_key=data.key, newest_seq=0, state="pending", size=data.size, versions=0,
    )  # fmt: skip
    _add(session, sop)
    ds = _datashare(session, ds_id, at)
    ds.received += 1
    ds.received_bytes += data.size
    ds.pending += 1
    ds.pending_bytes += data.size
    _study(session, ds_id, data.study_uid, at).received += 1
    return sop


def _state(inst: models.Instance) -> str:
    """The version's state, from the latest sequence of each kind of event about it (so the
    same whatever order they were folded in). Delivered since it last arrived: uploaded (a
    late failure report of a parallel attempt, or a second retry request, never undoes a
    delivery). Otherwise a cycle of attempts starts when it arrived or staff last asked to
    retry it, and within it a dead letter wins over a failed attempt."""
    if inst.uploaded_seq > inst.stored_seq:
        return "uploaded"
    cycle = max(inst.stored_seq, inst.retry_seq)
    if inst.superseded_seq > cycle:  # a newer version came: this one is never sent
        return "superseded"
    if inst.dead_seq > cycle:
        return "dead"
    if inst.failed_seq > cycle:
        return "failing"
    return "pending"


def _changed(session: Session, inst: models.Instance, seq: int, at: datetime) -> None:
    """After one of the version's events: its state, and its SOP instance's counters."""
    if seq > inst.last_seq:
        inst.last_seq, inst.state_at = seq, at
    inst.state = _state(inst)
    sop = _get(session, models.SopInstance, (inst.datashare, inst.sop_instance_uid))
    assert sop is not None  # created with the version
    _study(session, sop.datashare, sop.study_uid, at)  # its first_seen: of any of its events
    if (inst.stored_seq, inst.key) >= (sop.newest_seq, sop.newest_key):
        sop.newest_key, sop.newest_seq = inst.key, inst.stored_seq
    if sop.newest_key == inst.key:
        # A version superseded before the newer one's instance.stored is folded here: it
        # counts as pending until that one takes its place.
        state = "pending" if inst.state == "superseded" else inst.state
        _count(session, sop, state, inst.size, at)


def _count(session: Session, sop: models.SopInstance, state: str, size: int, at: datetime) -> None:
    """Move the SOP instance to its newest version's state and size, keeping the
    datashare's and study's counters exact."""
    if (sop.state, sop.size) == (state, size):
        return
    ds = _datashare(session, sop.datashare, at)
    study = _study(session, sop.datashare, sop.study_uid, at)
    for name, delta, n in ((sop.state, -1, sop.size), (state, +1, size)):
        setattr(ds, name, getattr(ds, name) + delta)
        setattr(ds, f"{name}_bytes", getattr(ds, f"{name}_bytes") + delta * n)
        if name != "pending":
            setattr(study, name, getattr(study, name) + delta)
    ds.received_bytes += size - sop.size
    sop.state, sop.size = state, size


# --- associations ------------------------------------------------------------------------


def _association(session: Session, ds_id: str, assoc_id: str, at: datetime) -> models.Association:
    """The association's row, created (and counted) by whichever of its events comes first."""
    ds = _datashare(session, ds_id, at)
    row = _get(session, models.Association, assoc_id)
    if row is None:
        row = models.Association(
            association_id=assoc_id, datashare=ds_id, calling_ae="", called_ae="",
            peer_host="", peer_port=0, state="active", instances=0, bytes=0, failures=0,
            reason="", reported_instances=0, reported_bytes=0, reported_failures=0,
        )  # fmt: skip
        _add(session, row)
        ds.associations_total += 1
    return row


def _describe(row: models.Association, data: events.AssociationRef) -> None:
    row.calling_ae, row.called_ae = data.calling_ae, data.called_ae
    row.peer_host, row.peer_port = data.peer_host, data.peer_port


# --- handlers, one per event type --------------------------------------------------------


def _ds_id(event: events.Event) -> str:
    return event.datashare or events.NO_DATASHARE


def on_datashare_changed(
    session: Session, event: events.DatashareCreatedEvent | events.DatashareUpdatedEvent, seq: int
) -> None:
    info = event.data.datashare
    row = _datashare(session, info.id, event.time)
    if seq < row.changed_seq:  # an older change, folded late
        return
    row.changed_seq = seq
    row.description = info.description
    row.ae_title = info.ae_title
    row.match = info.match
    row.enabled = info.enabled
    row.deleted = False
    profile = info.deidentification
    row.deidentification = "" if profile is None else profile.model_dump_json()


def on_datashare_deleted(session: Session, event: events.DatashareDeletedEvent, seq: int) -> None:
    row = _datashare(session, event.data.id, event.time)
    if seq > row.changed_seq:
        row.changed_seq = seq
        row.deleted = True


def on_association_opened(session: Session, event: events.AssociationOpenedEvent, seq: int) -> None:
    row = _association(session, _ds_id(event), event.data.association_id, event.time)
    _describe(row, event.data)
    row.started_at = event.time
    row.receiver = event.data.receiver


def on_association_ended(
    session: Session,
    event: events.AssociationClosedEvent | events.AssociationAbortedEvent,
    seq: int,
) -> None:
    data = event.data
    row = _association(session, _ds_id(event), data.association_id, event.time)
    _describe(row, data)
    row.state = "aborted" if isinstance(event, events.AssociationAbortedEvent) else "closed"
    row.ended_at = event.time
    if row.started_at is None:  # opened before the stream's retention, or not folded yet
        row.started_at = event.time
    # The receiver's own totals: they also cover instances whose events are not folded.
    row.reported_instances = max(row.reported_instances, data.instances)
    row.reported_bytes = max(row.reported_bytes, data.bytes)
    row.reported_failures = max(row.reported_failures, data.failures)
    row.reason = getattr(data, "reason", "")


def on_association_rejected(
    session: Session, event: events.AssociationRejectedEvent, seq: int
) -> None:
    data = event.data
    # The receiver names no datashare when it rejects; if the AE titles select one (which
    # then refused the caller: disabled, calling AE title or address not allowed), count it.
    ds_id = event.datashare or _selected(session, data.calling_ae, data.called_ae)
    _add(
        session,
        models.Rejection(
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
    total = _get(session, models.RejectionTotal, data.reason)
    if total is None:
        total = models.RejectionTotal(reason=data.reason, count=0)
        _add(session, total)
    total.reason_text = data.reason_text
    total.count += 1
    if ds_id:
        _datashare(session, ds_id, event.time).associations_rejected += 1


def _selected(session: Session, calling_ae: str, called_ae: str) -> str | None:
    session.flush()  # writer sessions do not autoflush
    datashare = models.Datashare
    # Compared ignoring case and surrounding spaces.
    title = func.upper(func.trim(datashare.ae_title))
    return session.scalars(
        select(datashare.id).where(
            datashare.deleted.is_(False),
            ((datashare.match == "called") & (title == called_ae.strip().upper()))
            | ((datashare.match == "calling") & (title == calling_ae.strip().upper())),
        )
    ).first()


def on_instance_stored(session: Session, event: events.InstanceStoredEvent, seq: int) -> None:
    ds_id, data, at = _ds_id(event), event.data, event.time
    inst = _version(session, ds_id, data, at)
    if not inst.stored_seq:  # its first arrival
        _rate(session, ds_id, "received", at, data.size)
    inst.received_at = min(inst.received_at, at)
    # (Re-)arrived: the uploader forwards it (again); the newest version is the latest stored.
    inst.stored_seq = max(inst.stored_seq, seq)
    _changed(session, inst, seq, at)
    ds = _datashare(session, ds_id, at)
    ds.first_received_at = min(ds.first_received_at or at, at)
    ds.last_received_at = _later(ds.last_received_at, at)
    study = _study(session, ds_id, data.study_uid, at)
    study.last_seen = _later(study.last_seen, at)
    assoc = _association(session, ds_id, data.association_id, at)
    assoc.calling_ae = assoc.calling_ae or data.calling_ae
    assoc.instances += 1
    assoc.bytes += data.size
    assoc.last_instance_at = _later(assoc.last_instance_at, at)


def on_instance_refused(session: Session, event: events.InstanceRefusedEvent, seq: int) -> None:
    ds = _datashare(session, _ds_id(event), event.time)
    data = event.data
    ds.refused += 1
    if ds.last_refused_at is None or event.time >= ds.last_refused_at:
        ds.last_refused_reason = data.reason
        ds.last_refused_at = event.time
    if data.reason == "buffer_full":
        ds.last_buffer_full_at = _later(ds.last_buffer_full_at, event.time)
    row = _get(session, models.Refusal, (ds.id, data.reason))
    if row is None:
        row = models.Refusal(datashare=ds.id, reason=data.reason, count=0, last_at=event.time)
        _add(session, row)
    row.count += 1
    if event.time >= row.last_at:
        row.last_at = event.time
        row.last_detail = data.detail
    assoc = _get(session, models.Association, data.association_id)
    if assoc is not None:
        assoc.failures += 1


def on_instance_uploaded(session: Session, event: events.InstanceUploadedEvent, seq: int) -> None:
    ds_id, at = _ds_id(event), event.time
    inst = _version(session, ds_id, event.data, at)
    if not event.data.already_present:  # (a repeated report of a delivery counted before)
        _rate(session, ds_id, "uploaded", at, inst.size)
    inst.attempts = max(inst.attempts, event.data.attempts)
    if seq > max(inst.uploaded_seq, inst.failed_seq, inst.dead_seq):
        inst.destination, inst.error = event.data.destination, ""
    inst.uploaded_seq = max(inst.uploaded_seq, seq)
    _changed(session, inst, seq, at)
    ds = _datashare(session, ds_id, at)
    ds.last_uploaded_at = _later(ds.last_uploaded_at, at)
    if event.data.deidentified and not inst.deidentified:
        inst.deidentified = True
        ds.deidentified += 1


def on_instance_superseded(
    session: Session, event: events.InstanceSupersededEvent, seq: int
) -> None:
    inst = _version(session, _ds_id(event), event.data, event.time)
    inst.superseded_seq = max(inst.superseded_seq, seq)
    _changed(session, inst, seq, event.time)


def on_instance_failed(session: Session, event: events.InstanceFailedEvent, seq: int) -> None:
    ds_id, at = _ds_id(event), event.time
    inst = _version(session, ds_id, event.data, at)
    inst.attempts = max(inst.attempts, event.data.attempt)
    _failure(session, inst, event.data.error, event.data.destination, seq, at)
    inst.failed_seq = max(inst.failed_seq, seq)
    _changed(session, inst, seq, at)
    _datashare(session, ds_id, at).failures += 1


def on_instance_dead_lettered(
    session: Session, event: events.InstanceDeadLetteredEvent, seq: int
) -> None:
    ds_id, at = _ds_id(event), event.time
    inst = _version(session, ds_id, event.data, at)
    inst.attempts = max(inst.attempts, event.data.attempts)
    inst.quarantine_key = event.data.quarantine_key
    _failure(session, inst, event.data.error, event.data.destination, seq, at)
    inst.dead_seq = max(inst.dead_seq, seq)
    _changed(session, inst, seq, at)
    if event.data.held and not inst.held:
        inst.held = True
        _datashare(session, ds_id, at).held += 1


def _failure(
    session: Session, inst: models.Instance, error: str, destination: str, seq: int, at: datetime
) -> None:
    """The latest failure's error, on the version and its datashare."""
    if seq > max(inst.uploaded_seq, inst.failed_seq, inst.dead_seq):
        inst.error, inst.destination = error, destination
    ds = _datashare(session, inst.datashare, at)
    if ds.last_failure_at is None or at >= ds.last_failure_at:
        ds.last_error, ds.last_failure_at = error, at


def on_retry_requested(
    session: Session, event: events.InstanceRetryRequestedEvent, seq: int
) -> None:
    # The quarantine key is the buffer key under a prefix (keys.quarantine_key); the version
    # may not be dead yet here, if its dead letter is folded later: it then stays retried.
    qkey = event.data.quarantine_key
    session.flush()  # writer sessions do not autoflush
    keys = set(
        session.scalars(select(models.Instance.key).where(models.Instance.quarantine_key == qkey))
    )
    keys.add(qkey.removeprefix("quarantine/"))
    for key in keys:
        inst = _get(session, models.Instance, key)
        if inst is not None:
            inst.retry_seq = max(inst.retry_seq, seq)
            _changed(session, inst, seq, event.time)


def on_buffer_usage(session: Session, event: events.BufferUsageEvent, seq: int) -> None:
    row = _get(session, models.Buffer, 1)
    if row is None:
        row = models.Buffer(id=1, at=event.time)
        _add(session, row)
    elif row.at > event.time:  # an older report from a slower receiver
        return
    data = event.data
    row.used_bytes, row.objects = data.used_bytes, data.objects
    row.quota_bytes, row.refusing, row.at = data.quota_bytes, data.refusing, event.time


def on_orphan_removed(session: Session, event: events.BufferOrphanRemovedEvent, seq: int) -> None:
    if event.datashare is None:  # not a key the receiver wrote: nothing to count it under
        return
    ds = _datashare(session, event.datashare, event.time)
    ds.orphans_removed += 1
    ds.orphan_bytes_removed += event.data.size
    ds.last_orphan_removed_at = _later(ds.last_orphan_removed_at, event.time)


def on_receiver_heartbeat(session: Session, event: events.ReceiverHeartbeatEvent, seq: int) -> None:
    """The receiver's lease: its latest heartbeat (whether it has expired is read at status
    time: see ``status.lease_clock``)."""
    data = event.data
    row = _get(session, models.Receiver, data.receiver)
    if row is None:
        row = models.Receiver(
            receiver=data.receiver,
            started_at=data.started_at,
            last_seen=event.time,
            lease_s=data.lease_s,
        )
        _add(session, row)
    elif event.time > row.last_seen:
        row.last_seen, row.lease_s = event.time, data.lease_s


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
    "instance.superseded": on_instance_superseded,
    "instance.failed": on_instance_failed,
    "instance.dead_lettered": on_instance_dead_lettered,
    "instance.retry_requested": on_retry_requested,
    "buffer.usage": on_buffer_usage,
    "buffer.orphan_removed": on_orphan_removed,
    "receiver.heartbeat": on_receiver_heartbeat,
}
