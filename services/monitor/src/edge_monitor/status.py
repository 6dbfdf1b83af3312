"""The read side: status documents built from the projections, with health verdicts in
plain words. Every function takes ``now`` so that the same tables give the same answer."""

import json
from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from edge_core.topology import MONITOR_CONSUMER, UPLOADER_CONSUMER
from edge_monitor import models
from edge_monitor.backlog import Backlog
from edge_monitor.config import MonitorSettings
from edge_monitor.projections import POSITION

MB = 1_000_000
# What an association left active by a receiver whose lease expired is shown with.
RECEIVER_GONE = "receiver stopped (no heartbeat since {:%Y-%m-%d %H:%M:%S} UTC)"
# Receivers listed in the status: those alive, and those gone within this time.
RECEIVERS_LISTED_S = 24 * 3600
# Orphans removed from the buffer within this time are a problem to look at.
ORPHANS_NOTICE_S = 24 * 3600


def status(
    session: Session, settings: MonitorSettings, now: datetime, backlog: Backlog | None = None
) -> dict[str, Any]:
    buffer = session.get(models.Buffer, 1)
    receivers = session.scalars(
        select(models.Receiver).order_by(models.Receiver.started_at, models.Receiver.receiver)
    ).all()
    gone = gone_receivers(receivers, lease_clock(session, now, backlog))
    datashares = [
        datashare_status(session, ds, settings, now, buffer, gone)
        for ds in session.scalars(
            select(models.Datashare)
            .where(models.Datashare.deleted.is_(False))
            .order_by(models.Datashare.id)
        )
    ]
    known = session.scalars(
        select(models.Datashare).where(models.Datashare.deleted.is_(False))
    ).all()
    since = now - timedelta(seconds=settings.monitor_rejections_window_s)
    rejected = rejections(session, since, known)
    position = session.get(models.Position, POSITION)
    doc: dict[str, Any] = {
        "generated_at": now,
        "datashares": datashares,
        "rejections": rejected,
        "buffer": buffer_status(buffer),
        "receivers": receivers_status(receivers, gone, now),
        "dead_letters": sum(d["instances_dead_lettered"] for d in datashares),
        "uploader": _lag(backlog, UPLOADER_CONSUMER),
        "monitor": {"position": position.seq if position else 0, **_lag(backlog, MONITOR_CONSUMER)},
    }
    doc["problems"] = problems(doc)
    return doc


def _lag(backlog: Backlog | None, consumer: str) -> dict[str, Any]:
    lag = backlog.consumers.get(consumer) if backlog else None
    if lag is None:
        return {"backlog": None, "pending": None, "ack_pending": None, "redelivered": None}
    return {"backlog": lag.pending + lag.ack_pending, **asdict(lag)}


def lease_clock(session: Session, now: datetime, backlog: Backlog | None) -> datetime:
    """What receivers' leases are judged against: the clock; but while the monitor has events
    still to fold (their heartbeats may be among them), the newest event time it has folded,
    so that catching up on a backlog does not show live receivers' associations aborted."""
    lag = backlog.consumers.get(MONITOR_CONSUMER) if backlog else None
    position = session.get(models.Position, POSITION)
    if lag is None or lag.pending + lag.ack_pending == 0 or position is None:
        return now
    return min(now, position.latest_at or now)


def gone_receivers(receivers: Sequence[models.Receiver], clock: datetime) -> dict[str, datetime]:
    """Receiver processes whose lease expired (killed, or their host down), with their last
    heartbeat: the associations they left active are shown aborted."""
    return {
        r.receiver: r.last_seen
        for r in receivers
        if clock > r.last_seen + timedelta(seconds=r.lease_s)
    }


def receivers_status(
    receivers: Sequence[models.Receiver], gone: dict[str, datetime], now: datetime
) -> list[dict[str, Any]]:
    """Those alive, and those gone lately."""
    return [
        {
            "receiver": r.receiver,
            "started_at": r.started_at,
            "last_seen": r.last_seen,
            "alive": r.receiver not in gone,
        }
        for r in receivers
        if (now - r.last_seen).total_seconds() < RECEIVERS_LISTED_S
    ]


def buffer_status(buffer: models.Buffer | None) -> dict[str, Any]:
    if buffer is None:
        return {"reported": False, "used_bytes": None, "quota_bytes": None, "objects": None,
                "used_fraction": None, "refusing": False, "reported_at": None}  # fmt: skip
    fraction = buffer.used_bytes / buffer.quota_bytes if buffer.quota_bytes else None
    return {
        "reported": True,
        "used_bytes": buffer.used_bytes,
        "quota_bytes": buffer.quota_bytes,
        "objects": buffer.objects,
        "used_fraction": fraction,
        "refusing": buffer.refusing,
        "reported_at": buffer.at,
    }


def datashare_status(
    session: Session,
    ds: models.Datashare,
    settings: MonitorSettings,
    now: datetime,
    buffer: models.Buffer | None,
    gone: dict[str, datetime] | None = None,
    backlog: Backlog | None = None,
) -> dict[str, Any]:
    if gone is None:
        clock = lease_clock(session, now, backlog)
        gone = gone_receivers(session.scalars(select(models.Receiver)).all(), clock)
    active, recent = _associations(session, ds.id, settings.monitor_recent_associations, gone)
    refusals = session.scalars(
        select(models.Refusal).where(models.Refusal.datashare == ds.id)
    ).all()
    doc: dict[str, Any] = {
        "id": ds.id,
        "description": ds.description,
        "ae_title": ds.ae_title,
        "match": ds.match,
        "enabled": ds.enabled,
        # the de-identification in force (null: forwarded byte for byte)
        "deidentification": json.loads(ds.deidentification) if ds.deidentification else None,
        # versions forwarded de-identified; versions held (burned-in identity risk)
        "instances_deidentified": ds.deidentified,
        "instances_held": ds.held,
        # distinct SOP instances (a re-send with other bytes is a new version of one)
        "instances_received": ds.received,
        "instances_uploaded": ds.uploaded,
        # SOP instances received in more than one version, and the versions received
        "instances_replaced": ds.replaced,
        "versions_received": ds.versions,
        # failed and not delivered: being retried, or dead-lettered
        "instances_failed": ds.failing + ds.dead,
        "instances_retrying": ds.failing,
        "instances_dead_lettered": ds.dead,
        # received and not yet uploaded (nor dead-lettered): waiting in the buffer
        "instances_pending": ds.pending + ds.failing,
        "instances_refused": ds.refused,
        "refusals": {r.reason: r.count for r in refusals},
        "upload_failures": ds.failures,
        "bytes_received": ds.received_bytes,
        "bytes_uploaded": ds.uploaded_bytes,
        "bytes_pending": ds.pending_bytes + ds.failing_bytes,
        "bytes_dead_lettered": ds.dead_bytes,
        "rate": rates(session, ds.id, now, settings.monitor_rate_window_s),
        "associations_active": len(active),
        "associations_total": ds.associations_total,
        "associations_rejected": ds.associations_rejected,
        "associations": {"active": active, "recent": recent},
        "studies_total": ds.studies,
        "studies_quiet_after_s": settings.monitor_quiet_after_s,
        "studies": _studies(session, ds.id, settings, now),
        "first_received_at": ds.first_received_at,
        "last_received_at": ds.last_received_at,
        "last_uploaded_at": ds.last_uploaded_at,
        "last_activity": ds.last_activity,
        "last_error": ds.last_error,
        "last_failure_at": ds.last_failure_at,
        # objects refused after the buffer write, that no event named: removed by the uploader
        "orphans_removed": ds.orphans_removed,
        "orphan_bytes_removed": ds.orphan_bytes_removed,
        "last_orphan_removed_at": ds.last_orphan_removed_at,
    }
    verdict, reason = health(ds, doc, _oldest_waiting(session, ds.id), buffer, settings, now)
    doc["health"] = {"verdict": verdict, "reason": reason}
    return doc


def _associations(
    session: Session, ds_id: str, recent_listed: int, gone: dict[str, datetime]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The datashare's open associations (oldest first) and its latest ended ones, those
    that a receiver now gone left open among them (ended when it did)."""
    still_open = session.scalars(
        select(models.Association)
        .where(models.Association.datashare == ds_id, models.Association.state == "active")
        .order_by(models.Association.started_at)
    ).all()
    active = [_association(a) for a in still_open if a.receiver not in gone]
    ghosts = [_ghost(a, gone[a.receiver]) for a in still_open if a.receiver in gone]
    ended = session.scalars(
        select(models.Association)
        .where(models.Association.datashare == ds_id, models.Association.ended_at.is_not(None))
        .order_by(models.Association.ended_at.desc())
        .limit(recent_listed)
    ).all()
    recent = sorted(
        [*ghosts, *map(_association, ended)], key=lambda a: a["ended_at"], reverse=True
    )[:recent_listed]
    return active, recent


def _studies(
    session: Session, ds_id: str, settings: MonitorSettings, now: datetime
) -> list[dict[str, Any]]:
    """The latest studies, each with whether it has gone quiet."""
    quiet_after = timedelta(seconds=settings.monitor_quiet_after_s)
    studies = session.scalars(
        select(models.Study)
        .where(models.Study.datashare == ds_id)
        .order_by(models.Study.last_seen.desc())
        .limit(settings.monitor_studies_listed)
    ).all()
    return [
        {
            "study_uid": s.study_uid,
            "instances_received": s.received,
            "instances_uploaded": s.uploaded,
            "instances_failed": s.failing + s.dead,
            "first_seen": s.first_seen,
            "last_seen": s.last_seen,
            "quiet": now - s.last_seen >= quiet_after,
        }
        for s in studies
    ]


def _oldest_waiting(session: Session, ds_id: str) -> datetime | None:
    """When the longest-waiting instance still in the buffer was received."""
    return session.scalar(
        select(func.min(models.Instance.received_at)).where(
            models.Instance.datashare == ds_id, models.Instance.state == "pending"
        )
    )


def rates(session: Session, ds_id: str, now: datetime, window_s: float) -> dict[str, float]:
    """Per second over the window, or since the first instance in it if that is later (a
    transfer that started 5 s ago is not averaged over a whole minute)."""
    since = int(now.timestamp() - window_s)
    rows = session.execute(
        select(
            models.Rate.kind,
            func.sum(models.Rate.instances),
            func.sum(models.Rate.bytes),
            func.min(models.Rate.second),
        )
        .where(models.Rate.datashare == ds_id, models.Rate.second > since)
        .group_by(models.Rate.kind)
    ).all()
    doc: dict[str, float] = {"window_s": window_s}
    for kind in ("received", "uploaded"):
        n, b, first = next(((n, b, f) for k, n, b, f in rows if k == kind), (0, 0, None))
        span = window_s if first is None else min(window_s, max(1.0, now.timestamp() - first))
        doc[f"{kind}_instances_per_s"] = round(int(n) / span, 3)
        doc[f"{kind}_mb_per_s"] = round(int(b) / MB / span, 3)
    return doc


def _association(a: models.Association) -> dict[str, Any]:
    return {
        "association_id": a.association_id,
        "calling_ae": a.calling_ae,
        "called_ae": a.called_ae,
        "peer": f"{a.peer_host}:{a.peer_port}",
        "peer_host": a.peer_host,
        "state": a.state,
        "started_at": a.started_at,
        "ended_at": a.ended_at,
        "last_instance_at": a.last_instance_at,
        "instances": max(a.instances, a.reported_instances),
        "bytes": max(a.bytes, a.reported_bytes),
        "failures": max(a.failures, a.reported_failures),
        "reason": a.reason,
        "receiver": a.receiver,
    }


def _ghost(a: models.Association, last_seen: datetime) -> dict[str, Any]:
    """An association its receiver left active: it ended when the receiver did."""
    return _association(a) | {
        "state": "aborted",
        "ended_at": last_seen,
        "reason": RECEIVER_GONE.format(last_seen),
    }


Verdict = tuple[str, str]


def health(
    ds: models.Datashare,
    doc: dict[str, Any],
    oldest_waiting: datetime | None,
    buffer: models.Buffer | None,
    settings: MonitorSettings,
    now: datetime,
) -> Verdict:
    """The verdict, worst first: refusing, failing, stalled, receiving, idle."""
    recent = now - timedelta(seconds=settings.monitor_idle_after_s)
    return (
        _refusing(ds, buffer, recent)
        or _failing(ds, recent, settings.monitor_idle_after_s)
        or _stalled(ds, doc["instances_pending"], oldest_waiting, settings, now)
        or _receiving_or_idle(ds, doc, recent, now)
    )


def _refusing(
    ds: models.Datashare, buffer: models.Buffer | None, recent: datetime
) -> Verdict | None:
    """The buffer is full now, or was recently and has not reported since."""
    full_at = ds.last_buffer_full_at
    full_recently = full_at is not None and full_at >= recent
    if not (buffer is not None and buffer.refusing) and not (
        full_at is not None and full_recently and (buffer is None or buffer.at < full_at)
    ):
        return None
    usage = ""
    if buffer is not None and buffer.quota_bytes:
        usage = f" ({_size(buffer.used_bytes)} of {_size(buffer.quota_bytes)})"
    return "refusing", (
        f"The buffer is full{usage}: new instances are refused with 'Out of Resources' "
        "(the PACS should retry) until the uploader drains it."
    )


def _failing(ds: models.Datashare, recent: datetime, idle_after_s: float) -> Verdict | None:
    """Dead letters, deliveries being retried, or instances refused recently."""
    if ds.dead:
        return "failing", (
            f"{ds.dead} instance(s) could not be delivered and were dead-lettered "
            f"(last error: {ds.last_error or 'unknown'}). Fix the cause, then retry them."
        )
    if ds.failing:
        return "failing", (
            f"{ds.failing} instance(s) failed to upload and are being retried "
            f"(last error: {ds.last_error or 'unknown'})."
        )
    if (
        ds.last_refused_at is not None
        and ds.last_refused_at >= recent
        and (ds.last_refused_reason != "buffer_full")
    ):
        return "failing", (
            f"The receiver refused instances in the last {_duration(idle_after_s)}"
            f" ({ds.last_refused_reason.replace('_', ' ')})."
        )
    return None


def _stalled(
    ds: models.Datashare,
    pending: int,
    oldest_waiting: datetime | None,
    settings: MonitorSettings,
    now: datetime,
) -> Verdict | None:
    """Instances have waited in the buffer, and nothing was uploaded, for too long."""
    if oldest_waiting is None:
        return None
    progress = max(oldest_waiting, ds.last_uploaded_at or oldest_waiting)
    if now - progress < timedelta(seconds=settings.monitor_stalled_after_s):
        return None
    since = (
        f"nothing was uploaded for {_duration((now - ds.last_uploaded_at).total_seconds())}"
        if ds.last_uploaded_at
        else "nothing has been uploaded yet"
    )
    return "stalled", (
        f"{pending} instance(s) are waiting in the buffer and {since}: "
        "is the uploader running, and the destination reachable?"
    )


def _receiving_or_idle(
    ds: models.Datashare, doc: dict[str, Any], recent: datetime, now: datetime
) -> Verdict:
    rate = doc["rate"]
    if ds.last_received_at is not None and ds.last_received_at >= recent:
        return "receiving", (
            f"Receiving {rate['received_instances_per_s']:g} instances/s "
            f"({rate['received_mb_per_s']:g} MB/s); {ds.uploaded} of {ds.received} uploaded."
        )
    if not ds.enabled:
        return "idle", "Disabled: associations for this datashare are rejected."
    if ds.last_received_at is None:
        return "idle", "Nothing received yet."
    waiting = doc["instances_pending"]
    tail = f"; uploading the last {waiting}" if waiting else "; everything received was uploaded"
    return "idle", (
        f"Nothing received for {_duration((now - ds.last_received_at).total_seconds())}{tail}."
    )


def rejections(
    session: Session, since: datetime, known: Sequence[models.Datashare] = ()
) -> list[dict[str, Any]]:
    """Rejected associations since ``since``, grouped by who called whom from where, each
    with a suggestion from the ``known`` datashares when its AE title was nearly right."""
    rejection = models.Rejection
    rows = session.execute(
        select(
            rejection.calling_ae,
            rejection.called_ae,
            rejection.peer_host,
            rejection.reason,
            rejection.datashare,
            func.max(rejection.reason_text),
            func.count(),
            func.min(rejection.at),
            func.max(rejection.at),
        )
        .where(rejection.at >= since)
        .group_by(
            rejection.calling_ae,
            rejection.called_ae,
            rejection.peer_host,
            rejection.reason,
            rejection.datashare,
        )
        .order_by(func.max(rejection.at).desc())
    ).all()
    return [
        {
            "calling_ae": calling,
            "called_ae": called,
            "peer_host": peer,
            "reason": reason,
            "reason_text": text,
            "datashare": ds,
            "count": count,
            "first_seen": first,
            "last_seen": last,
            "explanation": explain_rejection(calling, called, peer, reason, text, ds),
            "suggestion": None if ds else suggest(calling, called, known),
        }
        for calling, called, peer, reason, ds, text, count, first, last in rows
    ]


def explain_rejection(
    calling: str, called: str, peer: str, reason: int, text: str, datashare: str | None
) -> str:
    """In plain words. ``datashare``: the one the AE titles selected when it was rejected
    (which then refused the caller), or None: the PACS used an AE title that selects none."""
    who = f"PACS '{calling}' at {peer}"
    if datashare:
        return f"{who} was refused by datashare '{datashare}': {text}."
    if reason == 3:  # calling-AE-title mode
        return (
            f"{who} used calling AE title '{calling}' (called '{called}'), which matches no "
            "datashare."
        )
    return f"{who} used called AE title '{called}', which matches no datashare."


# A mistyped AE title is at most this many edits from the datashare's (and from a short
# title, at most half its length: 'CT' is not a typo of 'MR').
SUGGEST_DISTANCE = 2


def suggest(calling: str, called: str, known: Sequence[models.Datashare]) -> dict[str, Any] | None:
    """The datashare whose AE title the caller most likely meant: the same but for case or
    surrounding spaces (a receiver that compares exactly rejected it), or a few characters
    off; compared with the called AE title, or the calling one for a calling-mode share."""
    best: tuple[int, models.Datashare] | None = None
    for ds in known:
        used = calling if ds.match == "calling" else called
        title = _normal(ds.ae_title)
        distance = levenshtein(_normal(used), title)
        if distance <= min(SUGGEST_DISTANCE, len(title) // 2) and (
            best is None or distance < best[0]
        ):
            best = (distance, ds)
    if best is None:
        return None
    ds = best[1]
    which = "calling" if ds.match == "calling" else "called"
    return {
        "datashare": ds.id,
        "ae_title": ds.ae_title,
        "match": ds.match,
        "text": f"Did you mean {which} AE title '{ds.ae_title}' (datashare '{ds.id}')?",
    }


def _normal(ae_title: str) -> str:
    """AE titles are compared ignoring case and surrounding spaces (DESIGN.md)."""
    return ae_title.strip().upper()


def levenshtein(a: str, b: str) -> int:
    """Insertions, deletions and substitutions that turn ``a`` into ``b``."""
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def problems(doc: dict[str, Any]) -> list[str]:
    """Everything that needs a person's attention, in plain words."""
    found = [
        f"Datashare '{d['id']}' is {d['health']['verdict']}: {d['health']['reason']}"
        for d in doc["datashares"]
        if d["health"]["verdict"] in ("refusing", "failing", "stalled")
    ]
    found += [
        f"{r['explanation']} ({r['count']} time(s), last at {r['last_seen']:%Y-%m-%d %H:%M:%S} UTC)"
        + (f" {r['suggestion']['text']}" if r["suggestion"] else "")
        for r in doc["rejections"]
    ]
    found += [
        f"Datashare '{d['id']}': {d['orphans_removed']} instance(s) refused after the buffer"
        f" write (the event bus did not acknowledge them) were removed from the buffer, the"
        f" last at {d['last_orphan_removed_at']:%Y-%m-%d %H:%M:%S} UTC."
        for d in doc["datashares"]
        if d["last_orphan_removed_at"] is not None
        and (doc["generated_at"] - d["last_orphan_removed_at"]).total_seconds() < ORPHANS_NOTICE_S
    ]
    fraction = doc["buffer"]["used_fraction"]
    if fraction is not None and fraction >= 0.8 and not doc["buffer"]["refusing"]:
        found.append(f"The buffer is {fraction:.0%} full.")
    return found


def dead_letters(
    session: Session, datashare: str | None = None, limit: int = 1000
) -> list[dict[str, Any]]:
    query = select(models.Instance).where(models.Instance.state == "dead")
    if datashare is not None:
        query = query.where(models.Instance.datashare == datashare)
    return [
        {
            "datashare": i.datashare,
            "key": i.key,
            "quarantine_key": i.quarantine_key,
            "study_uid": i.study_uid,
            "sop_instance_uid": i.sop_instance_uid,
            "size": i.size,
            "attempts": i.attempts,
            "error": i.error,
            "destination": i.destination,
            "dead_lettered_at": i.state_at,
        }
        for i in session.scalars(query.order_by(models.Instance.state_at.desc()).limit(limit))
    ]


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    if seconds < 2 * 86400:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} days"


def _size(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000  # type: ignore[assignment]
    return f"{n:.1f} TB"
